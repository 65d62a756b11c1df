//! gzip on the wire (issue 18 item 3): the Client's default request carries
//! `Content-Encoding: gzip`, and the batch limit is counted on the body
//! before compression, so a server that decodes it never sees more than
//! 500 000 bytes, however well the events compress.
#![cfg(all(feature = "http", feature = "sqlite"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use outbox_std::{Client, Event};

/// One request as the server read it.
#[derive(Clone, Debug)]
struct Seen {
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    /// The body as sent.
    wire: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body with its Content-Encoding undone.
    fn decoded(&self) -> Vec<u8> {
        match self.header("content-encoding") {
            Some(e) if e.eq_ignore_ascii_case("gzip") => {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&self.wire[..])
                    .read_to_end(&mut out)
                    .expect("the gzip body decodes");
                out
            }
            _ => self.wire.clone(),
        }
    }
}

/// A server on 127.0.0.1 that answers every request 200 and keeps it.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = Arc::clone(&log);
                thread::spawn(move || serve(conn, &log));
            }
        });
        Server { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Seen>>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut headers = Vec::new();
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if !first {
                if let Some((n, v)) = l.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            first = false;
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut wire = vec![0; length];
        if reader.read_exact(&mut wire).is_err() {
            return;
        }
        log.lock().unwrap().push(Seen { headers, wire });
        if out
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            )
            .is_err()
        {
            return;
        }
    }
}

const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn the_default_client_sends_gzip_bodies() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(server.url.clone(), "k")
        .build()
        .unwrap();
    for i in 0..10 {
        client
            .track(
                Event::track("Gzip Test")
                    .user_id("u")
                    .message_id(format!("g-{i}")),
            )
            .unwrap();
    }
    assert_eq!(client.flush_and_wait(PATIENCE).unwrap().pending, 0);
    client.close().unwrap();
    let seen = server.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(
            s.header("content-encoding"),
            Some("gzip"),
            "headers {:?}",
            s.headers
        );
        let body: serde_json::Value = serde_json::from_slice(&s.decoded()).unwrap();
        assert!(body["batch"].is_array(), "{body}");
    }
    let ids: usize = seen
        .iter()
        .map(|s| {
            serde_json::from_slice::<serde_json::Value>(&s.decoded()).unwrap()["batch"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(ids, 10);
}

/// 60 events of 20 000 compressible bytes: 1.2 MB before compression, a
/// few kilobytes after. Batches are still cut at 500 000 bytes of the
/// uncompressed body: a limit counted on the wire would send them all in
/// one request the server refuses.
#[test]
fn the_batch_limit_counts_the_uncompressed_body() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(server.url.clone(), "k")
        .flush_mode(outbox_std::FlushMode::Manual)
        .build()
        .unwrap();
    let filler = "x".repeat(20_000);
    for i in 0..60 {
        client
            .track(
                Event::track("Big")
                    .user_id("u")
                    .message_id(format!("b-{i}"))
                    .properties(serde_json::json!({ "filler": filler })),
            )
            .unwrap();
    }
    assert_eq!(client.flush_and_wait(PATIENCE).unwrap().pending, 0);
    client.close().unwrap();
    let seen = server.seen();
    let mut events = 0;
    for s in &seen {
        assert_eq!(s.header("content-encoding"), Some("gzip"));
        let decoded = s.decoded();
        assert!(
            decoded.len() <= 500_000,
            "a body of {} bytes uncompressed ({} on the wire)",
            decoded.len(),
            s.wire.len()
        );
        assert!(s.wire.len() < decoded.len() / 10, "compressed");
        let body: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        events += body["batch"].as_array().unwrap().len();
    }
    assert_eq!(events, 60);
    assert!(seen.len() >= 3, "{} requests for 1.2 MB", seen.len());
}
