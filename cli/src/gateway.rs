//! The gateway between a device's serial frames and an HTTP endpoint.
//!
//! A device running outbox-embedded sends each batch as one frame
//! (`outbox_embedded::serial`); the gateway decodes it, posts the events
//! with an [`Uploader`] (the std HTTP transport, so the wire is the one
//! `outbox send` uses) and answers with a frame carrying the HTTP status
//! and Retry-After. It keeps no state and no queue: the device's flash is
//! the queue, and a batch the gateway could not deliver is answered so the
//! device retries it.
//!
//! Device garbage never stops it: a frame that cannot be read is reported
//! and answered `Unreadable`, and the reader picks up at the next
//! delimiter. [`Gateway::serve`] returns only when the link ends or fails.

use std::fmt;
use std::io::{self, Read, Write};

use embedded_io_adapters::std::FromStd;
use outbox_embedded::serial::{write_frame, BatchFrame, Downlink, Fault, FrameError, FrameReader};
use outbox_std::{BatchBody, Uploader};

/// Default largest frame accepted, in encoded bytes: a 500 000-byte batch
/// (the Segment limit) with room for framing.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

/// What the gateway did with one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A batch was posted (or could not be) and answered.
    Batch {
        /// The device's batch id.
        id: u64,
        /// Events in it.
        events: usize,
        /// What the device was told.
        answer: Downlink,
        /// Why the endpoint gave no answer, when it did not.
        error: Option<String>,
    },
    /// A frame could not be read; the device was told.
    BadFrame {
        /// What was wrong.
        error: FrameError,
        /// What the device was told.
        answer: Downlink,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Batch {
                id,
                events,
                answer,
                error,
            } => {
                write!(f, "batch {id}: {events} events, ")?;
                match answer {
                    Downlink::Status {
                        status,
                        retry_after_secs: Some(secs),
                        ..
                    } => write!(f, "{status} (retry after {secs} s)"),
                    Downlink::Status { status, .. } => write!(f, "{status}"),
                    _ => write!(
                        f,
                        "no answer: {}",
                        error.as_deref().unwrap_or("unknown error")
                    ),
                }
            }
            Report::BadFrame { error, answer } => {
                let told = match answer {
                    Downlink::Unreadable {
                        fault: Fault::TooLarge,
                    } => "too large",
                    _ => "garbled",
                };
                write!(f, "bad frame: {error}; answered {told}")
            }
        }
    }
}

/// Counts of what the gateway handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Batch frames decoded.
    pub batches: u64,
    /// Batches the endpoint answered 2xx.
    pub delivered: u64,
    /// Frames that could not be read.
    pub bad_frames: u64,
}

/// Bridges frames to an [`Uploader`].
pub struct Gateway<U> {
    uploader: U,
    reader: FrameReader<Vec<u8>>,
    stats: GatewayStats,
}

impl<U: Uploader> Gateway<U> {
    /// A gateway posting with `uploader`, accepting frames of up to
    /// `max_frame_bytes` encoded bytes.
    pub fn new(uploader: U, max_frame_bytes: usize) -> Self {
        Gateway {
            uploader,
            reader: FrameReader::new(vec![0; max_frame_bytes.max(1)]),
            stats: GatewayStats::default(),
        }
    }

    /// What was handled so far.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Serve one link until it ends (`Ok`) or fails (`Err`), telling
    /// `report` about every frame. A frame cut off by the end of the link
    /// is dropped.
    pub fn serve<R: Read, W: Write>(
        &mut self,
        mut input: R,
        output: W,
        report: &mut dyn FnMut(&Report),
    ) -> io::Result<()> {
        let mut output = FromStd::new(output);
        let mut chunk = vec![0u8; 16 * 1024];
        self.reader.reset();
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut bytes = &chunk[..n];
            while !bytes.is_empty() {
                let (frame, rest) = self.reader.feed(bytes);
                bytes = rest;
                let Some(frame) = frame else { break };
                let decoded = frame.and_then(BatchFrame::decode);
                let (answer, line) = match decoded {
                    Ok(batch) => post(&mut self.uploader, &mut self.stats, batch),
                    Err(error) => refuse(&mut self.stats, error),
                };
                report(&line);
                write_frame(&mut output, &answer).map_err(|e| match e {
                    outbox_embedded::serial::SendError::Io(e) => e,
                    other => io::Error::other(other.to_string()),
                })?;
            }
        }
    }
}

/// Post one batch; the answer for the device and the line to report.
fn post<U: Uploader>(
    uploader: &mut U,
    stats: &mut GatewayStats,
    batch: BatchFrame<'_>,
) -> (Downlink, Report) {
    stats.batches += 1;
    let events = batch.events.len();
    let body = BatchBody::from_payloads(batch.events);
    let (answer, error) = match uploader.upload(&body) {
        Ok(response) => {
            if (200..300).contains(&response.status) {
                stats.delivered += 1;
            }
            // HTTP's Retry-After is whole seconds; round a date's up.
            let retry_after_secs = response.retry_after.map(|d| {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                u32::try_from(secs).unwrap_or(u32::MAX)
            });
            let answer = Downlink::Status {
                batch: batch.id,
                status: response.status,
                retry_after_secs,
            };
            (answer, None)
        }
        Err(e) => (
            Downlink::Unanswered { batch: batch.id },
            Some(e.to_string()),
        ),
    };
    let report = Report::Batch {
        id: batch.id,
        events,
        answer,
        error,
    };
    (answer, report)
}

/// The answer to a frame that could not be read.
fn refuse(stats: &mut GatewayStats, error: FrameError) -> (Downlink, Report) {
    stats.bad_frames += 1;
    let fault = match error {
        FrameError::TooLarge { .. } => Fault::TooLarge,
        _ => Fault::Garbled,
    };
    let answer = Downlink::Unreadable { fault };
    (answer, Report::BadFrame { error, answer })
}
