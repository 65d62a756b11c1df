//! Helpers for the integration tests: run the built `outbox` binary, talk
//! raw HTTP to a collector, send signals. Every wait has a generous bound
//! and fails the test with a message instead of hanging.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The built binary.
pub fn outbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox"));
    cmd.env_remove("OUTBOX_DB")
        .env_remove("OUTBOX_KEY")
        .env_remove("OUTBOX_COLLECT_KEY")
        .env_remove("OUTBOX_DB_KEY")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    cmd
}

/// Runs `outbox ARGS` to completion (with a bound) and returns its output.
pub fn run(args: &[&str]) -> Output {
    run_cmd(outbox().args(args))
}

/// Runs a prepared command to completion, failing the test after [`WAIT`].
pub fn run_cmd(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outbox");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = wait_with_bound(&mut child, WAIT);
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Waits for a child; kills it and fails the test when it takes too long.
pub fn wait_with_bound(child: &mut Child, bound: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("outbox did not finish within {bound:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts a failure was reported as exactly one line on stderr, no panic.
pub fn assert_one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got: {stderr:?}");
    assert!(lines[0].starts_with("outbox: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    stderr
}

/// Sends a signal (by name, e.g. "TERM") to a child process.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// A running `outbox collect`, its stdout read line by line.
pub struct Collect {
    pub child: Child,
    pub addr: SocketAddr,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Collect {
    /// Starts `outbox collect --listen 127.0.0.1:0 EXTRA...` and reads its address.
    pub fn start(extra: &[&str]) -> Collect {
        let mut child = outbox()
            .args(["collect", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn outbox collect");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = match rx.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                panic!("collect printed no first line: {e:?}");
            }
        };
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .expect("address");
        Collect {
            child,
            addr,
            lines: rx,
            seen: vec![first],
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next stdout line (failing the test after [`WAIT`]).
    pub fn next_line(&mut self) -> String {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .expect("collect printed nothing more");
        self.seen.push(line.clone());
        line
    }

    /// Reads lines until one contains `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {needle:?}; saw {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "collect exited; no line with {needle:?}; saw {:#?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// Stops it with `signal` ("TERM" or "INT"); returns its exit status and
    /// every line printed after the ones already read.
    pub fn stop(mut self, sig: &str) -> (ExitStatus, Vec<String>) {
        signal(&self.child, sig);
        let status = wait_with_bound(&mut self.child, WAIT);
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        (status, rest)
    }
}

impl Drop for Collect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// POSTs (or sends `method`) one request on a fresh connection. `Err` when
/// the server closed the connection without answering.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(WAIT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed without an answer",
        ));
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: body.to_string(),
    })
}

/// POSTs a batch body to /v1/batch with a Bearer key (if any).
pub fn post_batch(addr: SocketAddr, key: Option<&str>, body: &str) -> std::io::Result<Resp> {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    request(addr, "POST", "/v1/batch", &headers, body.as_bytes())
}

/// A batch body holding events with these ids (and `extra` fields merged in).
pub fn batch_of(ids: &[&str]) -> String {
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(
            |id| serde_json::json!({ "messageId": id, "event": "test", "properties": { "n": id } }),
        )
        .collect();
    serde_json::json!({ "batch": events, "sentAt": "2026-01-01T00:00:00Z" }).to_string()
}

/// The `messageId`s of the JSON lines in a file, in order; the loss
/// reports a Client adds after a drop are left out (tests/losses.rs checks
/// them: [`loss_reports_in`]).
pub fn ids_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] != outbox_std::LOSS_EVENT)
        .filter_map(|v| {
            v.get("messageId")
                .and_then(|m| m.as_str())
                .map(String::from)
        })
        .collect()
}

/// The loss reports (`outbox dropped events`) among the JSON lines of a file.
pub fn loss_reports_in(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == outbox_std::LOSS_EVENT)
        .collect()
}

/// Runs `outbox ARGS` with `input` on stdin.
pub fn run_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = outbox()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outbox");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = wait_with_bound(&mut child, WAIT);
    let _ = writer.join();
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Runs `outbox send --endpoint ENDPOINT --db DB EXTRA...` with `input`
/// on stdin.
pub fn send_to(endpoint: &str, db: &Path, extra: &[&str], input: &str) -> Output {
    let mut args = vec!["send", "--endpoint", endpoint, "--db", db.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_with_stdin(&args, input)
}

/// Asserts a failure whose last stderr line is the one error line (progress
/// and skipped-line reports may come before it); returns that line.
pub fn assert_error_last(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr: {stderr}; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("outbox: "), "last stderr line: {stderr:?}");
    last
}

/// `outbox status --json --db DB` parsed.
pub fn status_json(db: &Path) -> serde_json::Value {
    let out = run(&["status", "--json", "--db", db.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// A 127.0.0.1 URL nothing listens on.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// `n` valid JSON-lines events with ids `{prefix}-{i}`.
pub fn events(prefix: &str, n: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        text.push_str(
            &serde_json::json!({
                "type": "track", "event": "Test", "userId": "u-1",
                "messageId": id, "properties": { "i": i }
            })
            .to_string(),
        );
        text.push('\n');
        ids.push(id);
    }
    (text, ids)
}

/// Sorted copy.
pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Asserts the command exited 0, showing its stderr when it did not.
pub fn assert_ok(res: &Output) {
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Stores the JSON lines `input` in `db` without uploading any: `outbox
/// send` in manual flush mode to an endpoint nothing listens on, returning
/// once every line is stored (`--no-wait`); asserts it exited 0.
pub fn queue_without_upload(db: &Path, input: &str) {
    let res = send_to(
        &dead_url(),
        db,
        &["--no-wait", "--flush-mode", "manual"],
        input,
    );
    assert_ok(&res);
}

/// Starts a collector writing to `out`, runs `outbox flush` against it for
/// `db` and asserts it exited 0. The collector is returned so it outlives
/// the checks that follow.
pub fn flush_into(db: &Path, out: &Path) -> Collect {
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let res = run(&[
        "flush",
        "--endpoint",
        &c.url(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_ok(&res);
    c
}
