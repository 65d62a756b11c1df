//! The flash queue's behaviour without power cuts: ordering rules, limits,
//! errors, capacity, wear and what it costs in flash operations.

mod support;

use outbox_embedded::flash::sim::{SimError, SimFlash};
use outbox_embedded::flash::{Error, FlashQueue, GeometryError, OpenError};
use proptest::prelude::*;
use support::{contents, payload};

type Flash = SimFlash<4, 4, 512>;
const PAGES: usize = 8;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);

fn open(flash: &mut Flash) -> FlashQueue<&mut Flash> {
    FlashQueue::open(flash, REGION).unwrap()
}

#[test]
fn a_blank_flash_is_an_empty_queue_and_open_writes_nothing() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    assert_eq!(q.summary().unwrap().count, 0);
    assert_eq!(q.seq_floor().unwrap(), 0);
    assert!(contents(&mut q).is_empty());
    let s = flash.stats();
    assert_eq!((s.writes, s.erases), (0, 0));
}

#[test]
fn events_come_back_in_order_across_pages_and_reopens() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    let want: Vec<(u64, Vec<u8>)> = (10..60).map(|s| (s, payload(s, 0))).collect();
    for (s, p) in &want {
        q.append(*s, p).unwrap();
    }
    assert_eq!(contents(&mut q), want);
    q.delete_through(19).unwrap();
    let mut q = open(&mut flash);
    assert_eq!(contents(&mut q), want[10..]);
    assert_eq!(q.seq_floor().unwrap(), 60);
}

#[test]
fn the_newest_number_appended_again_replaces_the_old_copy() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append(1, b"one").unwrap();
    q.append(2, b"first copy").unwrap();
    q.append(2, b"second").unwrap();
    assert_eq!(q.summary().unwrap().bytes, 3 + 6);
    assert_eq!(
        contents(&mut q),
        vec![(1, b"one".to_vec()), (2, b"second".to_vec())]
    );
    q.append(3, b"three").unwrap();
    let mut q = open(&mut flash);
    assert_eq!(contents(&mut q).len(), 3);
    assert_eq!(contents(&mut q)[1].1, b"second");
}

/// Numbers the machine spent without storing them (a failed append) are
/// holes: the next number appends, the sizes report the hole, and a
/// reopen agrees (today's `append` refused it with `OutOfOrder`).
#[test]
fn a_number_after_a_gap_appends_and_the_gap_is_a_hole() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append(5, b"a").unwrap();
    q.append(8, b"b").unwrap();
    q.append(9, b"c").unwrap();
    let mut sizes = [0u32; 8];
    assert_eq!(q.read_sizes(5, &mut sizes).unwrap(), 5);
    assert_eq!(sizes[..5], [1, outbox_core::HOLE, outbox_core::HOLE, 1, 1]);
    let mut q = open(&mut flash);
    assert_eq!(q.summary().unwrap().count, 3);
    assert_eq!(q.seq_floor().unwrap(), 10);
    assert_eq!(
        contents(&mut q).iter().map(|e| e.0).collect::<Vec<_>>(),
        [5, 8, 9]
    );
}

#[test]
fn a_number_below_the_newest_or_a_deleted_one_is_refused() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append(5, b"a").unwrap();
    q.append(6, b"b").unwrap();
    assert!(matches!(
        q.append(4, b"x"),
        Err(Error::OutOfOrder {
            seq: 4,
            lowest: 6,
            highest: u64::MAX
        })
    ));
    q.delete_through(6).unwrap();
    assert!(matches!(
        q.append(6, b"x"),
        Err(Error::OutOfOrder {
            seq: 6,
            lowest: 7,
            ..
        })
    ));
    // An empty queue may start further on; the run continues from there.
    q.append(9, b"c").unwrap();
    q.append(10, b"d").unwrap();
    assert_eq!(
        contents(&mut q),
        vec![(9, b"c".to_vec()), (10, b"d".to_vec())]
    );
    let mut q = open(&mut flash);
    assert_eq!(
        contents(&mut q),
        vec![(9, b"c".to_vec()), (10, b"d".to_vec())]
    );
}

#[test]
fn an_oversized_payload_is_refused_and_the_largest_fits() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    let max = q.max_payload();
    // A 512-byte page less its header, the header's copy and a checkpoint.
    assert!(max > 380 && max < 512, "max payload {max}");
    let big = vec![7u8; max + 1];
    assert!(matches!(q.append(0, &big), Err(Error::TooLarge { .. })));
    for s in 0..(PAGES as u64 * 2) {
        q.append(s, &big[..max]).unwrap();
        q.delete_through(s).unwrap();
    }
    q.append(100, &big[..max]).unwrap();
    assert_eq!(contents(&mut q), vec![(100, big[..max].to_vec())]);
}

#[test]
fn reads_check_their_buffer_and_gaps() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    for s in 0..4 {
        q.append(s, b"abcd").unwrap();
    }
    let mut small = [0u8; 7];
    assert!(matches!(
        q.read_range(0, 1, &mut small),
        Err(Error::BufferTooSmall {
            needed: 8,
            available: 7
        })
    ));
    let mut buf = [0u8; 64];
    assert!(matches!(
        q.read_range(2, 9, &mut buf),
        Err(Error::Missing { seq: 4 })
    ));
    assert_eq!(q.read_range(1, 3, &mut buf).unwrap(), 12);
    let mut sizes = [0u32; 8];
    assert_eq!(q.read_sizes(2, &mut sizes).unwrap(), 2);
    assert_eq!(q.read_sizes(9, &mut sizes).unwrap(), 0);
}

#[test]
fn a_full_ring_says_full_and_a_delete_makes_room() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    let p = [1u8; 100];
    let mut s = 0;
    let err = loop {
        match q.append(s, &p) {
            Ok(()) => s += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Full), "{err:?}");
    let before = contents(&mut q);
    assert_eq!(before.len() as u64, s);
    // Deletes go through even when full, then appends fit again.
    q.delete_through(0).unwrap();
    q.delete_through(8).unwrap();
    q.append(s, &p).unwrap();
    let mut q = open(&mut flash);
    let after = contents(&mut q);
    assert_eq!(after.first().map(|e| e.0), Some(9));
    assert_eq!(after.last().map(|e| e.0), Some(s));
    assert_eq!(flash.violations(), 0);
}

#[test]
fn limits_from_max_queue_bytes_never_fill_the_flash() {
    // A machine-like owner: at most N events and B bytes, dropping the
    // oldest to make room, with B from max_queue_bytes.
    let mut flash = Flash::new(16);
    let mut q = FlashQueue::open(&mut flash, 0..16 * 512).unwrap();
    let (max_event, max_events) = (120u32, 20u32);
    let budget = q.max_queue_bytes(max_event, max_events);
    assert!(budget >= u64::from(max_event), "{budget}");
    let mut queue = std::collections::VecDeque::new();
    let mut bytes = 0u64;
    for s in 0..3000u64 {
        let len = 1 + (s * 7919 % u64::from(max_event)) as usize;
        while queue.len() as u32 >= max_events || bytes + len as u64 > budget {
            let (old, l): (u64, usize) = queue.pop_front().unwrap();
            bytes -= l as u64;
            q.delete_through(old).unwrap();
        }
        q.append(s, &vec![s as u8; len]).unwrap();
        queue.push_back((s, len));
        bytes += len as u64;
    }
    assert_eq!(q.summary().unwrap().count, queue.len() as u64);
    assert_eq!(q.summary().unwrap().bytes, bytes);
}

#[test]
fn erases_spread_evenly_over_the_pages() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    let mut erased = [0u32; PAGES];
    for s in 0..2000u64 {
        q.append(s, &payload(s, 0)).unwrap();
        if s % 3 == 2 {
            q.delete_through(s - 1).unwrap();
        }
        // Which page is blank now that was not before tells which was erased.
        let img = q.flash_mut().image().to_vec();
        for (page, n) in erased.iter_mut().enumerate() {
            let at = page * 512;
            // `n` counts transitions; odd while the page is blank.
            let blank = img[at..at + 4] == [0xFF; 4];
            if blank != (*n % 2 == 1) {
                *n += 1;
            }
        }
    }
    let cycles: Vec<u32> = erased.iter().map(|n| n / 2).collect();
    let (lo, hi) = (cycles.iter().min().unwrap(), cycles.iter().max().unwrap());
    assert!(*lo > 0 && hi - lo <= 1, "uneven wear: {cycles:?}");
}

/// Bytes written and erases per event in a steady push-then-delete
/// workload: 300-byte events on 4 KiB pages with 4-byte words, deleted in
/// batches of 10 (and one by one).
#[test]
fn steady_state_cost_per_event() {
    for batch in [10u64, 1] {
        let mut flash = SimFlash::<4, 4, 4096>::new(64);
        let mut q = FlashQueue::open(&mut flash, 0..64 * 4096).unwrap();
        let p = [0x5Au8; 300];
        let mut s = 0u64;
        // Warm up past a full lap of the ring, then measure.
        let mut run = |q: &mut FlashQueue<&mut SimFlash<4, 4, 4096>>, n: u64| {
            for _ in 0..n {
                q.append(s, &p).unwrap();
                if s % batch == batch - 1 && s >= 200 {
                    q.delete_through(s - 200).unwrap();
                }
                s += 1;
            }
        };
        run(&mut q, 2000);
        let before = q.flash_mut().stats();
        run(&mut q, 10_000);
        let d = q.flash_mut().stats().since(&before);
        let per_event = d.bytes_written as f64 / 10_000.0;
        let erases = d.erases as f64 / 10_000.0;
        eprintln!(
            "300-byte events, delete every {batch}: {per_event:.1} bytes written per event \
             ({:.1} overhead), {erases:.4} erases per event, {:.1} bytes read per event",
            per_event - 300.0,
            d.bytes_read as f64 / 10_000.0
        );
        // Header 8 + CRC 4, a 20-byte checkpoint per delete, a 36-byte page
        // header and its 48-byte copy per 13 events; a page erased per 12
        // events or more.
        let bound = 312.0 + 20.0 / batch as f64 + (36.0 + 48.0) / 12.0;
        assert!(per_event <= bound, "{per_event} > {bound}");
        assert!(erases <= 1.0 / 12.0 + 1e-3, "{erases}");
    }
}

#[test]
fn bad_regions_and_other_versions_are_typed_errors() {
    let mut flash = Flash::new(PAGES);
    let err = |r| FlashQueue::open(&mut SimFlash::<4, 4, 512>::new(PAGES), r).err();
    assert!(matches!(
        err(0..512),
        Some(OpenError::Geometry(GeometryError::TooFewPages))
    ));
    assert!(matches!(
        err(4..1028),
        Some(OpenError::Geometry(GeometryError::Unaligned))
    ));
    assert!(matches!(
        err(0..(PAGES as u32 + 1) * 512),
        Some(OpenError::Geometry(GeometryError::Unaligned))
    ));
    assert!(matches!(
        FlashQueue::open(&mut SimFlash::<4, 4, 64>::new(4), 0..256).err(),
        Some(OpenError::Geometry(GeometryError::PageTooSmall))
    ));
    assert!(matches!(
        FlashQueue::open(&mut SimFlash::<4, 64, 4096>::new(4), 0..4 * 4096).err(),
        Some(OpenError::Geometry(GeometryError::UnsupportedWordSize))
    ));
    // A page header of version 3 (with a valid CRC) is left alone.
    {
        let mut q = open(&mut flash);
        q.append(1, b"x").unwrap();
    }
    let mut img = flash.image().to_vec();
    img[3] = 3;
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&img[..32]);
    img[32..36].copy_from_slice(&crc.to_le_bytes());
    let mut other = Flash::from_image(PAGES, &img);
    assert!(matches!(
        FlashQueue::open(&mut other, REGION).err(),
        Some(OpenError::UnsupportedVersion { found: 3 })
    ));
    assert_eq!(other.image(), &img[..]);
}

#[test]
fn a_flash_error_is_reported_and_the_queue_reads_its_state_back() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash);
    q.append(1, b"one").unwrap();
    // The record's last write lands but reports failure: it is there.
    q.flash_mut().fail_write(2, true);
    assert!(matches!(
        q.append(2, b"two!"),
        Err(Error::Flash(SimError::Injected))
    ));
    assert_eq!(q.summary().unwrap().count, 2);
    // Appended again (as the machine does): the new copy wins.
    q.append(2, b"TWO!").unwrap();
    q.append(3, b"three").unwrap();
    assert_eq!(
        contents(&mut q),
        vec![
            (1, b"one".to_vec()),
            (2, b"TWO!".to_vec()),
            (3, b"three".to_vec())
        ]
    );
    // A header write that fails leaves nothing; the next append goes on.
    q.flash_mut().fail_write(0, false);
    assert!(q.append(4, b"four").is_err());
    q.append(4, b"4").unwrap();
    let mut q = open(&mut flash);
    assert_eq!(contents(&mut q).last(), Some(&(4, b"4".to_vec())));
    assert_eq!(flash.violations(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any image opens without a panic, and what it yields is consistent:
    /// strictly increasing numbers, summary matching the records, and
    /// appends and deletes still work.
    #[test]
    fn any_image_opens_and_stays_consistent(
        seed_ops in proptest::collection::vec((0u64..40, 0usize..80), 0..60),
        flips in proptest::collection::vec((0usize..PAGES * 512, any::<u8>()), 0..40),
        junk in proptest::collection::vec(any::<u8>(), 0..600),
        junk_at in 0usize..PAGES * 512,
    ) {
        // A real queue image, then damaged.
        let mut flash = Flash::new(PAGES);
        {
            let mut q = open(&mut flash);
            let mut s = 0;
            for (k, len) in seed_ops {
                if k < 30 {
                    // As the machine does: a number whose append failed is
                    // used again.
                    if q.append(s, &vec![k as u8; len]).is_ok() {
                        s += 1;
                    }
                } else {
                    let _ = q.delete_through(s.saturating_sub(k - 29));
                }
            }
        }
        let mut img = flash.image().to_vec();
        for (at, v) in flips {
            img[at] = v;
        }
        let end = (junk_at + junk.len()).min(img.len());
        img[junk_at..end].copy_from_slice(&junk[..end - junk_at]);
        let mut flash = Flash::from_image(PAGES, &img);
        flash.set_write_once(false);
        let Ok(mut q) = FlashQueue::open(&mut flash, REGION) else { return Ok(()) };
        let got = contents(&mut q);
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        let floor = q.seq_floor().unwrap();
        if let Some(last) = got.last() {
            prop_assert!(floor > last.0);
        }
        if q.append(floor, b"after").is_ok() {
            prop_assert_eq!(contents(&mut q).last().cloned(), Some((floor, b"after".to_vec())));
            q.delete_through(floor).unwrap();
            prop_assert!(contents(&mut q).is_empty());
        }
    }
}

/// Every region size that opens keeps storing (issue 16 item 5): fill it
/// until `Full`, deliver everything, and go on for several laps of the
/// ring; a region too small to work is refused with a typed error. (Today
/// a 2-page region opened, then stopped storing for good once its write
/// page filled with an empty queue: `Full` forever.)
fn region_keeps_storing<const R: usize, const W: usize, const E: usize>() {
    for pages in 1..=8usize {
        let mut flash = SimFlash::<R, W, E>::new(pages);
        let region = 0..(pages * E) as u32;
        let mut q = match FlashQueue::open(&mut flash, region) {
            Ok(q) => q,
            Err(OpenError::Geometry(g)) => {
                assert!(pages < 2, "{pages} pages of {E} B refused: {g}");
                continue;
            }
            Err(e) => panic!("{pages} pages: {e}"),
        };
        let p = vec![0x5Au8; q.max_payload().min(40)];
        let mut seq = 0u64;
        let mut laps_bytes = 0usize;
        while laps_bytes < 4 * pages * E {
            // Fill until full (at least one event must fit).
            let before = seq;
            loop {
                match q.append(seq, &p) {
                    Ok(()) => seq += 1,
                    Err(Error::Full) => break,
                    Err(e) => panic!("{pages}x{E}: append {seq}: {e}"),
                }
                laps_bytes += p.len() + 16;
            }
            assert!(
                seq > before,
                "{pages} pages of {E} B: an empty queue stores nothing (after {seq} events)"
            );
            // Deliver everything.
            q.delete_through(seq - 1).unwrap();
            assert_eq!(q.summary().unwrap().count, 0);
        }
        assert_eq!(flash.violations(), 0);
    }
}

#[test]
fn every_region_size_that_opens_keeps_storing_lap_after_lap() {
    region_keeps_storing::<4, 4, 256>();
    region_keeps_storing::<4, 4, 512>();
    region_keeps_storing::<2, 8, 256>();
    region_keeps_storing::<4, 4, 4096>();
}
