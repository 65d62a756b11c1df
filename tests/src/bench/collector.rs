//! A minimal HTTP/1.1 collector on 127.0.0.1 for the end-to-end row: keeps
//! connections alive, reads each request's body by its Content-Length
//! (gzip-decoded when it says `Content-Encoding: gzip`, counting the bytes
//! as they came on the wire), counts the events in its `batch` array and
//! answers 200. Both contenders
//! post to the same collector, so its cost is the same for each; it adds up
//! the CPU time its connection threads spend (`CLOCK_THREAD_CPUTIME_ID`
//! around each request) so the row can show that it costs far less than
//! either contender.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running collector; stops when dropped.
pub struct Collector {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    acked: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    wire: Arc<AtomicU64>,
    cpu_ns: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

#[derive(serde::Deserialize)]
struct Body {
    batch: Vec<serde::de::IgnoredAny>,
}

impl Collector {
    /// Listen on an ephemeral port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
        let port = listener.local_addr().expect("local address").port();
        let acked = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let wire = Arc::new(AtomicU64::new(0));
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Counters {
            acked: acked.clone(),
            requests: requests.clone(),
            wire: wire.clone(),
            cpu_ns: cpu_ns.clone(),
        };
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let c = counters.clone();
                std::thread::spawn(move || serve(conn, &c));
            }
        });
        Collector {
            url: format!("http://127.0.0.1:{port}"),
            acked,
            requests,
            wire,
            cpu_ns,
            stop,
            port,
            thread: Some(thread),
        }
    }

    /// Events in batches answered 200 so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Request body bytes received so far, as sent (compressed or not).
    pub fn wire_bytes(&self) -> u64 {
        self.wire.load(Ordering::SeqCst)
    }

    /// CPU seconds the collector's connection threads spent on requests so
    /// far.
    pub fn cpu_secs(&self) -> f64 {
        self.cpu_ns.load(Ordering::SeqCst) as f64 / 1e9
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The counters every connection thread adds to.
#[derive(Clone)]
struct Counters {
    acked: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    wire: Arc<AtomicU64>,
    cpu_ns: Arc<AtomicU64>,
}

/// CPU time of the calling thread, in nanoseconds (0 if unavailable).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Serve one connection until the peer closes it.
fn serve(conn: TcpStream, c: &Counters) {
    let (acked, requests, wire) = (&c.acked, &c.requests, &c.wire);
    let _ = conn.set_nodelay(true);
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        // Blocked reads cost no CPU time, so this counts the request's work.
        let cpu_start = thread_cpu_ns();
        let mut length = 0usize;
        let mut gzip = false;
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if name.eq_ignore_ascii_case("content-encoding") {
                    gzip = value.trim().eq_ignore_ascii_case("gzip");
                }
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        wire.fetch_add(length as u64, Ordering::SeqCst);
        if gzip {
            let mut decoded = Vec::new();
            let read = flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut decoded);
            if read.is_err() {
                decoded.clear();
            }
            body = decoded;
        }
        let (status, events) = match serde_json::from_slice::<Body>(&body) {
            Ok(b) => ("200 OK", b.batch.len() as u64),
            Err(_) => ("400 Bad Request", 0),
        };
        // Counted before the answer leaves, so a sender that saw the 200
        // always finds its events counted.
        acked.fetch_add(events, Ordering::SeqCst);
        requests.fetch_add(1, Ordering::SeqCst);
        let reply = r#"{"success":true}"#;
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        // Also counted before the answer leaves (its write is not in it).
        c.cpu_ns
            .fetch_add(thread_cpu_ns().saturating_sub(cpu_start), Ordering::SeqCst);
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
