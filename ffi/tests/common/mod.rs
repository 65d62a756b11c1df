//! A tiny /v1/batch collector on 127.0.0.1 for the ffi tests: it answers
//! every POST with 200 and keeps each batch's events.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::Value;

/// A running collector; its events are every batch's `batch` array, in order.
pub struct Collector {
    pub endpoint: String,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    pub fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&events);
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let store = Arc::clone(&store);
                thread::spawn(move || serve(conn, &store));
            }
        });
        Collector { endpoint, events }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events").clone()
    }
}

fn serve(conn: TcpStream, store: &Mutex<Vec<Value>>) {
    let mut out = conn.try_clone().expect("clone stream");
    let mut reader = BufReader::new(conn);
    loop {
        let mut len = 0usize;
        let mut gzip = false;
        let mut line = String::new();
        // Request line, then headers up to the empty line.
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().expect("content-length");
                }
                if k.eq_ignore_ascii_case("content-encoding") {
                    gzip = v.trim().eq_ignore_ascii_case("gzip");
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // The std Client gzips its bodies by default.
        if gzip {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("a gzip body");
            body = plain;
        }
        let batch: Value = serde_json::from_slice(&body).expect("a JSON batch");
        if let Some(list) = batch["batch"].as_array() {
            store.lock().expect("events").extend(list.iter().cloned());
        }
        let answer = b"{\"success\":true}";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(answer).is_err() {
            return;
        }
    }
}
