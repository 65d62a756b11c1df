//! A real browser for the live page tests: Debian's headless chromium,
//! driven over the Chrome DevTools protocol (a WebSocket to 127.0.0.1, by
//! the `tungstenite` crate).
//!
//! Why the protocol and not `--dump-dom`: the page holds a Server-Sent
//! Events stream open, so chromium's "dump when the page is done" either
//! comes right after the load event (before the stream said anything) or,
//! with `--virtual-time-budget`, never (an open fetch stops virtual time);
//! and with `--blink-settings=scriptEnabled=false` it dumps nothing. Over
//! the protocol a test waits, with a generous deadline, until the page
//! shows what it should, then reads the DOM.
//!
//! Chromium missing is a failure, not a skip: `./scripts/test` installs it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any wait on the browser may take before the test fails.
pub const BROWSER_WAIT: Duration = Duration::from_secs(90);

/// The chromium binary: `OUTBOX_TEST_CHROMIUM`, else `chromium` on PATH.
pub fn chromium_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("OUTBOX_TEST_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "OUTBOX_TEST_CHROMIUM is {}, which is not a file",
            p.display()
        );
        return p;
    }
    for name in ["chromium", "chromium-browser"] {
        if let Ok(path) = std::env::var("PATH") {
            for dir in path.split(':') {
                let candidate = PathBuf::from(dir).join(name);
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
    }
    panic!(
        "chromium is not installed, and the live page's browser test needs it: \
         run ./scripts/test (it installs it), or `apt-get install -y chromium` \
         (or set OUTBOX_TEST_CHROMIUM to a chromium binary)"
    );
}

fn headless(profile: &std::path::Path) -> Command {
    let mut cmd = Command::new(chromium_binary());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--window-size=1200,800",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null())
    // Its own process group: dropping the browser ends its helpers too.
    .process_group(0);
    cmd
}

fn kill_group(child: &mut Child) {
    // The group we created for this browser (its id is the child's).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// A headless chromium showing one page, driven over the DevTools protocol.
pub struct Browser {
    child: Child,
    ws: WebSocket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromium, attaches to its page and loads `url` there.
    pub fn open(url: &str) -> Browser {
        let mut b = Browser::start();
        b.call("Page.navigate", json!({ "url": url }));
        b
    }

    /// Like [`Browser::open`], with JavaScript off for the page. Read it
    /// with [`Browser::dom`] (the script-free way), not `eval`.
    pub fn open_without_javascript(url: &str) -> Browser {
        let mut b = Browser::start();
        b.call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": true }),
        );
        b.call("Page.navigate", json!({ "url": url }));
        b
    }

    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = headless(profile.path());
        cmd.args([
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(ws) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(ws.trim().to_string());
                }
            }
        });
        let browser_ws = match rx.recv_timeout(BROWSER_WAIT) {
            Ok(url) => url,
            Err(e) => {
                kill_group(&mut child);
                panic!("chromium printed no DevTools address: {e:?}");
            }
        };
        let host = browser_ws
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("DevTools host:port")
            .to_string();
        // The page target for our URL (it may take a moment to appear).
        let deadline = Instant::now() + BROWSER_WAIT;
        let page_ws = loop {
            let list = http_get(&host, "/json/list");
            let targets: Value = serde_json::from_str(&list).unwrap_or(Value::Null);
            let found = targets.as_array().and_then(|t| {
                t.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
            });
            if let Some(ws) = found {
                break ws;
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                panic!("no page target in {list}");
            }
            thread::sleep(Duration::from_millis(100));
        };
        let ws = WebSocket::connect(&host, &page_ws);
        Browser {
            child,
            ws,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Calls a protocol method and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|err| panic!("{method} failed: {err}"))
    }

    /// Calls a protocol method: its result, or the error it answered.
    pub fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.ws
            .send(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let msg: Value = serde_json::from_str(&self.ws.recv()).expect("protocol JSON");
            if msg["id"] == id {
                if let Some(err) = msg.get("error") {
                    return Err(err.clone());
                }
                return Ok(msg["result"].clone());
            }
            // An event (no id): not asked for, skipped.
        }
    }

    /// Evaluates a JavaScript expression in the page; its value as JSON.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits (up to [`BROWSER_WAIT`]) until `expression` is true in the
    /// page; fails the test with `what` and the page's text otherwise.
    pub fn wait_until(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            // While the page loads, its elements may not be there yet.
            let check = format!(
                "(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"
            );
            if self.eval(&check) == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("the page never showed {what} ({expression}); it shows:\n{text}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's DOM, serialised (through the DOM domain, so it works
    /// with JavaScript off too).
    pub fn dom(&mut self) -> String {
        self.try_dom()
            .unwrap_or_else(|err| panic!("cannot read the DOM: {err}"))
    }

    fn try_dom(&mut self) -> Result<String, Value> {
        let doc = self.try_call("DOM.getDocument", json!({ "depth": 0 }))?;
        let html = self.try_call(
            "DOM.getOuterHTML",
            json!({ "nodeId": doc["root"]["nodeId"] }),
        )?;
        Ok(html["outerHTML"].as_str().unwrap_or_default().to_string())
    }

    /// Waits (up to [`BROWSER_WAIT`]) until the serialised DOM satisfies
    /// `ok`; returns it. Fails the test with `what` and the DOM otherwise.
    pub fn wait_for_dom(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            // A reload in between replaces the document: ask again.
            let dom = self.try_dom().unwrap_or_default();
            if ok(&dom) {
                return dom;
            }
            if Instant::now() > deadline {
                panic!("the page never showed {what}; its DOM:\n{dom}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// One GET to the DevTools endpoint; the body ("" when it failed).
fn http_get(host: &str, path: &str) -> String {
    let Ok(s) = TcpStream::connect(host) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        &s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut r = BufReader::new(s);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new();
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if r.read_exact(&mut body).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The DevTools connection: a WebSocket (the `tungstenite` crate) over one
/// TCP stream to 127.0.0.1; text messages out and in.
struct WebSocket(tungstenite::WebSocket<TcpStream>);

impl WebSocket {
    fn connect(host: &str, url: &str) -> WebSocket {
        let stream = TcpStream::connect(host).expect("connect to DevTools");
        stream.set_read_timeout(Some(BROWSER_WAIT)).unwrap();
        let (ws, _) = tungstenite::client(url, stream).expect("WebSocket handshake");
        WebSocket(ws)
    }

    fn send(&mut self, text: &str) {
        self.0
            .send(tungstenite::Message::text(text))
            .expect("WebSocket send");
    }

    fn recv(&mut self) -> String {
        loop {
            match self.0.read().expect("WebSocket message") {
                tungstenite::Message::Text(text) => return text.as_str().to_owned(),
                tungstenite::Message::Close(_) => {
                    panic!("the browser closed the DevTools connection")
                }
                _ => continue, // ping, pong, binary
            }
        }
    }
}
