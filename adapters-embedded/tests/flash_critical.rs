//! Critical events on the flash queue (feature `critical`): the flag a
//! record carries survives reopens and power cuts; a discard (the
//! machine's overflow victim behind a critical head) is durable, reads as
//! `DISCARDED` and is never read again, across power cuts and bit rot in
//! one of its two marks; the table of discarded numbers is bounded (a
//! typed error when full, freed by a delete); and the core's driver over
//! the flash queue sends a critical event at once in `Manual` mode and,
//! with a full queue behind a critical head, drops a plain event, never
//! the critical one.

#![cfg(feature = "critical")]
// (`drop(q)` marks a restart: the queue lets go of the flash.)
#![allow(clippy::drop_non_drop)]

use outbox_core::{
    Batch, Config, Driver, FlushMode, Input, Instant, Machine, NetworkKind, Outcome, Output,
    Payloads, Store, Transport, CRITICAL, DISCARDED,
};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::{Error, FlashQueue, DISCARD_RUNS};

type Flash = SimFlash<4, 4, 1024>;
const PAGES: usize = 8;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 1024);

fn open(flash: &mut Flash) -> FlashQueue<&mut Flash> {
    flash.power_on();
    flash.cancel_faults();
    FlashQueue::open(flash, REGION).unwrap()
}

/// The sizes of `from..from + n` (fewer at the end of the queue).
fn sizes(q: &mut FlashQueue<&mut Flash>, from: u64, n: usize) -> Vec<u32> {
    let mut out = vec![0u32; n];
    let got = q.read_sizes(from, &mut out).unwrap();
    out.truncate(got);
    out
}

fn payload(seq: u64) -> Vec<u8> {
    format!("event-{seq:03}").into_bytes()
}

#[test]
fn the_critical_flag_survives_reopen() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append(0, b"plain").unwrap();
    q.append_critical(1, b"alarm").unwrap();
    q.append(2, b"plain").unwrap();
    assert_eq!(sizes(&mut q, 0, 3), [5, 5 | CRITICAL, 5]);
    assert_eq!(Store::newest_critical(&mut q), Ok(Some(1)));
    drop(q);
    let mut q = open(&mut flash);
    assert_eq!(sizes(&mut q, 0, 3), [5, 5 | CRITICAL, 5]);
    assert_eq!(Store::newest_critical(&mut q), Ok(Some(1)));
    let mut buf = [0u8; 15];
    assert_eq!(q.read_range(0, 2, &mut buf), Ok(15));
    assert_eq!(&buf, b"plainalarmplain");
    // Delivered: no critical event is left.
    q.delete_through(1).unwrap();
    assert_eq!(Store::newest_critical(&mut q), Ok(None));
    drop(q);
    let mut q = open(&mut flash);
    assert_eq!(Store::newest_critical(&mut q), Ok(None));
}

/// A power cut at every flash operation and byte of a critical append:
/// the event is either not there or there with its flag, and the events
/// before it keep theirs.
#[test]
fn the_critical_flag_survives_power_cuts() {
    for ops in 0..3 {
        for done in (0..40).step_by(3) {
            let mut flash = Flash::new(PAGES);
            let mut q = open(&mut flash);
            q.append_critical(0, b"first alarm").unwrap();
            q.append(1, b"plain").unwrap();
            q.flash_mut().cut_at_op(ops, done);
            let returned = q.append_critical(2, b"second alarm").is_ok();
            drop(q);
            let mut q = open(&mut flash);
            let got = sizes(&mut q, 0, 3);
            assert_eq!(got[..2], [11 | CRITICAL, 5], "cut at {ops}/{done}");
            match got.get(2) {
                Some(&s) => assert_eq!(s, 12 | CRITICAL, "cut at {ops}/{done}"),
                None => assert!(!returned, "cut at {ops}/{done}: a returned append lost"),
            }
            let newest = Store::newest_critical(&mut q).unwrap();
            assert_eq!(newest, Some(if got.len() == 3 { 2 } else { 0 }));
        }
    }
}

#[test]
fn a_discard_is_durable_and_reported_as_discarded() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append_critical(0, &payload(0)).unwrap();
    for seq in 1..6 {
        q.append(seq, &payload(seq)).unwrap();
    }
    q.discard(2).unwrap();
    let check = |q: &mut FlashQueue<&mut Flash>| {
        assert_eq!(sizes(q, 0, 6), [9 | CRITICAL, 9, DISCARDED, 9, 9, 9]);
        // The summary counts it no more (its number still spans).
        let s = Store::summary(q).unwrap();
        assert_eq!((s.count, s.bytes, s.first, s.last), (5, 45, 0, 5));
        assert_eq!(q.seq_floor(), Ok(6));
    };
    check(&mut q);
    drop(q);
    let mut q = open(&mut flash);
    check(&mut q);
    // Discarding it again changes nothing.
    q.discard(2).unwrap();
    check(&mut q);
    // A delete passing it frees it; the rest reads on.
    q.delete_through(2).unwrap();
    assert_eq!(sizes(&mut q, 3, 3), [9, 9, 9]);
    drop(q);
    let mut q = open(&mut flash);
    assert_eq!(sizes(&mut q, 3, 3), [9, 9, 9]);
    assert_eq!(Store::summary(&mut q).unwrap().count, 3);
}

#[test]
fn a_discarded_event_is_never_read_again() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append_critical(0, &payload(0)).unwrap();
    for seq in 1..5 {
        q.append(seq, &payload(seq)).unwrap();
    }
    q.discard(1).unwrap();
    q.discard(4).unwrap();
    for reopen in [false, true] {
        if reopen {
            drop(q);
            q = open(&mut flash);
        }
        let mut buf = [0u8; 64];
        // The ranges the machine forms skip it; any range naming it fails.
        assert_eq!(q.read_range(0, 0, &mut buf), Ok(9));
        assert_eq!(q.read_range(2, 3, &mut buf), Ok(18));
        assert_eq!(&buf[..18], b"event-002event-003");
        for (first, last) in [(1, 1), (0, 1), (0, 3), (4, 4), (3, 4)] {
            let r = q.read_range(first, last, &mut buf);
            assert!(
                matches!(r, Err(Error::Missing { .. })),
                "{first}..={last}: {r:?}"
            );
        }
        // The newest not discarded ends the sizes.
        assert_eq!(sizes(&mut q, 0, 8), [9 | CRITICAL, DISCARDED, 9, 9]);
        // The newest number is still spent: numbering goes on past it.
        assert_eq!(q.seq_floor(), Ok(5));
    }
    // Expiry (when on) never names it as the first fresh event either.
    #[cfg(feature = "expiry")]
    {
        q.append_stamped(5, b"stamped", 100).unwrap();
        assert_eq!(Store::first_fresh(&mut q, 50), Ok(Some(0)));
    }
}

/// A power cut at every flash operation and byte of a discard: the event
/// is either still there as it was, or discarded; once the discard
/// returned, discarded.
#[test]
fn a_power_cut_during_a_discard_leaves_the_event_or_discards_it() {
    let mut seen = [false; 2];
    for ops in 0..3 {
        for done in (0..24).step_by(2) {
            let mut flash = Flash::new(PAGES);
            let mut q = open(&mut flash);
            q.append_critical(0, &payload(0)).unwrap();
            for seq in 1..4 {
                q.append(seq, &payload(seq)).unwrap();
            }
            q.flash_mut().cut_at_op(ops, done);
            let returned = q.discard(1).is_ok();
            drop(q);
            let mut q = open(&mut flash);
            let got = sizes(&mut q, 0, 4);
            let discarded = got[1] == DISCARDED;
            assert!(
                discarded || (!returned && got[1] == 9),
                "cut at {ops}/{done}: {got:?}"
            );
            assert_eq!(got[0], 9 | CRITICAL);
            assert_eq!(got[2..], [9, 9]);
            seen[usize::from(discarded)] = true;
            // The queue goes on: the discard again, then appends.
            q.discard(1).unwrap();
            q.append(4, &payload(4)).unwrap();
            assert_eq!(sizes(&mut q, 0, 5)[1], DISCARDED);
        }
    }
    assert_eq!(seen, [true, true], "both outcomes of a cut");
}

/// Bit rot in one of the two marks of a discard keeps the discard.
#[test]
fn bit_rot_in_one_discard_mark_keeps_the_discard() {
    for mark in 0..2 {
        let mut flash = Flash::new(PAGES);
        let mut q = open(&mut flash);
        q.append_critical(0, &payload(0)).unwrap();
        q.append(1, &payload(1)).unwrap();
        q.append(2, &payload(2)).unwrap();
        q.discard(1).unwrap();
        drop(q);
        // The marks: records of tag 0x1A (kind 10) at write-aligned offsets.
        let at: Vec<usize> = (0..flash.image().len())
            .step_by(4)
            .filter(|&i| flash.image()[i] == 0x1A && flash.image()[i + 1] == 8)
            .collect();
        assert!(!at.is_empty(), "a mark");
        // A payload bit: the mark's CRC fails.
        flash.rot(at[mark % at.len()] + 9, 0x04);
        let mut q = open(&mut flash);
        assert_eq!(sizes(&mut q, 0, 3), [9 | CRITICAL, DISCARDED, 9]);
    }
}

/// At most `DISCARD_RUNS` runs of discarded numbers: a discard that needs
/// one more fails before it writes anything; one next to a run, or after
/// a delete freed runs, succeeds; a reopen rebuilds the same table.
#[test]
fn the_discard_table_is_bounded_and_a_delete_frees_it() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    let n = 2 * DISCARD_RUNS as u64 + 4;
    for seq in 0..n {
        q.append(seq, b"x").unwrap();
    }
    // Runs at 1, 3, 5, ...: none touches another.
    for i in 0..DISCARD_RUNS as u64 {
        q.discard(2 * i + 1).unwrap();
    }
    let writes = q.flash_mut().stats().writes;
    let full = 2 * DISCARD_RUNS as u64 + 2;
    assert_eq!(q.discard(full), Err(Error::TooManyDiscards));
    assert_eq!(q.flash_mut().stats().writes, writes, "nothing written");
    // Next to a run: no run more.
    q.discard(full - 2).unwrap();
    drop(q);
    let mut q = open(&mut flash);
    q.discard(full - 1).unwrap();
    assert_eq!(q.discard(full + 1), Err(Error::TooManyDiscards));
    assert_eq!(sizes(&mut q, 1, 3), [DISCARDED, 1, DISCARDED]);
    // A delete passing the first runs frees them.
    q.delete_through(3).unwrap();
    q.discard(full + 1).unwrap();
    drop(q);
    let mut q = open(&mut flash);
    // (The newest, discarded, ends nothing: the sizes stop before it.)
    assert_eq!(sizes(&mut q, full - 2, 4), [DISCARDED, DISCARDED, 1]);
    assert_eq!(Store::summary(&mut q).unwrap().last, full + 1);
    assert_eq!(sizes(&mut q, 4, 1), [1]);
}

/// Answers 200 to every batch unless `down`; keeps what it received.
#[derive(Default)]
struct Server {
    answer: Option<Outcome>,
    received: Vec<Vec<u8>>,
}

impl Transport for Server {
    type Error = ();
    fn send(&mut self, _: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
        self.received.extend(payloads.map(|(_, p)| p.to_vec()));
        self.answer = Some(Outcome::Response {
            batch: batch.id,
            status: 200,
            retry_after: None,
        });
        Ok(())
    }
    fn poll_outcome(&mut self, _: Instant) -> Option<Outcome> {
        self.answer.take()
    }
}

type Outs = Vec<Output>;
type D<'f, 'b, 'o> = Driver<'b, FlashQueue<&'f mut Flash>, Server, &'o mut dyn FnMut(&Output), 16>;

fn boot<'f, 'b, 'o>(
    flash: &'f mut Flash,
    buf: &'b mut [u8],
    events: u32,
    observe: &'o mut dyn FnMut(&Output),
) -> D<'f, 'b, 'o> {
    let q = open(flash);
    let config = Config::builder()
        .flush_mode(FlushMode::Manual)
        .max_event_bytes(16)
        .max_queue_events(events)
        .max_queue_bytes(q.max_queue_bytes(16, events))
        .build()
        .unwrap();
    let machine = Machine::<16>::new(config, 7).unwrap();
    let mut d = Driver::new(machine, q, Server::default(), buf, observe).unwrap();
    d.start(Instant::ZERO).unwrap();
    d
}

fn settle(d: &mut D<'_, '_, '_>) {
    for _ in 0..20 {
        d.poll(Instant::ZERO).unwrap();
    }
}

#[test]
fn the_driver_sends_a_critical_event_at_once_in_manual_mode() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 4096];
    let mut outs: Outs = Vec::new();
    let mut obs = |o: &Output| outs.push(*o);
    let mut d = boot(&mut flash, &mut buf, 32, &mut obs);
    d.track(Instant::ZERO, b"plain-a").unwrap();
    settle(&mut d);
    // Manual: nothing goes without a flush.
    assert!(d.transport().received.is_empty());
    d.track_critical(Instant::ZERO, b"alarm").unwrap();
    settle(&mut d);
    // The critical event asks for the queue up to it.
    assert_eq!(d.transport().received, [&b"plain-a"[..], b"alarm"]);
    assert_eq!(d.store_mut().summary().unwrap().count, 0);
    drop(d);
    assert!(outs.iter().any(|o| matches!(o, Output::Delivered { .. })));
}

/// A critical event tracked while the network is down stays at the head;
/// the queue fills behind it; overflow drops the oldest plain event behind
/// it (discarded from the middle of the flash queue), never the critical
/// one, and after a restart the discarded event never reaches the server.
#[test]
fn a_full_queue_behind_a_critical_head_drops_a_plain_event_not_the_critical_one() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 4096];
    let mut outs: Outs = Vec::new();
    let mut obs = |o: &Output| outs.push(*o);
    let mut d = boot(&mut flash, &mut buf, 4, &mut obs);
    let down = Input::Network {
        up: false,
        kind: NetworkKind::Unknown,
    };
    d.handle(Instant::ZERO, down).unwrap();
    let alarm = d.track_critical(Instant::ZERO, b"alarm").unwrap();
    let mut plain = Vec::new();
    for i in 0..5u8 {
        plain.push(d.track(Instant::ZERO, &[b'p', b'0' + i]).unwrap());
        settle(&mut d);
    }
    assert!(d.transport().received.is_empty());
    assert_eq!(d.machine().stats().dropped_overflow, 2);
    // The two oldest plain events were the victims, the alarm stays.
    let mut s = [0u32; 6];
    let n = Store::read_sizes(d.store_mut(), alarm, &mut s).unwrap();
    assert_eq!(s[..n], [5 | CRITICAL, DISCARDED, DISCARDED, 2, 2, 2]);
    drop(d);
    let dropped: Vec<(u64, u64)> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Dropped { first, last, .. } => Some((*first, *last)),
            _ => None,
        })
        .collect();
    assert_eq!(dropped, [(plain[0], plain[0]), (plain[1], plain[1])]);

    // A restart with the network up: the alarm goes first, the victims
    // never.
    let mut none = |_: &Output| {};
    let mut d = boot(&mut flash, &mut buf, 4, &mut none);
    settle(&mut d);
    d.handle(Instant::ZERO, Input::Flush).unwrap();
    settle(&mut d);
    assert_eq!(d.transport().received, [&b"alarm"[..], b"p2", b"p3", b"p4"]);
}
