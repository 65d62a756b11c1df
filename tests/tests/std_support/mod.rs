//! Shared by the `std_*` tests: a real HTTP collector on 127.0.0.1 (tiny_http)
//! whose answers a test scripts, and small waiting helpers.
//!
//! The server records every request it answered (event messageIds, status,
//! headers, raw body) so tests assert on outcomes, never on timings.
#![allow(dead_code)]

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request the collector answered.
#[derive(Clone, Debug)]
pub struct Received {
    /// messageIds in the batch, in order (loss reports left out).
    pub ids: Vec<String>,
    /// The events (loss reports left out: they have `losses`).
    pub events: Vec<Value>,
    /// The `outbox dropped events` loss reports in the batch (the Client
    /// adds one to the batch after a drop; std_losses.rs checks them).
    pub losses: Vec<Value>,
    /// The status it answered.
    pub status: u16,
    /// The JSON body, decompressed.
    pub body: Vec<u8>,
    /// Content-Encoding was gzip.
    pub gzip: bool,
    /// The Authorization header.
    pub authorization: Option<String>,
    /// The Content-Type header.
    pub content_type: Option<String>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
    /// The request path.
    pub path: String,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The raw bytes of the `batch` array as sent.
    pub fn raw_batch(&self) -> &[u8] {
        let start = b"{\"batch\":".len();
        let end = self
            .body
            .windows(11)
            .rposition(|w| w == b",\"sentAt\":\"")
            .unwrap_or(self.body.len());
        &self.body[start.min(end)..end]
    }
}

/// The answer for one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply::status(200)
    }
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            retry_after: None,
        }
    }
}

type Policy = Box<dyn FnMut(&Received) -> Reply + Send>;

/// A collector on 127.0.0.1:<ephemeral>, stopped on drop.
pub struct Collector {
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
    policy: Arc<Mutex<Policy>>,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// A collector answering 200 to everything.
    pub fn start() -> Self {
        Self::with_policy(|_| Reply::ok())
    }

    /// A collector answering with `policy`.
    pub fn with_policy(policy: impl FnMut(&Received) -> Reply + Send + 'static) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let policy: Arc<Mutex<Policy>> = Arc::new(Mutex::new(Box::new(policy)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, log, policy, stop) =
                (server.clone(), log.clone(), policy.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    serve(req, &log, &policy);
                }
            })
        };
        Collector {
            url: format!("http://127.0.0.1:{port}"),
            log,
            policy,
            stop,
            server,
            thread: Some(thread),
        }
    }

    /// Replace the answering policy.
    pub fn set_policy(&self, policy: impl FnMut(&Received) -> Reply + Send + 'static) {
        *self.policy.lock().unwrap() = Box::new(policy);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// messageIds of every acknowledged (2xx) request, in arrival order.
    pub fn delivered(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(|r| r.ids)
            .collect()
    }

    /// Every event of the requests answered 200, each messageId once (its
    /// first copy), in arrival order: what the wire delivered.
    pub fn accepted_events(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.events)
            .filter(|e| seen.insert(e["messageId"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

fn serve(mut req: tiny_http::Request, log: &Mutex<Vec<Received>>, policy: &Mutex<Policy>) {
    let mut raw = Vec::new();
    let _ = req.as_reader().read_to_end(&mut raw);
    let gzip = header(&req, "content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out);
        out
    } else {
        raw
    };
    let all: Vec<Value> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("batch").and_then(|b| b.as_array()).cloned())
        .unwrap_or_default();
    let (losses, events): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|e| e["event"] == outbox_std::LOSS_EVENT);
    let ids = events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or("").to_string())
        .collect();
    let mut received = Received {
        ids,
        events,
        losses,
        status: 0,
        body,
        gzip,
        authorization: header(&req, "authorization"),
        content_type: header(&req, "content-type"),
        user_agent: header(&req, "user-agent"),
        path: req.url().to_string(),
        at: Instant::now(),
    };
    let reply = (policy.lock().unwrap())(&received);
    received.status = reply.status;
    log.lock().unwrap().push(received);
    let mut resp = tiny_http::Response::from_string("{}").with_status_code(reply.status);
    if let Some(ra) = reply.retry_after {
        resp = resp.with_header(tiny_http::Header::from_bytes("Retry-After", ra).unwrap());
    }
    let _ = req.respond(resp);
}

/// Poll `cond` until it holds or a generous `limit` passes; true if it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The generous limit used for "eventually" in these tests.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// An event with a known messageId.
pub fn event(id: &str) -> outbox_std::Event {
    outbox_std::Event::track("Test Event")
        .user_id("user-1")
        .message_id(id)
        .properties(serde_json::json!({ "id": id }))
}

/// A Client on `db` sending to `collector`, with fast retries.
pub fn builder(db: &std::path::Path, collector: &Collector) -> outbox_std::ClientBuilder {
    outbox_std::Client::builder()
        .path(db)
        .endpoint(collector.url.clone(), "test-key")
        .configure(|c| c.retry_backoff(Duration::from_millis(20), Duration::from_millis(200)))
        .drop_flush_timeout(Duration::from_secs(2))
}
