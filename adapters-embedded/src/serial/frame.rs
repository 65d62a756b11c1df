//! The two messages on the link, as postcard values.
//!
//! Device to gateway: [`Uplink`], today only `Batch { id, events }`: a
//! postcard enum tag (0), the batch id (varint), the event count (varint)
//! and each event as a byte string (varint length, bytes). It is encoded
//! straight from the batch's payloads ([`BatchOut`]) and decoded without
//! allocation into a [`BatchFrame`] whose events borrow the frame.
//!
//! Gateway to device: [`Downlink`], a plain serde enum.

use core::time::Duration;

use outbox_core::{Batch, BatchId, Outcome, Payloads};
use serde::ser::{SerializeSeq, SerializeStructVariant};
use serde::{Deserialize, Serialize, Serializer};

use super::error::FrameError;

/// Postcard tag of `Uplink::Batch`.
const BATCH_TAG: u32 = 0;

/// Device-to-gateway messages, for decoding on a host with `alloc`; the
/// wire form of [`BatchOut`] and [`BatchFrame`]. Field for field the same
/// postcard encoding, so a host can also decode frames with serde.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Uplink<E> {
    /// One batch of events, oldest first.
    Batch {
        /// The frame's id, which the answer must carry.
        id: u64,
        /// The events' payloads.
        events: E,
    },
}

/// What the gateway answers. `batch` is the id of the batch frame answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Downlink {
    /// The endpoint answered the batch with an HTTP status.
    Status {
        /// The frame answered.
        batch: u64,
        /// The HTTP status.
        status: u16,
        /// Retry-After, in seconds (HTTP's own unit), when the endpoint
        /// sent one.
        retry_after_secs: Option<u32>,
    },
    /// The endpoint gave no answer (unreachable, timed out).
    Unanswered {
        /// The frame that went unanswered.
        batch: u64,
    },
    /// The gateway could not read a frame. It is about the batch in flight
    /// only when it names that batch's frame: an answer whose frame id
    /// could not be read (or names another frame) ends nothing, and the
    /// machine's request timeout covers the batch.
    Unreadable {
        /// The frame's id, when its first bytes could still be read.
        batch: Option<u64>,
        /// What was wrong with it.
        fault: Fault,
    },
    /// The gateway is still posting these events (or another batch) and
    /// has no answer yet: send the batch again later. The gateway never
    /// posts events it is already posting; a re-send after the post ended
    /// gets that post's answer.
    InProgress {
        /// The frame answered.
        batch: u64,
    },
}

/// What was wrong with a frame the gateway could not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Larger than the gateway accepts: the batch must shrink (a 413).
    TooLarge,
    /// Garbled or truncated: send it again.
    Garbled,
}

impl Downlink {
    /// The most bytes one encoded `Downlink` takes on the wire, COBS
    /// overhead and both delimiters included.
    pub const MAX_FRAME_BYTES: usize = 32;

    /// The core's outcome for `batch`, sent in the frame numbered
    /// `frame_id`; `None` when this answer is about another frame (a late
    /// one, for a batch already abandoned).
    ///
    /// ```
    /// use outbox_embedded::serial::{Downlink, Fault};
    /// use outbox_core::Outcome;
    ///
    /// let ok = Downlink::Status { batch: 70, status: 200, retry_after_secs: None };
    /// assert_eq!(ok.outcome_for(70, 7), Some(Outcome::Response { batch: 7, status: 200, retry_after: None }));
    /// assert_eq!(ok.outcome_for(80, 8), None);
    /// let big = Downlink::Unreadable { batch: Some(80), fault: Fault::TooLarge };
    /// assert!(matches!(big.outcome_for(80, 8), Some(Outcome::Response { batch: 8, status: 413, .. })));
    /// // "Too large" about another frame, or about a frame it could not name: not ours.
    /// assert_eq!(big.outcome_for(90, 9), None);
    /// let unnamed = Downlink::Unreadable { batch: None, fault: Fault::TooLarge };
    /// assert_eq!(unnamed.outcome_for(80, 8), None);
    /// ```
    pub fn outcome_for(self, frame_id: u64, batch: BatchId) -> Option<Outcome> {
        let failed = Outcome::Failed { batch };
        let (id, outcome) = match self {
            Downlink::Status {
                batch: id,
                status,
                retry_after_secs,
            } => (
                Some(id),
                Outcome::Response {
                    batch,
                    status,
                    retry_after: retry_after_secs.map(|s| Duration::from_secs(u64::from(s))),
                },
            ),
            Downlink::Unreadable {
                batch: id,
                fault: Fault::TooLarge,
            } => (
                id,
                Outcome::Response {
                    batch,
                    status: 413,
                    retry_after: None,
                },
            ),
            Downlink::Unreadable {
                batch: id,
                fault: Fault::Garbled,
            } => (id, failed),
            Downlink::Unanswered { batch: id } | Downlink::InProgress { batch: id } => {
                (Some(id), failed)
            }
        };
        (id == Some(frame_id)).then_some(outcome)
    }

    /// Decode a frame's content (already un-stuffed).
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        // Field by field rather than through the derived `Deserialize`
        // (the same postcard layout: variant index, then the fields), and
        // with one varint reader for every integer rather than postcard's
        // one per type: each costs the firmware's flash.
        let mut f = Fields(bytes);
        let answer = match f.int::<u32>()? {
            0 => Downlink::Status {
                batch: f.int()?,
                status: f.int()?,
                retry_after_secs: match f.tag()? {
                    false => None,
                    true => Some(f.int()?),
                },
            },
            1 => Downlink::Unanswered { batch: f.int()? },
            2 => Downlink::Unreadable {
                batch: match f.tag()? {
                    false => None,
                    true => Some(f.int()?),
                },
                fault: match f.int::<u32>()? {
                    0 => Fault::TooLarge,
                    1 => Fault::Garbled,
                    _ => return Err(FrameError::Malformed),
                },
            },
            3 => Downlink::InProgress { batch: f.int()? },
            _ => return Err(FrameError::Malformed),
        };
        match f.0 {
            [] => Ok(answer),
            _ => Err(FrameError::Malformed),
        }
    }
}

/// The fields of a postcard message, read from the front.
struct Fields<'b>(&'b [u8]);

impl Fields<'_> {
    /// A varint that fits `T`.
    #[inline(always)]
    fn int<T: TryFrom<u64>>(&mut self) -> Result<T, FrameError> {
        T::try_from(self.varint()?).map_err(|_| FrameError::Malformed)
    }

    /// A varint: 7 bits a byte, least significant first, at most 64 bits.
    #[inline(never)]
    fn varint(&mut self) -> Result<u64, FrameError> {
        // The bytes up to the one without the continuation bit; the tenth
        // may hold only the 64th bit.
        let end = self
            .0
            .iter()
            .take(10)
            .position(|&b| b & 0x80 == 0)
            .ok_or(FrameError::Malformed)?;
        let (bytes, rest) = self.0.split_at(end + 1);
        if end == 9 && bytes[9] > 1 {
            return Err(FrameError::Malformed);
        }
        // Most significant first: shifts by a constant (a shift by a
        // variable amount of a u64 is a call into compiler builtins).
        let value = bytes
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 7) | u64::from(b & 0x7F));
        self.0 = rest;
        Ok(value)
    }

    /// An `Option`'s tag: one byte, 0 or 1.
    fn tag(&mut self) -> Result<bool, FrameError> {
        match self.0 {
            [0, rest @ ..] => {
                self.0 = rest;
                Ok(false)
            }
            [1, rest @ ..] => {
                self.0 = rest;
                Ok(true)
            }
            _ => Err(FrameError::Malformed),
        }
    }
}

/// The frame id of a batch frame from its first bytes as they came off
/// the link (still COBS-stuffed, without delimiters), when they hold it:
/// how a gateway names a frame it could not read whole (too large, or
/// garbled further on) in its `Unreadable` answer. `None` when the bytes
/// are not the start of a batch frame or end before its id does.
///
/// ```
/// use outbox_embedded::serial::{peek_frame_id, write_frame, Uplink};
/// let mut wire = Vec::new();
/// write_frame(&mut wire, &Uplink::Batch { id: 300, events: vec![vec![7u8; 900]] }).unwrap();
/// assert_eq!(peek_frame_id(&wire[1..6]), Some(300));
/// assert_eq!(peek_frame_id(&wire[1..2]), None);
/// ```
pub fn peek_frame_id(stuffed: &[u8]) -> Option<u64> {
    // Un-stuff just enough for the tag and a 10-byte varint id.
    let mut plain = [0u8; 12];
    let mut n = 0;
    let mut i = 0;
    while let (true, Some(&code)) = (n < plain.len(), stuffed.get(i)) {
        let code = usize::from(code);
        if code == 0 {
            return None;
        }
        i += 1;
        for _ in 1..code {
            match stuffed.get(i) {
                Some(&byte) if n < plain.len() => plain[n] = byte,
                _ => break,
            }
            n += 1;
            i += 1;
        }
        // A block shorter than 255 stands for a zero byte after it, unless
        // it is the frame's last.
        if code < 0xFF && n < plain.len() && i < stuffed.len() {
            plain[n] = 0;
            n += 1;
        }
    }
    let (tag, rest) = postcard::take_from_bytes::<u32>(&plain[..n]).ok()?;
    if tag != BATCH_TAG {
        return None;
    }
    postcard::take_from_bytes::<u64>(rest)
        .ok()
        .map(|(id, _)| id)
}

/// The id a batch's frame carries: the machine's batch id mixed with the
/// batch's first and last sequence numbers. Batch ids start again at 1
/// after a reset; the mix makes sure a late answer from before a reset can
/// only ever be taken for a batch of exactly the same events, for which it
/// is right.
///
/// ```
/// use outbox_core::Batch;
/// use outbox_embedded::serial::frame_id;
/// let a = Batch { id: 1, first: 10, last: 19, count: 10, bytes: 100 };
/// let b = Batch { last: 25, count: 16, ..a };
/// assert_ne!(frame_id(&a), frame_id(&b));
/// assert_eq!(frame_id(&a), frame_id(&a.clone()));
/// ```
pub fn frame_id(batch: &Batch) -> u64 {
    // splitmix64's finaliser, chained over the three numbers.
    // Not inlined: one copy for the three rounds (firmware flash, see
    // firmware/size.sh).
    #[inline(never)]
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let golden = 0x9E37_79B9_7F4A_7C15_u64;
    mix(mix(mix(batch.id.wrapping_add(golden)) ^ batch.first) ^ batch.last)
}

/// A batch to encode, straight from the driver's payloads (no copy).
pub struct BatchOut<'a> {
    /// The frame's id ([`frame_id`]).
    pub id: u64,
    /// Its payloads, oldest first.
    pub payloads: Payloads<'a>,
}

impl Serialize for BatchOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = s.serialize_struct_variant("Uplink", BATCH_TAG, "Batch", 2)?;
        v.serialize_field("id", &self.id)?;
        v.serialize_field("events", &EventsOut(self.payloads.clone()))?;
        v.end()
    }
}

struct EventsOut<'a>(Payloads<'a>);

impl Serialize for EventsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.clone().count()))?;
        for (_, payload) in self.0.clone() {
            seq.serialize_element(&Bytes(payload))?;
        }
        seq.end()
    }
}

/// A payload as a postcard byte string (varint length, then the bytes).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A decoded batch frame; its events borrow the frame's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFrame<'a> {
    /// The id to answer with.
    pub id: u64,
    /// The events, oldest first.
    pub events: Events<'a>,
}

impl<'a> BatchFrame<'a> {
    /// Decode a frame's content (already un-stuffed). Every event is
    /// checked here, so iterating [`Events`] cannot fail later.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let bad = |_| FrameError::Malformed;
        let (tag, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(bad)?;
        if tag != BATCH_TAG {
            return Err(FrameError::Malformed);
        }
        let (id, rest) = postcard::take_from_bytes::<u64>(rest).map_err(bad)?;
        let (count, raw) = postcard::take_from_bytes::<u32>(rest).map_err(bad)?;
        let mut left = raw;
        for _ in 0..count {
            let (_, tail) = postcard::take_from_bytes::<&[u8]>(left).map_err(bad)?;
            left = tail;
        }
        if !left.is_empty() {
            return Err(FrameError::Malformed);
        }
        Ok(BatchFrame {
            id,
            events: Events { raw, left: count },
        })
    }
}

/// The events of a [`BatchFrame`], oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events<'a> {
    raw: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Events<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (event, rest) = postcard::take_from_bytes::<&[u8]>(self.raw).ok()?;
        self.raw = rest;
        self.left -= 1;
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Events<'_> {}
