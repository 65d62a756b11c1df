//! `outbox gateway --stdio` as a process: batches in, statuses out, and
//! device garbage answered without ever stopping the gateway.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::thread;

use common::{outbox, wait_with_bound, Collect, WAIT};
use outbox_embedded::serial::{write_frame, Downlink, Fault, FrameReader, Uplink};

fn batch_frame(id: u64, events: &[&str]) -> Vec<u8> {
    let events: Vec<Vec<u8>> = events.iter().map(|e| e.as_bytes().to_vec()).collect();
    let mut wire = Vec::new();
    write_frame(&mut wire, &Uplink::Batch { id, events }).unwrap();
    wire
}

fn event(id: &str) -> String {
    format!(r#"{{"type":"track","event":"e","anonymousId":"a","messageId":"{id}"}}"#)
}

#[test]
fn stdio_gateway_posts_batches_and_answers_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let collect = Collect::start(&["--reject-field", "poison", "--out", out.to_str().unwrap()]);
    let mut child = outbox()
        .args([
            "gateway",
            "--stdio",
            "--max-frame-bytes",
            "400",
            "--endpoint",
        ])
        .arg(collect.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");

    let mut input = Vec::new();
    input.extend(batch_frame(7, &[&event("g-1"), &event("g-2")]));
    input.extend([0x05, 0x01, 0x00]); // broken stuffing
    input.extend(&batch_frame(8, &[&event("lost")])[..20]); // cut short by the next frame's delimiter
    input.extend(batch_frame(9, &[&"x".repeat(600)])); // over --max-frame-bytes
    input.extend(batch_frame(10, &[r#"{"messageId":"p","poison":1}"#]));
    input.extend(batch_frame(11, &[&event("g-3")]));
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        stdin.write_all(&input).unwrap();
        // Dropping stdin ends the input: the gateway exits 0.
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    writer.join().unwrap();
    let status = wait_with_bound(&mut child, WAIT);
    let answers_wire = reader.join().unwrap();
    let log = err_reader.join().unwrap();
    assert!(status.success(), "{status:?}: {log}");

    let mut answers = Vec::new();
    let mut reader = FrameReader::new([0u8; Downlink::MAX_FRAME_BYTES]);
    let mut rest = &answers_wire[..];
    while !rest.is_empty() {
        let (frame, tail) = reader.feed(rest);
        rest = tail;
        if let Some(frame) = frame {
            answers.push(Downlink::decode(frame.expect("a clean answer frame")).unwrap());
        }
    }
    let status_of = |batch| Downlink::Status {
        batch,
        status: 200,
        retry_after_secs: None,
    };
    // The broken stuffing names no frame; the cut-short frame still
    // names its id, and so does the one too large to read.
    let garbled = |batch| Downlink::Unreadable {
        batch,
        fault: Fault::Garbled,
    };
    assert_eq!(
        answers,
        [
            status_of(7),
            garbled(None),
            garbled(Some(8)),
            Downlink::Unreadable {
                batch: Some(9),
                fault: Fault::TooLarge
            },
            Downlink::Status {
                batch: 10,
                status: 400,
                retry_after_secs: None
            },
            status_of(11),
        ],
        "{log}"
    );
    assert_eq!(log.matches("bad frame").count(), 3, "{log}");
    let (status, lines) = collect.stop("TERM");
    assert!(status.success());
    let summary = lines.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(
        summary.contains("3 events accepted, 0 duplicates"),
        "{summary}"
    );
    let stored = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<String> = stored
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["messageId"].to_string())
        .collect();
    assert_eq!(ids, [r#""g-1""#, r#""g-2""#, r#""g-3""#]);
}

#[test]
fn tcp_gateway_listens_and_takes_the_next_device_after_one_leaves() {
    use std::io::BufRead;
    use std::net::TcpStream;

    let collect = Collect::start(&[]);
    let mut child = outbox()
        .args(["gateway", "--tcp", "127.0.0.1:0", "--endpoint"])
        .arg(collect.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();

    for (round, id) in [(1u64, "t-1"), (2, "t-2")] {
        let mut device = TcpStream::connect(&addr).unwrap();
        device.set_read_timeout(Some(WAIT)).unwrap();
        device.write_all(&[0xff, 0x00]).unwrap(); // line noise first
        device
            .write_all(&batch_frame(round, &[&event(id)]))
            .unwrap();
        let mut reader = FrameReader::new([0u8; Downlink::MAX_FRAME_BYTES]);
        let mut answers = Vec::new();
        let mut buf = [0u8; 64];
        while answers.len() < 2 {
            let n = device.read(&mut buf).unwrap();
            assert!(n > 0, "gateway closed the connection");
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let (frame, tail) = reader.feed(rest);
                rest = tail;
                if let Some(frame) = frame {
                    answers.push(Downlink::decode(frame.unwrap()).unwrap());
                }
            }
        }
        assert_eq!(
            answers,
            [
                Downlink::Unreadable {
                    batch: None,
                    fault: Fault::Garbled
                },
                Downlink::Status {
                    batch: round,
                    status: 200,
                    retry_after_secs: None
                }
            ]
        );
        // Dropping the connection: the gateway goes back to accepting.
    }
    let _ = child.kill();
    let _ = child.wait();
    let (_, lines) = collect.stop("TERM");
    let summary = lines.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(summary.contains("2 events accepted"), "{summary}");
}

/// `--serial` on a pseudo-terminal: the gateway must put the tty in raw
/// mode (a cooked tty would hold frames back until a newline and echo
/// them), then answer frames like any link.
#[cfg(target_os = "linux")]
#[test]
fn serial_gateway_sets_the_tty_raw_and_answers() {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use rustix::termios::{tcgetattr, LocalModes};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let collect = Collect::start(&[]);
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave = ptsname(&master, Vec::new()).unwrap().into_string().unwrap();
    let mut child = outbox()
        .args(["gateway", "--serial", &slave, "--endpoint"])
        .arg(collect.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    // The line discipline is shared: wait until the gateway made it raw.
    let start = Instant::now();
    while tcgetattr(&master)
        .unwrap()
        .local_modes
        .contains(LocalModes::ICANON)
    {
        assert!(start.elapsed() < WAIT, "the gateway never set raw mode");
        thread::sleep(Duration::from_millis(20));
    }
    let mut master = std::fs::File::from(master);
    master
        .write_all(&batch_frame(21, &[&event("s-1")]))
        .unwrap();
    let mut reader_end = master.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = FrameReader::new([0u8; Downlink::MAX_FRAME_BYTES]);
        let mut buf = [0u8; 64];
        loop {
            let Ok(n) = reader_end.read(&mut buf) else {
                return;
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let (frame, tail) = reader.feed(rest);
                rest = tail;
                if let Some(frame) = frame {
                    let _ = tx.send(frame.map(Downlink::decode));
                }
            }
        }
    });
    let answer = rx.recv_timeout(WAIT).expect("no answer on the tty");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        answer,
        Ok(Ok(Downlink::Status {
            batch: 21,
            status: 200,
            retry_after_secs: None
        }))
    );
    let (_, lines) = collect.stop("TERM");
    let summary = lines.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(summary.contains("1 events accepted"), "{summary}");
}

/// Kills the gateway when the test ends, passed or not (a `--tcp` gateway
/// never ends by itself, and would hold the test's output open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An endpoint the test runs itself: it counts POSTs and answers each with
/// 200 after `delay`.
struct SlowEndpoint {
    addr: std::net::SocketAddr,
    posts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowEndpoint {
    fn start(delay: std::time::Duration) -> SlowEndpoint {
        use std::io::BufRead;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&posts);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let counted = Arc::clone(&counted);
                thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(conn);
                    loop {
                        // One request: the head, then Content-Length bytes.
                        let mut length = 0usize;
                        let mut line = String::new();
                        let mut first = true;
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            if first && line.starts_with("POST") {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }
                            first = false;
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        thread::sleep(delay);
                        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowEndpoint { addr, posts }
    }

    fn posts(&self) -> usize {
        self.posts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The frame an answer names, if any.
fn answered_frame(answer: &Downlink) -> Option<u64> {
    match *answer {
        Downlink::Status { batch, .. }
        | Downlink::Unanswered { batch }
        | Downlink::InProgress { batch } => Some(batch),
        Downlink::Unreadable { batch, .. } => batch,
    }
}

/// A gateway on stdio: frames go in through the returned writer, decoded
/// answers come out of the channel.
fn stdio_gateway(
    extra: &[&str],
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::sync::mpsc::Receiver<Downlink>,
) {
    let mut child = outbox()
        .args(["gateway", "--stdio"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn gateway");
    let stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut reader = FrameReader::new([0u8; Downlink::MAX_FRAME_BYTES]);
        let mut buf = [0u8; 256];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let (frame, tail) = reader.feed(rest);
                rest = tail;
                if let Some(frame) = frame {
                    let answer = Downlink::decode(frame.expect("a clean answer frame")).unwrap();
                    if tx.send(answer).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (child, stdin, rx)
}

/// A device whose request timeout is shorter than the endpoint's answer:
/// it re-sends its batch (each attempt a new frame id, the same events)
/// until an answer for the attempt in flight comes back. The gateway must
/// answer within the device's deadline ("in progress" while it posts),
/// never post the same events twice at once, and give a re-send the answer
/// of the post that ended.
#[test]
fn a_slow_endpoint_is_posted_once_and_the_device_gets_its_answer() {
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::{Duration, Instant};

    const DEVICE_TIMEOUT: Duration = Duration::from_secs(3);
    let endpoint = SlowEndpoint::start(Duration::from_secs(6));
    let url = format!("http://{}", endpoint.addr);
    let (mut child, mut stdin, answers) = stdio_gateway(&["--endpoint", &url]);

    let events = [event("slow-1"), event("slow-2")];
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let start = Instant::now();
    let mut attempt = 100u64;
    let mut stale = 0;
    let mut in_progress = 0;
    let outcome = loop {
        if start.elapsed() > WAIT {
            break None;
        }
        stdin.write_all(&batch_frame(attempt, &events)).unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + DEVICE_TIMEOUT;
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match answers.recv_timeout(left) {
                Ok(a) if answered_frame(&a) == Some(attempt) => break Some(a),
                Ok(_) => stale += 1,
                Err(RecvTimeoutError::Timeout) => break None,
                Err(RecvTimeoutError::Disconnected) => panic!("the gateway stopped"),
            }
        };
        match answer {
            Some(Downlink::InProgress { .. }) => {
                in_progress += 1;
                thread::sleep(Duration::from_millis(200));
            }
            Some(a) => break Some(a),
            None => {}
        }
        attempt += 1;
    };
    drop(stdin);
    let status = wait_with_bound(&mut child, WAIT);
    let posts = endpoint.posts();
    assert_eq!(
        outcome,
        Some(Downlink::Status {
            batch: attempt,
            status: 200,
            retry_after_secs: None
        }),
        "after {} attempts ({stale} stale answers, {in_progress} in progress): {posts} POSTs",
        attempt - 99
    );
    assert_eq!(posts, 1, "the same events were posted {posts} times");
    assert!(status.success(), "{status:?}");
}

/// Reads answers from `device` until one names `frame`.
fn answer_for(device: &mut std::net::TcpStream, frame: u64) -> Downlink {
    let mut reader = FrameReader::new([0u8; Downlink::MAX_FRAME_BYTES]);
    let mut buf = [0u8; 64];
    loop {
        let n = device
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("no answer for frame {frame}: {e}"));
        assert!(n > 0, "gateway closed the connection");
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (got, tail) = reader.feed(rest);
            rest = tail;
            if let Some(got) = got {
                let answer = Downlink::decode(got.unwrap()).unwrap();
                if answered_frame(&answer) == Some(frame) {
                    return answer;
                }
            }
        }
    }
}

/// TCP: a client that connects and says nothing, a device that lost power
/// in the middle of a frame (its connection half-open), and more silent
/// connections than the gateway keeps: none of them keeps the next device
/// from being answered.
#[test]
fn silent_and_half_open_connections_never_block_the_next_device() {
    use std::io::BufRead;
    use std::net::TcpStream;

    let collect = Collect::start(&[]);
    let mut child = outbox()
        .args(["gateway", "--tcp", "127.0.0.1:0", "--endpoint"])
        .arg(collect.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn gateway");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let child = KillOnDrop(child);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();

    // A device that was answered, then lost power mid-frame: its end never
    // closes, nor does the silent client's.
    let mut silent = Vec::new();
    let mut lost = TcpStream::connect(&addr).unwrap();
    lost.set_read_timeout(Some(WAIT)).unwrap();
    lost.write_all(&batch_frame(1, &[&event("h-1")])).unwrap();
    assert!(matches!(
        answer_for(&mut lost, 1),
        Downlink::Status { status: 200, .. }
    ));
    let cut = batch_frame(2, &[&event("h-2")]);
    lost.write_all(&cut[..cut.len() / 2]).unwrap();
    silent.push(lost);
    silent.push(TcpStream::connect(&addr).unwrap());

    for (round, id) in [(3u64, "h-3"), (4, "h-4")] {
        let mut device = TcpStream::connect(&addr).unwrap();
        device.set_read_timeout(Some(WAIT)).unwrap();
        device
            .write_all(&batch_frame(round, &[&event(id)]))
            .unwrap();
        assert_eq!(
            answer_for(&mut device, round),
            Downlink::Status {
                batch: round,
                status: 200,
                retry_after_secs: None
            }
        );
        silent.push(device);
        // More silent clients than the gateway keeps connections.
        for _ in 0..10 {
            silent.push(TcpStream::connect(&addr).unwrap());
        }
    }
    drop(child);
    drop(silent);
    let (_, lines) = collect.stop("TERM");
    let summary = lines.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(summary.contains("3 events accepted"), "{summary}");
}

/// A batch frame with no events is answered 200 without a request.
#[test]
fn an_empty_batch_is_answered_without_a_request() {
    let collect = Collect::start(&[]);
    let url = collect.url();
    let (mut child, mut stdin, answers) = stdio_gateway(&["--endpoint", &url]);
    stdin.write_all(&batch_frame(5, &[])).unwrap();
    stdin.write_all(&batch_frame(6, &[&event("e-1")])).unwrap();
    drop(stdin);
    let status = wait_with_bound(&mut child, WAIT);
    assert!(status.success(), "{status:?}");
    let got: Vec<Downlink> = answers.iter().collect();
    let ok = |batch| Downlink::Status {
        batch,
        status: 200,
        retry_after_secs: None,
    };
    assert_eq!(got, [ok(5), ok(6)]);
    let (_, lines) = collect.stop("TERM");
    let summary = lines.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(
        summary.starts_with("summary: 1 batches, 1 events accepted"),
        "{summary}"
    );
}

/// A frame limit no host could allocate is a usage error, not an abort.
#[test]
fn a_frame_limit_too_large_to_allocate_is_a_usage_error() {
    let out = common::run(&[
        "gateway",
        "--stdio",
        "--max-frame-bytes",
        "1000000000000",
        "--endpoint",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-frame-bytes"), "{err}");
}

/// A device that stops in the middle of a frame (power lost while it
/// wrote) has its connection closed by the gateway after the frame stall
/// limit (30 s), so its place is free even where keepalive never fires.
#[test]
fn a_connection_stopped_in_the_middle_of_a_frame_is_closed() {
    use std::io::BufRead;
    use std::net::TcpStream;

    let mut child = outbox()
        .args([
            "gateway",
            "--tcp",
            "127.0.0.1:0",
            "--endpoint",
            "http://127.0.0.1:9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let _child = KillOnDrop(child);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();

    let mut device = TcpStream::connect(&addr).unwrap();
    device.set_read_timeout(Some(WAIT)).unwrap();
    let frame = batch_frame(1, &[&event("cut")]);
    device.write_all(&frame[..frame.len() / 2]).unwrap();
    let mut buf = [0u8; 16];
    match device.read(&mut buf) {
        Ok(0) => {}
        other => panic!("the connection was not closed: {other:?}"),
    }
}
