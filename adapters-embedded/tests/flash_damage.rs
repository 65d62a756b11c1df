//! Damaged images found by the `flash_open` fuzz target, kept as tests:
//! what a queue opened on them returns, appends and deletes must survive a
//! reopen unchanged.

use outbox_embedded::flash::sim::model::read_all;
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

const PAGES: usize = 8;
const PAGE: usize = 256;
const REGION: core::ops::Range<u32> = 0..(PAGES * PAGE) as u32;

/// The image of a queue built by `steps` (`Ok(len)`: append an event of
/// `len` bytes; `Err(k)`: delete through the number `k` below the next),
/// then with the bytes at `damage` overwritten.
fn damaged_image(steps: &[Result<usize, u64>], damage: &[(usize, u8)]) -> Vec<u8> {
    let mut flash = SimFlash::<4, 4, PAGE>::new(PAGES);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let mut next = 0u64;
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Ok(len) => {
                q.append(next, &vec![i as u8; len]).unwrap();
                next += 1;
            }
            Err(k) => q.delete_through(next.saturating_sub(k)).unwrap(),
        }
    }
    let mut img = flash.image().to_vec();
    for &(at, v) in damage {
        img[at] = v;
    }
    img
}

/// Open, append one, delete the oldest, and reopen: the reopened queue
/// holds exactly what the first one held after its delete.
fn append_delete_reopen(img: &[u8]) {
    let mut flash = SimFlash::<4, 4, PAGE>::from_image(PAGES, img);
    flash.set_write_once(false);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let got = read_all(&mut q);
    let next = got.last().map_or(q.seq_floor().unwrap(), |e| e.0 + 1);
    q.append(next, b"appended").unwrap();
    let first = read_all(&mut q)[0].0;
    q.delete_through(first).unwrap();
    let after = read_all(&mut q);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    assert_eq!(read_all(&mut q), after, "a reopen changed the contents");
}

#[test]
fn a_delete_on_a_damaged_image_is_not_undone_by_a_reopen() {
    let steps = [
        Ok(7),
        Ok(7),
        Ok(3),
        Ok(15),
        Ok(89),
        Err(1),
        Ok(7),
        Ok(7),
        Err(3),
        Ok(89),
    ];
    append_delete_reopen(&damaged_image(&steps, &[(42, 10), (303, 0)]));
}
