//! Reading the log in order, with a position that fits in a few words.
//!
//! The log is the records of the pages in use, oldest page first. [`step`]
//! reads one record and moves on, skipping torn bytes and following the ring
//! from page to page. [`LiveWalk`] turns that into the events a reader sees,
//! by one rule that every reader (open, sizes, payloads, delete) shares:
//!
//! - a record is replaced when the next valid event record's number is not
//!   higher (the same number appended again after a failed append: the
//!   newest copy wins);
//! - a record is accepted when it is not replaced and its number is one past
//!   the last accepted one, or, before the first event at or above
//!   `live_from` (the oldest one kept), higher and marked as a jump (the
//!   writer marks the first event after an empty queue, a number appended
//!   again, and the first event of every page). So the events a reader sees
//!   are strictly increasing and without gaps whatever the image holds; a
//!   record lost to damage ends the run, and records lost from a deleted
//!   page (a power cut while erasing it) do not;
//! - an accepted record below `live_from` is deleted.
//!
//! Every walk judges with the current `live_from`; a cursor is only kept
//! where everything before it is deleted (the oldest event) or until the
//! next delete (a reader's position), so resuming agrees with a walk from
//! the start.
//!
//! A [`Cursor`] is the walk's whole state at a record boundary, so a read can
//! continue where the previous one stopped and get the same answer as a walk
//! from the start.

use embedded_storage::nor_flash::NorFlash;
use outbox_core::Seq;

use super::format::{
    self, HeaderRead, Kind, PageHeader, PageRead, RecordHeader, CHECKPOINT_PAYLOAD,
    PAGE_HEADER_RAW, RECORD_HEADER,
};
use super::io;
use super::Geometry;

/// A place in the log: a page, an offset in it, and the page's base number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub page: u32,
    pub off: u32,
    pub base: Seq,
}

/// A walk's state at a record boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub pos: Pos,
    /// The last accepted number before `pos`.
    pub last: Option<Seq>,
    /// Whether an event at or above `live_from` was accepted before `pos`.
    pub live_seen: bool,
}

/// A valid event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventRec {
    pub at: Pos,
    pub seq: Seq,
    pub len: u16,
    pub jump: bool,
}

impl EventRec {
    /// Flash address of the payload.
    pub fn payload_addr(&self, geo: &Geometry) -> u32 {
        geo.addr(self.at.page, self.at.off) + RECORD_HEADER as u32
    }
}

/// One step of a walk.
pub(crate) enum Step {
    Event(EventRec),
    Checkpoint(Seq),
    /// A record that fails its checks, skipped.
    Skipped,
    End,
}

/// Where the log ends: the write page and the offset its records end at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub write_page: Option<u32>,
    pub write_end: u32,
}

/// Read the header of `page`.
pub(crate) fn page_header<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    page: u32,
) -> Result<PageRead, F::Error> {
    let mut b = [0u8; PAGE_HEADER_RAW];
    io::read(flash, geo.addr(page, 0), &mut b)?;
    Ok(PageHeader::decode(&b))
}

/// Read the record at `pos` and move past it. Event records are checked
/// against their CRC only when `validate` is set (checkpoints always are).
/// At the end of the log `pos` is left where the records stop.
pub(crate) fn step<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    bounds: Bounds,
    pos: &mut Pos,
    validate: bool,
) -> Result<Step, F::Error> {
    let w = F::WRITE_SIZE as u32;
    loop {
        let in_write_page = bounds.write_page == Some(pos.page);
        let limit = if in_write_page {
            bounds.write_end
        } else {
            geo.page_size
        };
        if pos.off.saturating_add(RECORD_HEADER as u32) <= limit {
            let addr = geo.addr(pos.page, pos.off);
            let mut raw = [0u8; RECORD_HEADER];
            io::read(flash, addr, &mut raw)?;
            if let HeaderRead::Valid(h) = RecordHeader::decode(&raw) {
                let len = u32::from(h.len);
                if pos.off + format::record_len(len, w) <= limit {
                    let at = *pos;
                    pos.off += format::record_len(len, w);
                    return match h.kind {
                        Kind::Event { jump } => Ok(match at.base.checked_add(u64::from(h.delta)) {
                            Some(seq) if !validate || io::crc_matches(flash, addr, &raw, len)? => {
                                Step::Event(EventRec {
                                    at,
                                    seq,
                                    len: h.len,
                                    jump,
                                })
                            }
                            _ => Step::Skipped,
                        }),
                        Kind::Checkpoint => {
                            if len as usize != CHECKPOINT_PAYLOAD
                                || !io::crc_matches(flash, addr, &raw, len)?
                            {
                                return Ok(Step::Skipped);
                            }
                            let mut v = [0u8; CHECKPOINT_PAYLOAD];
                            io::read(flash, addr + RECORD_HEADER as u32, &mut v)?;
                            Ok(Step::Checkpoint(u64::from_le_bytes(v)))
                        }
                    };
                }
            }
        }
        // Erased, garbage, or no room for another record: this page's
        // records end here.
        if in_write_page {
            return Ok(Step::End);
        }
        let next = geo.next(pos.page);
        match page_header(flash, geo, next)? {
            PageRead::Valid(h) => {
                *pos = Pos {
                    page: next,
                    off: geo.header,
                    base: h.base,
                }
            }
            _ => return Ok(Step::End),
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
    live_seen: bool,
    /// `last` and `live_seen` before the most recently returned record.
    prev: (Option<Seq>, bool),
}

impl LiveWalk {
    pub fn new(c: Cursor) -> Self {
        LiveWalk {
            pos: c.pos,
            pending: None,
            last: c.last,
            live_seen: c.live_seen,
            prev: (c.last, c.live_seen),
        }
    }

    /// The next accepted event record, judged with `live_from`.
    pub fn next<F: NorFlash>(
        &mut self,
        flash: &mut F,
        geo: &Geometry,
        bounds: Bounds,
        live_from: Seq,
    ) -> Result<Option<EventRec>, F::Error> {
        loop {
            let next = loop {
                match step(flash, geo, bounds, &mut self.pos, true)? {
                    Step::Event(r) => break Some(r),
                    Step::Checkpoint(_) | Step::Skipped => continue,
                    Step::End => break None,
                }
            };
            let Some(p) = self.pending.take() else {
                match next {
                    None => return Ok(None),
                    Some(r) => {
                        self.pending = Some(r);
                        continue;
                    }
                }
            };
            self.pending = next;
            let replaced = next.is_some_and(|r| r.seq <= p.seq);
            // `None` is "before number 0": what follows it is 0 or a jump,
            // as after any other number. (Taking anything there let a page
            // with base 0 accept a run whose first record was lost, which
            // a walk from the next page refused once page 0 was erased.)
            let follows = match self.last {
                None => p.seq == 0 || (p.jump && !self.live_seen),
                Some(l) => p.seq == l.wrapping_add(1) || (p.jump && p.seq > l && !self.live_seen),
            };
            if replaced || !follows {
                continue;
            }
            self.prev = (self.last, self.live_seen);
            self.last = Some(p.seq);
            self.live_seen |= p.seq >= live_from;
            return Ok(Some(p));
        }
    }

    /// The state before the next record not yet returned.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            pos: self.pending.map_or(self.pos, |p| p.at),
            last: self.last,
            live_seen: self.live_seen,
        }
    }

    /// The state before `rec`, the record just returned.
    pub fn cursor_before(&self, rec: &EventRec) -> Cursor {
        Cursor {
            pos: rec.at,
            last: self.prev.0,
            live_seen: self.prev.1,
        }
    }
}
