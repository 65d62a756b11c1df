//! Encryption at rest on flash (feature `encryption`): a sealed queue keeps
//! its contract (round trips, reopens, power cuts), writes no plaintext,
//! refuses a wrong key without touching the flash, reports a record whose
//! tag fails as damaged, and never uses a nonce twice.

#![cfg(feature = "encryption")]

mod support;

use std::collections::BTreeMap;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use outbox_core::HOLE;
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::{Error, FlashQueue, OpenError};
use support::{contents, payload, Model, Op};

type Flash = SimFlash<4, 4, 512>;
const PAGES: usize = 6;
const PAGE: usize = 512;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);
const KEY: [u8; 32] = [0x5E; 32];

/// A salt as a hardware RNG would give it, different at every open.
fn salt(n: u8) -> [u8; 12] {
    core::array::from_fn(|i| n.wrapping_mul(97) ^ (i as u8).wrapping_mul(13) ^ 0x3C)
}

fn open(flash: &mut Flash, n: u8) -> FlashQueue<&mut Flash> {
    FlashQueue::open_sealed(flash, REGION, &KEY, salt(n)).unwrap()
}

#[test]
fn events_round_trip_across_reopens() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 1);
    let unsealed_max = {
        let mut plain = Flash::new(PAGES);
        FlashQueue::open(&mut plain, REGION).unwrap().max_payload()
    };
    let max = q.max_payload();
    assert!(
        max > 0 && max <= unsealed_max - 16,
        "{max} vs {unsealed_max}"
    );
    let mut model = Model::default();
    let ops: Vec<Op> = (0..80u64)
        .flat_map(|s| {
            let mut v = vec![Op::Append(s, payload(s, 3))];
            if s % 5 == 4 {
                v.push(Op::Delete(s - 3));
            }
            v
        })
        .collect();
    assert!(!model.run(&mut q, &ops, &mut |_, _, _| {}));
    // The largest payload fits, one more byte does not (the tag counts).
    let big = vec![0xAB; max];
    q.append(80, &big).unwrap();
    model.acked.insert(80, big);
    assert!(matches!(
        q.append(81, &vec![0; max + 1]),
        Err(Error::TooLarge { .. })
    ));
    let got = contents(&mut q);
    model.check(&got, "open");
    let summary = q.summary().unwrap();
    let bytes: usize = model.acked.values().map(Vec::len).sum();
    assert_eq!(summary.bytes, bytes as u64, "sizes are the plaintext's");
    let mut q = open(&mut flash, 2);
    assert_eq!(contents(&mut q), got, "after a reopen");
    assert_eq!(q.summary().unwrap(), summary);
    assert_eq!(q.seq_floor().unwrap(), 81);
    assert_eq!(flash.violations(), 0);
}

#[test]
fn the_flash_holds_no_plaintext() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 1);
    let secret = b"the patient's glucose reading is 5.4 mmol/L";
    for s in 0..6 {
        q.append(s, secret).unwrap();
    }
    let image = flash.image();
    for w in secret.windows(8) {
        assert!(
            !image.windows(8).any(|x| x == w),
            "{:?} is on flash in clear",
            String::from_utf8_lossy(w)
        );
    }
    // And the same without the feature's sealing: it would be there.
    let mut plain = Flash::new(PAGES);
    FlashQueue::open(&mut plain, REGION)
        .unwrap()
        .append(0, secret)
        .unwrap();
    assert!(plain.image().windows(secret.len()).any(|x| x == secret));
}

#[test]
fn a_wrong_key_is_a_typed_error_and_changes_nothing() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 1);
    for s in 0..15 {
        q.append(s, &payload(s, 1)).unwrap();
    }
    let before = flash.image().to_vec();
    let writes = flash.stats();
    let wrong = FlashQueue::open_sealed(&mut flash, REGION, &[0x5F; 32], salt(2));
    assert_eq!(wrong.err(), Some(OpenError::WrongKey));
    // Without the key, or a sealed open of an unsealed queue: the version.
    let unsealed = FlashQueue::open(&mut flash, REGION).err();
    assert_eq!(unsealed, Some(OpenError::UnsupportedVersion { found: 3 }));
    assert_eq!(flash.image(), &before[..], "the flash changed");
    let after = flash.stats();
    assert_eq!((after.writes, after.erases), (writes.writes, writes.erases));
    // The right key still opens everything.
    let mut q = open(&mut flash, 3);
    assert_eq!(q.summary().unwrap().count, 15);

    let mut plain = Flash::new(PAGES);
    FlashQueue::open(&mut plain, REGION)
        .unwrap()
        .append(0, b"x")
        .unwrap();
    let sealed = FlashQueue::open_sealed(&mut plain, REGION, &KEY, salt(4)).err();
    assert_eq!(sealed, Some(OpenError::UnsupportedVersion { found: 2 }));
}

/// CRC-32C as the format computes it.
fn crc32c(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(data)
}

/// An event record on flash: its page's salt, its number, its offset in
/// its page, its stored bytes, its address, its page's lap.
type Rec = ([u8; 12], u64, u32, Vec<u8>, usize, u32);

/// Every event record in the image: (page, offset, seq, stored bytes
/// after the header), with the page's salt; parsed by the format table in
/// `format.rs` (write size 4: header 36 bytes, sealed copy 76).
fn records(image: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    for (p, page) in image.chunks(PAGE).enumerate() {
        if &page[..4] != b"OBQ\x03" {
            continue;
        }
        let lap = u32::from_le_bytes(page[4..8].try_into().unwrap());
        let base = u64::from_le_bytes(page[8..16].try_into().unwrap());
        let salt: [u8; 12] = page[36 + 8 + 36..36 + 8 + 48].try_into().unwrap();
        let mut off = 112;
        while off + 8 <= PAGE {
            let h = &page[off..off + 8];
            if h.iter().all(|&b| b == 0xFF) {
                break;
            }
            let len = u16::from_le_bytes([h[1], h[2]]) as usize;
            let delta = u32::from_le_bytes(h[3..7].try_into().unwrap());
            let crc_at = (8 + len).div_ceil(4) * 4;
            let size = crc_at + 4;
            if off + size > PAGE {
                break;
            }
            if matches!(h[0], 0x11 | 0x13) {
                out.push((
                    salt,
                    base + u64::from(delta),
                    off as u32,
                    page[off + 8..off + 8 + len].to_vec(),
                    p * PAGE + off,
                    lap,
                ));
            }
            off += size;
        }
    }
    out
}

/// The nonce of a record, as `seal.rs` documents it: the salt XOR (seq
/// u64, offset u16, the page's lap's low 16 bits u16), little-endian.
fn nonce(salt: [u8; 12], seq: u64, off: u32, lap: u32) -> [u8; 12] {
    let mut n = salt;
    let (off, lap) = (u16::try_from(off).unwrap(), lap as u16);
    for (b, x) in n.iter_mut().zip(
        seq.to_le_bytes()
            .into_iter()
            .chain(off.to_le_bytes())
            .chain(lap.to_le_bytes()),
    ) {
        *b ^= x;
    }
    n
}

#[test]
fn a_record_whose_tag_fails_behind_a_good_crc_is_damaged() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 1);
    for s in 0..10 {
        q.append(s, &payload(s, 2)).unwrap();
    }
    // Flip a payload bit of event 4 and write a CRC that matches again:
    // only the tag can tell.
    let image = flash.image().to_vec();
    let (_, _, _, stored, at, _) = records(&image).into_iter().find(|r| r.1 == 4).unwrap();
    let n = 8 + stored.len();
    let crc_at = at + n.div_ceil(4) * 4;
    let mut forged = image.clone();
    forged[at + 8] ^= 0x01;
    let crc = crc32c(&forged[at..at + n]);
    forged[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let mut flash = Flash::from_image(PAGES, &forged);
    let mut q = open(&mut flash, 2);
    let summary = q.summary().unwrap();
    assert_eq!(summary.count, 9, "the forged record is not counted");
    assert_eq!((summary.first, summary.last), (Some(0), Some(9)));
    let mut sizes = [0u32; 10];
    assert_eq!(q.read_sizes(0, &mut sizes).unwrap(), 10);
    assert_eq!(sizes[4], HOLE, "{sizes:?}");
    let mut buf = [0u8; 1024];
    assert_eq!(
        q.read_range(3, 5, &mut buf).err(),
        Some(Error::Missing { seq: 4 })
    );
    let got = contents(&mut q);
    let want: Vec<(u64, Vec<u8>)> = (0..10)
        .filter(|&s| s != 4)
        .map(|s| (s, payload(s, 2)))
        .collect();
    assert_eq!(got, want, "the others survive, unaltered");
    assert_eq!(q.seq_floor().unwrap(), 10);

    // Event 9's record copied after the last one as event 10 (its header
    // renumbered, both checksums recomputed): the number and the place are
    // bound, so its tag fails and it is damaged, never event 10.
    let image = flash.image().to_vec();
    let recs = records(&image);
    let (_, _, _, stored, from, _) = recs.iter().find(|r| r.1 == 9).cloned().unwrap();
    let n = 8 + stored.len();
    let size = n.div_ceil(4) * 4 + 4;
    let to = from + size;
    assert!(image[to..to + size].iter().all(|&b| b == 0xFF));
    let mut moved = image.clone();
    moved.copy_within(from..from + size, to);
    let delta = u32::from_le_bytes(moved[to + 3..to + 7].try_into().unwrap()) + 1;
    moved[to + 3..to + 7].copy_from_slice(&delta.to_le_bytes());
    moved[to + 7] = crc::Crc::<u8>::new(&crc::CRC_8_AUTOSAR).checksum(&moved[to..to + 7]);
    let crc = crc32c(&moved[to..to + n]);
    let crc_at = to + n.div_ceil(4) * 4;
    moved[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let mut flash = Flash::from_image(PAGES, &moved);
    let mut q = open(&mut flash, 3);
    assert_eq!(contents(&mut q), want, "no event 10");
    assert_eq!(q.summary().unwrap().last, Some(9));
    assert_eq!(q.seq_floor().unwrap(), 11, "its number is not handed out");
}

/// Reopen after a cut, judge by the model, go on appending and judge again.
fn reopen_and_check(flash: &mut Flash, model: &Model, n: u8, ctx: &str) {
    flash.power_on();
    flash.cancel_faults();
    let mut q = open(flash, n);
    let got = contents(&mut q);
    model.check(&got, ctx);
    let floor = q.seq_floor().unwrap();
    if let Some((&max, _)) = model.acked.iter().next_back() {
        assert!(floor > max, "{ctx}: seq floor {floor} not above {max}");
    }
    let mut next = Model {
        acked: got.into_iter().collect(),
        ..Model::default()
    };
    let more: Vec<Op> = (floor..floor + 8)
        .map(|s| Op::Append(s, payload(s, 7)))
        .chain([Op::Delete(floor + 2)])
        .collect();
    assert!(!next.run(&mut q, &more, &mut |_, _, _| {}));
    let got = contents(&mut q);
    next.check(&got, &format!("{ctx}, after continuing"));
    let mut q = open(flash, n.wrapping_add(1));
    assert_eq!(contents(&mut q), got, "{ctx}: a clean reopen changed it");
    assert_eq!(flash.violations(), 0, "{ctx}: NOR rules broken");
}

#[test]
fn every_write_and_erase_cut_in_turn_loses_nothing_returned() {
    let mut ops = Vec::new();
    let mut seq = 0u64;
    for i in 0..70u64 {
        if i % 23 == 5 {
            ops.push(Op::FailWrite {
                after: i % 3,
                complete: i % 2 == 0,
            });
            ops.push(Op::Append(seq, payload(seq, 1)));
        }
        ops.push(Op::Append(seq, payload(seq, 0)));
        seq += 1;
        if i % 4 == 3 {
            ops.push(Op::Delete(seq.saturating_sub(1 + i % 7)));
        }
    }
    let inject = &mut |q: &mut FlashQueue<&mut Flash>, after: u64, complete: bool| {
        q.flash_mut().fail_write(after, complete)
    };
    let mut flash = Flash::new(PAGES);
    let mut model = Model::default();
    {
        let mut q = open(&mut flash, 1);
        assert!(!model.run(&mut q, &ops, inject));
        model.check(&contents(&mut q), "uncut");
    }
    let stats = flash.stats();
    assert!(stats.erases >= PAGES as u64, "the ring wraps");
    let total = stats.writes + stats.erases;
    for k in 0..total {
        for done in [(k as usize * 31) % 64, usize::MAX] {
            let mut flash = Flash::new(PAGES);
            flash.cut_at_op(k, done);
            let mut model = Model::default();
            {
                let mut q = open(&mut flash, k as u8);
                assert!(model.run(&mut q, &ops, inject), "cut {k} never happened");
            }
            reopen_and_check(
                &mut flash,
                &model,
                (k as u8).wrapping_add(100),
                &format!("cut at op {k} after {done} bytes"),
            );
        }
    }
    eprintln!("{} power cuts over a sealed queue", 2 * total);
}

#[test]
fn no_two_records_ever_share_a_nonce() {
    // Every record ever on flash, by nonce: the same nonce must always
    // hold the same bytes (the same record seen again).
    let mut seen: BTreeMap<[u8; 12], Vec<u8>> = BTreeMap::new();
    let aead = ChaCha20Poly1305::new(&KEY.into());
    let mut note = |flash: &Flash| {
        for (salt, seq, off, stored, _, lap) in records(flash.image()) {
            let n = nonce(salt, seq, off, lap);
            // The record opens under this nonce and its number as
            // associated data: the nonce computed here is the one used.
            let (ct, tag) = stored.split_at(stored.len() - 16);
            let mut plain = ct.to_vec();
            let tag: [u8; 16] = tag.try_into().unwrap();
            aead.decrypt_inout_detached(
                &n.into(),
                &seq.to_le_bytes(),
                plain.as_mut_slice().into(),
                &tag.into(),
            )
            .unwrap_or_else(|_| panic!("record {seq} at {off} does not open"));
            let old = seen.entry(n).or_insert_with(|| stored.clone());
            assert_eq!(*old, stored, "nonce of {seq} at {off} used twice");
        }
    };
    let mut flash = Flash::new(PAGES);
    let mut salts = Vec::new();
    for session in 0..3u8 {
        {
            let mut q = open(&mut flash, session);
            let start = q.seq_floor().unwrap();
            for s in start..start + 60 {
                q.append(s, &payload(s, session)).unwrap();
                // The newest appended again, with other bytes: another
                // record of the same number.
                if s % 7 == 0 {
                    q.append(s, &payload(s, session + 50)).unwrap();
                }
                if s % 3 == 0 && s > start {
                    q.delete_through(s - 1).unwrap();
                }
                note(q.flash_mut());
            }
        }
        salts.extend(records(flash.image()).iter().map(|r| r.0));
        if session == 1 {
            // The whole queue erased and started again: numbers restart
            // at 0 under a new salt.
            flash = Flash::new(PAGES);
        }
    }
    salts.sort();
    salts.dedup();
    assert_eq!(salts.len(), 2, "one salt per format: {salts:?}");
    assert!(seen.len() > 150);
}

/// The async queue (feature `async` too) seals the same: the same image
/// as the blocking queue for the same key, salt and operations, and each
/// opens the other's.
#[cfg(feature = "async")]
#[test]
fn the_async_queue_seals_the_same_bytes() {
    use outbox_embedded::flash::asynchronous::FlashQueue as AsyncQueue;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use support::async_sim::AsyncSim;

    fn block_on<T>(fut: impl core::future::Future<Output = T>) -> T {
        let mut fut = pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return v;
            }
        }
    }

    let mut blocking = Flash::new(PAGES);
    let mut q = open(&mut blocking, 1);
    let mut a = AsyncSim::new(Flash::new(PAGES));
    let mut aq = block_on(AsyncQueue::open_sealed(&mut a, REGION, &KEY, salt(1))).unwrap();
    for s in 0..50u64 {
        q.append(s, &payload(s, 4)).unwrap();
        block_on(aq.append(s, &payload(s, 4))).unwrap();
        if s % 4 == 3 {
            q.delete_through(s - 2).unwrap();
            block_on(aq.delete_through(s - 2)).unwrap();
        }
    }
    let mut buf = [0u8; 256];
    let n = block_on(aq.read_range(48, 49, &mut buf)).unwrap();
    let want: Vec<u8> = [payload(48, 4), payload(49, 4)].concat();
    assert_eq!(&buf[..n], &want[..]);
    assert_eq!(a.flash.image(), blocking.image(), "the same bytes");
    let wrong = block_on(AsyncQueue::open_sealed(&mut a, REGION, &[1; 32], salt(2)));
    assert_eq!(wrong.err(), Some(OpenError::WrongKey));
}

/// Any image opens sealed without a panic: a sealed queue's image with
/// bytes changed at random (headers, copies, salts, tags, lengths) either
/// opens, every read ending in a result, or is a typed error.
#[test]
fn a_damaged_sealed_image_never_panics() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 1);
    for s in 0..20u64 {
        q.append(s, &payload(s, 5)).unwrap();
        if s % 5 == 4 {
            q.delete_through(s - 3).unwrap();
        }
    }
    let image = flash.image().to_vec();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let mut bad = image.clone();
        for _ in 0..1 + round % 6 {
            let at = (next() % bad.len() as u64) as usize;
            bad[at] ^= 1 << (next() % 8);
        }
        let mut flash = Flash::from_image(PAGES, &bad);
        // (An image counts every word as written: let the append go on.)
        flash.set_write_once(false);
        let Ok(mut q) = FlashQueue::open_sealed(&mut flash, REGION, &KEY, salt(2)) else {
            continue;
        };
        let _ = contents(&mut q);
        let mut sizes = [0u32; 32];
        let _ = q.read_sizes(0, &mut sizes);
        let floor = q.seq_floor().unwrap();
        q.append(floor, b"after").unwrap();
    }
}

/// A queue that loses every page while open (erased behind its back) and
/// is formatted again in the same session takes a new salt: its numbers
/// start over, its nonces do not.
#[test]
fn a_queue_formatted_again_in_one_session_takes_a_new_salt() {
    use embedded_storage::nor_flash::NorFlash;
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 9);
    for s in 0..5u64 {
        q.append(s, &payload(s, 1)).unwrap();
    }
    let first = records(q.flash_mut().image());
    // Everything erased; the next write fails, so the queue reads the
    // (blank) flash back and formats it again.
    q.flash_mut().erase(0, REGION.end).unwrap();
    q.flash_mut().fail_write(0, false);
    assert!(q.append(5, b"lost").is_err());
    for s in 0..5u64 {
        q.append(s, &payload(s, 2)).unwrap();
    }
    let second = records(q.flash_mut().image());
    assert_eq!((first.len(), second.len()), (5, 5));
    for (a, b) in first.iter().zip(&second) {
        assert_eq!((a.1, a.2), (b.1, b.2), "the same number at the same place");
        assert_ne!(a.0, b.0, "a new salt");
        assert_ne!(nonce(a.0, a.1, a.2, a.5), nonce(b.0, b.1, b.2, b.5));
    }
    let mut q = open(&mut flash, 10);
    let want: Vec<(u64, Vec<u8>)> = (0..5).map(|s| (s, payload(s, 2))).collect();
    assert_eq!(contents(&mut q), want);
}

/// The salt lives only in the pages' header copies: with the one page in
/// use's copy rotted, open is a typed error whatever the key, and writes
/// nothing (before, the right key wiped every record as damaged, and a
/// wrong one formatted a page whose copy locked the right key out).
#[test]
fn a_lost_salt_is_a_typed_error_and_changes_nothing() {
    let mut flash = Flash::new(PAGES);
    let mut q = open(&mut flash, 1);
    for s in 0..3 {
        q.append(s, &payload(s, 1)).unwrap();
    }
    assert_eq!(records(flash.image()).len(), 3);
    // One bit of the salt in the copy (page header 36 bytes, then the
    // copy's 8-byte record header and the 36-byte header it repeats).
    flash.rot(36 + 8 + 36 + 5, 0x10);
    let before = flash.image().to_vec();
    let stats = flash.stats();
    for key in [KEY, [0x5F; 32]] {
        let got = FlashQueue::open_sealed(&mut flash, REGION, &key, salt(2)).err();
        assert_eq!(got, Some(OpenError::SaltLost));
    }
    assert_eq!(flash.image(), &before[..], "the flash changed");
    let after = flash.stats();
    assert_eq!((after.writes, after.erases), (stats.writes, stats.erases));
    // Recovery, as the README says: erase the region, open again.
    {
        use embedded_storage::nor_flash::NorFlash;
        flash.erase(REGION.start, REGION.end).unwrap();
    }
    let mut q = open(&mut flash, 3);
    q.append(0, b"again").unwrap();
    assert_eq!(contents(&mut q), vec![(0, b"again".to_vec())]);
}

/// A power cut after a page's first record's ciphertext and tag, before
/// its CRC: the number is not spent, so the retry takes it again, at the
/// same offset of the next page. Its nonce must differ (the page's lap is
/// in it): the torn ciphertext and tag are still on flash.
#[test]
fn a_number_retried_after_a_torn_record_takes_another_nonce() {
    let mut flash = Flash::new(PAGES);
    let first = b"twenty bytes, sealed".to_vec();
    // The first page erased (512 bytes: a blank region's first page may
    // be one whose erase was cut), its header 36, sealed copy 76, then the
    // record: header 8, 20 bytes of ciphertext, tag 16; its CRC is not
    // written.
    flash.cut_after_bytes(512 + 36 + 76 + 8 + 20 + 16);
    {
        let mut q = open(&mut flash, 1);
        assert!(q.append(0, &first).is_err());
    }
    assert!(!flash.is_powered());
    flash.power_on();
    let torn = records(flash.image());
    assert_eq!(torn.len(), 1);
    let crc_at = torn[0].4 + 8 + 36;
    assert_eq!(
        flash.image()[crc_at..crc_at + 4],
        [0xFF; 4],
        "CRC unwritten"
    );
    {
        let mut q = open(&mut flash, 2);
        assert_eq!(q.seq_floor().unwrap(), 0, "the torn number is not spent");
        q.append(0, b"other bytes, same number").unwrap();
        assert_eq!(
            contents(&mut q),
            vec![(0, b"other bytes, same number".to_vec())]
        );
    }
    let recs = records(flash.image());
    assert_eq!(recs.len(), 2, "the torn record and its retry");
    let (a, b) = (&recs[0], &recs[1]);
    assert_eq!(
        (a.0, a.1, a.2),
        (b.0, b.1, b.2),
        "same salt, number, offset"
    );
    assert_ne!(a.5, b.5, "another page");
    let aead = ChaCha20Poly1305::new(&KEY.into());
    let mut nonces = Vec::new();
    for (salt, seq, off, stored, _, lap) in &recs {
        // Each opens under the documented nonce (the torn one's tag was
        // written): it is the nonce the sealer used.
        let n = nonce(*salt, *seq, *off, *lap);
        let (ct, tag) = stored.split_at(stored.len() - 16);
        let mut plain = ct.to_vec();
        let tag: [u8; 16] = tag.try_into().unwrap();
        aead.decrypt_inout_detached(
            &n.into(),
            &seq.to_le_bytes(),
            plain.as_mut_slice().into(),
            &tag.into(),
        )
        .unwrap_or_else(|_| panic!("record {seq} at {off} of lap {lap} does not open"));
        nonces.push(n);
    }
    assert_eq!(recs[0].3.len(), first.len() + 16);
    assert_ne!(nonces[0], nonces[1], "a nonce used twice");
}

/// Record offsets fill 16 bits of the nonce: a sealed queue refuses pages
/// over 64 KiB (an unsealed one takes them).
#[test]
fn a_sealed_queue_refuses_pages_over_64_kib() {
    use outbox_embedded::flash::GeometryError;
    let mut big = SimFlash::<4, 4, { 128 * 1024 }>::new(2);
    let got = FlashQueue::open_sealed(&mut big, 0..256 * 1024, &KEY, salt(1)).err();
    assert_eq!(got, Some(OpenError::Geometry(GeometryError::PageTooLarge)));
    assert!(FlashQueue::open(&mut big, 0..256 * 1024).is_ok());
    let mut max = SimFlash::<4, 4, { 64 * 1024 }>::new(2);
    let mut q = FlashQueue::open_sealed(&mut max, 0..128 * 1024, &KEY, salt(1)).unwrap();
    q.append(0, b"fits").unwrap();
}
