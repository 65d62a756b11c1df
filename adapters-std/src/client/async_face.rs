//! The async face (feature `async`): the same Client, awaited instead of
//! blocked on, on any executor (tokio, async-std, smol, a plain
//! `block_on`), without pulling a runtime in.
//!
//! Every answer from the worker already travels through a one-shot channel
//! (the `oneshot` crate) whose receiver is both a blocking `recv` and a
//! `Future`; the async methods await it. Nothing here blocks an executor
//! thread: messages go to the worker with `try_send`, and in the rare case
//! its queue is full (8192 messages waiting) the future yields to the
//! executor and tries again; deadlines are kept by the worker thread, so no
//! timer of the executor is needed; `shutdown` is answered only once the
//! worker has closed the store, so it never joins a thread.
//!
//! Dropping the last handle still runs the bounded blocking drop flush of
//! [`Client`]; in async code, await [`AsyncClient::shutdown`] first.

use std::future::poll_fn;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use super::worker::{Msg, Reply};
use super::{deadline_after, Client, ClientError, FlushError, FlushReport, Receipt, TrackError};
use crate::event::Event;

/// A [`Client`] whose waiting calls are futures; cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use outbox_std::{AsyncClient, Client, Event};
///
/// let client: AsyncClient = Client::builder()
///     .path("events.db")
///     .endpoint("https://api.segment.io", "WRITE_KEY")
///     .build()?
///     .into_async();
/// let receipt = client.track_durable(Event::track("Signed Up").user_id("u-1")).await?;
/// let report = client.flush_and_wait(Duration::from_secs(10)).await?;
/// client.shutdown(Duration::from_secs(5)).await?;
/// # let _ = (receipt, report); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncClient {
    client: Client,
}

impl Client {
    /// This Client's async face (same queue, same worker).
    pub fn into_async(self) -> AsyncClient {
        AsyncClient { client: self }
    }
}

/// Hand `msg` to the worker without blocking the executor.
async fn send(tx: &SyncSender<Msg>, msg: Msg) -> Result<(), ()> {
    let mut msg = Some(msg);
    poll_fn(|cx| {
        let Some(m) = msg.take() else {
            return Poll::Ready(Err(()));
        };
        match tx.try_send(m) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(TrySendError::Full(m)) => {
                msg = Some(m);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(TrySendError::Disconnected(_)) => Poll::Ready(Err(())),
        }
    })
    .await
}

/// Send a request and await its answer; `None` once the Client stopped.
async fn ask<T>(tx: &SyncSender<Msg>, make: impl FnOnce(Reply<T>) -> Msg) -> Option<T> {
    let (reply, rx) = oneshot::channel();
    send(tx, make(reply)).await.ok()?;
    rx.await.ok()
}

impl AsyncClient {
    /// The blocking face of the same Client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// [`Client::track`], without blocking when the worker's queue is full
    /// (an event marked [`Event::critical`](Event::critical()) is tracked
    /// as critical).
    pub async fn track(&self, mut event: Event) -> Result<Receipt, TrackError> {
        let critical = event.critical;
        let inner = &self.client.inner;
        drop(inner.session_event(&mut event));
        let payload = inner.payload(event)?;
        let seq = Arc::new(OnceLock::new());
        let msg = Msg::Track {
            critical,
            payload: payload.bytes,
            durable: None,
            seq: seq.clone(),
            message_id: payload.message_id.clone(),
            wall_ms: Some(inner.clock.wall_ms()),
        };
        send(&inner.tx, msg)
            .await
            .map_err(|()| TrackError::Stopped)?;
        Ok(Receipt::new(payload.message_id, seq))
    }

    /// [`Client::track_critical`], without blocking when the worker's
    /// queue is full: `track(event.critical(true))`.
    pub async fn track_critical(&self, event: Event) -> Result<Receipt, TrackError> {
        self.track(event.critical(true)).await
    }

    /// [`Client::track_durable`]: resolves once the event is committed (an
    /// event marked [`Event::critical`](Event::critical()) is tracked as
    /// critical).
    pub async fn track_durable(&self, mut event: Event) -> Result<Receipt, TrackError> {
        let critical = event.critical;
        let inner = &self.client.inner;
        drop(inner.session_event(&mut event));
        let payload = inner.payload(event)?;
        let seq = Arc::new(OnceLock::new());
        let slot = seq.clone();
        let bytes = payload.bytes;
        let wall_ms = Some(inner.clock.wall_ms());
        let result = ask(&inner.tx, |reply| Msg::Track {
            critical,
            payload: bytes,
            durable: Some(reply),
            seq: slot,
            message_id: String::new(),
            wall_ms,
        })
        .await
        .ok_or(TrackError::Stopped)?;
        result.map(|()| Receipt::new(payload.message_id, seq))
    }

    /// [`Client::flush_and_wait`]: resolves when every event tracked before
    /// the call is settled, or at `timeout` (`Duration::MAX`: no deadline).
    pub async fn flush_and_wait(&self, timeout: Duration) -> Result<FlushReport, FlushError> {
        let deadline = deadline_after(timeout);
        ask(&self.client.inner.tx, |reply| Msg::FlushWait {
            deadline,
            reply,
        })
        .await
        .ok_or(FlushError::Stopped)?
    }

    /// [`Client::shutdown`]: a final flush bounded by `timeout`, then both
    /// threads stop; resolves once the store is closed.
    pub async fn shutdown(&self, timeout: Duration) -> Result<FlushReport, ClientError> {
        let inner = &self.client.inner;
        let (msg, rx, handle) = inner
            .shutdown_msg(true, timeout)
            .ok_or(ClientError::Stopped)?;
        send(&inner.tx, msg)
            .await
            .map_err(|()| ClientError::Stopped)?;
        let report = rx.await.map_err(|_| ClientError::Stopped)?;
        // The worker answered after closing the store; it is only returning.
        drop(handle);
        Ok(report)
    }
}
