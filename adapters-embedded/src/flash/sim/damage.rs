//! Checks that look for loss (feature `_test`): a checker that damages a
//! flash image knows which bytes it damaged, and demands every other event
//! back.
//!
//! [`Ledger`] follows a queue as it is built: after every append that
//! returned it finds the record's bytes by comparing the image before and
//! after, and it remembers every payload ever appended. Given the damaged
//! addresses, [`Ledger::check`] judges what a queue opened on the image
//! holds ([`Opened`], read through the public API):
//!
//! - every event still stored whose record bytes (and page header) were not
//!   touched comes back, byte for byte;
//! - everything comes back at most once, strictly in order, and is a payload
//!   some append wrote under that number (a deleted event may come back only
//!   when the damage hit the checkpoint or page header that deleted it);
//! - every stored event that did not come back is reported: a hole in the
//!   sizes when it lies between two events that did, or covered by the seq
//!   floor (never numbered again) when its header survived;
//! - at the edges too, when any event came back: one lost before the oldest
//!   that came back lies in the store summary's span ([`Opened::span`],
//!   which starts at the last delete), and so does one lost after the
//!   newest whose number is readable (its header, CRC field and page header
//!   intact). Only what the format cannot know is exempt: a lost number
//!   after the newest whose header is gone, and every loss when no event
//!   came back (the store contract has no summary of holes alone).
//!
//! A page's header is lost only when both its copies are damaged (the
//! header, and the copy format 2 writes as the page's first record); then
//! it counts as damage to every record on that page (their numbers are
//! stored relative to it). So a single damaged page header costs nothing,
//! and the seq floor must stay above every number on its page.

use std::collections::BTreeMap;
use std::format;
use std::ops::Range;
use std::string::String;
use std::vec::Vec;

use embedded_storage::nor_flash::NorFlash;
use outbox_core::{Store, HOLE};

use crate::flash::format::{
    crc_offset, page_header_len, record_len, HeaderRead, Kind, PageHeader, RecordHeader, CRC32,
    PAGE_HEADER_RAW, RECORD_HEADER,
};
use crate::flash::FlashQueue;

/// What a queue holds, read through its public API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Intact events, oldest first.
    pub events: Vec<(u64, Vec<u8>)>,
    /// Numbers between the oldest and the newest event that the sizes
    /// report as holes.
    pub holes: Vec<u64>,
    /// The queue's seq floor.
    pub floor: u64,
    /// The span of the store contract's summary ([`Store::summary`]'s
    /// `first..=last`): the intact events and the holes before and after
    /// them that the machine reports. `None` when it holds nothing.
    pub span: Option<(u64, u64)>,
}

/// Read everything `q` holds; panics when the summary, the sizes and the
/// payloads disagree.
pub fn open_all<F: NorFlash>(q: &mut FlashQueue<F>) -> Opened {
    let sum = q.summary().unwrap();
    let floor = q.seq_floor().unwrap();
    let contract = Store::summary(q).unwrap();
    let span = (contract.count > 0).then_some((contract.first, contract.last));
    let Some(first) = sum.first else {
        assert_eq!(sum.count, 0);
        assert_eq!(sum.bytes, 0);
        assert_eq!(sum.last, None);
        let mut sizes = [0u32; 4];
        assert_eq!(q.read_sizes(0, &mut sizes).unwrap(), 0);
        assert_eq!(span, None, "the contract's summary of an empty queue");
        return Opened {
            floor,
            ..Opened::default()
        };
    };
    let last = sum.last.expect("a last with a first");
    let mut sizes: Vec<u32> = Vec::new();
    let mut chunk = [0u32; 7];
    loop {
        let n = q
            .read_sizes(first + sizes.len() as u64, &mut chunk)
            .unwrap();
        sizes.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            break;
        }
    }
    assert_eq!(
        sizes.len() as u64,
        last - first + 1,
        "read_sizes stops before the summary's last ({sum:?})"
    );
    assert_ne!(sizes.first(), Some(&HOLE), "the oldest event is a hole");
    assert_ne!(sizes.last(), Some(&HOLE), "the newest event is a hole");
    let intact: Vec<(u64, u32)> = sizes
        .iter()
        .enumerate()
        .filter(|(_, &s)| s != HOLE)
        .map(|(i, &s)| (first + i as u64, s))
        .collect();
    let holes: Vec<u64> = sizes
        .iter()
        .enumerate()
        .filter(|(_, &s)| s == HOLE)
        .map(|(i, _)| first + i as u64)
        .collect();
    assert_eq!(intact.len() as u64, sum.count, "sizes and summary disagree");
    assert_eq!(
        intact.iter().map(|&(_, s)| u64::from(s)).sum::<u64>(),
        sum.bytes,
        "sizes and summary bytes disagree"
    );
    assert!(floor > last, "floor {floor} not above the newest {last}");
    // Payloads, in runs of consecutive intact numbers of at most 5.
    let mut events = Vec::new();
    let mut i = 0;
    while i < intact.len() {
        let mut j = i + 1;
        while j < intact.len() && j - i < 5 && intact[j].0 == intact[j - 1].0 + 1 {
            j += 1;
        }
        let run = &intact[i..j];
        let total: usize = run.iter().map(|&(_, s)| s as usize).sum();
        let mut buf = std::vec![0u8; total];
        let n = q
            .read_range(run[0].0, run[run.len() - 1].0, &mut buf)
            .unwrap();
        assert_eq!(n, total);
        let mut at = 0;
        for &(seq, s) in run {
            events.push((seq, buf[at..at + s as usize].to_vec()));
            at += s as usize;
        }
        i = j;
    }
    // The contract's span covers the intact events, and its edges beyond
    // them read as holes (the sizes stop at the newest intact event).
    let (sf, sl) = span.expect("a span with events");
    assert!(
        sf <= first && sl >= last,
        "span {span:?} within {first}..={last}"
    );
    let mut before = std::vec![0u32; (first - sf) as usize];
    let n = q.read_sizes(sf, &mut before).unwrap();
    assert_eq!(n, before.len());
    assert!(
        before.iter().all(|&s| s == HOLE),
        "the span's head: {before:?}"
    );
    assert!(floor > sl, "floor {floor} not above the span's last {sl}");
    Opened {
        events,
        holes,
        floor,
        span,
    }
}

/// Every event a queue was given, and where its record lies.
#[derive(Clone, Debug)]
pub struct Ledger {
    page: usize,
    header: usize,
    write: usize,
    /// Stored events: payload and where its record lies (a copy may lie
    /// in more than one place: a page not yet erased).
    stored: BTreeMap<u64, (Vec<u8>, Vec<Range<usize>>)>,
    /// Events that may come back without having to: deleted ones, an
    /// interrupted append, an older copy of a number appended again.
    maybe: Vec<(u64, Vec<u8>)>,
    /// Numbers deleted by a delete that returned.
    deleted_through: Option<u64>,
    /// The highest number an append that returned wrote.
    highest: Option<u64>,
}

impl Ledger {
    /// For a flash with pages of `page` bytes and writes of `write` bytes.
    pub fn new(page: usize, write: usize) -> Ledger {
        Ledger {
            page,
            header: page_header_len(write as u32) as usize,
            write,
            stored: BTreeMap::new(),
            maybe: Vec::new(),
            deleted_through: None,
            highest: None,
        }
    }

    /// The highest number an append that returned wrote (deleted or not):
    /// the seq floor must stay above it unless that record's own header
    /// was damaged.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The stored events, oldest first.
    pub fn stored(&self) -> Vec<(u64, Vec<u8>)> {
        self.stored
            .iter()
            .map(|(s, (p, _))| (*s, p.clone()))
            .collect()
    }

    /// Where the record of a stored event lies (its first copy).
    pub fn span(&self, seq: u64) -> Option<Range<usize>> {
        self.stored.get(&seq).and_then(|(_, r)| r.first().cloned())
    }

    /// The ledger of a queue whose image is `image`: `stored` must all be
    /// there (each is found in the image by its number, payload and CRC);
    /// `maybe` may come back; a delete through `deleted_through` returned.
    pub fn located(
        page: usize,
        write: usize,
        image: &[u8],
        stored: &[(u64, Vec<u8>)],
        maybe: &[(u64, Vec<u8>)],
        deleted_through: Option<u64>,
    ) -> Ledger {
        let mut l = Ledger::new(page, write);
        let found = records(image, page, write);
        for (seq, p) in stored {
            let spans: Vec<Range<usize>> = found
                .iter()
                .filter(|(s, sp)| {
                    s == seq
                        && image[sp.start + 1..sp.start + 3] == (p.len() as u16).to_le_bytes()
                        && image[sp.start + RECORD_HEADER..][..p.len()] == p[..]
                })
                .map(|(_, sp)| sp.clone())
                .collect();
            assert!(!spans.is_empty(), "event {seq} is not in the image");
            l.stored.insert(*seq, (p.clone(), spans));
        }
        l.highest = stored.iter().map(|s| s.0).max();
        l.maybe = maybe.to_vec();
        l.deleted_through = deleted_through;
        l
    }

    /// The append of `seq` returned `Ok`: `before` and `after` are the
    /// images around it.
    pub fn appended(&mut self, seq: u64, payload: &[u8], before: &[u8], after: &[u8]) {
        // The new event record: changed bytes holding a valid event
        // header of this length (the append may also have erased a page).
        let at = (0..after.len().saturating_sub(RECORD_HEADER))
            .step_by(self.write)
            .find(|&i| {
                let mut h = [0u8; RECORD_HEADER];
                h.copy_from_slice(&after[i..i + RECORD_HEADER]);
                i % self.page >= self.header
                    && before[i..i + RECORD_HEADER] != h
                    && matches!(RecordHeader::decode(&h), HeaderRead::Valid(r)
                        if matches!(r.kind, Kind::Event { .. }) && usize::from(r.len) == payload.len())
            })
            .expect("an append writes an event record");
        self.highest = self.highest.max(Some(seq));
        let len = payload.len() as u32;
        let span = at..at + record_len(len, self.write as u32) as usize;
        if let Some((old, _)) = self.stored.insert(seq, (payload.to_vec(), std::vec![span])) {
            self.maybe.push((seq, old));
        }
    }

    /// An append that did not return `Ok`: its record may be there.
    pub fn may_have_appended(&mut self, seq: u64, payload: &[u8]) {
        self.maybe.push((seq, payload.to_vec()));
    }

    /// A delete through `through` returned `Ok` (`done`) or was cut (its
    /// events may or may not come back).
    pub fn deleted(&mut self, through: u64, done: bool) {
        let gone: Vec<u64> = self.stored.range(..=through).map(|(s, _)| *s).collect();
        for s in gone {
            if let Some((p, _)) = self.stored.remove(&s) {
                self.maybe.push((s, p));
            }
        }
        if done {
            self.deleted_through = Some(self.deleted_through.map_or(through, |d| d.max(through)));
        }
    }

    /// Whether the damage left `page`'s header readable: its header, or
    /// its copy (the first record of a format-2 page), untouched. The copy's
    /// bytes count whether or not the page has one, so a format-1 page
    /// (no copy) is judged as if it had one: losing its records to one
    /// damaged header is a failure of that format, not an exemption.
    fn page_known(&self, page: usize, damage: &[usize]) -> bool {
        let copy = page + self.header;
        let copy = copy..copy + record_len(PAGE_HEADER_RAW as u32, self.write as u32) as usize;
        let header = page..page + self.header;
        !damage.iter().any(|a| header.contains(a)) || !damage.iter().any(|a| copy.contains(a))
    }

    /// Whether any of the damaged addresses lies in the record of `seq`, or
    /// left its page's header unreadable (both copies hit).
    pub fn touched(&self, seq: u64, damage: &[usize]) -> bool {
        let Some((_, spans)) = self.stored.get(&seq) else {
            return false;
        };
        spans.iter().any(|span| {
            let page = span.start / self.page * self.page;
            damage.iter().any(|a| span.contains(a)) || !self.page_known(page, damage)
        })
    }

    /// Whether the header of `seq`'s record, its CRC field and its page
    /// header (one of its copies) are intact: then its number is readable
    /// and must stay counted (a record whose CRC field reads as erased is
    /// taken for a write torn by a power cut, whose number a torn header
    /// may garble).
    pub fn header_intact(&self, seq: u64, damage: &[usize]) -> bool {
        let Some((p, spans)) = self.stored.get(&seq) else {
            return false;
        };
        let crc = crc_offset(p.len() as u32) as usize;
        spans.iter().all(|span| {
            let page = span.start / self.page * self.page;
            self.page_known(page, damage)
                && !damage.iter().any(|a| {
                    (span.start..span.start + RECORD_HEADER).contains(a)
                        || (span.start + crc..span.start + crc + 4).contains(a)
                })
        })
    }

    /// Whether the damage touched anything but the stored events' records
    /// and page headers (a checkpoint, a deleted record, a page header of
    /// deleted records): then deleted events may come back.
    fn outside_stored(&self, damage: &[usize]) -> bool {
        damage.iter().any(|a| {
            let page = a / self.page * self.page;
            let in_header = a - page < self.header;
            let spans = || self.stored.values().flat_map(|(_, r)| r.iter());
            !spans().any(|r| r.contains(a))
                || (in_header && !spans().any(|r| r.start / self.page * self.page == page))
        })
    }

    /// Judge what a queue opened on the image damaged at `damage` holds;
    /// returns the stored events lost (all of them touched).
    pub fn check(&self, got: &Opened, damage: &[usize]) -> Result<Vec<u64>, String> {
        for w in got.events.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(format!("{} then {}: not strictly in order", w[0].0, w[1].0));
            }
        }
        let resurrect = self.outside_stored(damage);
        for (seq, p) in &got.events {
            let ok = self.stored.get(seq).is_some_and(|(sp, _)| sp == p)
                || (self.maybe.iter().any(|(s, mp)| s == seq && mp == p)
                    && (resurrect || self.deleted_through.is_none_or(|d| *seq > d)));
            if !ok {
                return Err(format!(
                    "{seq} came back holding {} bytes no append of it wrote (stored: {:?})",
                    p.len(),
                    self.stored.get(seq).map(|(p, _)| p.len())
                ));
            }
        }
        let mut lost = Vec::new();
        for (seq, _) in self.stored.iter() {
            if got.events.iter().any(|(s, _)| s == seq) {
                continue;
            }
            if !self.touched(*seq, damage) {
                return Err(format!(
                    "{seq} is lost, though no damaged byte was in its record or page header"
                ));
            }
            lost.push(*seq);
        }
        // The loss is reported.
        let (first, last) = match (got.events.first(), got.events.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => (u64::MAX, 0),
        };
        for &seq in &lost {
            if seq > first && seq < last && !got.holes.contains(&seq) {
                return Err(format!(
                    "{seq} is lost between {first} and {last} but the sizes do not report a hole"
                ));
            }
            if self.header_intact(seq, damage) && got.floor <= seq {
                return Err(format!(
                    "{seq} is lost with its header intact, but the floor {} would number it again",
                    got.floor
                ));
            }
        }
        // The loss at the edges is reported too, where the format knows it.
        if let Some((sf, sl)) = got.span {
            for &seq in &lost {
                if seq < first && seq < sf {
                    return Err(format!(
                        "{seq} is lost before the oldest event {first}, outside the summary's span {sf}..={sl}"
                    ));
                }
                if seq > last && seq > sl && self.header_intact(seq, damage) {
                    return Err(format!(
                        "{seq} is lost after the newest event {last} with its header intact, outside the summary's span {sf}..={sl}"
                    ));
                }
            }
        }
        for &h in &got.holes {
            if self.stored.contains_key(&h) && !lost.contains(&h) {
                return Err(format!("{h} is reported a hole but came back"));
            }
        }
        Ok(lost)
    }
}

/// Every valid event record in `image` (page header and CRC checked, at
/// any write-aligned offset): its number and bytes. An independent reading
/// of the format, for checkers only.
pub fn records(image: &[u8], page: usize, write: usize) -> Vec<(u64, Range<usize>)> {
    let header = page_header_len(write as u32) as usize;
    let mut out = Vec::new();
    for p in (0..image.len() / page).map(|i| i * page) {
        let Some(ph) = page_header_in(image, p, header) else {
            continue;
        };
        let mut off = header;
        while off + RECORD_HEADER <= page {
            let at = p + off;
            let mut h = [0u8; RECORD_HEADER];
            h.copy_from_slice(&image[at..at + RECORD_HEADER]);
            if let HeaderRead::Valid(r) = RecordHeader::decode(&h) {
                let len = usize::from(r.len);
                let size = record_len(r.len.into(), write as u32) as usize;
                let crc_at = at + crc_offset(r.len.into()) as usize;
                if matches!(r.kind, Kind::Event { .. })
                    && off + size <= page
                    && CRC32
                        .checksum(&image[at..at + RECORD_HEADER + len])
                        .to_le_bytes()
                        == image[crc_at..crc_at + 4]
                {
                    if let Some(seq) = ph.base.checked_add(u64::from(r.delta)) {
                        out.push((seq, at..at + size));
                    }
                }
            }
            off += write;
        }
    }
    out
}

/// The header of the page at `p` (`header` bytes long, padded): the header
/// when it passes its checks, else its copy (format 2: a checkpoint record
/// of 36 bytes right after it).
fn page_header_in(image: &[u8], p: usize, header: usize) -> Option<PageHeader> {
    let copy = &image[p + header..p + header + RECORD_HEADER + PAGE_HEADER_RAW];
    let copy_is_one = matches!(RecordHeader::decode(copy[..RECORD_HEADER].try_into().unwrap()),
        HeaderRead::Valid(r) if r.kind == Kind::Checkpoint && usize::from(r.len) == PAGE_HEADER_RAW);
    match PageHeader::decode(&as_header(&image[p..])) {
        None if copy_is_one => PageHeader::decode(&as_header(&copy[RECORD_HEADER..])),
        read => read,
    }
}

fn as_header(b: &[u8]) -> [u8; PAGE_HEADER_RAW] {
    let mut h = [0u8; PAGE_HEADER_RAW];
    h.copy_from_slice(&b[..PAGE_HEADER_RAW]);
    h
}

/// The pages whose header (or its copy) is valid, with their laps; the one with the
/// highest lap is the write page.
pub fn page_laps(image: &[u8], page: usize, write: usize) -> Vec<(usize, u32)> {
    (0..image.len() / page)
        .filter_map(|p| {
            page_header_in(image, p * page, page_header_len(write as u32) as usize)
                .map(|h| (p, h.lap))
        })
        .collect()
}
