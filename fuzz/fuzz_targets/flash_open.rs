//! The flash queue opened on an arbitrary image.
//!
//! The image of a small simulated flash (eight 256-byte pages) is built from
//! the input in three layers, so that the fuzzer reaches deep into real
//! queue images as well as pure noise: a real queue written by arbitrary
//! appends and deletes (perhaps cut by a power loss), then arbitrary bytes
//! spliced in at an arbitrary place, then arbitrary single-byte changes.
//! Opening must not panic: it fails with a typed error or yields a
//! queue whose summary, sizes and payloads agree, numbered strictly
//! increasing (holes reported as such). Every payload returned must be the
//! payload of a record in the image whose CRC-32C over header and payload
//! matches (never torn or garbage bytes).
//!
//! The target knows what it damaged (the bytes the splice and the changes
//! really changed) and asks whether the intact events survive
//! (`sim::damage::Ledger`): every event whose append returned, not covered
//! by a returned delete and whose record bytes and page header were not
//! touched, comes back exactly once, in order, byte for byte; a lost one is
//! reported (a hole, or under the seq floor); appends after the damage
//! survive a reopen.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use outbox_embedded::flash::sim::damage::{flipped_bits, open_all, Ledger};
use outbox_embedded::flash::sim::model::read_all;
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

const PAGES: usize = 8;
const PAGE: usize = 256;
const REGION: core::ops::Range<u32> = 0..(PAGES * PAGE) as u32;
static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Whether `payload` is stored in `image` as a record with a matching CRC:
/// an 8-byte header giving its length, the payload, padding to 4, the CRC.
/// The queue recovers a record header that lost one or two bits (the flips
/// that make the record's CRC-32 match), so the header in the image may
/// differ from the one the CRC covers in up to two bits.
fn stored_with_crc(image: &[u8], payload: &[u8]) -> bool {
    let len = payload.len();
    let crc_at = (8 + len).div_ceil(4) * 4;
    (0..image.len().saturating_sub(crc_at + 4) + 1)
        .step_by(4)
        .any(|at| {
            let rec = &image[at..];
            &rec[8..8 + len] == payload && crc_matches_within_two_bits(rec, len, crc_at)
        })
}

/// Whether a header within two flipped bits of `rec[..8]`, giving length
/// `len`, makes the CRC-32 at `crc_at` match the header and payload.
fn crc_matches_within_two_bits(rec: &[u8], len: usize, crc_at: usize) -> bool {
    let mut header = [0u8; 8];
    header.copy_from_slice(&rec[..8]);
    let flips_in_len = (header[1] ^ len as u8).count_ones() + (header[2] ^ (len >> 8) as u8).count_ones();
    if flips_in_len > 2 {
        return false;
    }
    header[1..3].copy_from_slice(&(len as u16).to_le_bytes());
    let want = &rec[crc_at..crc_at + 4];
    let matches = |h: &[u8; 8]| {
        let mut d = CRC32.digest();
        d.update(h);
        d.update(&rec[8..8 + len]);
        d.finalize().to_le_bytes() == want
    };
    // The bits outside the length field that may still be flipped.
    let free: Vec<usize> = (0..64).filter(|b| !(8..24).contains(b)).collect();
    let budget = 2 - flips_in_len as usize;
    let flip = |h: &mut [u8; 8], b: usize| h[b / 8] ^= 1 << (b % 8);
    if matches(&header) {
        return true;
    }
    for (i, &a) in free.iter().enumerate().take(if budget >= 1 { free.len() } else { 0 }) {
        flip(&mut header, a);
        if matches(&header) {
            return true;
        }
        if budget == 2 {
            for &b in &free[i + 1..] {
                flip(&mut header, b);
                let hit = matches(&header);
                flip(&mut header, b);
                if hit {
                    return true;
                }
            }
        }
        flip(&mut header, a);
    }
    false
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Appends (`Ok(len)`) and deletes (`Err(k)`, the oldest `k`).
    build: Vec<Result<u8, u8>>,
    /// Lose power at this write or erase of the build, after this many bytes.
    cut: Option<(u16, u16)>,
    splice_at: u16,
    splice: Vec<u8>,
    damage: Vec<(u16, u8)>,
}

/// The queue built by the input before any damage: its image and ledger.
fn build(input: &Input) -> (Vec<u8>, Ledger) {
    let mut flash = SimFlash::<4, 4, PAGE>::new(PAGES);
    if let Some((ops, done)) = input.cut {
        flash.cut_at_op(u64::from(ops), usize::from(done));
    }
    let mut stored: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut maybe: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut deleted_through = None;
    if let Ok(mut q) = FlashQueue::open(&mut flash, REGION) {
        let mut next = 0u64;
        for (i, step) in input.build.iter().take(300).enumerate() {
            match *step {
                Ok(len) => {
                    let p = vec![i as u8; usize::from(len % 120)];
                    maybe.push((next, p.clone()));
                    if q.append(next, &p).is_ok() {
                        stored.retain(|e| e.0 != next);
                        stored.push((next, p));
                        next += 1;
                    }
                }
                Err(k) => {
                    let through = next.saturating_sub(u64::from(k % 8));
                    let ok = q.delete_through(through).is_ok();
                    // Cut or not, what it covers need not come back.
                    stored.retain(|e| e.0 > through);
                    if ok {
                        deleted_through = Some(through);
                    }
                }
            }
            if !q.flash_mut().is_powered() {
                break;
            }
        }
    }
    let img = flash.image().to_vec();
    let ledger = Ledger::located(PAGE, 4, &img, &stored, &maybe, deleted_through);
    (img, ledger)
}

fn damage(input: &Input, mut img: Vec<u8>) -> Vec<u8> {
    let at = usize::from(input.splice_at) % img.len();
    let n = input.splice.len().min(img.len() - at);
    img[at..at + n].copy_from_slice(&input.splice[..n]);
    for &(at, v) in &input.damage {
        let at = usize::from(at) % img.len();
        img[at] = v;
    }
    img
}

fuzz_target!(|input: Input| {
    let (built, ledger) = build(&input);
    let image = damage(&input, built.clone());
    // Each changed address once per bit changed: the ledger counts bits.
    let touched = flipped_bits(&built, &image);
    let mut flash = SimFlash::<4, 4, PAGE>::from_image(PAGES, &image);
    // Whatever the image holds, the queue must never write a word twice;
    // but an arbitrary image counts every word as written, so only bit
    // rules are checked here.
    flash.set_write_once(false);
    let original = flash.image().to_vec();
    let Ok(mut q) = FlashQueue::open(&mut flash, REGION) else {
        return;
    };
    let got = open_all(&mut q);
    for (seq, p) in &got.events {
        assert!(
            stored_with_crc(&original, p),
            "event {seq} is not a record with a valid CRC"
        );
    }
    if let Err(e) = ledger.check(&got, &touched) {
        panic!("intact events not preserved: {e}");
    }
    // Appending continues after what is there; a reopen agrees.
    let next = got.floor;
    let appended = q.append(next, b"appended").is_ok();
    let after = read_all(&mut q);
    if appended {
        assert_eq!(after.last(), Some(&(next, b"appended".to_vec())));
    }
    if let Some(first) = after.first() {
        let _ = q.delete_through(first.0);
    }
    let after = read_all(&mut q);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    assert_eq!(read_all(&mut q), after, "a reopen changed the contents");
});
