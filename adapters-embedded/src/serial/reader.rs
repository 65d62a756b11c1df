//! Cutting a byte stream into frames at the `0x00` delimiter.
//!
//! A UART delivers bytes, not messages: the reader collects bytes up to the
//! next delimiter and un-stuffs them (COBS, by the `cobs` crate). Whatever
//! went wrong with one frame (too long, broken stuffing), the reader starts
//! afresh after the delimiter, so one bad frame never costs the next one.
//! Empty frames (two delimiters in a row, or the delimiter a sender puts
//! before each frame) are skipped silently.

use super::error::FrameError;

/// Collects bytes into frames, in a buffer it is given (an array, a
/// borrowed slice, a `Vec`): its length is the frame size limit.
///
/// ```
/// use outbox_embedded::serial::{FrameError, FrameReader};
///
/// let mut reader = FrameReader::new([0u8; 16]);
/// // "hi" COBS-stuffed is [3, b'h', b'i']; garbage first, then the frame.
/// let mut input: &[u8] = &[0x07, 0x01, 0x00, 0x03, b'h', b'i', 0x00];
/// let (first, rest) = reader.feed(input);
/// assert_eq!(first, Some(Err(FrameError::BadStuffing)));
/// input = rest;
/// let (second, rest) = reader.feed(input);
/// assert_eq!(second, Some(Ok(&b"hi"[..])));
/// assert!(rest.is_empty());
/// ```
pub struct FrameReader<B> {
    buf: B,
    len: usize,
    overflowed: bool,
}

impl<B: AsMut<[u8]>> FrameReader<B> {
    /// A reader whose frames may take up to `buf.len()` encoded bytes.
    pub fn new(buf: B) -> Self {
        FrameReader {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    /// Consume `input` up to and including the first delimiter that ends a
    /// non-empty frame; returns that frame's content (or why it was thrown
    /// away) and the input not yet consumed. `None` when `input` ran out
    /// inside a frame: feed the next bytes to continue it.
    pub fn feed<'i>(&mut self, input: &'i [u8]) -> (Option<Result<&[u8], FrameError>>, &'i [u8]) {
        let buf = self.buf.as_mut();
        for (i, &byte) in input.iter().enumerate() {
            if byte != 0 {
                match buf.get_mut(self.len) {
                    Some(slot) if !self.overflowed => {
                        *slot = byte;
                        self.len += 1;
                    }
                    _ => self.overflowed = true,
                }
                continue;
            }
            let rest = &input[i + 1..];
            let (len, overflowed) = (self.len, self.overflowed);
            self.len = 0;
            self.overflowed = false;
            if overflowed {
                let limit = buf.len();
                return (Some(Err(FrameError::TooLarge { limit })), rest);
            }
            if len == 0 {
                continue;
            }
            let frame = &mut buf[..len];
            return match cobs::decode_in_place(frame) {
                Ok(n) => (Some(Ok(&frame[..n])), rest),
                Err(_) => (Some(Err(FrameError::BadStuffing)), rest),
            };
        }
        (None, &[])
    }

    /// Forget a partly read frame (e.g. after a link error).
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }
}
