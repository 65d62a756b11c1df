//! Recording and replaying runs.
//!
//! The machine is deterministic: the same seed, config and inputs give the
//! same outputs. A trace is the list of `(Instant, Input)` pairs a driver fed
//! it, each encoded with postcard (a few bytes an entry, no allocation), so a
//! field failure can be captured on a device and replayed on a desk.
//!
//! ```
//! use outbox_core::trace::{decode_entry, encode_entry, TraceEntry};
//! use outbox_core::{Input, Instant};
//!
//! let mut log = [0u8; 64];
//! let entry = TraceEntry { now: Instant::from_millis(5), input: Input::Track { size: 12 } };
//! let used = encode_entry(&entry, &mut log).unwrap().len();
//! let (back, rest) = decode_entry(&log[..used]).unwrap();
//! assert_eq!(back, entry);
//! assert!(rest.is_empty());
//! ```

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::{Input, Instant};

/// One recorded input and the time it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TraceEntry {
    /// When the input was handled.
    pub now: Instant,
    /// The input.
    pub input: Input,
}

/// Why an entry could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TraceError {
    /// The buffer is too small for the entry.
    BufferFull,
    /// The bytes end before the entry does.
    Truncated,
    /// The bytes are not an entry.
    Malformed,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceError::BufferFull => "trace buffer is full",
            TraceError::Truncated => "trace ends in the middle of an entry",
            TraceError::Malformed => "trace bytes are not a trace entry",
        })
    }
}

impl core::error::Error for TraceError {}

/// The most bytes one encoded entry takes.
pub const MAX_ENTRY_BYTES: usize = 64;

/// Encode `entry` at the start of `buf`; returns the bytes used.
pub fn encode_entry<'a>(entry: &TraceEntry, buf: &'a mut [u8]) -> Result<&'a mut [u8], TraceError> {
    postcard::to_slice(entry, buf).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => TraceError::BufferFull,
        _ => TraceError::Malformed,
    })
}

/// Decode the entry at the start of `bytes`; returns it and the rest.
pub fn decode_entry(bytes: &[u8]) -> Result<(TraceEntry, &[u8]), TraceError> {
    postcard::take_from_bytes(bytes).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => TraceError::Truncated,
        _ => TraceError::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlushMode, Lifecycle, LocalFailure, StoreSummary};
    use core::time::Duration;

    #[test]
    fn the_largest_entries_fit_the_stated_maximum() {
        let now = Instant::from_millis(u64::MAX);
        for input in [
            Input::Response {
                batch: u64::MAX,
                status: u16::MAX,
                retry_after: Some(Duration::MAX),
            },
            Input::Restore(StoreSummary {
                count: u64::MAX,
                bytes: u64::MAX,
                first: u64::MAX,
                last: u64::MAX,
            }),
            Input::LocalFailure {
                batch: u64::MAX,
                failure: LocalFailure::Buffer { bytes: u32::MAX },
            },
            Input::Malformed {
                batch: u64::MAX,
                seq: u64::MAX,
            },
            Input::Size {
                seq: u64::MAX,
                size: u32::MAX,
            },
            Input::SetFlushPeriod(Duration::MAX),
            Input::SetFlushMode(FlushMode::Period),
            Input::SetFlushThreshold(Some(u32::MAX)),
            Input::Lifecycle(Lifecycle::Terminate),
        ] {
            let mut buf = [0u8; MAX_ENTRY_BYTES];
            let entry = TraceEntry { now, input };
            let used = encode_entry(&entry, &mut buf).unwrap().len();
            assert_eq!(decode_entry(&buf[..used]), Ok((entry, &[][..])));
        }
        let mut tiny = [0u8; 2];
        let entry = TraceEntry {
            now,
            input: Input::Tick,
        };
        assert_eq!(encode_entry(&entry, &mut tiny), Err(TraceError::BufferFull));
        assert_eq!(decode_entry(&[0x80]), Err(TraceError::Truncated));
    }
}
