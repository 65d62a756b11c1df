//! The serial link between a device and `outbox gateway`.
//!
//! A device has a UART, not a network: it sends each batch as one frame to
//! a gateway on a host, which posts it over HTTP and answers with a frame
//! carrying the HTTP status. Everything here is `no_std` and allocates
//! nothing; the gateway side (`outbox gateway`) uses the same frames.
//!
//! ## Frames
//!
//! A frame is one postcard message, COBS-stuffed (so it holds no `0x00`)
//! and ended by a `0x00` delimiter; senders also put a delimiter before
//! each frame, which ends any frame a reset cut short. A garbled, truncated
//! or oversized frame is a typed [`FrameError`], and the [`FrameReader`]
//! resynchronises at the next delimiter.
//!
//! | direction | message | fields |
//! | --- | --- | --- |
//! | device → gateway | [`Uplink::Batch`] | frame id, events (byte strings, oldest first) |
//! | gateway → device | [`Downlink::Status`] | frame id, HTTP status, Retry-After in seconds (optional) |
//! | gateway → device | [`Downlink::Unanswered`] | frame id: the endpoint gave no answer (retried) |
//! | gateway → device | [`Downlink::Unreadable`] | frame id when it could be read; the frame was garbled (retried) or too large (a 413: the batch shrinks) |
//! | gateway → device | [`Downlink::InProgress`] | frame id: no answer yet, the post goes on (retried; the re-send gets the post's answer) |
//!
//! The frame id names the batch ([`frame_id`]: its id and event range), so
//! an answer that arrives after a device reset cannot end a different batch;
//! an answer that names no frame (an `Unreadable` whose id could not be
//! read) ends nothing.
//!
//! Sizes: an answer is at most [`Downlink::MAX_FRAME_BYTES`]; a batch frame
//! is its payloads plus about 1 % (a varint length per event, one COBS byte
//! per 254) plus 13 bytes, and is written as it is encoded, without a frame
//! buffer. The gateway's limit (`--max-frame-bytes`) must hold the device's
//! `max_batch_bytes`; a larger frame is answered `Unreadable(TooLarge)`.
//!
//! ## Transport
//!
//! [`SerialTransport`] implements the core's `Transport` over any
//! `embedded_io::{Read, ReadReady, Write}`: a blocking write of the batch,
//! then non-blocking polls for the answer. An answer that never comes is
//! ended by the machine's request timeout.

mod error;
mod frame;
mod reader;
mod stuff;
mod transport;
mod writer;

pub use error::{FrameError, SendError};
pub use frame::{frame_id, peek_frame_id, BatchFrame, BatchOut, Downlink, Events, Fault, Uplink};
pub use reader::FrameReader;
pub use transport::{LinkStats, SerialTransport, POLL_BUDGET_BYTES};
pub use writer::write_frame;

#[cfg(test)]
mod tests;
