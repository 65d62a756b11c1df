//! `outbox collect --ui` over plain HTTP (no browser): the page keeps the
//! last N events, a viewer that never reads does not slow ingestion, client
//! markup comes back escaped in the table and as escaped JSON in the
//! stream, and the key shows nowhere. tests/live_page_browser.rs loads the
//! page in chromium.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const EVIL: &str = "<script>alert('x')</script>\"&{{rows}}";

/// An open `GET /events`, read as it comes.
struct Stream {
    s: TcpStream,
    buf: String,
}

impl Stream {
    fn open(addr: SocketAddr) -> Stream {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Stream {
            s,
            buf: String::new(),
        }
    }

    /// Reads until the `n`th SSE message named `event` is in; returns its
    /// data, parsed and raw (fails the test after [`WAIT`]).
    fn nth(&mut self, event: &str, n: usize) -> (Value, String) {
        let deadline = Instant::now() + WAIT;
        let head = format!("event: {event}\ndata: ");
        loop {
            // Complete messages only: each ends with a blank line.
            let complete = match self.buf.rfind("\n\n") {
                Some(end) => &self.buf[..end],
                None => "",
            };
            let found = complete
                .split("\n\n")
                .filter_map(|m| m.strip_prefix(&head))
                .nth(n - 1);
            if let Some(data) = found {
                let value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
                return (value, data.to_string());
            }
            assert!(Instant::now() < deadline, "no {event} #{n} in {}", self.buf);
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("the stream ended: {}", self.buf),
                Ok(k) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..k])),
                Err(_) => {} // nothing yet
            }
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"").unwrap()
}

fn table_rows(html: &str) -> usize {
    let body = html.split("<tbody id=\"rows\">").nth(1).unwrap();
    body.split("</tbody>")
        .next()
        .unwrap()
        .matches("<tr>")
        .count()
}

#[test]
fn the_page_keeps_the_last_n_events() {
    let mut c = Collect::start(&["--ui", "--ui-events", "50"]);
    c.wait_for("live events page on");
    let ids: Vec<String> = (0..80).map(|i| format!("e-{i}")).collect();
    for chunk in ids.chunks(20) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        assert_eq!(
            post_batch(c.addr, None, &batch_of(&chunk)).unwrap().status,
            200
        );
    }
    // Sent again: absorbed, counted as duplicates, not shown again.
    let again = post_batch(c.addr, None, &batch_of(&["e-0", "e-79"])).unwrap();
    assert_eq!(again.json()["duplicates"], 2);
    let page = get(c.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"duplicates\">2<"), "{}", page.body);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(table_rows(&page.body), 50, "{}", page.body);
    assert!(page.body.contains("<td>e-79</td>") && page.body.contains("<td>e-30</td>"));
    assert!(!page.body.contains("<td>e-29</td>"), "{}", page.body);
    assert!(page.body.contains("id=\"accepted\">80<"), "{}", page.body);

    let (hello, _) = Stream::open(c.addr).nth("hello", 1);
    let events = hello["events"].as_array().unwrap();
    assert_eq!(events.len(), 50);
    assert_eq!(events[0]["messageId"], "e-79", "newest first");
    assert_eq!(events[49]["messageId"], "e-30");
    assert_eq!(hello["counters"]["accepted"], 80);
}

#[test]
fn a_viewer_that_never_reads_does_not_slow_ingestion() {
    let mut c = Collect::start(&["--ui"]);
    c.wait_for("live events page on");
    // A viewer that asks for the stream and then reads nothing at all,
    // with a small receive buffer (so the kernel does not grow it to hold
    // everything).
    let mut stalled = connect_with_small_receive_buffer(c.addr);
    write!(stalled, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Enough updates (~16 MB) to fill the socket buffers between them a few
    // times over: the stream's writer blocks, the collector must not.
    let props = json!({ "pad": "x".repeat(280) });
    let batches = 400;
    let per_batch = 100;
    for b in 0..batches {
        let events: Vec<Value> = (0..per_batch)
            .map(|i| {
                json!({"type": "track", "event": "Load", "userId": "u",
                            "messageId": format!("b{b}-{i}"), "properties": props})
            })
            .collect();
        let body = json!({ "batch": events }).to_string();
        let r = post_batch(c.addr, None, &body).unwrap_or_else(|e| {
            panic!("batch {b} got no answer (did the collector wait for the stalled viewer?): {e}")
        });
        assert_eq!(r.status, 200, "batch {b}: {r:?}");
    }
    let last = c.wait_for(&format!("batch {batches} from"));
    assert!(last.contains(&format!("{per_batch} accepted")), "{last}");
    // The page still answers, and counts every event.
    let page = get(c.addr, "/");
    assert!(
        page.body
            .contains(&format!("id=\"accepted\">{}<", batches * per_batch)),
        "{}",
        &page.body[..page.body.len().min(3000)]
    );
    // The stalled viewer, reading at last, was let go behind: its old
    // updates were dropped and it got a fresh snapshot (a second hello).
    stalled
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut s = Stream {
        s: stalled,
        buf: String::new(),
    };
    let (resync, _) = s.nth("hello", 2);
    assert_eq!(
        resync["counters"]["accepted"].as_u64().unwrap(),
        (batches * per_batch) as u64
    );
}

fn connect_with_small_receive_buffer(addr: SocketAddr) -> TcpStream {
    use rustix::net::{connect, socket, sockopt, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
    connect(&fd, &addr).unwrap();
    TcpStream::from(fd)
}

#[test]
fn markup_in_every_field_is_escaped_in_the_table_and_the_stream() {
    let mut c = Collect::start(&["--ui", "--reject-field", "poison"]);
    c.wait_for("live events page on");
    let mut stream = Stream::open(c.addr);
    stream.nth("hello", 1);
    let evil_event = json!({"type": EVIL, "event": EVIL, "userId": EVIL, "messageId": EVIL,
                            "properties": {EVIL: EVIL}});
    let r = post_batch(c.addr, None, &json!({"batch": [evil_event]}).to_string()).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // A rejection whose reason quotes the client's messageId.
    let poison = json!({"batch": [{"messageId": EVIL, "poison": 1}]}).to_string();
    assert_eq!(post_batch(c.addr, None, &poison).unwrap().status, 400);

    // The table (and the filter, which is echoed into the page).
    let q = "%3Cscript%3E";
    let page = get(c.addr, &format!("/?q={q}"));
    let html = page.body.to_ascii_lowercase();
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only ours: {}",
        page.body
    );
    let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;{{rows}}";
    // type, event, userId, messageId cells, and the rejection's reason.
    assert!(
        page.body.matches(&format!("<td>{escaped}</td>")).count() >= 4,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"&lt;script&gt;\""),
        "{}",
        page.body
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));

    // The stream: escaped JSON, the same text once parsed.
    let (batch, raw) = stream.nth("batch", 1);
    assert!(
        !raw.contains('<') && !raw.contains('>') && !raw.contains('&'),
        "{raw}"
    );
    let e = &batch["events"][0];
    for field in ["type", "event", "userId", "messageId"] {
        assert_eq!(e[field], EVIL, "{field}");
    }
    let props: Value = serde_json::from_str(e["properties"].as_str().unwrap()).unwrap();
    assert_eq!(props, json!({EVIL: EVIL}));
    let (stats, raw) = stream.nth("stats", 1);
    assert!(!raw.contains('<'), "{raw}");
    assert_eq!(stats["counters"]["rejected"][0]["status"], 400);
    assert!(stats["counters"]["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .contains(EVIL));
}

#[test]
fn the_key_shows_nowhere() {
    let key = "s3cret-k3y";
    let mut c = Collect::start(&["--ui", "--key", key]);
    c.wait_for("live events page on");
    let mut stream = Stream::open(c.addr);
    stream.nth("hello", 1);
    // The key in the header, in the body, and (by mistake) in an event.
    let body = json!({"writeKey": key, "batch": [
        {"messageId": "m1", "event": "E", "userId": key, "properties": {"writeKey": key}}
    ]})
    .to_string();
    let r = post_batch(c.addr, Some(key), &body).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let unkeyed = batch_of(&["m2"]);
    assert_eq!(
        post_batch(c.addr, Some("wrong"), &unkeyed).unwrap().status,
        401
    );
    let (_, raw_batch) = stream.nth("batch", 1);
    let (_, raw_stats) = stream.nth("stats", 1);
    let page = get(c.addr, "/").body;
    assert!(page.contains("<td>m1</td>"), "{page}");
    for text in [&page, &raw_batch, &raw_stats, &stream.buf] {
        assert!(!text.contains(key), "{text}");
    }
}

#[test]
fn without_ui_there_is_no_page() {
    let c = Collect::start(&[]);
    assert_eq!(get(c.addr, "/").status, 404);
    assert_eq!(get(c.addr, "/events").status, 404);
    // --ui-events needs --ui.
    let out = run(&["collect", "--listen", "127.0.0.1:0", "--ui-events", "5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Faults that make the network look down for good.
struct Down;

impl outbox_cli::collect::Faults for Down {
    fn refuse(&mut self) -> bool {
        true
    }
}

#[test]
fn a_simulated_outage_refuses_batches_but_not_the_page() {
    use outbox_cli::collect::{Collector, Config};
    let config = Config {
        live_events: Some(10),
        ..Config::default()
    };
    let c = Collector::start("127.0.0.1:0", config, Box::new(Down), None).unwrap();
    assert!(
        post_batch(c.addr(), None, &batch_of(&["a"])).is_err(),
        "closed unanswered"
    );
    let page = get(c.addr(), "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"faults\">1<"), "{}", page.body);
    let (hello, _) = Stream::open(c.addr()).nth("hello", 1);
    assert_eq!(hello["counters"]["faults"]["refused"], 1);
    assert_eq!(c.shutdown().refused, 1);
}
