//! Arbitrary bytes on the serial line, into both decoders.
//!
//! The bytes arrive in arbitrary pieces at a `FrameReader` (gateway side:
//! batch frames; device side: answers). Nothing may panic; a frame that
//! decodes must re-encode to a frame that decodes the same; and after the
//! garbage, one well-formed frame (the sender's leading delimiter ends
//! whatever came before) must come through intact: the reader always
//! resynchronises.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use outbox_embedded::serial::{
    write_frame, BatchFrame, Downlink, FrameReader, Uplink,
};

#[derive(Arbitrary, Debug)]
struct Case {
    /// The reader's buffer size (the frame size limit), 1..=1024.
    limit: u16,
    /// Where the line is cut into reads.
    cuts: Vec<u8>,
    /// What comes down the line.
    garbage: Vec<u8>,
}

/// Every frame in `wire`, fed in pieces; each as its content or an error.
fn read_all(limit: usize, cuts: &[u8], wire: &[u8], mut each: impl FnMut(Result<&[u8], ()>)) {
    let mut reader = FrameReader::new(vec![0u8; limit]);
    let mut rest = wire;
    let mut cut = cuts.iter().cycle();
    while !rest.is_empty() {
        let take = usize::from(*cut.next().unwrap_or(&255)).max(1).min(rest.len());
        let (mut piece, tail) = rest.split_at(take);
        rest = tail;
        while !piece.is_empty() {
            let (frame, after) = reader.feed(piece);
            piece = after;
            if let Some(frame) = frame {
                each(frame.map_err(|_| ()));
            }
        }
    }
}

fuzz_target!(|case: Case| {
    let limit = usize::from(case.limit % 1024) + 1;
    let good = Uplink::Batch {
        id: 0xfeed,
        events: vec![b"{\"a\":1}".to_vec(), vec![0u8; 3]],
    };
    let mut wire = case.garbage.clone();
    write_frame(&mut wire, &good).unwrap();

    let mut last = None;
    read_all(limit, &case.cuts, &wire, |frame| {
        last = None;
        let Ok(content) = frame else { return };
        let _ = Downlink::decode(content);
        if let Ok(batch) = BatchFrame::decode(content) {
            // Re-encode what was decoded: it must decode to the same batch.
            let events: Vec<Vec<u8>> = batch.events.clone().map(<[u8]>::to_vec).collect();
            let again = Uplink::Batch { id: batch.id, events: events.clone() };
            let mut re = Vec::new();
            write_frame(&mut re, &again).unwrap();
            let mut seen = 0;
            read_all(re.len() + 1, &[], &re, |f| {
                let b = BatchFrame::decode(f.unwrap()).unwrap();
                assert_eq!(b.id, batch.id);
                assert!(b.events.map(<[u8]>::to_vec).eq(events.iter().cloned()));
                seen += 1;
            });
            assert_eq!(seen, 1);
            last = Some((batch.id, events));
        }
    });
    // The good frame is the last thing on the line; if it fits the
    // reader's limit it must have come through whole.
    let mut encoded = Vec::new();
    write_frame(&mut encoded, &good).unwrap();
    if encoded.len() - 2 <= limit {
        let Uplink::Batch { id, events } = good;
        assert_eq!(last, Some((id, events)), "no resync after {:?}", case.garbage);
    }
});
