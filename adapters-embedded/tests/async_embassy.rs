//! The async run loop on embassy's executor (feature `async`;
//! embassy-executor's std platform, its thread-mode executor): an embassy
//! task awaits `run` over the async flash queue on the simulated flash
//! (suspending at every operation), a virtual clock and a fake server that
//! leaves every third batch unanswered. 120 events: each delivered once, in
//! order, and the flash ends empty.
//!
//! The executor runs for ever, so it gets its own thread; the task sends
//! what it saw back over a channel and the test waits for it (a generous
//! deadline, no timing asserted).
#![cfg(feature = "async")]

mod support;

use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use embassy_executor::Executor;
use outbox_core::{Machine, Seq};
use outbox_embedded::asynchronous::{run, Driver, FlashQueue};
use support::async_app::{config, event, Script, Server, VirtualClock};
use support::async_sim::{AsyncSim, Flash};

const PAGES: usize = 16;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);

/// What the task saw.
struct Seen {
    result: Result<(), String>,
    stored: Vec<(Seq, Vec<u8>)>,
    received: Vec<Vec<u8>>,
    left_on_flash: u64,
}

#[embassy_executor::task]
async fn deliver(done: Sender<Seen>) {
    let queue = FlashQueue::open(AsyncSim::new(Flash::new(PAGES)), REGION)
        .await
        .expect("a blank flash opens");
    let machine = Machine::<32>::new(config(), 3).expect("a valid config");
    let mut buf = vec![0u8; 600];
    let mut driver =
        Driver::new(machine, queue, Server::default(), &mut buf, ()).expect("buffer fits");
    let mut clock = VirtualClock::default();
    let mut script = Script {
        left: (0..120).map(event).collect(),
        ..Script::default()
    };
    let mut event_buf = [0u8; 128];
    let result = run(
        &mut driver,
        &mut clock,
        &mut script,
        &mut event_buf,
        Duration::from_millis(20),
    )
    .await
    .map_err(|e| format!("{e:?}"));
    let (_, mut queue, server, _) = driver.into_parts();
    let left_on_flash = queue.summary().await.map_or(u64::MAX, |s| s.count);
    let _ = done.send(Seen {
        result,
        stored: script.stored,
        received: server.received,
        left_on_flash,
    });
}

#[test]
fn run_on_the_embassy_executor_delivers_every_event_once_in_order() {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
        executor.run(|spawner| spawner.spawn(deliver(tx).expect("the task's pool has room")));
    });
    let seen = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the embassy task finished");
    seen.result.expect("run returned Ok");
    assert_eq!(seen.stored.len(), 120, "every event stored");
    let sent: Vec<Vec<u8>> = seen.stored.iter().map(|(_, p)| p.clone()).collect();
    assert!(
        seen.received == sent,
        "each delivered once, in order: {} received, {} stored",
        seen.received.len(),
        sent.len()
    );
    assert_eq!(seen.left_on_flash, 0, "the flash ends empty");
}
