//! Writing one message as one frame, streamed.
//!
//! postcard's `Cobs` flavour does the stuffing; it goes back to fix each
//! block's code byte, at most 255 bytes behind the end, and never touches
//! anything before that byte again. [`Window`] is the storage under it: it
//! keeps the bytes pushed since the last fix-up, in a ring, and writes the
//! rest to the link. So a batch frame of any size costs the device about
//! 260 bytes of stack, not a frame buffer (and no memmove).

use core::ops::{Index, IndexMut};

use embedded_io::Write;
use postcard::ser_flavors::{Cobs, Flavor};
use serde::Serialize;

use super::error::SendError;

/// More than the bytes pushed between two fix-ups (a COBS block is at most
/// 255 bytes, and a fix-up is followed by at most two pushes).
const WINDOW: usize = 260;

/// Write `message` as one frame: a leading delimiter (ends any frame a
/// reset cut short), the COBS-stuffed postcard bytes, the closing
/// delimiter; then flush.
///
/// ```
/// use outbox_embedded::serial::{write_frame, Downlink, FrameReader};
///
/// let mut wire = Vec::new();
/// let answer = Downlink::Status { batch: 3, status: 503, retry_after_secs: Some(2) };
/// write_frame(&mut wire, &answer).unwrap();
/// let mut reader = FrameReader::new([0u8; Downlink::MAX_FRAME_BYTES]);
/// let (frame, _) = reader.feed(&wire);
/// assert_eq!(Downlink::decode(frame.unwrap().unwrap()), Ok(answer));
/// ```
pub fn write_frame<W: Write, T: Serialize + ?Sized>(
    link: &mut W,
    message: &T,
) -> Result<(), SendError<W::Error>> {
    link.write_all(&[0]).map_err(SendError::Io)?;
    let mut failed = None;
    let window = Window {
        link: &mut *link,
        bytes: [0; WINDOW],
        base: 0,
        len: 0,
        failed: &mut failed,
        settled: 0,
        spare: 0,
    };
    let encoded = Cobs::try_new(window)
        .and_then(|cobs| postcard::serialize_with_flavor::<T, _, _>(message, cobs));
    match (encoded, failed) {
        (_, Some(e)) => Err(SendError::Io(e)),
        (Err(_), None) => Err(SendError::Encode),
        (Ok(()), None) => link.flush().map_err(SendError::Io),
    }
}

/// The last bytes of a frame being written, indexed from the frame's
/// start: frame byte `i` is kept in `bytes[i % WINDOW]`.
struct Window<'w, W: Write> {
    link: &'w mut W,
    bytes: [u8; WINDOW],
    /// Frame index of the oldest byte not yet written to the link.
    base: usize,
    /// Bytes kept from `base` on.
    len: usize,
    /// A write error met on the way; pushes fail from then on.
    failed: &'w mut Option<W::Error>,
    /// Frame index before which no byte changes any more (everything
    /// pushed before the last fix-up).
    settled: usize,
    /// Target for an index outside the window (never used by `Cobs`).
    spare: u8,
}

impl<W: Write> Window<'_, W> {
    /// Write every byte before frame index `upto` to the link.
    fn slide_to(&mut self, upto: usize) {
        let n = upto.saturating_sub(self.base).min(self.len);
        if n == 0 || self.failed.is_some() {
            return;
        }
        let start = self.base % WINDOW;
        let first = n.min(WINDOW - start);
        let written = self
            .link
            .write_all(&self.bytes[start..start + first])
            .and_then(|()| self.link.write_all(&self.bytes[..n - first]));
        if let Err(e) = written {
            *self.failed = Some(e);
            return;
        }
        self.len -= n;
        self.base += n;
    }

    /// Where frame byte `idx` is kept, if it still is.
    fn slot(&self, idx: usize) -> Option<usize> {
        let offset = idx.checked_sub(self.base)?;
        (offset < self.len).then_some(idx % WINDOW)
    }
}

impl<W: Write> Flavor for Window<'_, W> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.len == WINDOW {
            self.slide_to(self.settled);
        }
        if self.failed.is_some() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        if self.len == WINDOW {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.bytes[(self.base + self.len) % WINDOW] = data;
        self.len += 1;
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Self::Output> {
        let end = self.base + self.len;
        self.slide_to(end);
        match self.failed {
            Some(_) => Err(postcard::Error::SerializeBufferFull),
            None => Ok(()),
        }
    }
}

impl<W: Write> Index<usize> for Window<'_, W> {
    type Output = u8;

    fn index(&self, idx: usize) -> &u8 {
        self.slot(idx).map_or(&0, |i| &self.bytes[i])
    }
}

impl<W: Write> IndexMut<usize> for Window<'_, W> {
    /// `Cobs` fixes the current block's code byte, then starts a new block:
    /// everything pushed so far is final once this fix-up is done.
    fn index_mut(&mut self, idx: usize) -> &mut u8 {
        self.settled = self.base + self.len;
        match self.slot(idx) {
            Some(i) => &mut self.bytes[i],
            None => &mut self.spare,
        }
    }
}
