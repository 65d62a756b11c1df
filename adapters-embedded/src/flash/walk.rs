//! Reading the log in order, with a position that fits in a few words.
//!
//! The log is the records of the pages in use, oldest page first. One
//! primitive finds records: [`step`] reads the record at a position and
//! moves past it, and when the bytes there fail their checks (bit rot, a
//! torn write) it resynchronises at the next valid record at or after the
//! next write word ([`next_valid`]), reporting the damaged record (its
//! number when its header survived) without giving up on the rest of the
//! page. A record header that fails its checks is first recovered when
//! one or two of its bits flipped: the candidate header with those bits
//! put back whose record's CRC-32 (over header and payload) matches is the
//! header written (a wrong one matches with odds of 2^-32, and only
//! candidates passing the CRC-8 are compared). Without it the newest
//! record's number, unreadable, could be handed out again (issue 16).
//! Resynchronising recovers too (a record lost for good with its length
//! hides where the next one starts; the flash world found the newest one
//! lost behind it): each offset searched past pays for the candidates, a
//! cost only damage brings. A page whose header fails its checks inside
//! the chain is skipped as a whole (its records' numbers are stored relative to it). Every
//! reader (open, sizes, payloads, delete) walks with it.
//!
//! [`LiveWalk`] turns records into the events a reader sees, by one rule
//! that does not depend on where a walk starts:
//!
//! - a record is replaced when the next valid event record's number is not
//!   higher (the same number appended again after a failed append: the
//!   newest copy wins);
//! - a record is accepted when it is not replaced and its number is higher
//!   than the last accepted one. Numbers missing between two accepted
//!   events are holes (damaged records, numbers spent on failed appends);
//! - an accepted record below `live_from` is deleted.
//!
//! A [`Cursor`] is the walk's whole state at a record boundary, so a read can
//! continue where the previous one stopped and get the same answer as a walk
//! from the start.

use outbox_core::Seq;

use super::format::{
    self, HeaderRead, Kind, PageHeader, RecordHeader, CHECKPOINT_PAYLOAD, COPY_RECORD,
    PAGE_HEADER_RAW, RECORD_HEADER,
};
use super::io;
use super::{bisync, Geometry, NorFlash};

/// A place in the log: a page, an offset in it, and the page's base number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub page: u32,
    pub off: u32,
    pub base: Seq,
    /// The page's lap (a sealed queue's nonces take it, see `seal`).
    #[cfg(feature = "encryption")]
    pub lap: u32,
}

/// A walk's state at a record boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub pos: Pos,
    /// The last accepted number before `pos`.
    pub last: Option<Seq>,
}

/// A valid event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventRec {
    pub at: Pos,
    pub seq: Seq,
    pub len: u16,
    /// It carries a wall-clock stamp before its payload (feature `expiry`).
    #[cfg(feature = "expiry")]
    pub stamped: bool,
    /// A critical event (feature `critical`).
    #[cfg(feature = "critical")]
    pub critical: bool,
}

impl EventRec {
    /// Flash address of the payload.
    pub fn payload_addr(&self, geo: &Geometry) -> u32 {
        #[cfg(feature = "expiry")]
        if self.stamped {
            return geo.addr(self.at.page, self.at.off)
                + (RECORD_HEADER + format::STAMP_LEN) as u32;
        }
        geo.addr(self.at.page, self.at.off) + RECORD_HEADER as u32
    }
}

/// One step of a walk.
pub(crate) enum Step {
    Event(EventRec),
    Checkpoint(Seq),
    /// A discard mark naming this event (feature `critical`).
    #[cfg(feature = "critical")]
    Discard(Seq),
    /// A record that fails its checks, skipped; its number when its header
    /// (and so its number) survived.
    Damaged(Option<Seq>),
    End,
}

/// Where the log ends: the write page and the offset its records end at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub write_page: Option<u32>,
    pub write_end: u32,
}

/// Read the header of `page`: the page header, or its copy (the first
/// record of a format-2 page) when the header fails its checks. Its
/// `whole` says whether the page may take more records: both copies pass
/// their checks (or its header does, on a format-1 page). Not so when the
/// page's opening was cut by a power loss or a flash error, or one copy
/// rotted: records then go to a new page, never under a single copy.
// Not inlined: one copy serves every caller (firmware flash, see
// firmware/size.sh).
#[bisync]
#[inline(never)]
pub(crate) async fn page_header<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    page: u32,
) -> Result<Option<PageHeader>, F::Error> {
    let mut b = [0u8; PAGE_HEADER_RAW];
    #[cfg_attr(not(feature = "encryption"), allow(unused_mut))]
    let mut tag = [0u8; RECORD_HEADER];
    let mut copy = [0u8; PAGE_HEADER_RAW];
    let at = geo.addr(page, geo.header);
    io::read(flash, geo.addr(page, 0), &mut b).await?;
    io::read(flash, at, &mut tag).await?;
    io::read(flash, at + RECORD_HEADER as u32, &mut copy).await?;
    // A sealed page's copy: the header first, then the salt and key check,
    // so a copy torn after the header is found by its record CRC.
    #[cfg(feature = "encryption")]
    if tag == format::COPY_SEALED_RECORD && geo.seal.is_some() {
        let len = format::SEALED_COPY_PAYLOAD as u32;
        if io::crc_matches(flash, at, &tag, len).await? {
            tag = COPY_RECORD;
        }
    }
    let from_copy = if tag == COPY_RECORD {
        PageHeader::decode(&copy)
    } else {
        None
    };
    Ok(match PageHeader::decode(&b) {
        None => from_copy,
        Some(mut h) => {
            h.whole |= from_copy.is_some();
            Some(h)
        }
    })
}

/// What lies at one offset of a page.
enum At {
    Event(EventRec, u32),
    Checkpoint(Seq, u32),
    /// A discard mark (feature `critical`): the number it names.
    #[cfg(feature = "critical")]
    Discard(Seq, u32),
    /// All 0xFF: nothing was written here.
    Erased,
    /// A record that fails its checks: its number when its header is
    /// intact, and where it ends when its length is.
    Bad(Option<Seq>, Option<u32>),
}

/// The record at `pos` (which ends by `limit`). Event records are checked
/// against their CRC only when `validate` is set (checkpoints always are).
/// A header that fails its checks is recovered when flipping one or two of its bits gives a header whose
/// record's CRC-32 matches (see the module docs): up to 2 080 candidates
/// through the CRC-8, a CRC-32 only for the few that pass it. Beyond
/// recovery (three bits or more, or the payload or CRC damaged too) the
/// record stays damaged with its number unknown.
#[bisync]
async fn record_at<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    pos: Pos,
    limit: u32,
    validate: bool,
) -> Result<At, F::Error> {
    let w = F::WRITE_SIZE as u32;
    let addr = geo.addr(pos.page, pos.off);
    let mut stored = [0u8; RECORD_HEADER];
    io::read(flash, addr, &mut stored).await?;
    // Candidate k: the bits i = k / (BITS + 1) and j = k % (BITS + 1)
    // flipped (j = BITS: no second flip; i == j: none, k = 0 is the header
    // as stored).
    const BITS: u32 = RECORD_HEADER as u32 * 8;
    let mut k = 0;
    let mut raw = stored;
    let h = loop {
        match RecordHeader::decode(&raw) {
            HeaderRead::Erased if k == 0 => return Ok(At::Erased),
            HeaderRead::Valid(h) if k == 0 => break h,
            HeaderRead::Valid(h)
                if pos.off.saturating_add(format::record_len(h.len.into(), w)) <= limit
                    && io::crc_matches(flash, addr, &raw, h.len.into()).await? =>
            {
                break h
            }
            _ if k == BITS * (BITS + 1) => return Ok(At::Bad(None, None)),
            _ => {}
        }
        k += 1;
        raw = stored;
        for b in [k / (BITS + 1), k % (BITS + 1)] {
            raw[b as usize / 8 % RECORD_HEADER] ^= u8::from(b < BITS) << (b % 8);
        }
    };
    let len = u32::from(h.len);
    let size = format::record_len(len, w);
    let seq = match h.kind {
        Kind::Event { .. } => pos.base.checked_add(u64::from(h.delta)),
        _ => None,
    };
    if pos.off.saturating_add(size) > limit {
        // Longer than its page: not a record (a torn header reads so).
        return Ok(At::Bad(None, None));
    }
    let end = pos.off + size;
    Ok(match h.kind {
        Kind::Event { .. } => match seq {
            Some(seq)
                if !validate
                    || intact(
                        flash,
                        geo,
                        addr,
                        &raw,
                        len,
                        seq,
                        pos,
                        #[cfg(feature = "expiry")]
                        stamp_len(h),
                    )
                    .await? =>
            {
                At::Event(
                    EventRec {
                        at: pos,
                        seq,
                        // A sealed record's size is its plaintext's (and a
                        // stamped one's, its payload's).
                        #[cfg(not(feature = "expiry"))]
                        len: (u32::from(h.len).saturating_sub(geo.tag_len())) as u16,
                        #[cfg(feature = "expiry")]
                        len: (u32::from(h.len).saturating_sub(geo.tag_len() + stamp_len(h))) as u16,
                        #[cfg(feature = "expiry")]
                        stamped: stamp_len(h) > 0,
                        #[cfg(feature = "critical")]
                        critical: matches!(h.kind, Kind::Event { critical: true, .. }),
                    },
                    end,
                )
            }
            // Its number counts only if the record was ever written whole
            // (its CRC written): a header torn by a power cut may read as
            // valid with any number.
            _ => {
                let mut crc = [0u8; 4];
                io::read(flash, addr + format::crc_offset(len), &mut crc).await?;
                let seq = seq.filter(|_| crc != [0xFF; 4]);
                At::Bad(seq, Some(end))
            }
        },
        // (A page header's copy is a checkpoint of another length: read
        // by `page_header`, skipped by walks.)
        Kind::Checkpoint => {
            if len as usize != CHECKPOINT_PAYLOAD
                || !io::crc_matches(flash, addr, &raw, len).await?
            {
                return Ok(At::Bad(None, Some(end)));
            }
            let mut v = [0u8; CHECKPOINT_PAYLOAD];
            io::read(flash, addr + RECORD_HEADER as u32, &mut v).await?;
            At::Checkpoint(u64::from_le_bytes(v), end)
        }
        // Checked as a checkpoint is: a discard mark that fails its checks
        // discards nothing (its twin, written after it, may).
        #[cfg(feature = "critical")]
        Kind::Discard => {
            if len as usize != CHECKPOINT_PAYLOAD
                || !io::crc_matches(flash, addr, &raw, len).await?
            {
                return Ok(At::Bad(None, Some(end)));
            }
            let mut v = [0u8; CHECKPOINT_PAYLOAD];
            io::read(flash, addr + RECORD_HEADER as u32, &mut v).await?;
            At::Discard(u64::from_le_bytes(v), end)
        }
    })
}

/// Bytes of the wall-clock stamp before the payload of a record with
/// header `h` (feature `expiry`; 0 for a record without one).
#[cfg(feature = "expiry")]
fn stamp_len(h: RecordHeader) -> u32 {
    match h.kind {
        Kind::Event { stamped: true, .. } => format::STAMP_LEN as u32,
        _ => 0,
    }
}

/// Whether the event record at `addr` passes its checks: its CRC, and on
/// a sealed queue its tag (a record whose CRC passes and tag fails is
/// damaged, as bit rot is).
// (With feature `expiry`, the stamp's length is one argument more.)
#[cfg_attr(feature = "expiry", allow(clippy::too_many_arguments))]
#[bisync]
async fn intact<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    addr: u32,
    raw: &[u8; RECORD_HEADER],
    len: u32,
    seq: Seq,
    pos: Pos,
    #[cfg(feature = "expiry")] stamp: u32,
) -> Result<bool, F::Error> {
    let crc = io::crc_matches(flash, addr, raw, len).await?;
    // (A stamp is in clear before the ciphertext: the tag covers what
    // follows it.)
    #[cfg(feature = "encryption")]
    if let (true, Some(keys)) = (crc, geo.seal) {
        #[cfg(feature = "expiry")]
        let (addr, len) = (addr + stamp, len.saturating_sub(stamp));
        return super::sealed::tag_matches(flash, &keys, addr, len, seq, pos).await;
    }
    #[cfg(not(feature = "encryption"))]
    let _ = (geo, seq, pos);
    #[cfg(all(feature = "expiry", not(feature = "encryption")))]
    let _ = stamp;
    Ok(crc)
}

/// The offset of the next valid record (CRC checked) at or after `from` in
/// `pos`'s page, before `limit`; `None` when there is none. Also the
/// highest number of a damaged record passed on the way whose header is
/// intact and whose number lies between `after` and the valid record's (or
/// within a page's worth of numbers of the page base at the end): a
/// plausible number, not noise that happens to pass the header's CRC-8.
#[bisync]
pub(crate) async fn next_valid<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    pos: Pos,
    from: u32,
    limit: u32,
    after: Option<Seq>,
) -> Result<(Option<u32>, Option<Seq>), F::Error> {
    let w = F::WRITE_SIZE as u32;
    let mut off = format::round_up(from, w);
    let mut damaged: Option<Seq> = None;
    let found = loop {
        if off.saturating_add(RECORD_HEADER as u32) > limit {
            break None;
        }
        let at = Pos { off, ..pos };
        match record_at(flash, geo, at, limit, true).await? {
            At::Event(r, _) => break Some((off, Some(r.seq))),
            At::Checkpoint(..) => break Some((off, None)),
            #[cfg(feature = "critical")]
            At::Discard(..) => break Some((off, None)),
            At::Bad(Some(seq), _) if after.is_none_or(|a| seq > a) => {
                damaged = damaged.max(Some(seq));
            }
            _ => {}
        }
        off += w;
    };
    let bound = match found {
        Some((_, Some(next))) => next,
        _ => pos.base.saturating_add(u64::from(geo.page_size)),
    };
    Ok((found.map(|f| f.0), damaged.filter(|&d| d < bound)))
}

/// Read the record at `pos` and move past it. Event records are checked
/// against their CRC only when `validate` is set (checkpoints, and any
/// record found by resynchronising, always are). At the end of the log
/// `pos` is left where the records stop.
#[bisync]
pub(crate) async fn step<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    bounds: Bounds,
    pos: &mut Pos,
    validate: bool,
    last: Option<Seq>,
) -> Result<Step, F::Error> {
    loop {
        let in_write_page = bounds.write_page == Some(pos.page);
        let limit = if in_write_page {
            bounds.write_end
        } else {
            geo.page_size
        };
        if pos.off.saturating_add(RECORD_HEADER as u32) <= limit {
            let (seq, end) = match record_at(flash, geo, *pos, limit, validate).await? {
                At::Event(r, end) => {
                    pos.off = end;
                    return Ok(Step::Event(r));
                }
                At::Checkpoint(lf, end) => {
                    pos.off = end;
                    return Ok(Step::Checkpoint(lf));
                }
                #[cfg(feature = "critical")]
                At::Discard(seq, end) => {
                    pos.off = end;
                    return Ok(Step::Discard(seq));
                }
                // Erased bytes normally end the page's records; but bytes
                // that read as erased in the middle of a page (damage) end
                // nothing when a valid record follows. So they are searched
                // past as garbage is (where a valid record follows with no
                // damaged one between, the step is a `Damaged(None)`, which
                // every walker skips).
                At::Erased => (None, None),
                At::Bad(seq, end) => (seq, end),
            };
            // Where its length says it ends, if a record (or nothing)
            // follows there; else the next valid record.
            let after = match end {
                Some(e) if e.saturating_add(RECORD_HEADER as u32) > limit => Some(e),
                // A record there, even a damaged one whose header is
                // intact: the next step reports it.
                Some(e) => {
                    match record_at(flash, geo, Pos { off: e, ..*pos }, limit, true).await? {
                        At::Event(..) | At::Checkpoint(..) | At::Erased => Some(e),
                        #[cfg(feature = "critical")]
                        At::Discard(..) => Some(e),
                        At::Bad(Some(_), _) => Some(e),
                        At::Bad(None, _) => None,
                    }
                }
                None => None,
            };
            let w = F::WRITE_SIZE as u32;
            let (after, seq) = match after {
                Some(e) => (Some(e), seq),
                None => {
                    let (at, passed) =
                        next_valid(flash, geo, *pos, pos.off + w, limit, seq.or(last)).await?;
                    (at, seq.max(passed))
                }
            };
            match (after, seq) {
                (Some(e), _) => {
                    pos.off = e;
                    return Ok(Step::Damaged(seq));
                }
                (None, Some(_)) => {
                    // Nothing valid after it: its page's records end after
                    // it (or, unknown length, here).
                    pos.off = end.unwrap_or(limit).min(limit);
                    return Ok(Step::Damaged(seq));
                }
                (None, None) => {}
            }
        }
        // Erased, garbage with nothing valid after it, or no room for
        // another record: this page's records end here.
        if in_write_page || bounds.write_page.is_none() {
            return Ok(Step::End);
        }
        // The next page in the chain; one whose header fails its checks is
        // skipped (the write page's header is always valid).
        let mut next = geo.next(pos.page);
        let mut hops = 0;
        loop {
            match page_header(flash, geo, next).await? {
                Some(h) => {
                    *pos = Pos {
                        page: next,
                        off: geo.header,
                        base: h.base,
                        #[cfg(feature = "encryption")]
                        lap: h.lap,
                    };
                    break;
                }
                _ if Some(next) != bounds.write_page && hops < geo.pages => {
                    next = geo.next(next);
                    hops += 1;
                }
                _ => return Ok(Step::End),
            }
        }
    }
}

/// The events of the log in order, by the rule in the module docs (without
/// the `live_from` cut, which the caller applies).
pub(crate) struct LiveWalk {
    pos: Pos,
    /// The record read but not yet judged (it waits for the next one).
    pending: Option<EventRec>,
    last: Option<Seq>,
    /// `last` before the most recently returned record.
    prev: Option<Seq>,
    /// One past the highest number of a damaged record seen.
    pub damaged_floor: Seq,
}

impl LiveWalk {
    // Not inlined, as `cursor` (firmware flash, see firmware/size.sh).
    #[inline(never)]
    pub fn new(c: Cursor) -> Self {
        LiveWalk {
            pos: c.pos,
            pending: None,
            last: c.last,
            prev: c.last,
            damaged_floor: 0,
        }
    }

    /// The next accepted event record.
    #[bisync]
    pub async fn next<F: NorFlash>(
        &mut self,
        flash: &mut F,
        geo: &Geometry,
        bounds: Bounds,
    ) -> Result<Option<EventRec>, F::Error> {
        loop {
            let next = loop {
                let seen = self.pending.map(|p| p.seq).max(self.last);
                match step(flash, geo, bounds, &mut self.pos, true, seen).await? {
                    Step::Event(r) => break Some(r),
                    Step::Damaged(Some(seq)) => {
                        self.damaged_floor = self.damaged_floor.max(seq.saturating_add(1));
                    }
                    Step::Checkpoint(_) | Step::Damaged(None) => continue,
                    #[cfg(feature = "critical")]
                    Step::Discard(_) => continue,
                    Step::End => break None,
                }
            };
            // The record read before waits for this one to be judged.
            let Some(p) = core::mem::replace(&mut self.pending, next) else {
                if next.is_none() {
                    return Ok(None);
                }
                continue;
            };
            let replaced = next.is_some_and(|r| r.seq <= p.seq);
            let follows = self.last.is_none_or(|l| p.seq > l);
            if replaced || !follows {
                continue;
            }
            self.prev = self.last;
            self.last = Some(p.seq);
            return Ok(Some(p));
        }
    }

    /// The state before the next record not yet returned.
    // Not inlined: one copy serves every reader (firmware flash, see
    // firmware/size.sh).
    #[inline(never)]
    pub fn cursor(&self) -> Cursor {
        Cursor {
            pos: self.pending.map_or(self.pos, |p| p.at),
            last: self.last,
        }
    }

    /// The state before `rec`, the record just returned.
    pub fn cursor_before(&self, rec: &EventRec) -> Cursor {
        Cursor {
            pos: rec.at,
            last: self.prev,
        }
    }
}
