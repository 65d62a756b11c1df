//! The core's [`Transport`] over a serial link.
//!
//! `send` writes the batch frame (blocking on the link, as a UART write
//! does); `poll_outcome` never blocks: it reads only what the link says is
//! ready, a bounded number of bytes per call, and returns the answer to the
//! batch in flight when it has come. Answers to other batches (late ones,
//! for a batch already abandoned) are counted and dropped. A gateway that
//! never answers is the machine's business: its request timeout ends the
//! batch, and the next send starts afresh.

use embedded_io::{Read, ReadReady, Write};
use outbox_core::{Batch, BatchId, Instant, Outcome, Payloads, Transport};

use super::error::SendError;
use super::frame::{frame_id, Downlink};
use super::reader::FrameReader;
use super::stuff::write_batch_frame;

/// Most bytes one [`SerialTransport::poll_outcome`] call reads.
pub const POLL_BUDGET_BYTES: usize = 256;

/// Counters of what crossed the link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Batch frames written.
    pub batches_sent: u32,
    /// Answers that ended the batch in flight.
    pub answers: u32,
    /// Answers about another batch, dropped.
    pub stale_answers: u32,
    /// Frames from the gateway that could not be read, dropped.
    pub bad_frames: u32,
    /// Read errors of the link (the partial frame was dropped).
    pub read_errors: u32,
}

/// Batches out as frames, answers back as frames, over one serial link.
///
/// ```
/// use outbox_embedded::serial::SerialTransport;
/// # struct Uart;
/// # impl embedded_io::ErrorType for Uart { type Error = core::convert::Infallible; }
/// # impl embedded_io::Read for Uart { fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> { Ok(0) } }
/// # impl embedded_io::ReadReady for Uart { fn read_ready(&mut self) -> Result<bool, Self::Error> { Ok(false) } }
/// # impl embedded_io::Write for Uart { fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> { Ok(b.len()) } fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) } }
/// let transport = SerialTransport::new(Uart);
/// assert_eq!(transport.stats().batches_sent, 0);
/// // Driver::new(machine, store, transport, &mut batch_buf, observer) ...
/// ```
pub struct SerialTransport<L> {
    link: L,
    reader: FrameReader<[u8; Downlink::MAX_FRAME_BYTES]>,
    /// The batch in flight and its frame id.
    in_flight: Option<(BatchId, u64)>,
    stats: LinkStats,
}

impl<L> SerialTransport<L> {
    /// A transport over `link`.
    pub fn new(link: L) -> Self {
        SerialTransport {
            link,
            reader: FrameReader::new([0; Downlink::MAX_FRAME_BYTES]),
            in_flight: None,
            stats: LinkStats::default(),
        }
    }

    /// What crossed the link so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The link.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Take the link back.
    pub fn into_link(self) -> L {
        self.link
    }
}

impl<L: Read + ReadReady + Write> SerialTransport<L> {
    /// Feed `bytes` to the frame reader; the first answer to the batch in
    /// flight ends it.
    // Not inlined (firmware flash, see firmware/size.sh).
    #[inline(never)]
    fn absorb(&mut self, bytes: &[u8], found: &mut Option<Outcome>) {
        let mut input = bytes;
        while !input.is_empty() {
            let (frame, rest) = self.reader.feed(input);
            input = rest;
            let answer = match frame {
                None => break,
                Some(Err(_)) => {
                    self.stats.bad_frames += 1;
                    continue;
                }
                Some(Ok(content)) => match Downlink::decode(content) {
                    Ok(answer) => answer,
                    Err(_) => {
                        self.stats.bad_frames += 1;
                        continue;
                    }
                },
            };
            let in_flight = self.in_flight;
            match in_flight.and_then(|(batch, frame)| answer.outcome_for(frame, batch)) {
                Some(outcome) if found.is_none() => {
                    self.in_flight = None;
                    self.stats.answers += 1;
                    *found = Some(outcome);
                }
                _ => self.stats.stale_answers += 1,
            }
        }
    }
}

impl<L: Read + ReadReady + Write> Transport for SerialTransport<L> {
    type Error = SendError<L::Error>;

    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[inline(never)]
    fn send(
        &mut self,
        _now: Instant,
        batch: &Batch,
        payloads: Payloads<'_>,
    ) -> Result<(), Self::Error> {
        self.in_flight = None;
        let id = frame_id(batch);
        write_batch_frame(&mut self.link, id, payloads)?;
        self.in_flight = Some((batch.id, id));
        self.stats.batches_sent += 1;
        Ok(())
    }

    fn poll_outcome(&mut self, _now: Instant) -> Option<Outcome> {
        let mut found = None;
        let mut budget = POLL_BUDGET_BYTES;
        let mut chunk = [0u8; 16];
        while budget > 0 && found.is_none() {
            match self.link.read_ready() {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    self.stats.read_errors += 1;
                    self.reader.reset();
                    break;
                }
            }
            let want = chunk.len().min(budget);
            match self.link.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    budget -= n;
                    self.absorb(&chunk[..n], &mut found);
                }
                Err(_) => {
                    self.stats.read_errors += 1;
                    self.reader.reset();
                    break;
                }
            }
        }
        found
    }
}
