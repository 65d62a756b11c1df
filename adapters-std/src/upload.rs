//! What the Client's transport thread needs from an uploader.
//!
//! The worker thread hands each batch to a transport thread as the stored
//! payloads joined into one JSON array (no re-parsing); an [`Uploader`]
//! turns that into a request and the answer into a [`Response`]. The HTTP
//! uploader is one; tests and gateways can plug in their own.

use std::time::{Duration, SystemTime};

/// One batch of stored events, already joined into a JSON array.
///
/// ```
/// use outbox_std::BatchBody;
/// let body = BatchBody::from_payloads([&br#"{"a":1}"#[..], br#"{"b":2}"#]);
/// assert_eq!(body.events_json(), br#"[{"a":1},{"b":2}]"#);
/// assert_eq!(body.len(), 2);
/// let segment = body.segment_body(std::time::UNIX_EPOCH);
/// assert_eq!(segment, br#"{"batch":[{"a":1},{"b":2}],"sentAt":"1970-01-01T00:00:00.000Z"}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchBody {
    array: Vec<u8>,
    count: usize,
}

impl BatchBody {
    /// Join `payloads` (each a JSON value) into `[p1,p2,...]`.
    pub fn from_payloads<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut array = Vec::with_capacity(256);
        array.push(b'[');
        let mut count = 0;
        for p in payloads {
            if count > 0 {
                array.push(b',');
            }
            array.extend_from_slice(p);
            count += 1;
        }
        array.push(b']');
        BatchBody { array, count }
    }

    /// The events as one JSON array.
    pub fn events_json(&self) -> &[u8] {
        &self.array
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The Segment-compatible body `{"batch":[...],"sentAt":"<RFC 3339>"}`.
    pub fn segment_body(&self, sent_at: SystemTime) -> Vec<u8> {
        let sent = humantime::format_rfc3339_millis(sent_at).to_string();
        let mut out = Vec::with_capacity(self.array.len() + sent.len() + 24);
        out.extend_from_slice(b"{\"batch\":");
        out.extend_from_slice(&self.array);
        out.extend_from_slice(b",\"sentAt\":\"");
        out.extend_from_slice(sent.as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }
}

/// The server's answer to one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Retry-After, when the server sent a valid one.
    pub retry_after: Option<Duration>,
}

/// The batch got no answer (refused, timed out, connection lost, TLS...).
/// The message never contains credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("upload failed: {0}")]
pub struct UploadFailed(pub String);

/// Sends one batch and waits for the answer; runs on the Client's transport
/// thread, so it may block (within its own timeouts).
pub trait Uploader: Send + 'static {
    /// Upload `batch`; `Ok` for any HTTP answer, `Err` when there was none.
    fn upload(&mut self, batch: &BatchBody) -> Result<Response, UploadFailed>;
}

impl<F> Uploader for F
where
    F: FnMut(&BatchBody) -> Result<Response, UploadFailed> + Send + 'static,
{
    fn upload(&mut self, batch: &BatchBody) -> Result<Response, UploadFailed> {
        self(batch)
    }
}
