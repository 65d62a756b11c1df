//! A batch frame written by hand: the bytes `write_frame` makes of a
//! [`BatchOut`](super::BatchOut), without serde, postcard's serializer or
//! its `Cobs` flavour.
//!
//! The device sends nothing but batch frames, and their postcard form is
//! short to state (the enum tag 0, the frame id, the event count, then each
//! event's length and bytes, every integer a varint). Stuffing it here, a
//! block of at most 254 bytes at a time, costs the firmware about a
//! kilobyte less flash than the generic path (see firmware/size.sh). The
//! serial tests check that both write the same bytes.

use embedded_io::Write;
use outbox_core::Payloads;

use super::error::SendError;

/// The most data bytes one COBS block holds.
const BLOCK: usize = 254;

/// Write the frame of batch `id` (its [`frame_id`](super::frame_id)) with
/// `payloads`: a leading delimiter, the COBS-stuffed postcard bytes of
/// `Uplink::Batch { id, events }`, the closing delimiter; then flush. The
/// first link error ends it.
pub(crate) fn write_batch_frame<W: Write>(
    link: &mut W,
    id: u64,
    payloads: Payloads<'_>,
) -> Result<(), SendError<W::Error>> {
    let mut out = Stuffer {
        link,
        block: [0; BLOCK],
        len: 0,
    };
    out.raw(0)?;
    // The enum tag of `Uplink::Batch`.
    out.varint(0)?;
    out.varint(id)?;
    out.varint(payloads.clone().count() as u64)?;
    for (_, payload) in payloads {
        out.varint(payload.len() as u64)?;
        for &byte in payload {
            out.push(byte)?;
        }
    }
    out.end_block()?;
    out.raw(0)?;
    out.link.flush().map_err(SendError::Io)
}

/// COBS: the data as blocks of non-zero bytes, each written after a code
/// byte (its length + 1); a block shorter than 254 stands for a zero after
/// it, except the frame's last.
struct Stuffer<'l, W> {
    link: &'l mut W,
    block: [u8; BLOCK],
    len: usize,
}

impl<W: Write> Stuffer<'_, W> {
    /// One data byte.
    fn push(&mut self, byte: u8) -> Result<(), SendError<W::Error>> {
        if byte == 0 {
            return self.end_block();
        }
        self.block[self.len] = byte;
        self.len += 1;
        if self.len == BLOCK {
            // A full block (code 0xFF) stands for no zero.
            self.end_block()?;
        }
        Ok(())
    }

    /// A postcard varint: 7 bits a byte, least significant first.
    fn varint(&mut self, mut n: u64) -> Result<(), SendError<W::Error>> {
        while n >= 0x80 {
            self.push(n as u8 | 0x80)?;
            n >>= 7;
        }
        self.push(n as u8)
    }

    /// Write the block so far, after its code byte.
    fn end_block(&mut self) -> Result<(), SendError<W::Error>> {
        self.raw(self.len as u8 + 1)?;
        let block = &self.block[..self.len];
        self.len = 0;
        self.link.write_all(block).map_err(SendError::Io)
    }

    /// A byte on the link as it is (a delimiter, a code byte).
    fn raw(&mut self, byte: u8) -> Result<(), SendError<W::Error>> {
        self.link.write_all(&[byte]).map_err(SendError::Io)
    }
}
