//! The bridge from the worker's driver to the transport thread.
//!
//! [`ChannelTransport`] implements the core's `Transport`: `send` joins the
//! batch's payloads into one JSON array and hands it to the transport
//! thread, which runs the [`Uploader`] (blocking, within its own timeouts)
//! and posts the outcome back into the worker's command channel. So the
//! worker, and with it `track`, never waits on the network.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use outbox_core::{Batch, BatchId, Instant, Outcome, Payloads, Transport};

use super::worker::Msg;
use crate::upload::{BatchBody, Uploader};

struct Job {
    batch: BatchId,
    body: BatchBody,
}

/// Why a batch did not go to the transport thread; the machine takes
/// either as a transport failure and retries with backoff.
#[derive(Debug)]
pub(crate) enum TransportGone {
    /// The thread is gone (it only stops when the Client stops).
    Gone,
    /// The thread is still on an earlier request (one the machine gave up
    /// on) and one body already waits for it.
    Busy,
}

/// Bodies that may wait for the transport thread. The machine has one
/// batch in flight; another waits only while the thread is still on a
/// request the machine gave up on (its `request_timeout` passed). A third
/// is refused rather than queued: each would hold a whole body, and an
/// endpoint slower than `request_timeout` would grow the queue forever.
const JOBS_WAITING: usize = 1;

pub(crate) struct ChannelTransport {
    jobs: Option<SyncSender<Job>>,
    /// The losses to report with the next batch.
    losses: super::losses::Losses,
    /// A body may not grow past this with the report.
    max_batch_bytes: u32,
    /// The outcome delivered by the worker's channel, until polled.
    pub(crate) ready: Option<Outcome>,
}

impl ChannelTransport {
    /// Start the transport thread around `uploader`; outcomes go to `back`.
    pub(crate) fn start(
        mut uploader: Box<dyn Uploader>,
        back: SyncSender<Msg>,
        losses: super::losses::Losses,
        max_batch_bytes: u32,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (jobs, rx): (SyncSender<Job>, Receiver<Job>) = mpsc::sync_channel(JOBS_WAITING);
        let handle = std::thread::Builder::new()
            .name("outbox-transport".into())
            .spawn(move || {
                for job in rx {
                    let result = catch_unwind(AssertUnwindSafe(|| uploader.upload(&job.body)));
                    // What went wrong, for the store's last error.
                    let mut failure = None;
                    let outcome = match result {
                        Ok(Ok(r)) => {
                            if !(200..300).contains(&r.status) {
                                failure = Some(format!("the endpoint answered HTTP {}", r.status));
                            }
                            log::debug!(
                                "outbox: batch {} ({} events) answered {}",
                                job.batch,
                                job.body.len(),
                                r.status
                            );
                            Outcome::Response {
                                batch: job.batch,
                                status: r.status,
                                retry_after: r.retry_after,
                            }
                        }
                        Ok(Err(e)) => {
                            log::warn!("outbox: batch {}: {e}", job.batch);
                            failure = Some(e.to_string());
                            Outcome::Failed { batch: job.batch }
                        }
                        Err(_) => {
                            log::error!("outbox: the uploader panicked on batch {}", job.batch);
                            failure = Some("upload failed: the uploader panicked".into());
                            Outcome::Failed { batch: job.batch }
                        }
                    };
                    if back.send(Msg::Outcome(outcome, failure)).is_err() {
                        break;
                    }
                }
            })?;
        Ok((
            ChannelTransport {
                jobs: Some(jobs),
                losses,
                max_batch_bytes,
                ready: None,
            },
            handle,
        ))
    }

    /// Stop accepting batches; the thread ends after the request in flight.
    pub(crate) fn close(&mut self) {
        self.jobs = None;
    }
}

impl Transport for ChannelTransport {
    type Error = TransportGone;

    fn send(
        &mut self,
        _now: Instant,
        batch: &Batch,
        payloads: Payloads<'_>,
    ) -> Result<(), TransportGone> {
        // The loss report, when there is one and it fits (it does not
        // count as one of the batch's events for the machine).
        let report =
            super::losses::lock(&self.losses).attach(batch.id, batch.bytes, self.max_batch_bytes);
        let body = BatchBody::from_payloads(payloads.map(|(_, p)| p).chain(report.as_deref()));
        let jobs = self.jobs.as_ref().ok_or(TransportGone::Gone)?;
        jobs.try_send(Job {
            batch: batch.id,
            body,
        })
        .map_err(|e| match e {
            TrySendError::Full(_) => TransportGone::Busy,
            TrySendError::Disconnected(_) => TransportGone::Gone,
        })
    }

    fn poll_outcome(&mut self, _now: Instant) -> Option<Outcome> {
        self.ready.take()
    }
}
