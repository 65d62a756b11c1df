//! gzip request bodies (issue 18 item 3): `outbox collect` takes them
//! within its limit counted on the decoded body, a gzip bomb is refused
//! without being inflated, and `send` compresses by default (`--gzip off`
//! turns it off).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn post_encoded(c: &Collect, encoding: &str, body: &[u8]) -> Resp {
    request(
        c.addr,
        "POST",
        "/v1/batch",
        &[("Content-Encoding", encoding)],
        body,
    )
    .unwrap()
}

#[test]
fn a_gzip_batch_is_accepted_and_its_events_stored() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut c = Collect::start(&["--out", out.to_str().unwrap()]);
    c.wait_for("already holds 0 message ids");
    let r = post_encoded(&c, "gzip", &gzip(batch_of(&["z-1", "z-2"]).as_bytes()));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["accepted"], 2);
    c.wait_for("batch 1 from");
    assert_eq!(sorted(ids_in(&out)), ["z-1", "z-2"]);
}

/// A body sent as several gzip members (RFC 1952 2.2: a gzip file is a
/// series of members; `gzip -c a b`, or a client that compresses as it
/// streams) is one body: every member is decoded, not only the first.
#[test]
fn a_gzip_body_of_several_members_is_decoded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut c = Collect::start(&["--out", out.to_str().unwrap()]);
    c.wait_for("already holds 0 message ids");
    let body = batch_of(&["m-1", "m-2", "m-3"]);
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    let mut two = gzip(a);
    two.extend(gzip(b));
    let r = post_encoded(&c, "gzip", &two);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["accepted"], 3);
    c.wait_for("batch 1 from");
    assert_eq!(sorted(ids_in(&out)), ["m-1", "m-2", "m-3"]);
}

/// 10 MB of zeros compress to about 10 KB: small on the wire, far over
/// the limit decoded. Refused with Segment's 400 for a batch over
/// 500 000 bytes, and the collector is still there (a collector that
/// inflated it all would hold 10 MB for this one request; the decoder
/// stops at the limit + 1 byte).
#[test]
fn a_gzip_bomb_is_refused_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut c = Collect::start(&["--out", out.to_str().unwrap()]);
    c.wait_for("already holds 0 message ids");
    let mut bomb = Vec::from(&br#"{"batch":[{"messageId":"bomb","pad":""#[..]);
    bomb.resize(10_000_000, b'0');
    bomb.extend_from_slice(br#""}]}"#);
    let wire = gzip(&bomb);
    assert!(wire.len() < 500_000, "{} bytes on the wire", wire.len());
    let r = post_encoded(&c, "gzip", &wire);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().contains("limit"),
        "{r:?}"
    );
    c.wait_for("batch 1 from");
    // Just over the limit decoded is refused too; just under is taken.
    let just = |n: usize| {
        let head = r#"{"batch":[{"messageId":"edge-"#.to_string() + &n.to_string();
        let mut b = format!(r#"{head}","pad":""#).into_bytes();
        b.resize(n - 4, b'0');
        b.extend_from_slice(br#""}]}"#);
        assert_eq!(b.len(), n);
        gzip(&b)
    };
    assert_eq!(post_encoded(&c, "gzip", &just(500_001)).status, 400);
    // The event itself is over 32 KiB: the batch limit passed, the event one did not.
    let r = post_encoded(&c, "gzip", &just(500_000));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().contains("event 0"),
        "{r:?}"
    );
    assert!(ids_in(&out).is_empty());
    // Still serving.
    let r = post_encoded(&c, "gzip", &gzip(batch_of(&["after"]).as_bytes()));
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn an_unknown_content_encoding_is_415() {
    let c = Collect::start(&[]);
    let r = post_encoded(&c, "br", batch_of(&["x"]).as_bytes());
    assert_eq!(r.status, 415, "{r:?}");
    assert_eq!(r.json()["code"], "unsupported_media_type");
    let r = post_encoded(&c, "identity", batch_of(&["y"]).as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
}

/// Each request's Content-Encoding and decoded body.
type Log = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;

/// A server that answers 200 and keeps each request's Content-Encoding
/// and decoded body.
struct Recorder {
    url: String,
    seen: Log,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Log = Arc::default();
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    let mut reader = BufReader::new(conn);
                    loop {
                        let (mut length, mut encoding) = (0usize, None);
                        let mut line = String::new();
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
                            if let Some((n, v)) = l.split_once(':') {
                                let n = n.trim().to_ascii_lowercase();
                                if n == "content-length" {
                                    length = v.trim().parse().unwrap();
                                } else if n == "content-encoding" {
                                    encoding = Some(v.trim().to_string());
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        if encoding.as_deref() == Some("gzip") {
                            let mut d = Vec::new();
                            flate2::read::MultiGzDecoder::new(&body[..])
                                .read_to_end(&mut d)
                                .unwrap();
                            body = d;
                        }
                        log.lock().unwrap().push((encoding, body));
                        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if out.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Recorder { url, seen }
    }

    /// The encodings seen, and the messageIds in the decoded bodies.
    fn seen(&self) -> (Vec<Option<String>>, Vec<String>) {
        let seen = self.seen.lock().unwrap();
        let encodings = seen.iter().map(|(e, _)| e.clone()).collect();
        let ids = seen
            .iter()
            .flat_map(|(_, b)| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                v["batch"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["messageId"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        (encodings, ids)
    }
}

/// `send` with `extra` flags; the encodings the server saw.
fn send_with(extra: &[&str]) -> Vec<Option<String>> {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (input, ids) = events("s", 5);
    let mut args = vec![
        "send",
        "--endpoint",
        &server.url,
        "--db",
        db.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run_with_stdin(&args, &input);
    assert_ok(&out);
    let (encodings, got) = server.seen();
    assert_eq!(sorted(got), sorted(ids));
    encodings
}

#[test]
fn send_compresses_by_default_and_gzip_off_turns_it_off() {
    let gz = Some("gzip".to_string());
    let default = send_with(&[]);
    assert!(!default.is_empty());
    assert!(default.iter().all(|e| *e == gz), "{default:?}");
    let off = send_with(&["--gzip", "off"]);
    assert!(off.iter().all(Option::is_none), "{off:?}");
    let level = send_with(&["--gzip", "9"]);
    assert!(level.iter().all(|e| *e == gz), "{level:?}");
    // The old bare flag still means on.
    let bare = send_with(&["--gzip"]);
    assert!(bare.iter().all(|e| *e == gz), "{bare:?}");
    // A bad value is a usage error.
    let bad = run(&["send", "--endpoint", "http://127.0.0.1:1", "--gzip", "10"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The gateway posts through the same wire settings as `send` (its
/// uploader is built from `--gzip` like theirs): gzip unless told off.
#[test]
fn the_gateway_compresses_by_default() {
    use clap::Parser;
    use outbox_cli::args::{Cli, Command, Gzip};
    let wire = |extra: &[&str]| {
        let mut argv = vec![
            "outbox",
            "gateway",
            "--stdio",
            "--endpoint",
            "http://127.0.0.1:1",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Gateway(g) => g.wire.gzip,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(wire(&[]), Gzip(Some(outbox_std::http::DEFAULT_GZIP_LEVEL)));
    assert_eq!(wire(&["--gzip", "off"]), Gzip(None));
    assert_eq!(wire(&["--gzip", "4"]), Gzip(Some(4)));
}
