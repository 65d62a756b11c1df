//! The bytes on flash: page headers and records, and their checksums.
//!
//! Everything the queue writes is one of two things, each padded to the
//! flash's `WRITE_SIZE` so that no word is ever written twice:
//!
//! ```text
//! page header (first bytes of every page in use, 36 bytes + padding)
//!   0..3   magic "OBQ"          3      format version (2; 1 for pages
//!                               written before copies, still read)
//!   4..8   lap (u32)            page counter: +1 for every page opened
//!   8..16  base (u64)           record numbers are base + delta; the first
//!                               event here continues from base - 1
//!   16..24 floor (u64)          one past the highest seq ever held, at opening
//!   24..32 live_from (u64)      every record below it is deleted, at opening
//!   32..36 CRC-32 of 0..32
//!
//! record (8-byte header, payload, CRC, padding)
//!   0      tag                  high nibble format version, low nibble kind
//!                               (1 = event numbered one past the one before,
//!                               3 = event whose number jumps, 2 = checkpoint)
//!   1..3   payload length (u16)
//!   3..7   seq - page base (u32)  (0 for a checkpoint)
//!   7      CRC-8 of 0..7        so a torn header never gives a wrong length
//!   8..    payload              (a checkpoint's is live_from as u64)
//!   zero padding to a multiple of 4, then CRC-32 of header and payload,
//!   then 0xFF padding to WRITE_SIZE
//!
//! stamped event record (feature `expiry`; page format unchanged)
//!   0      tag                  kind 5 = 1 with a stamp, 7 = 3 with a stamp
//!   1..3   length (u16)         stamp and payload (and a sealed tag)
//!   3..8   as above
//!   8..16  stamp (u64)          wall clock at track, ms since the Unix
//!                               epoch; in clear on a sealed queue too
//!   16..   payload              (sealed: ciphertext and tag)
//!   padding and CRC-32 (over header, stamp and payload) as above
//!
//! header copy (format 2: the first record of every page, right after the
//! page header, written with it)
//!   a checkpoint record whose payload is the page header's 36 bytes,
//!   written right after the header; readers walking the records skip it
//!   (a checkpoint of another length)
//!
//! sealed queue (feature `encryption`, page format 3; unsealed queues
//! write format 2 byte for byte as above)
//!   page header          as format 2, version byte 3
//!   header copy          a checkpoint record of 64 bytes:
//!     0..36   the page header
//!     36..48  salt (12 bytes): random, the same on every page of one
//!             format of the queue
//!     48..64  key check value: the ChaCha20-Poly1305 tag of nothing,
//!             nonce salt XOR (u64::MAX, u16::MAX, u16::MAX), under the key
//!   event record         header as above, its length counting the tag;
//!     payload: ChaCha20-Poly1305 ciphertext, then its 16-byte tag
//!     (nonce: salt XOR (seq as u64, the record's offset in its page as
//!     u16, the page's lap's low 16 bits as u16; pages at most 64 KiB),
//!     associated data: seq as u64), then the CRC-32 over header,
//!     ciphertext and tag as for every record
//! ```
//!
//! Why stamps this way: expiry needs each event's age after a restart, so
//! the stamp lives in the record, and only there (the queue's RAM is a few
//! words whatever the flash holds: `first_fresh` reads the stamps in one
//! walk). New kinds rather than a new page format: a page may hold records
//! of both, old records (kinds 1 and 3) stay readable and have no stamp, so
//! they never expire (they were never stamped "now" at open either: that
//! would need a write per record). The stamp stays in clear on a sealed
//! queue: an age is not the payload, and reading it needs no key stream;
//! the CRC covers it, the AEAD tag does not, so someone who rewrites the
//! flash can make events expire (or not), as erasing them would. A build
//! without the feature reads kinds 5 and 7 as damaged records.
//!
//! Why the copy: the page header alone holds the base of its records'
//! numbers and the seq floor at its opening, and the write page's header
//! alone knows the numbers of the newest records. With one damaged header
//! (bit rot) those records were lost and the floor could go back, so
//! numbers handed out before could be handed out again. A page is read
//! through whichever copy passes its checks; only both damaged cost its
//! records (and may lower the floor, on the write page). Records are
//! appended only to a write page whose two copies both pass their checks
//! (else its opening was cut by a power loss, or one copy rotted: the next
//! append opens a new page), so every record is kept under two copies.
//! Pages of format 1 (no copy) are read as before and keep working; new
//! pages are written in format 2.
//!
//! All integers are little-endian. The header is written first and the CRC
//! last, so a write cut by a power loss leaves either erased bytes (nothing
//! was written) or a record whose CRC does not match (skipped, never read as
//! an event). The CRC is CRC-32C (Castagnoli), bitwise by default to keep
//! the firmware small; the feature `crc-table` computes it with the `crc`
//! crate's lookup table (`Table<16>`), several times faster on a large
//! flash. The bytes on flash are the same either way.

#[cfg(not(feature = "crc-table"))]
use crc::NoTable as Crc32Impl;
#[cfg(feature = "crc-table")]
type Crc32Impl = crc::Table<16>;
use crc::{Crc, NoTable, CRC_32_ISCSI, CRC_8_AUTOSAR};

use outbox_core::Seq;

/// The format version written in every page header (records keep tag
/// version 1: their layout did not change). Format 1 pages are read too.
pub const FORMAT_VERSION: u8 = 2;
/// The version nibble of record tags.
const RECORD_VERSION: u8 = 1;
const MAGIC: [u8; 3] = *b"OBQ";
/// Bytes of a page header before padding.
pub(crate) const PAGE_HEADER_RAW: usize = 36;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER: usize = 8;
const CRC_LEN: usize = 4;
const TAG_DATA: u8 = (RECORD_VERSION << 4) | 1;
const TAG_DATA_JUMP: u8 = (RECORD_VERSION << 4) | 3;
const TAG_CHECKPOINT: u8 = (RECORD_VERSION << 4) | 2;
/// The kind bit of an event record that carries a wall-clock stamp
/// (feature `expiry`): kinds 5 and 7 are 1 and 3 with it.
#[cfg(feature = "expiry")]
const KIND_STAMPED: u8 = 4;
/// The kind bit of a critical event record (feature `critical`): kinds 9,
/// 11, 13 and 15 are 1, 3, 5 and 7 with it.
#[cfg(feature = "critical")]
const KIND_CRITICAL: u8 = 8;
/// The kind bits an event record may carry on top of 1 or 3 in this build.
#[cfg(any(feature = "expiry", feature = "critical"))]
const EVENT_FLAGS: u8 = {
    #[cfg(feature = "expiry")]
    let stamped = KIND_STAMPED;
    #[cfg(not(feature = "expiry"))]
    let stamped = 0;
    #[cfg(feature = "critical")]
    let critical = KIND_CRITICAL;
    #[cfg(not(feature = "critical"))]
    let critical = 0;
    stamped | critical
};
/// A discard mark (feature `critical`): kind 10, a checkpoint's 2 with the
/// critical bit; its payload is the discarded event's number (u64).
#[cfg(feature = "critical")]
const TAG_DISCARD: u8 = (RECORD_VERSION << 4) | 10;
/// Bytes of an event record's stamp (feature `expiry`): ms since the Unix
/// epoch, u64, before the payload.
#[cfg(feature = "expiry")]
pub(crate) const STAMP_LEN: usize = 8;
/// Payload bytes of a checkpoint record.
pub(crate) const CHECKPOINT_PAYLOAD: usize = 8;
/// The record of a page header's copy: a checkpoint of 36 bytes.
pub(crate) const COPY: RecordHeader = RecordHeader {
    kind: Kind::Checkpoint,
    len: PAGE_HEADER_RAW as u16,
    delta: 0,
};
/// [`COPY`] encoded: its tag, length, delta 0 and CRC-8 (a test checks
/// it against `RecordHeader::encode`).
pub(crate) const COPY_RECORD: [u8; RECORD_HEADER] =
    [TAG_CHECKPOINT, PAGE_HEADER_RAW as u8, 0, 0, 0, 0, 0, 0x81];

/// The page format version of a sealed queue (feature `encryption`): a
/// format 2 header whose copy carries the salt and key check after it.
#[cfg(feature = "encryption")]
pub const SEALED_VERSION: u8 = 3;
/// Payload bytes of a sealed page's header copy: the header, the salt, the
/// key check value.
#[cfg(feature = "encryption")]
pub(crate) const SEALED_COPY_PAYLOAD: usize =
    PAGE_HEADER_RAW + super::seal::SALT_LEN + super::seal::TAG_LEN;
/// The record of a sealed page's header copy: a checkpoint of 64 bytes.
#[cfg(feature = "encryption")]
pub(crate) const COPY_SEALED: RecordHeader = RecordHeader {
    kind: Kind::Checkpoint,
    len: SEALED_COPY_PAYLOAD as u16,
    delta: 0,
};
/// [`COPY_SEALED`] encoded (a test checks it).
#[cfg(feature = "encryption")]
pub(crate) const COPY_SEALED_RECORD: [u8; RECORD_HEADER] = [
    TAG_CHECKPOINT,
    SEALED_COPY_PAYLOAD as u8,
    0,
    0,
    0,
    0,
    0,
    0x4A,
];

/// The salt and key check value in a sealed header copy's payload.
#[cfg(feature = "encryption")]
pub(crate) fn seal_fields(
    copy: &[u8; SEALED_COPY_PAYLOAD],
) -> ([u8; super::seal::SALT_LEN], [u8; super::seal::TAG_LEN]) {
    let (mut salt, mut check) = ([0u8; 12], [0u8; 16]);
    salt.copy_from_slice(&copy[PAGE_HEADER_RAW..PAGE_HEADER_RAW + 12]);
    check.copy_from_slice(&copy[PAGE_HEADER_RAW + 12..]);
    (salt, check)
}

pub(crate) static CRC32: Crc<u32, Crc32Impl> = Crc::<u32, Crc32Impl>::new(&CRC_32_ISCSI);
static CRC8: Crc<u8, NoTable> = Crc::<u8, NoTable>::new(&CRC_8_AUTOSAR);

/// `n` rounded up to a multiple of `to` (a power of two).
pub(crate) const fn round_up(n: u32, to: u32) -> u32 {
    (n + to - 1) & !(to - 1)
}

/// Bytes a page header takes on a flash with write size `w`.
pub(crate) const fn page_header_len(w: u32) -> u32 {
    round_up(PAGE_HEADER_RAW as u32, w)
}

/// Offset of the CRC inside a record of `len` payload bytes.
pub(crate) const fn crc_offset(len: u32) -> u32 {
    round_up(RECORD_HEADER as u32 + len, 4)
}

/// Bytes a record of `len` payload bytes takes on flash with write size `w`.
pub(crate) const fn record_len(len: u32, w: u32) -> u32 {
    round_up(crc_offset(len) + CRC_LEN as u32, w)
}

/// Bytes a checkpoint record takes on flash with write size `w`.
pub(crate) const fn checkpoint_len(w: u32) -> u32 {
    record_len(CHECKPOINT_PAYLOAD as u32, w)
}

/// Bytes a page header's copy takes on flash with write size `w`.
pub(crate) const fn copy_len(w: u32) -> u32 {
    record_len(PAGE_HEADER_RAW as u32, w)
}

/// What opens a page in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub lap: u32,
    pub base: Seq,
    pub floor: Seq,
    pub live_from: Seq,
    /// As read back: the format version (`encode` writes
    /// [`FORMAT_VERSION`]); open refuses one it does not read.
    pub version: u8,
    /// Not on flash: as read back, whether the page may take more records
    /// (a format-1 header, or both copies of a format-2 one pass their
    /// checks; see `walk::page_header`).
    pub whole: bool,
}

impl PageHeader {
    pub fn encode(&self) -> [u8; PAGE_HEADER_RAW] {
        let mut b = [0u8; PAGE_HEADER_RAW];
        b[0..3].copy_from_slice(&MAGIC);
        b[3] = FORMAT_VERSION;
        #[cfg(feature = "encryption")]
        if self.version == SEALED_VERSION {
            b[3] = SEALED_VERSION;
        }
        b[4..8].copy_from_slice(&self.lap.to_le_bytes());
        b[8..16].copy_from_slice(&self.base.to_le_bytes());
        b[16..24].copy_from_slice(&self.floor.to_le_bytes());
        b[24..32].copy_from_slice(&self.live_from.to_le_bytes());
        let crc = CRC32.checksum(&b[..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The header in `b`, of any version, if it is ours and its checksum
    /// is good; `None` for erased, torn or foreign bytes (not in use).
    pub fn decode(b: &[u8; PAGE_HEADER_RAW]) -> Option<PageHeader> {
        if b[0..3] != MAGIC || CRC32.checksum(&b[..32]) != le32(&b[32..36]) {
            return None;
        }
        Some(PageHeader {
            lap: le32(&b[4..8]),
            base: le64(&b[8..16]),
            floor: le64(&b[16..24]),
            live_from: le64(&b[24..32]),
            version: b[3],
            whole: b[3] == 1,
        })
    }
}

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An event's payload; `jump` when its number is not one past the
    /// previous event's (the first after a gap, or one appended again).
    Event {
        jump: bool,
        /// Its first 8 bytes are a wall-clock stamp (feature `expiry`).
        #[cfg(feature = "expiry")]
        stamped: bool,
        /// A critical event (feature `critical`).
        #[cfg(feature = "critical")]
        critical: bool,
    },
    /// A checkpoint: every record below its `live_from` is deleted.
    Checkpoint,
    /// A discard mark: the event numbered by its payload left the queue
    /// (feature `critical`; payload as a checkpoint's, 8 bytes).
    #[cfg(feature = "critical")]
    Discard,
}

/// The fixed part at the start of every record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub kind: Kind,
    pub len: u16,
    pub delta: u32,
}

/// A record header as read from flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderRead {
    /// All 0xFF: nothing was written here.
    Erased,
    /// Torn or foreign bytes: nothing after them in the page can be trusted.
    Garbage,
    Valid(RecordHeader),
}

impl RecordHeader {
    pub fn encode(&self) -> [u8; RECORD_HEADER] {
        let mut b = [0u8; RECORD_HEADER];
        b[0] = match self.kind {
            Kind::Event { jump: false, .. } => TAG_DATA,
            Kind::Event { jump: true, .. } => TAG_DATA_JUMP,
            Kind::Checkpoint => TAG_CHECKPOINT,
            #[cfg(feature = "critical")]
            Kind::Discard => TAG_DISCARD,
        };
        #[cfg(feature = "expiry")]
        if let Kind::Event { stamped: true, .. } = self.kind {
            b[0] |= KIND_STAMPED;
        }
        #[cfg(feature = "critical")]
        if let Kind::Event { critical: true, .. } = self.kind {
            b[0] |= KIND_CRITICAL;
        }
        b[1..3].copy_from_slice(&self.len.to_le_bytes());
        b[3..7].copy_from_slice(&self.delta.to_le_bytes());
        b[7] = CRC8.checksum(&b[..7]);
        b
    }

    pub fn decode(b: &[u8; RECORD_HEADER]) -> HeaderRead {
        if b.iter().all(|&x| x == 0xFF) {
            return HeaderRead::Erased;
        }
        if CRC8.checksum(&b[..7]) != b[7] {
            return HeaderRead::Garbage;
        }
        #[cfg(not(any(feature = "expiry", feature = "critical")))]
        let kind = match b[0] {
            TAG_DATA => Kind::Event { jump: false },
            TAG_DATA_JUMP => Kind::Event { jump: true },
            TAG_CHECKPOINT => Kind::Checkpoint,
            _ => return HeaderRead::Garbage,
        };
        #[cfg(any(feature = "expiry", feature = "critical"))]
        let kind = match b[0] & !EVENT_FLAGS {
            TAG_CHECKPOINT if b[0] == TAG_CHECKPOINT => Kind::Checkpoint,
            #[cfg(feature = "critical")]
            _ if b[0] == TAG_DISCARD => Kind::Discard,
            TAG_DATA | TAG_DATA_JUMP => Kind::Event {
                jump: b[0] & !EVENT_FLAGS == TAG_DATA_JUMP,
                #[cfg(feature = "expiry")]
                stamped: b[0] & KIND_STAMPED != 0,
                #[cfg(feature = "critical")]
                critical: b[0] & KIND_CRITICAL != 0,
            },
            _ => return HeaderRead::Garbage,
        };
        // A stamped record too short for its stamp was never written.
        #[cfg(feature = "expiry")]
        if matches!(kind, Kind::Event { stamped: true, .. })
            && usize::from(u16::from_le_bytes([b[1], b[2]])) < STAMP_LEN
        {
            return HeaderRead::Garbage;
        }
        HeaderRead::Valid(RecordHeader {
            kind,
            len: u16::from_le_bytes([b[1], b[2]]),
            delta: le32(&b[3..7]),
        })
    }
}

pub(crate) fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_header_round_trips_and_detects_damage() {
        let h = PageHeader {
            lap: 7,
            base: 1 << 40,
            floor: 99,
            live_from: 42,
            version: FORMAT_VERSION,
            whole: false,
        };
        let mut b = h.encode();
        assert_eq!(PageHeader::decode(&b), Some(h));
        b[10] ^= 1;
        assert_eq!(PageHeader::decode(&b), None);
        assert_eq!(PageHeader::decode(&[0xFF; 36]), None);
    }

    #[test]
    fn record_header_round_trips_and_a_torn_one_is_garbage() {
        let h = RecordHeader {
            kind: Kind::Event {
                jump: false,
                #[cfg(feature = "expiry")]
                stamped: false,
                #[cfg(feature = "critical")]
                critical: false,
            },
            len: 300,
            delta: 5,
        };
        let b = h.encode();
        assert_eq!(RecordHeader::decode(&b), HeaderRead::Valid(h));
        // A write cut after 3 bytes: the rest still erased.
        let mut torn = [0xFF; 8];
        torn[..3].copy_from_slice(&b[..3]);
        assert_eq!(RecordHeader::decode(&torn), HeaderRead::Garbage);
        assert_eq!(RecordHeader::decode(&[0xFF; 8]), HeaderRead::Erased);
    }

    /// Kinds 5 and 7 are 1 and 3 with a stamp; one too short for its
    /// stamp was never written.
    #[cfg(feature = "expiry")]
    #[test]
    fn stamped_record_headers_round_trip_and_a_short_one_is_garbage() {
        for jump in [false, true] {
            let h = RecordHeader {
                kind: Kind::Event {
                    jump,
                    stamped: true,
                    #[cfg(feature = "critical")]
                    critical: false,
                },
                len: 20,
                delta: 3,
            };
            let b = h.encode();
            assert_eq!(b[0], if jump { 0x17 } else { 0x15 });
            assert_eq!(RecordHeader::decode(&b), HeaderRead::Valid(h));
            let short = RecordHeader { len: 7, ..h }.encode();
            assert_eq!(RecordHeader::decode(&short), HeaderRead::Garbage);
        }
        // The checkpoint tag with the stamp bit is no record.
        let mut b = COPY_RECORD;
        b[0] |= KIND_STAMPED;
        b[7] = CRC8.checksum(&b[..7]);
        assert_eq!(RecordHeader::decode(&b), HeaderRead::Garbage);
    }

    /// Kinds 9, 11, 13 and 15 are 1, 3, 5 and 7 with the critical bit;
    /// kind 10 is a discard mark; the checkpoint with the critical bit and
    /// the stamp bit is no record.
    #[cfg(feature = "critical")]
    #[test]
    fn critical_record_headers_and_discard_marks_round_trip() {
        for jump in [false, true] {
            for stamp in [false, true] {
                #[cfg(not(feature = "expiry"))]
                if stamp {
                    continue;
                }
                let h = RecordHeader {
                    kind: Kind::Event {
                        jump,
                        #[cfg(feature = "expiry")]
                        stamped: stamp,
                        critical: true,
                    },
                    len: 20,
                    delta: 3,
                };
                let b = h.encode();
                let kind = 9 + 2 * u8::from(jump) + 4 * u8::from(stamp);
                assert_eq!(b[0], 0x10 | kind);
                assert_eq!(RecordHeader::decode(&b), HeaderRead::Valid(h));
            }
        }
        let mark = RecordHeader {
            kind: Kind::Discard,
            len: CHECKPOINT_PAYLOAD as u16,
            delta: 0,
        };
        let b = mark.encode();
        assert_eq!(b[0], 0x1A);
        assert_eq!(RecordHeader::decode(&b), HeaderRead::Valid(mark));
        let mut b = COPY_RECORD;
        b[0] |= KIND_CRITICAL | 4;
        b[7] = CRC8.checksum(&b[..7]);
        assert_eq!(RecordHeader::decode(&b), HeaderRead::Garbage);
    }

    #[test]
    fn the_copy_record_header_is_a_checkpoint_of_a_page_header() {
        assert_eq!(COPY.encode(), COPY_RECORD);
    }

    #[cfg(feature = "encryption")]
    #[test]
    fn the_sealed_copy_record_header_is_a_checkpoint_of_64_bytes() {
        assert_eq!(COPY_SEALED.encode(), COPY_SEALED_RECORD);
        let h = PageHeader {
            lap: 1,
            base: 2,
            floor: 3,
            live_from: 4,
            version: SEALED_VERSION,
            whole: false,
        };
        assert_eq!(PageHeader::decode(&h.encode()), Some(h));
    }

    #[test]
    fn record_sizes_are_aligned_and_small() {
        assert_eq!(record_len(300, 4), 312);
        assert_eq!(record_len(1, 4), 16);
        assert_eq!(record_len(1, 1), 16);
        assert_eq!(record_len(300, 32), 320);
        assert_eq!(checkpoint_len(4), 20);
        assert_eq!(page_header_len(4), 36);
        assert_eq!(page_header_len(8), 40);
    }

    /// Whichever CRC the build uses (bitwise by default, the lookup table
    /// with `crc-table`), it is CRC-32C and writes the same bytes, so a
    /// flash written by one build opens in the other. scripts/test runs
    /// this with the feature too.
    #[test]
    fn the_record_crc_is_crc32c_with_or_without_the_table() {
        assert_eq!(CRC32.checksum(b"123456789"), 0xE306_9283);
        let bitwise = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);
        let mut data = [0u8; 1031];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 151 + 7) as u8;
        }
        for len in [0, 1, 3, 8, 15, 16, 17, 255, 1031] {
            let (ours, reference) = (CRC32.checksum(&data[..len]), bitwise.checksum(&data[..len]));
            assert_eq!(ours, reference, "{len} bytes");
        }
        // In pieces, as a record is checked across reads, equals one shot.
        let mut digest = CRC32.digest();
        digest.update(&data[..100]);
        digest.update(&data[100..]);
        assert_eq!(digest.finalize(), bitwise.checksum(&data));
    }
}
