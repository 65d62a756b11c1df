//! Storage damage (bit rot) on the flash queue: a checker that knows which
//! bytes it damaged demands every other event back (DESIGN.md, "Storage
//! damage"): a record that fails its checks costs that record alone, the
//! loss is reported (a hole, or the seq floor), and appends after the
//! damage work and survive a reopen. Also the damaged images found by the
//! `flash_open` fuzz target.

use outbox_core::HOLE;
use outbox_embedded::flash::sim::damage::{open_all, page_laps, Ledger};
use outbox_embedded::flash::sim::model::read_all;
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

const PAGES: usize = 8;
const PAGE: usize = 256;
const REGION: core::ops::Range<u32> = 0..(PAGES * PAGE) as u32;
type Flash = SimFlash<4, 4, PAGE>;

/// The image of a queue built by `steps` (`Ok(len)`: append an event of
/// `len` bytes; `Err(k)`: delete through the number `k` below the next),
/// then with the bytes at `damage` overwritten.
fn damaged_image(steps: &[Result<usize, u64>], damage: &[(usize, u8)]) -> Vec<u8> {
    let (flash, _) = build(steps);
    let mut img = flash.image().to_vec();
    for &(at, v) in damage {
        img[at] = v;
    }
    img
}

/// A queue built by `steps` (as [`damaged_image`]) and its ledger.
fn build(steps: &[Result<usize, u64>]) -> (Flash, Ledger) {
    let mut flash = Flash::new(PAGES);
    let mut ledger = Ledger::new(PAGE, 4);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let mut next = 0u64;
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Ok(len) => {
                let p: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
                let before = q.flash_mut().image().to_vec();
                q.append(next, &p).unwrap();
                ledger.appended(next, &p, &before, q.flash_mut().image());
                next += 1;
            }
            Err(k) => {
                let through = next.saturating_sub(k);
                q.delete_through(through).unwrap();
                ledger.deleted(through, true);
            }
        }
    }

    (flash, ledger)
}

/// A queue of ~40 events over every page, the oldest few deleted.
fn workload() -> Vec<Result<usize, u64>> {
    let mut steps = Vec::new();
    for i in 0..44usize {
        steps.push(Ok(1 + (i * 13) % 50));
        if i % 9 == 8 {
            steps.push(Err(7));
        }
    }
    steps
}

/// Open `img` damaged at `damage` (addresses and XOR masks), judge it by
/// the ledger, then append three events, reopen, and judge again: the
/// appends survive and nothing else changed.
fn damage_and_check(img: &[u8], ledger: &Ledger, damage: &[(usize, u8)], ctx: &str) {
    let mut flash = Flash::from_image(PAGES, img);
    flash.set_write_once(false);
    for &(at, mask) in damage {
        flash.rot(at, mask);
    }
    // Each address once per bit flipped: the ledger counts bits.
    let addrs = flash.rotted();
    let mut q = FlashQueue::open(&mut flash, REGION).expect("a damaged image opens");
    let got = open_all(&mut q);
    if let Err(e) = ledger.check(&got, &addrs) {
        panic!("{ctx}: {e}");
    }
    // Appends after the damage work, and survive a reopen.
    let mut ledger = ledger.clone();
    let mut next = got.floor;
    for i in 0..3u8 {
        let p = vec![0xA0 | i; 5 + usize::from(i)];
        let before = q.flash_mut().image().to_vec();
        if let Err(e) = q.append(next, &p) {
            panic!("{ctx}: append {next} after the damage: {e}");
        }
        ledger.appended(next, &p, &before, q.flash_mut().image());
        next += 1;
    }
    let now = open_all(&mut q);

    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let again = open_all(&mut q);
    assert_eq!(again, now, "{ctx}: a reopen changed the contents");
    if let Err(e) = ledger.check(&again, &addrs) {
        panic!("{ctx}: after appending and reopening: {e}");
    }
    let tail: Vec<u64> = again.events.iter().rev().take(3).map(|e| e.0).collect();
    assert_eq!(tail, [next - 1, next - 2, next - 3], "{ctx}: appends lost");
}

#[test]
fn a_flipped_bit_in_any_record_costs_that_record_alone() {
    let (flash, ledger) = build(&workload());
    let img = flash.image().to_vec();
    let stored = ledger.stored();
    assert!(stored.len() > 10, "{}", stored.len());
    for (seq, p) in &stored {
        let span = ledger.span(*seq).unwrap();
        // Tag, length, number, header CRC, first and last payload byte,
        // the record's CRC.
        let mut offsets = vec![0, 1, 3, 7, 8, 8 + p.len().saturating_sub(1)];
        offsets.push(span.len() - 4);
        offsets.push(span.len() - 1);
        for off in offsets {
            let at = span.start + off.min(span.len() - 1);
            for bit in [0u8, 5] {
                damage_and_check(
                    &img,
                    &ledger,
                    &[(at, 1 << bit)],
                    &format!("seq {seq}, byte {off}, bit {bit}"),
                );
            }
        }
    }
}

#[test]
fn many_flips_anywhere_cost_only_the_records_they_hit() {
    let (flash, ledger) = build(&workload());
    let img = flash.image().to_vec();
    // A small deterministic generator: the damage is reproducible.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for round in 0..400 {
        let flips = 1 + rand(6);
        let damage: Vec<(usize, u8)> = (0..flips)
            .map(|_| (rand(img.len()), 1u8 << rand(8)))
            .collect();
        damage_and_check(
            &img,
            &ledger,
            &damage,
            &format!("round {round}: {damage:?}"),
        );
    }
}

/// A flipped bit in any page header costs nothing: the page is read
/// through its copy (format 2), every record on it comes back.
#[test]
fn a_flipped_page_header_costs_nothing() {
    let (flash, ledger) = build(&workload());
    let img = flash.image().to_vec();
    for page in 0..PAGES {
        for off in [0usize, 4, 8, 16, 24, 33] {
            let at = page * PAGE + off;
            damage_and_check(
                &img,
                &ledger,
                &[(at, 0x10)],
                &format!("page {page} header byte {off}"),
            );
        }
    }
}

/// Issue 16 item 4, sequence numbers are never reused: the write page's
/// header alone knew the numbers of its records and the floor at its
/// opening. Damaged (one bit, or every byte), it must neither cost those
/// records (format 2 keeps a copy of it) nor let the seq floor go back:
/// every number appended after the damage lies above every number handed
/// out before it, deleted ones included.
#[test]
fn a_damaged_write_page_header_never_lets_a_number_be_reused() {
    let mut all_deleted = workload();
    all_deleted.push(Err(1));
    for (name, steps) in [("workload", workload()), ("all deleted", all_deleted)] {
        let (flash, ledger) = build(&steps);
        let img = flash.image().to_vec();
        let (write_page, _) = page_laps(&img, PAGE, 4)
            .into_iter()
            .max_by_key(|p| p.1)
            .unwrap();
        let highest = ledger.highest().unwrap();
        let header = write_page * PAGE..write_page * PAGE + 36;
        let cases: [(&str, Vec<(usize, u8)>); 4] = [
            ("a bit of the base", vec![(header.start + 10, 0x10)]),
            ("a bit of the floor", vec![(header.start + 16, 0x01)]),
            ("a bit of the lap", vec![(header.start + 4, 0x02)]),
            ("every byte", header.clone().map(|a| (a, 0xFF)).collect()),
        ];
        for (what, damage) in cases {
            let ctx = format!("{name}: write page {write_page}, {what}");
            let mut f = Flash::from_image(PAGES, &img);
            f.set_write_once(false);
            for &(at, mask) in &damage {
                f.rot(at, mask);
            }
            let addrs = f.rotted();
            let mut q = FlashQueue::open(&mut f, REGION).expect("a damaged image opens");
            let got = open_all(&mut q);
            assert!(
                got.floor > highest,
                "{ctx}: the floor {} would hand out {highest} again",
                got.floor
            );
            // Nothing lost, and appends after it (from the floor) survive.
            match ledger.check(&got, &addrs) {
                Ok(lost) => assert_eq!(lost, Vec::<u64>::new(), "{ctx}"),
                Err(e) => panic!("{ctx}: {e}"),
            }
            damage_and_check(&img, &ledger, &damage, &ctx);
        }
    }
}

#[test]
fn a_record_damaged_while_the_queue_is_open_is_a_hole_and_the_queue_moves_on() {
    let mut flash = Flash::new(PAGES);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let mut ledger = Ledger::new(PAGE, 4);
    for s in 0..12u64 {
        let p = vec![s as u8; 20];
        let before = q.flash_mut().image().to_vec();
        q.append(s, &p).unwrap();
        ledger.appended(s, &p, &before, q.flash_mut().image());
    }
    let mut sizes = [0u32; 4];
    assert_eq!(q.read_sizes(0, &mut sizes).unwrap(), 4);
    // Event 5's payload rots while the queue is open.
    let at = ledger.span(5).unwrap().start + 10;
    q.flash_mut().rot(at, 0x04);
    let mut sizes = [0u32; 12];
    assert_eq!(q.read_sizes(0, &mut sizes).unwrap(), 12);
    assert_eq!(sizes[5], HOLE, "{sizes:?}");
    assert_eq!(sizes[6], 20);
    let mut buf = [0u8; 100];
    assert_eq!(q.read_range(6, 10, &mut buf).unwrap(), 100);
    q.delete_through(3).unwrap();
    q.append(12, b"after").unwrap();
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let got = open_all(&mut q);
    assert_eq!(got.holes, [5]);
    assert_eq!(got.events.first().map(|e| e.0), Some(4));
    assert_eq!(got.events.last(), Some(&(12, b"after".to_vec())));
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

/// Found by the `flash_open` fuzz target: a record whose bytes read as
/// erased (all 0xFF) in the middle of a page ended that page's records,
/// losing the intact ones after it. (Not the newest record: all of it
/// erased is a record never written, whose number no flash can know.)
#[test]
fn a_record_that_reads_as_erased_mid_page_costs_that_record_alone() {
    let (flash, ledger) = build(&workload());
    let img = flash.image().to_vec();
    let newest = ledger.highest();
    for (seq, _) in ledger.stored().into_iter().filter(|s| Some(s.0) != newest) {
        let span = ledger.span(seq).unwrap();
        let damage: Vec<(usize, u8)> = span
            .clone()
            .filter(|&a| img[a] != 0xFF)
            .map(|a| (a, img[a] ^ 0xFF))
            .collect();
        damage_and_check(&img, &ledger, &damage, &format!("seq {seq} erased"));
    }
}

/// A record lost at either edge of the queue (before the oldest intact
/// record, after the newest with its header intact) is a hole in the store
/// contract's summary, which spans from the last delete to the floor, so
/// the machine reports it (issue 16).
#[test]
fn a_record_lost_at_either_edge_is_a_hole_in_the_contract_summary() {
    use outbox_core::{Store, StoreSummary};
    use outbox_embedded::flash::sim::damage::records;

    // Events 0..=5 of 10 bytes, 0 and 1 deleted.
    let steps = [Ok(10), Ok(10), Ok(10), Ok(10), Ok(10), Ok(10), Err(5)];
    let (flash, _) = build(&steps);
    let mut img = flash.image().to_vec();
    let at = |seq| {
        let r = &records(&img, PAGE, 4)
            .into_iter()
            .find(|r| r.0 == seq)
            .unwrap()
            .1;
        // A payload byte: the header and the CRC stay intact.
        r.start + r.len() / 2
    };
    let (head, tail) = (at(2), at(5));
    img[head] ^= 0x10;
    img[tail] ^= 0x01;
    let mut flash = Flash::from_image(PAGES, &img);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let sum = Store::summary(&mut q).unwrap();
    assert_eq!(
        sum,
        StoreSummary {
            count: 2,
            bytes: 20,
            first: 2,
            last: 5
        }
    );
    let mut sizes = [0u32; 8];
    let n = Store::read_sizes(&mut q, 2, &mut sizes).unwrap();
    // 5 is past the newest intact record: the sizes stop, the rest of the
    // span is holes.
    assert_eq!(&sizes[..n], &[HOLE, 10, 10]);
}

/// The newest record's own header damaged (issue 16): its number cannot
/// be read from it, so the floor could go below it and the number be
/// handed out again (a server that saw it would take the new event for a
/// duplicate). One or two flipped bits are recovered: the flip whose header
/// makes the record's CRC-32 match is put back, and the event comes back.
/// Also with a checkpoint written after it (a delete of older events).
#[test]
fn the_newest_record_with_its_header_damaged_is_never_numbered_again() {
    use outbox_core::{Store, StoreSummary};
    use outbox_embedded::flash::sim::damage::records;

    let appends = [Ok(10), Ok(10), Ok(10), Ok(10), Ok(10), Ok(10)];
    let with_delete = [&appends[..], &[Err(4)]].concat();
    // (byte, mask): the delta's low byte; the length and the CRC-8.
    let flips: [&[(usize, u8)]; 3] = [
        &[(3, 0x04)],
        &[(1, 0x10), (7, 0x80)],
        &[(0, 0x01), (0, 0x02)],
    ];
    for (name, steps) in [
        ("appends", appends.to_vec()),
        ("then a delete", with_delete),
    ] {
        for flip in flips {
            let (flash, ledger) = build(&steps);
            let mut img = flash.image().to_vec();
            let r = records(&img, PAGE, 4)
                .into_iter()
                .find(|r| r.0 == 5)
                .unwrap()
                .1;
            for &(at, mask) in flip {
                img[r.start + at] ^= mask;
            }
            let mut flash = Flash::from_image(PAGES, &img);
            let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
            let floor = q.seq_floor().unwrap();
            assert_eq!(
                floor, 6,
                "{name} {flip:?}: the floor would hand out 5 again"
            );
            // (The delete takes 0..=2.)
            let (first, count) = if name == "appends" { (0, 6) } else { (3, 3) };
            let sum = Store::summary(&mut q).unwrap();
            assert_eq!(
                sum,
                StoreSummary {
                    count,
                    bytes: 10 * count,
                    first,
                    last: 5
                },
                "{name} {flip:?}"
            );
            let got = open_all(&mut q);
            let damage: Vec<usize> = flip.iter().map(|f| r.start + f.0).collect();
            assert_eq!(ledger.check(&got, &damage), Ok(vec![]), "{name} {flip:?}");
        }
    }
}

/// The newest record's header lost a bit right behind a record lost for
/// good (a bit of its header and one of its payload: no length to step
/// over it by), found by the flash world (seeds 708 and 1155): the walk
/// resynchronises past the lost record, and must recover the newest
/// header there too, or its number is handed out again. Also with a
/// checkpoint after it (the resync would stop at the checkpoint).
#[test]
fn the_newest_record_is_recovered_behind_a_record_lost_for_good() {
    use outbox_embedded::flash::sim::damage::records;

    let appends = [Ok(10), Ok(10), Ok(10), Ok(10), Ok(10), Ok(10)];
    let with_delete = [&appends[..], &[Err(4)]].concat();
    for (name, steps) in [
        ("appends", appends.to_vec()),
        ("then a delete", with_delete),
    ] {
        // (record, byte, mask): 4's length and payload; 5's delta (as
        // seed 708), or 5's CRC-8 (as seed 1155).
        for newest in [(3, 0x20), (7, 0x80)] {
            let (flash, ledger) = build(&steps);
            let img = flash.image().to_vec();
            let at = |seq| {
                records(&img, PAGE, 4)
                    .into_iter()
                    .find(|r| r.0 == seq)
                    .unwrap()
                    .1
            };
            let (r4, r5) = (at(4), at(5));
            let flips = [
                (r4.start + 1, 0x10),
                (r4.start + 12, 0x04),
                (r5.start + newest.0, newest.1),
            ];
            let ctx = format!("{name}, 5's byte {} ^ {:#x}", newest.0, newest.1);
            let mut flash = Flash::from_image(PAGES, &img);
            for &(a, mask) in &flips {
                flash.rot(a, mask);
            }
            let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
            assert_eq!(
                q.seq_floor().unwrap(),
                6,
                "{ctx}: the floor would hand out 5 again"
            );
            let got = open_all(&mut q);
            let damage: Vec<usize> = flips.iter().map(|f| f.0).collect();
            assert_eq!(ledger.check(&got, &damage), Ok(vec![4]), "{ctx}");
            assert_eq!(
                got.events.last().map(|e| e.0),
                Some(5),
                "{ctx}: 5 recovered"
            );
        }
    }
}

/// Every record lost (issue 16), their page headers intact: the page
/// headers still know the last delete and the seq floor, so the contract
/// summary spans the lost numbers with a count of 0 (the machine reports
/// them dropped as damaged) instead of reading as an empty queue.
#[test]
fn every_record_lost_is_still_in_the_summary_span() {
    use outbox_core::{Store, StoreSummary};
    use outbox_embedded::flash::sim::damage::records;

    let appends = [Ok(10), Ok(10), Ok(10), Ok(10), Ok(10), Ok(10)];
    let with_delete = [&appends[..], &[Err(4)]].concat();
    // (The delete takes 0..=2.)
    for (first, steps) in [(0, appends.to_vec()), (3, with_delete)] {
        let (flash, ledger) = build(&steps);
        let mut img = flash.image().to_vec();
        let mut damage = Vec::new();
        for (seq, r) in records(&img, PAGE, 4) {
            if seq >= first {
                // A payload byte: the number stays readable.
                img[r.start + 9] ^= 0x01;
                damage.push(r.start + 9);
            }
        }
        let mut flash = Flash::from_image(PAGES, &img);
        let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
        assert_eq!(
            Store::summary(&mut q).unwrap(),
            StoreSummary {
                count: 0,
                bytes: 0,
                first,
                last: 5
            },
            "first {first}"
        );
        let got = open_all(&mut q);
        assert_eq!(
            ledger.check(&got, &damage),
            Ok((first..6).collect::<Vec<_>>()),
            "first {first}"
        );
    }
}
