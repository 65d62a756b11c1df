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
    let garbled = Downlink::Unreadable {
        fault: Fault::Garbled,
    };
    assert_eq!(
        answers,
        [
            status_of(7),
            garbled,
            garbled,
            Downlink::Unreadable {
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
