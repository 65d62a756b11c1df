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
//!   sizes when it lies between two events that did; and covered by the
//!   seq floor (never numbered again) when its number is known: one copy
//!   of its page header survived and its own header either survived (with
//!   its CRC field) or can be recovered (issue 16: one or two bits of it
//!   hit and nothing else of the record, so the queue finds the flip whose
//!   header makes the record's CRC-32 match, and the event comes back);
//! - at the edges too, when any event came back: one lost before the oldest
//!   that came back lies in the store summary's span ([`Opened::span`],
//!   which starts at the last delete), and so does one lost after the
//!   newest whose number is readable (its header, CRC field and page header
//!   intact). Only what the format cannot know is exempt: a loss with both
//!   copies of its page header gone; a loss after the newest whose own
//!   header is beyond recovery (three bits or more of it hit, or bits of
//!   it and of the rest of the record: its number is unreadable, and the
//!   floor may hand it out again, the residual risk of issue 16). With no
//!   event back, the summary's span (a count of 0) must still cover the
//!   losses whose number is readable (issue 16), but for 0 lost alone (a
//!   span 0..=0 of count 0 reads as the empty queue).
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

/// The damage between two images as [`Ledger::check`] takes it: each
/// address that differs, listed once per bit that differs (the ledger
/// counts bits: one or two flipped in a record header are recovered, three
/// are not, and one changed byte can hold any of these).
pub fn flipped_bits(before: &[u8], after: &[u8]) -> Vec<usize> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .flat_map(|(at, (b, a))| core::iter::repeat_n(at, (b ^ a).count_ones() as usize))
        .collect()
}

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
    // (`StoreSummary::EMPTY` is no span; a count of 0 with one is a queue
    // that lost every record it held.)
    let span = (contract.count > 0 || contract.last > 0).then_some((contract.first, contract.last));
    let Some(first) = sum.first else {
        assert_eq!(sum.count, 0);
        assert_eq!(sum.bytes, 0);
        assert_eq!(sum.last, None);
        let mut sizes = [0u32; 4];
        assert_eq!(q.read_sizes(0, &mut sizes).unwrap(), 0);
        if let Some((sf, sl)) = span {
            assert!(sf <= sl && sl < floor, "span {span:?}, floor {floor}");
            assert!(
                sl - sf < 1 << 20,
                "the span {sf}..={sl}: every number a hole to walk"
            );
            assert_eq!(
                q.read_sizes(sf, &mut sizes).unwrap(),
                0,
                "sizes in a span of holes"
            );
        }
        return Opened {
            floor,
            span,
            ..Opened::default()
        };
    };
    let last = sum.last.expect("a last with a first");
    // A reader (the machine too) walks every number of the span: a span
    // of billions of numbers (numbers skipped for an unreadable record,
    // issue 16) is a failure, not a wait.
    assert!(
        last - first < 1 << 20,
        "the sizes span {first}..={last}: every number a hole to walk"
    );
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
            // Its header may have lost a bit or two that the queue
            // recovers (rot judged before and still in place).
            let spans = if spans.is_empty() {
                recovered(image, page, write, *seq, p)
            } else {
                spans
            };
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

    /// Whether the header of `seq`'s record was hit only in a way the queue
    /// recovers from: one or two flips in it, none elsewhere in the record
    /// (an address listed twice counts twice), and one copy of its page
    /// header intact.
    pub fn header_recoverable(&self, seq: u64, damage: &[usize]) -> bool {
        let Some((_, spans)) = self.stored.get(&seq) else {
            return false;
        };
        spans.iter().all(|span| {
            let page = span.start / self.page * self.page;
            let head = span.start..span.start + RECORD_HEADER;
            let in_head = damage.iter().filter(|a| head.contains(a)).count();
            let rest = damage
                .iter()
                .filter(|a| span.contains(a) && !head.contains(a))
                .count();
            self.page_known(page, damage) && in_head <= 2 && rest == 0
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
            let known = self.header_intact(seq, damage) || self.header_recoverable(seq, damage);
            if known && got.floor <= seq {
                return Err(format!(
                    "{seq} is lost with its number readable or recoverable, but the floor {} would number it again",
                    got.floor
                ));
            }
        }
        // The loss at the edges is reported too, where the format knows it
        // (with no intact record left too: the page headers know the span).
        if got.span.is_none() {
            // (Except 0 alone: a span 0..=0 of count 0 reads as the empty
            // queue, `StoreSummary::EMPTY`.)
            let reportable = |&&s: &&u64| s > 0 && self.header_intact(s, damage);
            if let Some(seq) = lost.iter().find(reportable) {
                return Err(format!(
                    "{seq} is lost with its number readable and no intact record left, but the summary has no span"
                ));
            }
        }
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

/// Where the record of event `seq` holding `payload` lies when its header
/// lost one or two bits: the write-aligned offsets holding the payload
/// whose header differs in one or two bits from the header it was written
/// with (an event, with or without a jump, numbered from its page's base)
/// and whose CRC-32 matches that header. What `walk::record_at` recovers, read
/// independently.
fn recovered(
    image: &[u8],
    page: usize,
    write: usize,
    seq: u64,
    payload: &[u8],
) -> Vec<Range<usize>> {
    let header = page_header_len(write as u32) as usize;
    let len = payload.len();
    let size = record_len(len as u32, write as u32) as usize;
    let crc = crc_offset(len as u32) as usize;
    let mut out = Vec::new();
    for p in (0..image.len() / page).map(|i| i * page) {
        let Some(delta) = page_header_in(image, p, header)
            .and_then(|ph| seq.checked_sub(ph.base))
            .and_then(|d| u32::try_from(d).ok())
        else {
            continue;
        };
        for at in (p + header..=p + page - size).step_by(write) {
            if image[at + RECORD_HEADER..][..len] != *payload {
                continue;
            }
            for (jump, _critical) in [(false, false), (true, false), (false, true), (true, true)] {
                #[cfg(not(feature = "critical"))]
                if _critical {
                    continue;
                }
                let h = RecordHeader {
                    kind: Kind::Event {
                        jump,
                        // (Unstamped records: this finds no stamped one.)
                        #[cfg(feature = "expiry")]
                        stamped: false,
                        #[cfg(feature = "critical")]
                        critical: _critical,
                    },
                    len: len as u16,
                    delta,
                }
                .encode();
                let bits: u32 = h
                    .iter()
                    .zip(&image[at..at + RECORD_HEADER])
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                let mut d = CRC32.digest();
                d.update(&h);
                d.update(payload);
                if (1..=2).contains(&bits)
                    && d.finalize().to_le_bytes() == image[at + crc..at + crc + 4]
                {
                    out.push(at..at + size);
                }
            }
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
