//! Frames round-trip, match postcard's own encoding, resynchronise; the
//! transport pairs answers with the batch in flight.

extern crate std;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use outbox_core::{Batch, Instant, Outcome, Payloads, Seq, Transport};

use super::*;

/// Payloads of `events`, numbered from 1.
fn with_payloads<R>(events: &[Vec<u8>], f: impl FnOnce(Payloads<'_>) -> R) -> R {
    let joined: Vec<u8> = events.concat();
    let sizes: Vec<u32> = events.iter().map(|e| e.len() as u32).collect();
    let lookup = |s: Seq| sizes.get((s - 1) as usize).copied();
    f(Payloads::new(&joined, 1, events.len() as Seq, &lookup))
}

fn encode_batch(id: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    with_payloads(events, |payloads| {
        write_frame(&mut wire, &BatchOut { id, payloads }).unwrap()
    });
    wire
}

/// Every frame `wire` holds, decoded by a reader with a `limit`-byte buffer.
fn frames(wire: &[u8], limit: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut reader = FrameReader::new(vec![0u8; limit]);
    let mut out = Vec::new();
    let mut input = wire;
    while !input.is_empty() {
        let (frame, rest) = reader.feed(input);
        input = rest;
        if let Some(f) = frame {
            out.push(f.map(<[u8]>::to_vec));
        }
    }
    out
}

fn sample_events() -> Vec<Vec<u8>> {
    let mut seed = 7u32;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect()
    };
    vec![
        Vec::new(),
        b"{\"n\":1}".to_vec(),
        vec![0u8; 3],
        vec![0x55; 253],
        vec![0x55; 254],
        vec![0x55; 255],
        vec![0xAA; 700],
        noise(1000),
        noise(5),
    ]
}

#[test]
fn a_batch_frame_is_postcards_own_encoding_and_decodes_back() {
    let events = sample_events();
    let wire = encode_batch(42, &events);
    // What postcard's to_stdvec_cobs makes of the derived type, after our
    // leading delimiter: the streamed encoder adds nothing of its own.
    let expected = postcard::to_stdvec_cobs(&Uplink::Batch {
        id: 42u64,
        events: events.clone(),
    })
    .unwrap();
    assert_eq!(wire[0], 0);
    assert_eq!(&wire[1..], &expected[..]);

    let decoded = frames(&wire, 4096);
    assert_eq!(decoded.len(), 1);
    let content = decoded[0].as_ref().unwrap();
    let frame = BatchFrame::decode(content).unwrap();
    assert_eq!(frame.id, 42);
    assert_eq!(frame.events.len(), events.len());
    assert_eq!(frame.events.map(<[u8]>::to_vec).collect::<Vec<_>>(), events);
}

/// The bytes the transport's hand-written encoder puts on the link for
/// `events` under frame id `id`.
fn stuffed_by_hand(id: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    with_payloads(events, |payloads| {
        super::stuff::write_batch_frame(&mut wire, id, payloads).unwrap()
    });
    wire
}

#[test]
fn the_transports_own_encoder_writes_the_generic_encoders_bytes() {
    // Block edges (253, 254, 255 and 508 non-zero bytes, zeros next to
    // them), varints of every length, an empty batch.
    let mut cases = vec![Vec::new(), sample_events()];
    for n in [1usize, 252, 253, 254, 255, 507, 508, 509] {
        cases.push(vec![vec![0x11; n]]);
        cases.push(vec![vec![0x11; n], vec![0; 2], vec![0x22; n]]);
        let mut zero_after = vec![0x33; n];
        zero_after.push(0);
        cases.push(vec![zero_after]);
    }
    for events in &cases {
        for id in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            assert_eq!(
                stuffed_by_hand(id, events),
                encode_batch(id, events),
                "id {id}, event sizes {:?}",
                events.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
    }
}

proptest::proptest! {
    #[test]
    fn the_transports_own_encoder_matches_postcard(
        id in proptest::prelude::any::<u64>(),
        events in proptest::collection::vec(
            // Zeros now and then, so blocks of every length occur.
            proptest::collection::vec(proptest::prelude::prop_oneof![
                1 => proptest::prelude::Just(0u8),
                30 => proptest::prelude::any::<u8>(),
            ], 0..600),
            0..6,
        ),
    ) {
        let expected = postcard::to_stdvec_cobs(&Uplink::Batch { id, events: events.clone() }).unwrap();
        let wire = stuffed_by_hand(id, &events);
        proptest::prop_assert_eq!(wire[0], 0);
        proptest::prop_assert_eq!(&wire[1..], &expected[..]);
    }
}

#[test]
fn an_empty_batch_and_a_huge_id_round_trip() {
    let wire = encode_batch(u64::MAX, &[]);
    let content = frames(&wire, 64).remove(0).unwrap();
    let frame = BatchFrame::decode(&content).unwrap();
    assert_eq!(frame.id, u64::MAX);
    assert_eq!(frame.events.count(), 0);
}

#[test]
fn every_answer_fits_its_frame_size() {
    let answers = [
        Downlink::Status {
            batch: u64::MAX,
            status: u16::MAX,
            retry_after_secs: Some(u32::MAX),
        },
        Downlink::Unanswered { batch: u64::MAX },
        Downlink::Unreadable {
            batch: Some(u64::MAX),
            fault: Fault::TooLarge,
        },
        Downlink::Unreadable {
            batch: None,
            fault: Fault::Garbled,
        },
        Downlink::InProgress { batch: u64::MAX },
    ];
    for answer in answers {
        let mut wire = Vec::new();
        write_frame(&mut wire, &answer).unwrap();
        assert!(wire.len() <= Downlink::MAX_FRAME_BYTES, "{answer:?}");
        let content = frames(&wire, Downlink::MAX_FRAME_BYTES).remove(0).unwrap();
        assert_eq!(Downlink::decode(&content), Ok(answer));
    }
}

#[test]
fn a_truncated_frame_costs_only_itself() {
    let good = encode_batch(1, &[b"abc".to_vec()]);
    let cut = &encode_batch(2, &[vec![9u8; 300]])[..150];
    let mut wire = cut.to_vec();
    wire.extend_from_slice(&good); // the good frame's leading 0 ends the cut one
    let got = frames(&wire, 4096);
    assert_eq!(got.len(), 2);
    assert!(got[0].is_err() || BatchFrame::decode(got[0].as_ref().unwrap()).is_err());
    let frame = BatchFrame::decode(got[1].as_ref().unwrap()).unwrap();
    assert_eq!(frame.id, 1);
}

#[test]
fn an_oversized_frame_is_skipped_to_its_delimiter() {
    let big = encode_batch(1, &[vec![1u8; 500]]);
    let small = encode_batch(2, &[b"x".to_vec()]);
    let got = frames(&[big, small].concat(), 64);
    assert_eq!(got[0], Err(FrameError::TooLarge { limit: 64 }));
    assert_eq!(BatchFrame::decode(got[1].as_ref().unwrap()).unwrap().id, 2);
}

#[test]
fn garbage_is_a_typed_error_never_a_frame() {
    // A code byte pointing past the end; a batch with a wrong tag; trailing bytes.
    assert_eq!(
        frames(&[0x09, 0x01, 0x00], 16),
        [Err(FrameError::BadStuffing)]
    );
    assert_eq!(BatchFrame::decode(&[1, 0, 0]), Err(FrameError::Malformed));
    assert_eq!(
        BatchFrame::decode(&[0, 1, 1, 1, 7, 9]),
        Err(FrameError::Malformed)
    );
    assert_eq!(
        BatchFrame::decode(&[0, 1, 2, 1, 7]),
        Err(FrameError::Malformed)
    );
    assert_eq!(Downlink::decode(&[9]), Err(FrameError::Malformed));
    assert_eq!(Downlink::decode(&[1, 5, 0]), Err(FrameError::Malformed));
}

/// A link whose reads come from a queue and whose writes are kept.
#[derive(Default)]
struct Loop {
    incoming: VecDeque<u8>,
    written: Vec<u8>,
    broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Broken;

impl embedded_io::Error for Broken {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::BrokenPipe
    }
}

impl embedded_io::ErrorType for Loop {
    type Error = Broken;
}

impl embedded_io::Read for Loop {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
        let n = buf.len().min(self.incoming.len());
        for b in &mut buf[..n] {
            *b = self.incoming.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Loop {
    fn read_ready(&mut self) -> Result<bool, Broken> {
        Ok(!self.incoming.is_empty())
    }
}

impl embedded_io::Write for Loop {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Broken> {
        if self.broken {
            return Err(Broken);
        }
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Broken> {
        Ok(())
    }
}

/// The id of the last batch frame the transport wrote.
fn sent_id(t: &mut SerialTransport<Loop>) -> u64 {
    let sent = frames(&t.link_mut().written, 4096).pop().unwrap().unwrap();
    BatchFrame::decode(&sent).unwrap().id
}

fn answer_bytes(answer: Downlink) -> Vec<u8> {
    let mut wire = Vec::new();
    write_frame(&mut wire, &answer).unwrap();
    wire
}

fn batch(id: u64) -> Batch {
    Batch {
        id,
        first: 1,
        last: 1,
        count: 1,
        bytes: 3,
    }
}

fn send(t: &mut SerialTransport<Loop>, id: u64) -> Result<(), SendError<Broken>> {
    t.link_mut().written.clear();
    with_payloads(&[b"abc".to_vec()], |p| t.send(Instant::ZERO, &batch(id), p))
}

#[test]
fn the_transport_pairs_answers_with_the_batch_in_flight() {
    let mut t = SerialTransport::new(Loop::default());
    send(&mut t, 4).unwrap();
    let old = sent_id(&mut t);
    send(&mut t, 5).unwrap();
    let id = sent_id(&mut t);
    assert_eq!(id, frame_id(&batch(5)));
    assert_ne!(id, old);
    assert_eq!(t.poll_outcome(Instant::ZERO), None);

    // A late answer to batch 4, noise, then batch 5's answer split in two.
    let stale = answer_bytes(Downlink::Status {
        batch: old,
        status: 200,
        retry_after_secs: None,
    });
    let fresh = answer_bytes(Downlink::Status {
        batch: id,
        status: 503,
        retry_after_secs: Some(2),
    });
    let link = t.link_mut();
    link.incoming.extend(stale);
    link.incoming.extend([0x07, 0x02, 0x00]);
    link.incoming.extend(&fresh[..4]);
    assert_eq!(t.poll_outcome(Instant::ZERO), None);
    t.link_mut().incoming.extend(&fresh[4..]);
    assert_eq!(
        t.poll_outcome(Instant::ZERO),
        Some(Outcome::Response {
            batch: 5,
            status: 503,
            retry_after: Some(core::time::Duration::from_secs(2))
        })
    );
    let stats = t.stats();
    assert_eq!(
        (stats.answers, stats.stale_answers, stats.bad_frames),
        (1, 1, 1)
    );

    // Nothing in flight now: a repeated answer ends nothing.
    t.link_mut().incoming.extend(&fresh);
    assert_eq!(t.poll_outcome(Instant::ZERO), None);
}

#[test]
fn an_unreadable_or_unanswered_batch_is_a_failure_or_a_413() {
    let mut t = SerialTransport::new(Loop::default());
    send(&mut t, 9).unwrap();
    let id = sent_id(&mut t);
    t.link_mut()
        .incoming
        .extend(answer_bytes(Downlink::Unreadable {
            batch: Some(id),
            fault: Fault::Garbled,
        }));
    assert_eq!(
        t.poll_outcome(Instant::ZERO),
        Some(Outcome::Failed { batch: 9 })
    );
    send(&mut t, 10).unwrap();
    let id = sent_id(&mut t);
    t.link_mut()
        .incoming
        .extend(answer_bytes(Downlink::Unreadable {
            batch: Some(id),
            fault: Fault::TooLarge,
        }));
    assert!(matches!(
        t.poll_outcome(Instant::ZERO),
        Some(Outcome::Response {
            batch: 10,
            status: 413,
            ..
        })
    ));
    send(&mut t, 11).unwrap();
    let id = sent_id(&mut t);
    t.link_mut()
        .incoming
        .extend(answer_bytes(Downlink::Unanswered { batch: id }));
    assert_eq!(
        t.poll_outcome(Instant::ZERO),
        Some(Outcome::Failed { batch: 11 })
    );
}

#[test]
fn a_write_error_is_returned_and_nothing_is_in_flight() {
    let mut t = SerialTransport::new(Loop {
        broken: true,
        ..Loop::default()
    });
    assert_eq!(send(&mut t, 1), Err(SendError::Io(Broken)));
    t.link_mut()
        .incoming
        .extend(answer_bytes(Downlink::Unreadable {
            batch: Some(frame_id(&batch(1))),
            fault: Fault::Garbled,
        }));
    assert_eq!(t.poll_outcome(Instant::ZERO), None);
    assert_eq!(t.stats().batches_sent, 0);
}

#[test]
fn one_poll_reads_a_bounded_number_of_bytes() {
    let mut t = SerialTransport::new(Loop::default());
    t.link_mut().incoming.extend(vec![1u8; 10_000]);
    assert_eq!(t.poll_outcome(Instant::ZERO), None);
    assert_eq!(t.link_mut().incoming.len(), 10_000 - POLL_BUDGET_BYTES);
}

#[test]
fn a_gateway_that_never_answers_is_ended_by_the_request_timeout() {
    use crate::flash::sim::SimFlash;
    use crate::flash::FlashQueue;
    use core::time::Duration;
    use outbox_core::{Config, Driver, Machine};

    let config = Config::builder()
        .max_event_bytes(64)
        .max_batch_bytes(256)
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .request_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut flash = SimFlash::<1, 4, 1024>::new(8);
    let queue = FlashQueue::open(&mut flash, 0..8 * 1024).unwrap();
    let mut buf = [0u8; 256];
    let mut delivered = 0;
    let mut driver = Driver::new(
        Machine::<16>::new(config, 1).unwrap(),
        queue,
        SerialTransport::new(Loop::default()),
        &mut buf,
        |o: &outbox_core::Output| {
            if let outbox_core::Output::Delivered { first, last } = o {
                delivered += last - first + 1;
            }
        },
    )
    .unwrap();
    let at = Instant::from_millis;
    driver.start(at(0)).unwrap();
    driver.track(at(0), b"{\"n\":1}").unwrap();
    let first = sent_id(driver.transport_mut());
    // Silence: nothing comes back until the machine gives up on the batch
    // and, after its backoff, sends it again in a new frame.
    let mut now = 0;
    while driver.transport().stats().batches_sent < 2 {
        now += 50;
        assert!(now < 5_000, "no second attempt by {now} ms");
        driver.poll(at(now)).unwrap();
    }
    assert!(
        now >= 1_000,
        "re-sent before the request timeout, at {now} ms"
    );
    let second = sent_id(driver.transport_mut());
    assert_ne!(first, second);
    // The late answer to the first frame ends nothing; the second's does.
    let link = driver.transport_mut().link_mut();
    for batch in [first, second] {
        link.incoming.extend(answer_bytes(Downlink::Status {
            batch,
            status: 200,
            retry_after_secs: None,
        }));
    }
    driver.poll(at(now)).unwrap();
    drop(driver);
    assert_eq!(delivered, 1);
}

#[test]
fn a_stale_unreadable_answer_never_fails_the_batch_in_flight() {
    // The gateway answers "too large" to some other frame (one from before
    // a reset, or line noise): the batch in flight must not take it for a
    // 413 and be halved.
    let mut t = SerialTransport::new(Loop::default());
    send(&mut t, 10).unwrap();
    let id = sent_id(&mut t);
    for stale in [Some(id ^ 1), None] {
        for fault in [Fault::TooLarge, Fault::Garbled] {
            let answer = Downlink::Unreadable {
                batch: stale,
                fault,
            };
            t.link_mut().incoming.extend(answer_bytes(answer));
            assert_eq!(t.poll_outcome(Instant::ZERO), None, "{answer:?}");
        }
    }
    assert_eq!(t.stats().stale_answers, 4);
    // "In progress" for this frame: retried later, never a 413.
    t.link_mut()
        .incoming
        .extend(answer_bytes(Downlink::InProgress { batch: id }));
    assert_eq!(
        t.poll_outcome(Instant::ZERO),
        Some(Outcome::Failed { batch: 10 })
    );
}

#[test]
fn the_id_of_a_frame_too_large_to_read_is_read_from_its_first_bytes() {
    // Ids of every varint length, and events whose zeros fall inside the
    // first bytes (so the prefix has stuffing to undo).
    for id in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
        for events in [vec![], vec![Vec::new(), Vec::new()], sample_events()] {
            let wire = encode_batch(id, &events);
            let stuffed = &wire[1..wire.len() - 1];
            for cut in 12..stuffed.len().min(40) {
                assert_eq!(peek_frame_id(&stuffed[..cut]), Some(id), "{id} cut {cut}");
            }
            assert_eq!(peek_frame_id(stuffed), Some(id));
        }
    }
    // Not a batch frame, or too short to hold the id.
    let answer = answer_bytes(Downlink::Unanswered { batch: 5 });
    assert_eq!(peek_frame_id(&answer[1..answer.len() - 1]), None);
    let wire = encode_batch(1 << 40, &[]);
    assert_eq!(peek_frame_id(&wire[1..3]), None);
    assert_eq!(peek_frame_id(&[]), None);
}

#[test]
fn answers_decode_as_postcard_encodes_them_and_out_of_range_fields_are_refused() {
    let ids = [
        0u64,
        1,
        127,
        128,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX,
    ];
    for &id in &ids {
        for retry in [None, Some(0), Some(300), Some(u32::MAX)] {
            let answers = [
                Downlink::Status {
                    batch: id,
                    status: 503,
                    retry_after_secs: retry,
                },
                Downlink::Unanswered { batch: id },
                Downlink::Unreadable {
                    batch: retry.map(|_| id),
                    fault: Fault::Garbled,
                },
                Downlink::InProgress { batch: id },
            ];
            for answer in answers {
                let bytes = postcard::to_stdvec(&answer).unwrap();
                assert_eq!(Downlink::decode(&bytes), Ok(answer));
                assert_eq!(
                    Downlink::decode(&bytes[..bytes.len() - 1]),
                    Err(FrameError::Malformed)
                );
            }
        }
    }
    // A status above u16, an id above u64, an Option tag of 2, a fault of 2.
    for bad in [
        &[0u8, 1, 0x80, 0x80, 0x04, 0][..],
        &[
            1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02,
        ],
        &[2, 2, 1],
        &[2, 0, 2],
        &[4, 1],
    ] {
        assert_eq!(Downlink::decode(bad), Err(FrameError::Malformed), "{bad:?}");
    }
}
