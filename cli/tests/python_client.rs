//! A real Segment client library against outbox: segment-analytics-python
//! drives `outbox collect` with every call type, and the request `outbox
//! send` makes for an event is compared field by field with the one
//! analytics-python makes for the same event.
//!
//! The library lives in the project's own virtual environment, which
//! `scripts/test` (the README's test command) creates under `target/venv`
//! and names in `OUTBOX_TEST_PYTHON`; the system Python is never used.
//! Nothing is skipped: without that environment these tests fail and say
//! how to make it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The project's Python: `OUTBOX_TEST_PYTHON` (set by `scripts/test`), else
/// the venv `scripts/test` makes under the workspace's `target/`.
fn python_exe() -> PathBuf {
    if let Some(exe) = std::env::var_os("OUTBOX_TEST_PYTHON") {
        return PathBuf::from(exe);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("venv/bin/python")
}

/// Runs `script` with the project's Python and `args`; fails the test with
/// a clear message when that Python or segment-analytics-python is missing.
fn python(script: &str, args: &[&str]) -> String {
    let exe = python_exe();
    let probe = Command::new(&exe)
        .args(["-c", "import segment.analytics"])
        .output()
        .unwrap_or_else(|e| {
            panic!("the real-client test needs the project's Python at {} and it could not run ({e}); run ./scripts/test once, which creates it with segment-analytics-python", exe.display())
        });
    assert!(
        probe.status.success(),
        "segment-analytics-python is not installed in {}: run ./scripts/test once, which installs scripts/requirements-test.txt there: {}",
        exe.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    let out = Command::new(&exe)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run the project's python");
    assert!(
        out.status.success(),
        "the analytics-python script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every Segment call, first one request each (sync_mode raises on any
/// non-2xx), then three tracks through the library's own batching queue.
const EVERY_CALL: &str = r#"
import sys
from segment.analytics import Client
host, key = sys.argv[1], sys.argv[2]
c = Client(write_key=key, host=host, sync_mode=True)
c.track("u-1", "Order Completed", {"total": 12.5, "big": 123456789012345678901234567890}, message_id="py-track")
c.identify("u-1", {"plan": "pro"}, message_id="py-identify")
c.page("u-1", "Docs", "Home", {"path": "/"}, message_id="py-page")
c.screen("u-1", "App", "Cart", {"items": 2}, message_id="py-screen")
c.group("u-1", "g-1", {"name": "Acme"}, message_id="py-group")
c.alias("anon-1", "u-1", message_id="py-alias")
errors = []
q = Client(write_key=key, host=host, on_error=lambda e, batch: errors.append(e))
for i in range(3):
    q.track(anonymous_id=4242, event="Queued", properties={"i": i}, message_id="py-q-%d" % i)
q.flush()
q.shutdown()
if errors:
    raise SystemExit("upload errors: %r" % errors)
print("ok")
"#;

#[test]
fn analytics_python_drives_the_collector_with_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut c = Collect::start(&["--key", "py-key", "--out", out.to_str().unwrap()]);
    c.wait_for("already holds 0 message ids");
    assert_eq!(python(EVERY_CALL, &[&c.url(), "py-key"]).trim(), "ok");
    // A wrong key is refused the way Segment refuses it: analytics-python
    // raises its APIError from our Segment-style error body.
    let refused = Command::new(python_exe())
        .arg("-c")
        .arg(
            "import sys\nfrom segment.analytics import Client\nfrom segment.analytics.request import APIError\n\
             c = Client(write_key='nope', host=sys.argv[1], sync_mode=True)\n\
             try:\n    c.track('u', 'x')\nexcept APIError as e:\n    print(e.status, e.code)\n",
        )
        .arg(c.url())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout).trim(),
        "401 unauthorized"
    );
    let (status, _) = c.stop("TERM");
    assert!(status.success());

    let text = std::fs::read_to_string(&out).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |id: &str| {
        events
            .iter()
            .find(|e| e["messageId"] == id)
            .unwrap_or_else(|| panic!("{id} not collected: {text}"))
    };
    for (id, kind) in [
        ("py-track", "track"),
        ("py-identify", "identify"),
        ("py-page", "page"),
        ("py-screen", "screen"),
        ("py-group", "group"),
        ("py-alias", "alias"),
        ("py-q-0", "track"),
        ("py-q-1", "track"),
        ("py-q-2", "track"),
    ] {
        let e = by_id(id);
        assert_eq!(e["type"], kind, "{e}");
        assert_eq!(e["context"]["library"]["name"], "analytics-python", "{e}");
    }
    assert_eq!(events.len(), 9, "{text}");
    let track = by_id("py-track");
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["properties"]["total"], 12.5);
    // The collector keeps a 30-digit number as written.
    assert!(
        text.contains("\"big\":123456789012345678901234567890"),
        "{text}"
    );
    assert_eq!(by_id("py-identify")["traits"]["plan"], "pro");
    assert_eq!(by_id("py-page")["name"], "Home");
    assert_eq!(by_id("py-page")["category"], "Docs");
    assert_eq!(by_id("py-screen")["name"], "Cart");
    assert_eq!(by_id("py-group")["groupId"], "g-1");
    assert_eq!(by_id("py-alias")["previousId"], "anon-1");
    // analytics-python turns a numeric anonymousId into a string.
    assert_eq!(by_id("py-q-1")["anonymousId"], "4242");
}

/// One captured HTTP request.
struct Captured {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A one-request server on 127.0.0.1 that records what it got and answers
/// 200 `{"success":true}`.
fn capture_one() -> (SocketAddr, mpsc::Receiver<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        if let Some(c) = read_one(&stream) {
            let mut w = &stream;
            let body = r#"{"success":true}"#;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tx.send(c);
        }
    });
    (addr, rx)
}

fn read_one(stream: &TcpStream) -> Option<Captured> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))?
        .1
        .parse()
        .ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    // outbox gzips its bodies by default; analytics-python does not.
    let gzip = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v.eq_ignore_ascii_case("gzip"));
    if gzip {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .ok()?;
        body = plain;
    }
    Some(Captured {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).ok()?,
    })
}

const ONE_TRACK: &str = r#"
import sys
from segment.analytics import Client
c = Client(write_key=sys.argv[2], host=sys.argv[1], sync_mode=True)
c.track("u-1", "Order Completed", {"total": 12.5, "sku": "A-1"}, message_id="same-event")
print("ok")
"#;

#[test]
fn outbox_send_makes_the_request_analytics_python_makes() {
    // What analytics-python sends.
    let (addr, rx) = capture_one();
    python(ONE_TRACK, &[&format!("http://{addr}"), "wk-123"]);
    let py = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("python's request");
    let py_event = py.body["batch"][0].clone();

    // The same event (as analytics-python built it, its library taken
    // out), through `outbox send`.
    let mut line = py_event.clone();
    line["context"].as_object_mut().unwrap().remove("library");
    let (addr, rx) = capture_one();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let res = run_with_stdin(
        &[
            "send",
            "--endpoint",
            &format!("http://{addr}"),
            "--key",
            "wk-123",
            "--db",
            db.to_str().unwrap(),
        ],
        &format!("{line}\n"),
    );
    assert_ok(&res);
    let ours = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("outbox's request");

    // Request line, auth, content type.
    assert_eq!(
        (ours.method.as_str(), ours.path.as_str()),
        ("POST", "/v1/batch")
    );
    assert_eq!(
        (py.method.as_str(), py.path.as_str()),
        ("POST", "/v1/batch")
    );
    // base64("wk-123:"): HTTP Basic, the key as user name, empty password.
    assert_eq!(py.header("authorization"), Some("Basic d2stMTIzOg=="));
    assert_eq!(ours.header("authorization"), py.header("authorization"));
    assert_eq!(ours.header("content-type"), Some("application/json"));
    assert_eq!(ours.header("content-type"), py.header("content-type"));
    // gzip is outbox's default; the body below is compared decoded.
    assert_eq!(ours.header("content-encoding"), Some("gzip"));

    // Envelope: a one-event batch and a sentAt. analytics-python also puts
    // the key in the body as writeKey; outbox keeps it in the header only.
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours.body), ["batch", "sentAt"]);
    assert_eq!(keys(&py.body), ["batch", "sentAt", "writeKey"]);
    assert_eq!(ours.body["batch"].as_array().unwrap().len(), 1);
    assert!(ours.body["sentAt"].is_string() && py.body["sentAt"].is_string());

    // The event: every field equal, except who sent it.
    let mut ours_event = ours.body["batch"][0].clone();
    let mut py_rest = py_event.clone();
    let lib = |e: &mut Value| {
        e["context"]
            .as_object_mut()
            .unwrap()
            .remove("library")
            .unwrap()
    };
    let ours_lib = lib(&mut ours_event);
    let py_lib = lib(&mut py_rest);
    // analytics-python sends an unset id as `"anonymousId": null`; outbox
    // leaves it out. Segment reads both as "not set".
    py_rest.as_object_mut().unwrap().retain(|_, v| !v.is_null());
    assert_eq!(
        ours_event, py_rest,
        "outbox: {ours_event}\npython: {py_rest}"
    );
    assert_eq!(
        keys(&ours_lib),
        keys(&py_lib),
        "context.library has name and version"
    );
    assert_eq!(py_lib["name"], "analytics-python");
    assert_eq!(ours_lib["name"], "outbox");
    assert_eq!(ours_lib["version"], env!("CARGO_PKG_VERSION"));
}
