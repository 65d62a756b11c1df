//! The gateway between a device's serial frames and an HTTP endpoint.
//!
//! A device running outbox-embedded sends each batch as one frame
//! (`outbox_embedded::serial`); the gateway decodes it, posts the events
//! with an [`Uploader`] (the std HTTP transport, so the wire is the one
//! `outbox send` uses) and answers with a frame carrying the HTTP status
//! and Retry-After. It keeps no queue: the device's flash is the queue, and
//! a batch the gateway could not deliver is answered so the device retries
//! it.
//!
//! ## Answering within the device's deadline
//!
//! Posts run on their own thread, one at a time. A batch frame is answered
//! within [`Gateway::answer_within`] (default [`DEFAULT_ANSWER_WITHIN`],
//! 1 s), whatever the endpoint does: with the post's answer when it came in
//! time, else `InProgress` while the post goes on (the HTTP client's own
//! timeout, 25 s, ends it). The device treats `InProgress` as a failed
//! attempt and sends the batch again after its backoff; the gateway
//! recognises the same events (a re-send has a new frame id) and never
//! posts events it is already posting: it waits for that post again, and
//! gives its answer, once, to the first re-send after it ended. The device
//! re-forms its batch on each attempt (it may have grown): the events of
//! the last post answered 2xx are left out of the next one, and a frame
//! holding only such events is answered 200 without a request. So a slow
//! endpoint costs one POST per event, not one per attempt. A device's request timeout
//! must be longer than `answer_within` plus the frame's time on the line
//! (the example firmware: 5 s).
//!
//! Device garbage never stops it: a frame that cannot be read is reported
//! and answered `Unreadable`, naming the frame when its first bytes still
//! hold the id, and the reader picks up at the next delimiter.
//! [`Gateway::serve`] returns only when the link ends or fails; [`tcp`]
//! serves many connections at once.

pub mod tcp;

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use embedded_io_adapters::std::FromStd;
use outbox_embedded::serial::{
    peek_frame_id, write_frame, BatchFrame, Downlink, Fault, FrameError, FrameReader,
};
use outbox_std::{BatchBody, Response, UploadFailed, Uploader};

/// Default largest frame accepted, in encoded bytes: a 500 000-byte batch
/// (the Segment limit) with room for framing.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

/// The largest `--max-frame-bytes` taken: 64 MiB, far above any batch an
/// endpoint accepts; each connection holds a buffer this large.
pub const MAX_FRAME_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// Default bound on the time from a batch frame's last byte to its answer.
pub const DEFAULT_ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// What the gateway did with one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A batch was posted (or could not be, or is still being) and answered.
    Batch {
        /// The device's frame id.
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
                    Downlink::Status { .. } if *events == 0 => {
                        write!(f, "nothing to post, answered 200")
                    }
                    Downlink::Status {
                        status,
                        retry_after_secs: Some(secs),
                        ..
                    } => write!(f, "{status} (retry after {secs} s)"),
                    Downlink::Status { status, .. } => write!(f, "{status}"),
                    Downlink::InProgress { .. } => {
                        write!(f, "still posting, answered in progress")
                    }
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
                        ..
                    } => "too large",
                    _ => "garbled",
                };
                write!(f, "bad frame: {error}; answered {told}")?;
                if let Downlink::Unreadable {
                    batch: Some(id), ..
                } = answer
                {
                    write!(f, " (frame {id})")?;
                }
                Ok(())
            }
        }
    }
}

/// Counts of what the gateway handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Batch frames decoded.
    pub batches: u64,
    /// Requests made to the endpoint.
    pub posts: u64,
    /// Posts the endpoint answered 2xx.
    pub delivered: u64,
    /// Batch frames answered "in progress".
    pub in_progress: u64,
    /// Frames that could not be read.
    pub bad_frames: u64,
}

/// The post under way, or the last one, until a frame claims its answer.
struct Posting {
    /// Its events, to recognise a re-send.
    events: Vec<Vec<u8>>,
    /// Its answer, once it came.
    result: Option<Result<Response, String>>,
}

struct State {
    posting: Option<Posting>,
    /// The events of the last post the endpoint answered 2xx: a frame
    /// re-formed around them (the device re-batches on each attempt) posts
    /// only its other events.
    delivered: HashSet<Vec<u8>>,
    stats: GatewayStats,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a post ends.
    ended: Condvar,
    /// To the posting thread.
    jobs: Mutex<Sender<BatchBody>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the counters usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bridges frames to an [`Uploader`]. Cloning gives another handle on the
/// same gateway (one poster, one set of counters), for another link.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    max_frame_bytes: usize,
    answer_within: Duration,
}

impl Gateway {
    /// A gateway posting with `uploader` (on a thread of its own),
    /// accepting frames of up to `max_frame_bytes` encoded bytes.
    pub fn new<U: Uploader>(uploader: U, max_frame_bytes: usize) -> Self {
        let (tx, rx) = mpsc::channel::<BatchBody>();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                posting: None,
                delivered: HashSet::new(),
                stats: GatewayStats::default(),
            }),
            ended: Condvar::new(),
            jobs: Mutex::new(tx),
        });
        // The poster holds only a weak handle: it ends with the last
        // Gateway (its channel closes).
        let weak = Arc::downgrade(&shared);
        let mut uploader = uploader;
        thread::spawn(move || {
            for body in rx {
                let result = uploader
                    .upload(&body)
                    .map_err(|e: UploadFailed| e.to_string());
                let Some(shared) = weak.upgrade() else { return };
                {
                    let mut guard = shared.lock();
                    let state = &mut *guard;
                    if let Some(posting) = state.posting.as_mut() {
                        if matches!(&result, Ok(r) if (200..300).contains(&r.status)) {
                            state.stats.delivered += 1;
                            state.delivered = posting.events.iter().cloned().collect();
                        }
                        posting.result = Some(result);
                    }
                }
                shared.ended.notify_all();
            }
        });
        Gateway {
            shared,
            max_frame_bytes: max_frame_bytes.max(1),
            answer_within: DEFAULT_ANSWER_WITHIN,
        }
    }

    /// Answer every batch frame within `bound` of its arrival (an answer
    /// from the endpoint, or "in progress"). Must be shorter than the
    /// device's request timeout.
    pub fn answer_within(mut self, bound: Duration) -> Self {
        self.answer_within = bound;
        self
    }

    /// What was handled so far.
    pub fn stats(&self) -> GatewayStats {
        self.shared.lock().stats
    }

    /// Serve one link until it ends (`Ok`) or fails (`Err`), telling
    /// `report` about every frame. A frame cut off by the end of the link
    /// is dropped.
    pub fn serve<R: Read, W: Write>(
        &self,
        mut input: R,
        output: W,
        report: &mut dyn FnMut(&Report),
    ) -> io::Result<()> {
        let mut link = Link::new(self, output);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            link.absorb(&chunk[..n], report)?;
        }
    }

    /// The answer to one decoded batch frame, and the line to report.
    fn answer(&self, batch: BatchFrame<'_>) -> (Downlink, Report) {
        let id = batch.id;
        let events = batch.events.len();
        let (answer, error) = if events == 0 {
            // Nothing to deliver: never a request.
            self.shared.lock().stats.batches += 1;
            (ok(id), None)
        } else {
            self.post(batch)
        };
        let report = Report::Batch {
            id,
            events,
            answer,
            error,
        };
        (answer, report)
    }

    /// Post `batch`'s events unless they are being posted already; wait
    /// for the answer until `answer_within` has passed.
    fn post(&self, batch: BatchFrame<'_>) -> (Downlink, Option<String>) {
        let id = batch.id;
        let deadline = Instant::now() + self.answer_within;
        let mut state = self.shared.lock();
        state.stats.batches += 1;
        loop {
            let same = state
                .posting
                .as_ref()
                .map(|p| p.events.iter().map(Vec::as_slice).eq(batch.events.clone()));
            let ended = state.posting.as_ref().map(|p| p.result.is_some());
            match (same, ended) {
                // Ours, and ended: its answer, once.
                (Some(true), Some(true)) => {
                    let result = state.posting.take().and_then(|p| p.result);
                    return match result {
                        Some(Ok(response)) => (status(id, &response), None),
                        Some(Err(e)) => (Downlink::Unanswered { batch: id }, Some(e)),
                        None => (Downlink::Unanswered { batch: id }, None),
                    };
                }
                // Another batch's answer nobody came for (the device moved
                // on): forgotten. Nothing posting: post ours.
                (Some(false), Some(true)) | (None, _) => {
                    let events = batch.events.clone().map(<[u8]>::to_vec).collect();
                    let delivered = &state.delivered;
                    let rest: Vec<&[u8]> = batch
                        .events
                        .clone()
                        .filter(|e| !delivered.contains(*e))
                        .collect();
                    if rest.is_empty() {
                        // Every event was delivered by an earlier post.
                        state.posting = None;
                        return (ok(id), None);
                    }
                    let body = BatchBody::from_payloads(rest);
                    let sent = self
                        .shared
                        .jobs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .send(body);
                    if sent.is_err() {
                        state.posting = None;
                        let why = "the posting thread ended".to_string();
                        return (Downlink::Unanswered { batch: id }, Some(why));
                    }
                    state.stats.posts += 1;
                    state.posting = Some(Posting {
                        events,
                        result: None,
                    });
                }
                // A post under way (ours or another batch's): wait for it.
                _ => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.stats.in_progress += 1;
                return (Downlink::InProgress { batch: id }, None);
            }
            state = self
                .shared
                .ended
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The answer to a frame that could not be read; `head` is its first
    /// bytes as they came (stuffed), which may still name it.
    fn refuse(&self, error: FrameError, head: &[u8]) -> (Downlink, Report) {
        self.shared.lock().stats.bad_frames += 1;
        let fault = match error {
            FrameError::TooLarge { .. } => Fault::TooLarge,
            _ => Fault::Garbled,
        };
        let answer = Downlink::Unreadable {
            batch: peek_frame_id(head),
            fault,
        };
        (answer, Report::BadFrame { error, answer })
    }
}

/// A 2xx with no Retry-After: what an empty batch is answered.
fn ok(batch: u64) -> Downlink {
    Downlink::Status {
        batch,
        status: 200,
        retry_after_secs: None,
    }
}

/// The endpoint's answer, for the device.
fn status(batch: u64, response: &Response) -> Downlink {
    // HTTP's Retry-After is whole seconds; round a date's up.
    let retry_after_secs = response.retry_after.map(|d| {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    });
    Downlink::Status {
        batch,
        status: response.status,
        retry_after_secs,
    }
}

/// Bytes kept of each frame's start, enough for its tag and frame id.
const HEAD: usize = 16;

/// One link's reading side: frames cut from the bytes, each answered.
pub(crate) struct Link<'g, W: Write> {
    gateway: &'g Gateway,
    reader: FrameReader<Vec<u8>>,
    output: FromStd<W>,
    /// The current frame's first bytes, and the last ended frame's.
    head: Vec<u8>,
    last_head: Vec<u8>,
}

impl<'g, W: Write> Link<'g, W> {
    pub(crate) fn new(gateway: &'g Gateway, output: W) -> Self {
        Link {
            gateway,
            reader: FrameReader::new(vec![0; gateway.max_frame_bytes]),
            output: FromStd::new(output),
            head: Vec::with_capacity(HEAD),
            last_head: Vec::with_capacity(HEAD),
        }
    }

    /// Whether a frame has started and not ended.
    pub(crate) fn mid_frame(&self) -> bool {
        !self.head.is_empty()
    }

    /// Take `bytes` off the link, answering every frame they end.
    pub(crate) fn absorb(
        &mut self,
        mut bytes: &[u8],
        report: &mut dyn FnMut(&Report),
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let (frame, rest) = self.reader.feed(bytes);
            for &byte in &bytes[..bytes.len() - rest.len()] {
                if byte == 0 {
                    if !self.head.is_empty() {
                        std::mem::swap(&mut self.head, &mut self.last_head);
                    }
                    self.head.clear();
                } else if self.head.len() < HEAD {
                    self.head.push(byte);
                }
            }
            bytes = rest;
            let Some(frame) = frame else { break };
            let decoded = frame.and_then(BatchFrame::decode);
            let (answer, line) = match decoded {
                Ok(batch) => self.gateway.answer(batch),
                Err(error) => self.gateway.refuse(error, &self.last_head),
            };
            report(&line);
            write_frame(&mut self.output, &answer).map_err(|e| match e {
                outbox_embedded::serial::SendError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            })?;
        }
        Ok(())
    }
}
