//! The process `tests/tests/std_sessions.rs` kills with kill -9 while a
//! session is open.
//!
//! `session_child <db> <endpoint>`: starts a Client (version 1.0, build 1,
//! sessions with the default 60 s timeout), reports the app in the
//! foreground, tracks `Tick` events `t-<i>` for 1.5 s (by its own clock)
//! so the time last seen is stored more than once, commits, prints `ready`
//! and waits to be killed.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use outbox_std::{Client, Event, FlushMode, Lifecycle};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, endpoint] = &args[..] else {
        eprintln!("usage: session_child <db> <endpoint>");
        return ExitCode::from(2);
    };
    let client = match Client::builder()
        .path(db)
        .endpoint(endpoint.clone(), "session-key")
        .app("session-child", "1.0")
        .app_build("1")
        .flush_mode(FlushMode::Manual)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session_child: {e}");
            return ExitCode::from(3);
        }
    };
    if let Err(e) = client.lifecycle(Lifecycle::Foreground) {
        eprintln!("session_child: lifecycle: {e}");
        return ExitCode::from(4);
    }
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        let event = Event::track("Tick")
            .user_id("u-1")
            .message_id(format!("t-{i}"));
        if let Err(e) = client.track(event) {
            eprintln!("session_child: track: {e}");
            return ExitCode::from(5);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Err(e) = client.sync() {
        eprintln!("session_child: sync: {e}");
        return ExitCode::from(6);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
