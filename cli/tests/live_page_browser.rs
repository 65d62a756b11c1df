//! The live events page in a real browser (headless chromium): under
//! `outbox collect --ui` while `outbox send` delivers, with JavaScript off,
//! and in `outbox demo`. Chromium missing fails these tests (it does not
//! skip them); `./scripts/test` installs it.

mod browser;
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use browser::{Browser, BROWSER_WAIT};
use common::*;

/// A string that would run if it ever reached the page as markup.
const EVIL: &str = "<script>document.body.dataset.pwned='1'</script><img src=x onerror=\"document.body.dataset.pwned='2'\">";

fn send(c: &Collect, db: &std::path::Path, lines: &[serde_json::Value]) -> std::process::Output {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    run_with_stdin(
        &[
            "send",
            "--endpoint",
            &c.url(),
            "--key",
            "k3y",
            "--db",
            db.to_str().unwrap(),
        ],
        &input,
    )
}

fn script_tags(html: &str) -> usize {
    html.to_ascii_lowercase().matches("<script").count()
}

#[test]
fn the_page_shows_what_send_delivers_live_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut c = Collect::start(&["--ui", "--key", "k3y", "--reject-field", "poison"]);
    c.wait_for("live events page on");
    let page = format!("{}/", c.url());

    // Before the browser: a known event, one with markup in every field,
    // and a poison one (rejected with 400).
    let first = [
        serde_json::json!({"event": "Order Completed", "userId": "u-1",
                           "messageId": "order-42", "properties": {"total": 9.5}}),
        serde_json::json!({"type": "track", "event": EVIL, "userId": EVIL, "messageId": EVIL,
                           "properties": {EVIL: EVIL}}),
        serde_json::json!({"event": "Bad", "userId": "u-2", "properties": {"poison": true}}),
    ];
    let out = send(&c, &db, &first);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut b = Browser::open(&page);
    b.wait_until(
        "document.body.dataset.state === 'live' && \
         document.getElementById('rows').dataset.renderedBy === 'script'",
        "the live state, rendered by the script from the stream",
    );
    b.wait_until(
        "document.getElementById('accepted').textContent === '2'",
        "2 accepted",
    );

    // Delivered while the page is open: it arrives through the stream.
    let out = send(
        &c,
        &db,
        &[serde_json::json!({"event": "Live Arrival", "userId": "u-9", "messageId": "live-7"})],
    );
    assert_ok(&out);
    b.wait_until(
        "document.getElementById('accepted').textContent === '3' && \
         document.querySelector('#rows tr td:nth-child(5)').textContent === 'live-7'",
        "the event sent after the page opened, on top, and 3 accepted",
    );

    let dom = b.dom();
    for needle in ["Order Completed", "order-42", "Live Arrival", "u-9"] {
        assert!(
            dom.contains(needle),
            "{needle} missing from the DOM:\n{dom}"
        );
    }
    // The batch with the poison event and the halves holding it: 400s.
    assert_eq!(
        b.eval("Number(document.getElementById('rejected').textContent) >= 1"),
        true
    );
    assert_eq!(
        b.eval("document.querySelector('#rejections td').textContent"),
        "400"
    );
    assert_eq!(
        b.eval("document.querySelector('#rejections td:nth-child(2)').textContent.includes('\"poison\"')"),
        true
    );
    // The markup arrived as text in every field, and nothing from it ran.
    assert_eq!(script_tags(&dom), 1, "only the page's own script:\n{dom}");
    assert_eq!(b.eval("document.scripts.length"), 1);
    assert_eq!(b.eval("document.images.length"), 0);
    assert_eq!(
        b.eval("document.body.dataset.pwned === undefined"),
        true,
        "{dom}"
    );
    let cells_with_evil = b.eval(&format!(
        "[...document.querySelectorAll('#rows td')].filter(td => td.textContent === {}).length",
        serde_json::Value::from(EVIL)
    ));
    assert_eq!(cells_with_evil, 3, "event, userId and messageId as text");

    // The filter box.
    b.eval(
        "(() => { const f = document.getElementById('filter'); f.value = 'order'; \
         f.dispatchEvent(new Event('input')); })()",
    );
    assert_eq!(b.eval("document.querySelectorAll('#rows tr').length"), 1);
    assert_eq!(
        b.eval("document.querySelector('#rows tr td:nth-child(5)').textContent"),
        "order-42"
    );

    // Nothing about the key.
    assert!(!dom.contains("k3y"), "{dom}");
    drop(b);
    let _ = c.stop("TERM");
}

#[test]
fn with_javascript_off_the_page_is_a_refreshing_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut c = Collect::start(&["--ui", "--key", "k3y"]);
    c.wait_for("live events page on");
    let out = send(
        &c,
        &db,
        &[
            serde_json::json!({"event": "Signed Up", "userId": "u-1", "messageId": "known-1"}),
            // `send` checks the type; tests/live_page.rs posts one with markup.
            serde_json::json!({"type": "track", "event": EVIL, "userId": EVIL, "messageId": EVIL,
                               "properties": {EVIL: EVIL}}),
        ],
    );
    assert_ok(&out);
    let mut b = Browser::open_without_javascript(&format!("{}/", c.url()));
    let dom = b.wait_for_dom("the server-rendered table", |d| d.contains("known-1"));
    assert!(dom.contains("id=\"accepted\">2<"), "{dom}");
    assert!(
        dom.contains("known-1") && dom.contains("Signed Up"),
        "{dom}"
    );
    assert!(dom.contains("JavaScript is off"), "{dom}");
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "refreshes itself: {dom}"
    );
    assert!(!dom.contains("data-state"), "no script ran: {dom}");
    assert_eq!(script_tags(&dom), 1, "only the page's own tag:\n{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.body.dataset.pwned"),
        "{dom}"
    );
    let _ = c.stop("TERM");
}

#[test]
fn the_demo_prints_its_page_and_the_page_follows_it() {
    let mut child = outbox()
        .args(["demo", "--events", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(BROWSER_WAIT)
            .expect("the demo printed no page address");
        if let Some(rest) = line.split("live events page: ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mut b = Browser::open(&url);
    b.wait_until(
        "document.getElementById('rows').dataset.renderedBy === 'script' && \
         Number(document.getElementById('accepted').textContent) > 0 && \
         document.querySelectorAll('#rows tr').length > 0",
        "the demo's events arriving",
    );
    let first = b.eval("document.querySelector('#rows tr td:nth-child(3)').textContent");
    assert_eq!(first, "Demo Event");
    drop(b);
    let status = wait_with_bound(&mut child, Duration::from_secs(180));
    assert!(status.success(), "the demo failed");
}

#[test]
fn the_page_keeps_at_most_n_rows_as_events_stream_in() {
    let mut c = Collect::start(&["--ui", "--ui-events", "5"]);
    c.wait_for("live events page on");
    let mut b = Browser::open(&format!("{}/", c.url()));
    b.wait_until("document.body.dataset.state === 'live'", "the live state");
    for batch in [
        ["e-0", "e-1", "e-2"],
        ["e-3", "e-4", "e-5"],
        ["e-6", "e-7", "e-8"],
    ] {
        assert_eq!(
            post_batch(c.addr, None, &batch_of(&batch)).unwrap().status,
            200
        );
    }
    b.wait_until(
        "document.getElementById('accepted').textContent === '9'",
        "9 accepted",
    );
    let ids = b.eval(
        "[...document.querySelectorAll('#rows tr td:nth-child(5)')].map(td => td.textContent)",
    );
    assert_eq!(ids, serde_json::json!(["e-8", "e-7", "e-6", "e-5", "e-4"]));
    let _ = c.stop("TERM");
}
