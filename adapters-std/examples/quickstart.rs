//! Track a few events durably and upload them.
//!
//! Run a collector first (for example `outbox collect`), then:
//! `cargo run -p outbox-std --example quickstart -- http://127.0.0.1:8080 my-write-key`
use std::time::Duration;

use outbox_std::{Client, Event, Notification};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let key = args.next().unwrap_or_else(|| "dev-key".into());

    let client = Client::builder()
        .path("quickstart.db")
        .endpoint(endpoint, key)
        .build()?;
    let notes = client.notifications();

    for n in 1..=5 {
        let event = Event::track("Button Clicked")
            .user_id("user-42")
            .properties(json!({ "n": n }));
        println!("tracked {}", client.track(event)?);
    }

    match client.flush_and_wait(Duration::from_secs(10)) {
        Ok(report) => println!(
            "delivered {}, {} still queued",
            report.delivered, report.pending
        ),
        Err(e) => println!("not everything went out yet ({e}); it stays queued for the next run"),
    }
    for note in notes
        .try_iter()
        .filter(|n| !matches!(n, Notification::Delivered { .. }))
    {
        println!("note: {note:?}");
    }
    println!("dead letters: {}", client.dead_letters()?.len());
    client.shutdown(Duration::from_secs(5))?;
    Ok(())
}
