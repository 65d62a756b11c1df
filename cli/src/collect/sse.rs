//! `GET /events`: the live events page's Server-Sent Events stream.
//!
//! The connection's own thread runs [`stream`]: it subscribes to the
//! collector's [`Live`] view, writes a `hello` (the whole view), then each
//! update from its mailbox as it comes (`batch`: new events and the
//! counters; `stats`: the counters), and once a second a `tick` (counters
//! and chart, which also shows a dead connection). Writing to a slow viewer
//! may block, but only this thread: the collector only ever pushes into the
//! viewer's bounded mailbox, and a viewer that fell behind gets a fresh
//! `hello` instead of the updates it missed.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::live::{sse_message, Live};
use super::viewer::Next;

/// How often a viewer gets the counters and the chart even when idle.
const TICK: Duration = Duration::from_secs(1);

/// The response head: a stream that ends when the connection does.
const HEAD: &str = "HTTP/1.1 200 OK\r\n\
                    Content-Type: text/event-stream; charset=utf-8\r\n\
                    Cache-Control: no-store\r\n\
                    X-Content-Type-Options: nosniff\r\n\
                    Connection: close\r\n\r\n\
                    retry: 2000\n\n";

/// Streams `live` to one viewer until the connection fails or `stop` is set.
pub fn stream<W: Write>(out: &mut W, live: &Arc<Live>, stop: &AtomicBool) -> io::Result<()> {
    let (subscription, view) = live.subscribe(SystemTime::now());
    out.write_all(HEAD.as_bytes())?;
    out.write_all(sse_message("hello", &view.to_json()).as_bytes())?;
    out.flush()?;
    drop(view);
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let wait = TICK.saturating_sub(last_tick.elapsed());
        match subscription.next(wait) {
            Next::Update(update) => out.write_all(update.as_bytes())?,
            Next::Lagged => {
                let view = subscription.resync(SystemTime::now());
                out.write_all(sse_message("hello", &view.to_json()).as_bytes())?;
            }
            Next::Idle => {}
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            let tick = live.tick(SystemTime::now());
            out.write_all(sse_message("tick", &tick).as_bytes())?;
        }
        out.flush()?;
    }
    Ok(())
}
