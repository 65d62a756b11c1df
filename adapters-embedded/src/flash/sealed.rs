//! A sealed queue's flash I/O (feature `encryption`): opening with a key,
//! writing a record's payload encrypted, checking its tag. Compiled twice,
//! as the other files that do I/O (see the module docs of `flash`).
//!
//! A sealed queue's pages are format 3: the page header of format 2 with
//! version 3, and its copy (the first record) carrying the queue's salt
//! and a key check value after the header's 36 bytes. Its event records
//! hold the ciphertext then the tag in their payload, under the same
//! record header and CRC-32: the CRC still finds torn and rotted records
//! (the walk resynchronises on it, as for any queue); the tag then finds
//! what the CRC cannot (a wrong key, a record rewritten with a matching
//! CRC), and a record that fails it is damaged, reported as bit rot is.

use core::ops::Range;

use outbox_core::Seq;

use super::format::{self, RecordHeader, COPY_SEALED_RECORD, CRC32, RECORD_HEADER};
use super::seal::{Keys, Sealer, CHUNK, KEY_LEN, SALT_LEN, TAG_LEN};
use super::walk::Pos;
use super::{bisync, capacity, io, scan, FlashQueue, Geometry, GeometryError, NorFlash, OpenError};

impl<F: NorFlash> FlashQueue<F> {
    /// Open a sealed queue in `region` of `flash` (see
    /// [`open`](Self::open)): every event's payload is encrypted with
    /// ChaCha20-Poly1305 under `key`.
    ///
    /// `salt` must be fresh randomness (a hardware RNG's 12 bytes) on every
    /// open: it is used only when the queue is formatted (a blank region,
    /// or one with no readable page left), and kept in every page from
    /// then on. The crate never draws randomness itself.
    ///
    /// A key that is not the queue's is [`OpenError::WrongKey`], and an
    /// unsealed queue (format 1 or 2) is [`OpenError::UnsupportedVersion`]:
    /// nothing is written in either case. A queue holding sealed records
    /// whose salt is lost (every page's header copy damaged) is
    /// [`OpenError::SaltLost`] whatever the key, also without a write:
    /// never a wiped queue nor a page locking the right key out; erase
    /// the region to start again. Pages over 64 KiB are
    /// [`GeometryError::PageTooLarge`] (offsets fill 16 bits of a nonce). Payloads are limited to
    /// [`max_payload`](Self::max_payload), 16 bytes less than unsealed
    /// (the tag). A record whose CRC passes but whose tag fails is damaged:
    /// a hole, reported as bit rot is, never handed out.
    ///
    /// # Example
    ///
    /// ```
    /// # #[cfg(feature = "_test")] {
    /// use outbox_embedded::flash::{sim::SimFlash, FlashQueue, OpenError};
    ///
    /// let key = [0x42; 32]; // from the device's key store
    /// let salt = [7; 12]; // from a hardware RNG, fresh at every open
    /// let mut flash = SimFlash::<4, 4, 4096>::new(8);
    /// let mut q = FlashQueue::open_sealed(&mut flash, 0..8 * 4096, &key, salt).unwrap();
    /// q.append(1, b"secret").unwrap();
    /// let mut buf = [0u8; 16];
    /// assert_eq!(q.read_range(1, 1, &mut buf).unwrap(), 6);
    /// assert_eq!(&buf[..6], b"secret");
    /// drop(q);
    /// let wrong = FlashQueue::open_sealed(&mut flash, 0..8 * 4096, &[0; 32], [9; 12]);
    /// assert!(matches!(wrong, Err(OpenError::WrongKey)));
    /// # }
    /// ```
    #[bisync]
    pub async fn open_sealed(
        mut flash: F,
        region: Range<u32>,
        key: &[u8; KEY_LEN],
        salt: [u8; SALT_LEN],
    ) -> Result<Self, OpenError<F::Error>> {
        let mut geo = Geometry::check::<F>(&flash, region).map_err(OpenError::Geometry)?;
        // Every offset in a page fits the nonce's 16 bits (see `seal`).
        if geo.page_size > 1 << 16 {
            return Err(OpenError::Geometry(GeometryError::PageTooLarge));
        }
        let fresh = Keys { key: *key, salt };
        let mut keys = fresh;
        let found = match find_salt(&mut flash, &geo)
            .await
            .map_err(OpenError::Flash)?
        {
            Salt::Found(salt, check) => Some((salt, check)),
            Salt::Lost => return Err(OpenError::SaltLost),
            Salt::None => None,
        };
        if let Some((salt, check)) = found {
            keys.salt = salt;
            // (In constant time, and without `memcmp`.)
            let diff = keys
                .check()
                .iter()
                .zip(check)
                .fold(0, |d, (a, b)| d | (a ^ b));
            if diff != 0 {
                return Err(OpenError::WrongKey);
            }
        }
        geo.seal = Some(keys);
        if capacity::max_payload(&geo, F::WRITE_SIZE as u32) == 0 {
            return Err(OpenError::Geometry(GeometryError::PageTooSmall));
        }
        let st = scan::scan(&mut flash, &geo).await?;
        Ok(FlashQueue {
            flash,
            geo,
            st,
            stale: false,
            // Without a salt found, the caller's is the queue's already:
            // a format takes the next.
            fresh: Some((fresh, u32::from(found.is_none()))),
        })
    }

    /// The salt for formatting the queue (a new one every time).
    pub(super) fn new_salt(&mut self) -> Option<Keys> {
        let (fresh, n) = self.fresh.as_mut()?;
        let salt = if *n == 0 {
            fresh.salt
        } else {
            fresh.derived_salt(*n)
        };
        *n += 1;
        Some(Keys {
            key: fresh.key,
            salt,
        })
    }
}

/// What the pages tell of the queue's salt.
enum Salt {
    /// The salt and key check value.
    Found([u8; SALT_LEN], [u8; TAG_LEN]),
    /// No page holds anything sealed (a blank region, or pages whose
    /// opening was cut before any record): a format takes a new salt.
    None,
    /// A sealed page holds records (or bytes past its copy) but no page's
    /// copy gives the salt: they cannot be read, nor the key checked.
    Lost,
}

/// The salt and key check value of the queue: from the sealed copy of the
/// newest page that has one intact (every page of a queue carries the
/// same).
#[bisync]
async fn find_salt<F: NorFlash>(flash: &mut F, geo: &Geometry) -> Result<Salt, F::Error> {
    let mut best: Option<(u32, [u8; SALT_LEN], [u8; TAG_LEN])> = None;
    let mut lost = false;
    for page in 0..geo.pages {
        let at = geo.addr(page, geo.header);
        let mut tag = [0u8; RECORD_HEADER];
        io::read(flash, at, &mut tag).await?;
        if tag != COPY_SEALED_RECORD
            || !io::crc_matches(flash, at, &tag, format::SEALED_COPY_PAYLOAD as u32).await?
        {
            // A sealed page in use (its header passes) whose copy does
            // not: anything written after the copy was sealed under a
            // salt only the copies held.
            let mut head = [0u8; format::PAGE_HEADER_RAW];
            io::read(flash, geo.addr(page, 0), &mut head).await?;
            if !lost
                && format::PageHeader::decode(&head)
                    .is_some_and(|h| h.version == format::SEALED_VERSION)
            {
                let first = geo.header
                    + format::record_len(format::SEALED_COPY_PAYLOAD as u32, F::WRITE_SIZE as u32);
                let rest = geo.page_size.saturating_sub(first);
                lost = !io::is_blank(flash, geo.addr(page, first), rest).await?;
            }
            continue;
        }
        let mut copy = [0u8; format::SEALED_COPY_PAYLOAD];
        io::read(flash, at + RECORD_HEADER as u32, &mut copy).await?;
        let mut head = [0u8; format::PAGE_HEADER_RAW];
        head.copy_from_slice(&copy[..format::PAGE_HEADER_RAW]);
        let Some(h) = format::PageHeader::decode(&head) else {
            continue;
        };
        if best.is_none_or(|(lap, ..)| h.lap > lap) {
            let (salt, check) = format::seal_fields(&copy);
            best = Some((h.lap, salt, check));
        }
    }
    Ok(match best {
        Some((_, s, c)) => Salt::Found(s, c),
        None if lost => Salt::Lost,
        None => Salt::None,
    })
}

/// Write one sealed record at the write-aligned `addr`: `header` (whose
/// length counts the prefix and the tag), `prefix` in clear (a stamp,
/// feature `expiry`, or nothing), the payload encrypted, the tag, zero padding and
/// the CRC-32, then 0xFF padding. The header goes first and the CRC last,
/// as for every record; words are written once, in order.
#[bisync]
pub(crate) async fn write_record<F: NorFlash>(
    flash: &mut F,
    mut addr: u32,
    header: &RecordHeader,
    prefix: &[u8],
    payload: &[u8],
    mut sealer: Sealer,
) -> Result<(), F::Error> {
    #[repr(align(4))]
    struct Stage([u8; 2 * io::MAX_ALIGN + CHUNK + 32]);
    let w = F::WRITE_SIZE.max(1);
    let head = header.encode();
    let mut digest = CRC32.digest();
    digest.update(&head);
    let mut stage = Stage([0; 2 * io::MAX_ALIGN + CHUNK + 32]);
    let s = &mut stage.0;
    s[..RECORD_HEADER].copy_from_slice(&head);
    // The stamp, if any, in clear (see `format`).
    s[RECORD_HEADER..RECORD_HEADER + prefix.len()].copy_from_slice(prefix);
    digest.update(prefix);
    let mut fill = RECORD_HEADER + prefix.len();
    for chunk in payload.chunks(CHUNK) {
        let c = &mut s[fill..fill + chunk.len()];
        c.copy_from_slice(chunk);
        sealer.seal(c);
        digest.update(c);
        fill += chunk.len();
        let whole = fill / w * w;
        if whole > 0 {
            flash.write(addr, &s[..whole]).await?;
            addr += whole as u32;
            // (By hand: `copy_within` brings in a 1.5 KiB `memmove` on the
            // firmware, which has byte-wise `memcpy` alone.)
            for i in whole..fill {
                s[i - whole] = s[i];
            }
            fill -= whole;
        }
    }
    let tag = sealer.tag();
    s[fill..fill + TAG_LEN].copy_from_slice(&tag);
    digest.update(&tag);
    fill += TAG_LEN;
    let pad = (4 - (RECORD_HEADER + prefix.len() + payload.len() + TAG_LEN) % 4) % 4;
    s[fill..fill + pad].fill(0);
    fill += pad;
    s[fill..fill + 4].copy_from_slice(&digest.finalize().to_le_bytes());
    fill += 4;
    let end = fill.div_ceil(w) * w;
    s[fill..end].fill(0xFF);
    flash.write(addr, &s[..end]).await
}

/// Whether the sealed record at `addr` (`len` bytes of payload and tag,
/// number `seq`, at `pos`: its offset and its page's lap) carries a
/// matching tag.
#[bisync]
pub(crate) async fn tag_matches<F: NorFlash>(
    flash: &mut F,
    keys: &Keys,
    addr: u32,
    len: u32,
    seq: Seq,
    pos: Pos,
) -> Result<bool, F::Error> {
    let Some(ct) = len.checked_sub(TAG_LEN as u32) else {
        return Ok(false);
    };
    let mut sealer = Sealer::new(keys, seq, pos.off, pos.lap);
    let mut chunk = [0u8; CHUNK];
    let mut at = addr + RECORD_HEADER as u32;
    let end = at + ct;
    while at < end {
        let n = ((end - at) as usize).min(CHUNK);
        io::read(flash, at, &mut chunk[..n]).await?;
        sealer.absorb(&chunk[..n]);
        at += n as u32;
    }
    let mut tag = [0u8; TAG_LEN];
    io::read(flash, end, &mut tag).await?;
    Ok(sealer.verify(&tag))
}
