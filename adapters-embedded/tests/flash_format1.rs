//! Images written in format 1 (page headers without a copy) still open and
//! keep working: the new pages they get are format 2, and the old ones are
//! read as before until they are freed.
//!
//! `fixtures/format1.bin` was written by the format-1 code (commit 2b722a6)
//! on a `SimFlash<4, 4, 256>` of 6 pages: events 0..30 with
//! [`payload`]'s bytes, deleted through 4 after event 9 and through 11
//! after event 20. It is kept as written, never regenerated: it is what a
//! device in the field holds.

use std::collections::VecDeque;

use outbox_embedded::flash::sim::model::read_all;
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

const PAGES: usize = 6;
const PAGE: usize = 256;
const REGION: core::ops::Range<u32> = 0..(PAGES * PAGE) as u32;
type Flash = SimFlash<4, 4, PAGE>;

/// The payload of event `s`, in the fixture and after it.
fn payload(s: u64) -> Vec<u8> {
    (0..(3 + s * 5 % 23)).map(|j| (s * 31 + j) as u8).collect()
}

/// The format version byte of every page header that passes as one
/// (magic and version byte; the CRC is the queue's business).
fn versions(img: &[u8]) -> Vec<u8> {
    (0..PAGES)
        .map(|p| &img[p * PAGE..])
        .filter(|h| &h[..3] == b"OBQ")
        .map(|h| h[3])
        .collect()
}

#[test]
fn a_format1_image_opens_keeps_its_events_and_goes_on_in_format2() {
    let img = include_bytes!("fixtures/format1.bin");
    assert_eq!(versions(img), [1, 1, 1, 1], "the fixture is format 1");
    let mut flash = Flash::from_image(PAGES, img);
    // Every word of an image counts as written; the queue only writes
    // erased words, which this lets it do.
    flash.set_write_once(false);

    let mut model: VecDeque<(u64, Vec<u8>)> = (12..30).map(|s| (s, payload(s))).collect();
    let mut q = FlashQueue::open(&mut flash, REGION).expect("a format-1 image opens");
    assert_eq!(read_all(&mut q), Vec::from(model.clone()));
    assert_eq!(q.seq_floor().unwrap(), 30);

    // Appends and deletes go on, through new pages and the ring's wrap.
    for s in 30..90u64 {
        q.append(s, &payload(s)).unwrap();
        model.push_back((s, payload(s)));
        if s % 4 == 0 {
            q.delete_through(s - 12).unwrap();
            model.retain(|e| e.0 > s - 12);
        }
    }
    assert_eq!(read_all(&mut q), Vec::from(model.clone()));
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    assert_eq!(read_all(&mut q), Vec::from(model.clone()));
    assert_eq!(q.seq_floor().unwrap(), 90);
    let now = flash.image().to_vec();
    assert!(
        versions(&now).iter().all(|&v| v == 2),
        "every page in use is format 2 by now: {:?}",
        versions(&now)
    );

    // And a format-2 write page's damaged header costs nothing.
    let write_page = (0..PAGES)
        .filter(|&p| &now[p * PAGE..p * PAGE + 3] == b"OBQ")
        .max_by_key(|&p| u32::from_le_bytes(now[p * PAGE + 4..p * PAGE + 8].try_into().unwrap()))
        .unwrap();
    for at in write_page * PAGE..write_page * PAGE + 36 {
        flash.rot(at, 0xFF);
    }
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    assert_eq!(read_all(&mut q), Vec::from(model));
    assert_eq!(q.seq_floor().unwrap(), 90);
}

/// The format-1 limit the copy removes, shown on the fixture: its write
/// page's header damaged, that page's records are lost, and the floor goes
/// back below numbers handed out (pages written before the upgrade keep
/// this limit until they are freed).
#[test]
fn a_format1_page_without_a_copy_still_loses_its_records_to_a_damaged_header() {
    let img = include_bytes!("fixtures/format1.bin");
    let mut flash = Flash::from_image(PAGES, img);
    // Page 4 is the fixture's write page (lap 4).
    flash.rot(4 * PAGE + 10, 0x01);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let got = read_all(&mut q);
    assert!(got.last().is_some_and(|e| e.0 < 29), "{got:?}");
    assert!(q.seq_floor().unwrap() < 30);
}
