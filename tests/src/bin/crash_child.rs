//! The process the kill -9 campaign (`tests/tests/std_crash.rs`) kills.
//!
//! `crash_child <db> <endpoint> <run> track`: tracks events `r<run>-<i>` in
//! small bursts against the collector, forever; after each burst is
//! committed (`Client::sync`) it prints `acked <id>` per event, so the
//! parent knows which events the Client promised to keep.
//!
//! `crash_child <db> <endpoint> <run> drain`: restores the queue, flushes
//! until it is empty, prints `drained <pending>` and exits.
//!
//! `crash_child <db> <endpoint> <run> overflow`: with a queue of three
//! events and the network down, tracks six (three drop), commits, turns
//! the network on (the loss report goes out with the next batch), prints
//! `synced` and waits to be killed (`tests/tests/std_losses.rs`).
//!
//! Requests carry the User-Agent `crash-child/<run>` so the parent can tell
//! which incarnation sent them.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use outbox_std::http::HttpConfig;
use outbox_std::{Client, Event};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, endpoint, run, mode] = &args[..] else {
        eprintln!("usage: crash_child <db> <endpoint> <run> track|drain|overflow");
        return ExitCode::from(2);
    };
    let client = match Client::builder()
        .path(db)
        .http(
            HttpConfig::new(endpoint.clone(), "crash-key").user_agent(format!("crash-child/{run}")),
        )
        .configure(|c| {
            let c = c
                .max_batch_events(16)
                .retry_backoff(Duration::from_millis(10), Duration::from_millis(100));
            if mode == "overflow" {
                c.max_queue_events(3)
            } else {
                c
            }
        })
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("crash_child: {e}");
            return ExitCode::from(3);
        }
    };
    let mut out = std::io::stdout().lock();
    if mode == "drain" {
        let pending = match client.flush_and_wait(Duration::from_secs(120)) {
            Ok(r) => r.pending,
            Err(e) => {
                eprintln!("crash_child: drain: {e}");
                return ExitCode::from(4);
            }
        };
        let _ = writeln!(out, "drained {pending}");
        let _ = client.shutdown(Duration::from_secs(5));
        return ExitCode::SUCCESS;
    }
    if mode == "overflow" {
        return overflow_then_wait(&client, run);
    }
    let mut i = 0u64;
    loop {
        let burst = 1 + (i % 7);
        let mut ids = Vec::new();
        for _ in 0..burst {
            let id = format!("r{run}-{i}");
            i += 1;
            let event = Event::track("Crash Test")
                .user_id("crash")
                .message_id(id.clone())
                .properties(serde_json::json!({ "pad": "x".repeat((i % 200) as usize) }));
            if let Err(e) = client.track(event) {
                eprintln!("crash_child: track: {e}");
                return ExitCode::from(5);
            }
            ids.push(id);
        }
        if let Err(e) = client.sync() {
            eprintln!("crash_child: sync: {e}");
            return ExitCode::from(6);
        }
        for id in ids {
            let _ = writeln!(out, "acked {id}");
        }
        let _ = out.flush();
        if i.is_multiple_of(5) {
            let _ = client.flush();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `overflow` mode: three drops committed, their report sent, then
/// nothing until the parent kills the process.
fn overflow_then_wait(client: &Client, run: &str) -> ExitCode {
    let steps = (|| -> Result<(), String> {
        client
            .set_network_available(false)
            .map_err(|e| e.to_string())?;
        for i in 0..6 {
            let event = Event::track("Crash Test")
                .user_id("crash")
                .message_id(format!("r{run}-{i}"));
            client.track(event).map_err(|e| e.to_string())?;
        }
        client.sync().map_err(|e| e.to_string())?;
        client
            .set_network_available(true)
            .map_err(|e| e.to_string())?;
        client.flush().map_err(|e| e.to_string())
    })();
    if let Err(e) = steps {
        eprintln!("crash_child: overflow: {e}");
        return ExitCode::from(7);
    }
    println!("synced");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
