//! End to end on one host: a simulated device (the core's machine and
//! driver, the flash queue on the simulated NOR flash, the serial
//! transport) talks over an in-process pipe to the gateway, which posts to
//! a collector on 127.0.0.1 that injects 503s and refuses one poison event.
//! The device loses power in the middle of a flash write or erase: only
//! what the flash holds survives, and a new machine restores from it.
//! Every good event must reach the collector exactly once after dedup.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use outbox_cli::collect::{Collector, Config as CollectConfig, RandomFaults};
use outbox_cli::gateway::Gateway;
use outbox_core::{
    Config, Driver, DriverError, InputError, Instant, Machine, Observer, Output, Overflow, Seq,
    Transport,
};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;
use outbox_embedded::serial::SerialTransport;
use outbox_std::http::{HttpConfig, HttpUploader};

/// The device's end of the serial line.
struct DeviceEnd {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    pending: VecDeque<u8>,
}

impl DeviceEnd {
    fn pull(&mut self) -> Result<(), embedded_io::ErrorKind> {
        loop {
            match self.rx.try_recv() {
                Ok(bytes) => self.pending.extend(bytes),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) if !self.pending.is_empty() => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(embedded_io::ErrorKind::BrokenPipe),
            }
        }
    }
}

impl embedded_io::ErrorType for DeviceEnd {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::ReadReady for DeviceEnd {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        self.pull()?;
        Ok(!self.pending.is_empty())
    }
}

impl embedded_io::Read for DeviceEnd {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.pull()?;
        let n = buf.len().min(self.pending.len());
        for (slot, byte) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl embedded_io::Write for DeviceEnd {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.tx
            .send(buf.to_vec())
            .map_err(|_| embedded_io::ErrorKind::BrokenPipe)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The gateway's end: blocking reads, ending when the device end is gone.
struct HostIn(Receiver<Vec<u8>>, VecDeque<u8>);

impl io::Read for HostIn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(bytes) => self.1.extend(bytes),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        for (slot, byte) in buf.iter_mut().zip(self.1.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

struct HostOut(Sender<Vec<u8>>);

impl io::Write for HostOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// 6 pages of 4 KiB, written in 4-byte words.
type Flash = SimFlash<1, 4, 4096>;
const FLASH_PAGES: usize = 6;
const REGION: std::ops::Range<u32> = 0..(FLASH_PAGES as u32 * 4096);

const EVENTS: u32 = 300;
const POISON: u32 = 231;
const BOUND: Duration = Duration::from_secs(60);

fn event(n: u32) -> Vec<u8> {
    let poison = if n == POISON { r#","poison":true"# } else { "" };
    format!(
        r#"{{"type":"track","event":"tick","anonymousId":"dev-1","messageId":"dev-1-{n}","properties":{{"n":{n}{poison}}}}}"#
    )
    .into_bytes()
}

/// The device's machine; the queue's byte limit comes from the flash, and
/// a full queue refuses new events (the device waits and tracks again).
fn machine(queue: &FlashQueue<&mut Flash>) -> Machine<256> {
    let config = Config::builder()
        .max_queue_events(64)
        .max_queue_bytes(queue.max_queue_bytes(512, 64))
        .overflow(Overflow::RejectNew)
        .max_batch_events(16)
        .max_event_bytes(512)
        .max_batch_bytes(4096)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Machine::new(config, 7).unwrap()
}

/// What the device's observer saw.
#[derive(Default)]
struct Seen {
    delivered: u64,
    rejected: Vec<Seq>,
}

/// Whether the device's flash still has power.
fn powered<T: Transport, O: Observer>(
    d: &mut Driver<'_, FlashQueue<&mut Flash>, T, O, 256>,
) -> bool {
    d.store_mut().flash_mut().is_powered()
}

/// Runs one power cycle of the device: open the flash queue, restore,
/// track `events` (stopping early if the power fails), then poll until
/// `done` says so or the power fails. Returns how many events were tracked.
fn power_cycle(
    flash: &mut Flash,
    link: &mut DeviceEnd,
    events: std::ops::Range<u32>,
    seen: &mut Seen,
    done: impl Fn(&Machine<256>) -> bool,
) -> u32 {
    let origin = StdInstant::now();
    let now = || Instant::from_millis(origin.elapsed().as_millis() as u64);
    let mut buf = vec![0u8; 4096];
    let observer = |o: &Output| match o {
        Output::Delivered { first, last } => seen.delivered += last - first + 1,
        Output::Rejected { seq, .. } => seen.rejected.push(*seq),
        _ => {}
    };
    let queue = FlashQueue::open(flash, REGION).expect("the flash opens");
    let mut driver = Driver::new(
        machine(&queue),
        queue,
        SerialTransport::new(link),
        &mut buf,
        observer,
    )
    .unwrap();
    driver.start(now()).unwrap();
    let mut tracked = 0;
    let mut events = events.peekable();
    while let Some(&n) = events.peek() {
        assert!(origin.elapsed() < BOUND, "device stuck at event {n}");
        match driver.track(now(), &event(n)) {
            Ok(_) => {
                tracked += 1;
                events.next();
            }
            Err(_) if !powered(&mut driver) => return tracked,
            // Full: deliver some first, then track it again.
            Err(DriverError::Input(InputError::QueueFull)) => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("track {n}: {e}"),
        }
        let polled = driver.poll(now());
        if !powered(&mut driver) {
            return tracked;
        }
        polled.unwrap();
    }
    while !done(driver.machine()) {
        assert!(origin.elapsed() < BOUND, "device not done within {BOUND:?}");
        let polled = driver.poll(now());
        if !powered(&mut driver) {
            return tracked;
        }
        polled.unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    tracked
}

#[test]
fn a_device_delivers_everything_through_the_gateway_across_power_cuts() {
    // Power fails after this many bytes written or erased: early, in the
    // middle, and after the flash ring has wrapped (24 KiB).
    for (cut_after, wrapped) in [(3_000u64, false), (17_777, false), (55_001, true)] {
        deliver_across_a_power_cut(cut_after, wrapped);
    }
}

fn deliver_across_a_power_cut(cut_after: u64, wrapped: bool) {
    let collector = Collector::start(
        "127.0.0.1:0",
        CollectConfig {
            reject_field: Some("poison".into()),
            ..CollectConfig::default()
        },
        Box::new(RandomFaults::new(0.3, 503, None, 0.0, cut_after)),
        None,
    )
    .unwrap();
    let uploader = HttpUploader::new(
        HttpConfig::new(collector.url(), "key").timeouts(Duration::from_secs(5), BOUND),
    )
    .unwrap();

    let (to_host, from_device) = mpsc::channel();
    let (to_device, from_host) = mpsc::channel();
    let gateway = thread::spawn(move || {
        let gateway = Gateway::new(uploader, 64 * 1024);
        let result = gateway.serve(
            HostIn(from_device, VecDeque::new()),
            HostOut(to_device),
            &mut |_| {},
        );
        (result, gateway.stats())
    });
    let mut link = DeviceEnd {
        tx: to_host,
        rx: from_host,
        pending: VecDeque::new(),
    };

    let mut flash = Flash::new(FLASH_PAGES);
    let mut seen = Seen::default();
    flash.cut_after_bytes(cut_after);
    let tracked = power_cycle(&mut flash, &mut link, 0..EVENTS, &mut seen, |m| {
        m.stats().pending_events == 0
    });
    assert!(
        !flash.is_powered(),
        "cut after {cut_after}: the power never failed"
    );
    assert_eq!(
        flash.stats().bytes_written > u64::from(REGION.end),
        wrapped,
        "cut after {cut_after}: {:?}",
        flash.stats()
    );
    assert!(
        tracked < EVENTS,
        "cut after {cut_after}: the cut came after the last track"
    );
    flash.power_on();
    // The event whose track failed was never accepted: the application
    // tracks it again (if its record survived, the collector sees its
    // messageId twice and keeps one).
    let rest = power_cycle(&mut flash, &mut link, tracked..EVENTS, &mut seen, |m| {
        m.stats().pending_events == 0
    });
    assert_eq!(
        rest,
        EVENTS - tracked,
        "cut after {cut_after}: a second cut"
    );
    assert_eq!(
        FlashQueue::open(&mut flash, REGION)
            .unwrap()
            .summary()
            .unwrap()
            .count,
        0,
        "cut after {cut_after}: events left on the flash"
    );
    drop(link);
    let (served, gateway_stats) = gateway.join().unwrap();
    served.unwrap();

    let summary = collector.summary();
    let ids = collector.message_ids();
    let expected: BTreeSet<String> = (0..EVENTS)
        .filter(|&n| n != POISON)
        .map(|n| format!("dev-1-{n}"))
        .collect();
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "cut after {cut_after}"
    );
    assert_eq!(
        summary.accepted,
        u64::from(EVENTS - 1),
        "cut after {cut_after}"
    );
    assert!(summary.injected_failures > 0, "{summary}");
    assert!(summary.bad_requests > 0, "{summary}");
    assert_eq!(gateway_stats.bad_frames, 0);
    // Only the poison event was rejected, and each good one was reported
    // delivered once (twice at most for the one whose track the cut failed).
    assert_eq!(seen.rejected.len(), 1, "cut after {cut_after}");
    assert!(
        (u64::from(EVENTS - 1)..=u64::from(EVENTS)).contains(&seen.delivered),
        "cut after {cut_after}: {} delivered",
        seen.delivered
    );
    collector.shutdown();
}

/// A device whose request timeout (5 s) is shorter than the endpoint's
/// answer (6 s), through the gateway: every event must be delivered, and
/// posted once (the gateway answers "in progress" within the device's
/// deadline and never posts events it is already posting; the device's
/// re-send gets the post's answer).
#[test]
fn a_device_with_a_short_timeout_delivers_through_a_slow_endpoint_posting_each_event_once() {
    use std::sync::{Arc, Mutex};

    const SLOW: Duration = Duration::from_secs(6);
    let posted: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&posted);
    let uploader = move |body: &outbox_std::BatchBody| {
        let events: Vec<serde_json::Value> = serde_json::from_slice(body.events_json()).unwrap();
        thread::sleep(SLOW);
        let mut log = log.lock().unwrap();
        for e in events {
            log.push(e["messageId"].as_str().unwrap().to_string());
        }
        Ok(outbox_std::Response {
            status: 200,
            retry_after: None,
        })
    };
    let (to_host, from_device) = mpsc::channel();
    let (to_device, from_host) = mpsc::channel();
    #[allow(unused_mut)] // `serve` took `&mut self` before
    let mut gateway = Gateway::new(uploader, 64 * 1024);
    let served = thread::spawn(move || {
        gateway.serve(
            HostIn(from_device, VecDeque::new()),
            HostOut(to_device),
            &mut |_| {},
        )
    });
    let mut link = DeviceEnd {
        tx: to_host,
        rx: from_host,
        pending: VecDeque::new(),
    };

    const TRACKED: u32 = 20;
    let mut flash = Flash::new(FLASH_PAGES);
    let mut seen = Seen::default();
    let origin = StdInstant::now();
    let now = || Instant::from_millis(origin.elapsed().as_millis() as u64);
    let mut buf = vec![0u8; 4096];
    let observer = |o: &Output| {
        if let Output::Delivered { first, last } = o {
            seen.delivered += last - first + 1;
        }
    };
    let queue = FlashQueue::open(&mut flash, REGION).unwrap();
    let mut driver = Driver::new(
        machine(&queue),
        queue,
        SerialTransport::new(&mut link),
        &mut buf,
        observer,
    )
    .unwrap();
    driver.start(now()).unwrap();
    for n in 0..TRACKED {
        driver.track(now(), &event(n)).unwrap();
    }
    while driver.machine().stats().pending_events > 0 {
        assert!(
            origin.elapsed() < BOUND,
            "not delivered within {BOUND:?}: {:?}; posted {:?}",
            driver.transport().stats(),
            posted.lock().unwrap()
        );
        driver.poll(now()).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let stats = driver.transport().stats();
    drop(driver);
    drop(link);
    served.join().unwrap().unwrap();
    assert_eq!(seen.delivered, u64::from(TRACKED));
    let mut posted = posted.lock().unwrap().clone();
    let count = posted.len();
    posted.sort();
    posted.dedup();
    assert_eq!(
        count,
        posted.len(),
        "events posted more than once ({stats:?})"
    );
    assert_eq!(posted.len(), TRACKED as usize);
}
