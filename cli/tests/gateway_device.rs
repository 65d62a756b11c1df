//! End to end on one host: a simulated device (the core's machine and
//! driver, a store, the serial transport) talks over an in-process pipe to
//! the gateway, which posts to a collector on 127.0.0.1 that injects 503s
//! and refuses one poison event. The device loses power half-way: only
//! what its store holds survives, and a new machine restores from it.
//! Every good event must reach the collector exactly once after dedup.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use outbox_cli::collect::{Collector, Config as CollectConfig, RandomFaults};
use outbox_cli::gateway::Gateway;
use outbox_core::{Config, Driver, Instant, Machine, Output, Seq, Store};
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

/// A store that keeps every append at once (what survives a power cut).
#[derive(Default)]
struct MemStore(Vec<(Seq, Vec<u8>)>);

impl Store for MemStore {
    type Error = ();
    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), ()> {
        self.0.retain(|(s, _)| *s != seq);
        self.0.push((seq, payload.to_vec()));
        Ok(())
    }
    fn read_range(&mut self, first: Seq, last: Seq, buf: &mut [u8]) -> Result<usize, ()> {
        let mut n = 0;
        for (_, p) in self.0.iter().filter(|(s, _)| (first..=last).contains(s)) {
            buf.get_mut(n..n + p.len()).ok_or(())?.copy_from_slice(p);
            n += p.len();
        }
        Ok(n)
    }
    fn delete_through(&mut self, through: Seq) -> Result<(), ()> {
        self.0.retain(|(s, _)| *s > through);
        Ok(())
    }
    fn restore<F: FnMut(Seq, u32)>(&mut self, mut visit: F) -> Result<(), ()> {
        self.0.iter().for_each(|(s, p)| visit(*s, p.len() as u32));
        Ok(())
    }
}

const EVENTS: u32 = 160;
const POWER_CUT_AT: u32 = 70;
const POISON: u32 = 101;
const BOUND: Duration = Duration::from_secs(60);

fn event(n: u32) -> Vec<u8> {
    let poison = if n == POISON { r#","poison":true"# } else { "" };
    format!(
        r#"{{"type":"track","event":"tick","anonymousId":"dev-1","messageId":"dev-1-{n}","properties":{{"n":{n}{poison}}}}}"#
    )
    .into_bytes()
}

fn machine() -> Machine<256> {
    let config = Config::builder()
        .max_queue_events(256)
        .max_batch_events(16)
        .max_event_bytes(512)
        .max_batch_bytes(4096)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
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

/// Runs one power cycle of the device: restore, track `events`, then keep
/// polling until `until` says stop; returns the store (all that survives)
/// and the link.
fn power_cycle(
    store: MemStore,
    link: DeviceEnd,
    events: std::ops::Range<u32>,
    seen: &mut Seen,
    until: impl Fn(&Machine<256>) -> bool,
) -> (MemStore, DeviceEnd) {
    let origin = StdInstant::now();
    let now = || Instant::from_millis(origin.elapsed().as_millis() as u64);
    let mut buf = vec![0u8; 4096];
    let observer = |o: &Output| match o {
        Output::Delivered { first, last } => seen.delivered += last - first + 1,
        Output::Rejected { seq, .. } => seen.rejected.push(*seq),
        _ => {}
    };
    let mut driver = Driver::new(
        machine(),
        store,
        SerialTransport::new(link),
        &mut buf,
        observer,
    );
    driver.start(now()).unwrap();
    for n in events {
        driver.track(now(), &event(n)).unwrap();
        driver.poll(now()).unwrap();
    }
    while !until(driver.machine()) {
        assert!(origin.elapsed() < BOUND, "device not done within {BOUND:?}");
        driver.poll(now()).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let (_, store, transport, _) = driver.into_parts();
    (store, transport.into_link())
}

#[test]
fn a_device_delivers_everything_through_the_gateway_across_a_power_cut() {
    let collector = Collector::start(
        "127.0.0.1:0",
        CollectConfig {
            reject_field: Some("poison".into()),
            ..CollectConfig::default()
        },
        Box::new(RandomFaults::new(0.3, 503, None, 0.0, 11)),
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
        let mut gateway = Gateway::new(uploader, 64 * 1024);
        let result = gateway.serve(
            HostIn(from_device, VecDeque::new()),
            HostOut(to_device),
            &mut |_| {},
        );
        (result, gateway.stats())
    });
    let link = DeviceEnd {
        tx: to_host,
        rx: from_host,
        pending: VecDeque::new(),
    };

    let mut seen = Seen::default();
    // Power is cut right after the 70th track: whatever is in flight is
    // lost with the RAM; the store keeps every event not yet deleted.
    let (store, link) = power_cycle(
        MemStore::default(),
        link,
        0..POWER_CUT_AT,
        &mut seen,
        |_| true,
    );
    let left_in_store = store.0.len();
    let (store, link) = power_cycle(store, link, POWER_CUT_AT..EVENTS, &mut seen, |m| {
        m.stats().pending_events == 0
    });
    assert!(store.0.is_empty(), "{} events still stored", store.0.len());
    drop(link);
    let (served, gateway_stats) = gateway.join().unwrap();
    served.unwrap();

    let summary = collector.summary();
    let ids = collector.message_ids();
    let expected: BTreeSet<String> = (0..EVENTS)
        .filter(|&n| n != POISON)
        .map(|n| format!("dev-1-{n}"))
        .collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(summary.accepted, u64::from(EVENTS - 1));
    assert!(summary.injected_failures > 0, "{summary}");
    assert!(summary.bad_requests > 0, "{summary}");
    assert_eq!(gateway_stats.bad_frames, 0);
    // The poison event is the one the device rejected, and the only one
    // (event n is seq n: numbering starts at 0 and goes on after the cut
    // from the highest event the store still held).
    assert_eq!(seen.rejected, [Seq::from(POISON)]);
    // Each good event was reported delivered once, in one power cycle or the other.
    assert_eq!(seen.delivered, u64::from(EVENTS - 1));
    assert!(left_in_store > 0, "the power cut found nothing pending");
    collector.shutdown();
}
