//! What can go wrong on the serial link, one enum per operation.

use core::fmt;

/// Why a frame read from the link was thrown away. The reader has already
/// resynchronised: the next byte after the delimiter starts a new frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// More bytes than the reader's buffer came before the delimiter; they
    /// were skipped up to it.
    TooLarge {
        /// The reader's limit, in encoded bytes.
        limit: usize,
    },
    /// The COBS stuffing is broken (a truncated or garbled frame).
    BadStuffing,
    /// The bytes are not a message of the expected kind (wrong tag, a
    /// truncated field, trailing bytes).
    Malformed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { limit } => {
                write!(f, "frame larger than {limit} bytes, skipped")
            }
            FrameError::BadStuffing => f.write_str("frame with broken COBS stuffing"),
            FrameError::Malformed => f.write_str("frame is not a valid message"),
        }
    }
}

impl core::error::Error for FrameError {}

/// Why a frame could not be written to the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<E> {
    /// The link refused the bytes.
    Io(E),
    /// The message could not be encoded (a buffer too small for it).
    Encode,
}

impl<E: fmt::Debug> fmt::Display for SendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Io(e) => write!(f, "serial write failed: {e:?}"),
            SendError::Encode => f.write_str("message could not be encoded"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for SendError<E> {}
