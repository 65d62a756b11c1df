//! The kill -9 campaign: a child process (`crash_child`) tracks and uploads
//! against a real collector and is SIGKILLed at 55 random points (start-up,
//! restore, tracking, commits, uploads in flight). Then one more child
//! drains the queue. The collector must have every event whose commit the
//! child confirmed, first deliveries in tracking order, and duplicates only
//! from the last acknowledged batch before a restart (an acknowledgement
//! not yet applied), judged in the order the requests were sent
//! (`outbox_tests::crash_log`); SQLite's integrity check must say ok.
//!
//! Set `OUTBOX_CRASH_SEED` to replay a run; the seed is printed.
#![cfg(unix)]

mod std_support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use outbox_tests::crash_log::{self, Logged};
use std_support::*;

const KILLS: u64 = 55;

/// xorshift64*: enough randomness for kill points, replayable by seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn run_of(r: &Received) -> u64 {
    r.user_agent
        .as_deref()
        .and_then(|ua| ua.strip_prefix("crash-child/"))
        .and_then(|n| n.parse().ok())
        .expect("request without the child's user agent")
}

struct Child {
    acked: Vec<String>,
    stdout: Vec<String>,
    stderr: String,
    status: std::process::ExitStatus,
}

/// When to kill a child.
#[derive(Clone, Copy)]
enum Kill {
    /// Never: let it finish.
    Never,
    /// This long after the start.
    After(Duration),
    /// This long after it confirmed its first events (so every campaign
    /// makes progress, however slow the machine).
    AfterFirstAck(Duration),
}

fn run_child(db: &str, url: &str, run: u64, mode: &str, kill: Kill) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .args([db, url, &run.to_string(), mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crash_child");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (first_line, got_first) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.is_empty() {
                let _ = first_line.send(());
            }
            lines.push(line);
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let after = match kill {
        Kill::Never => None,
        Kill::After(d) => Some(d),
        Kill::AfterFirstAck(d) => {
            // A child that dies or never confirms is reported below.
            let _ = got_first.recv_timeout(PATIENCE);
            Some(d)
        }
    };
    if let Some(after) = after {
        std::thread::sleep(after);
        let _ = child.kill(); // SIGKILL
    }
    let status = child.wait().unwrap();
    let stdout = reader.join().unwrap();
    let acked = stdout
        .iter()
        .filter_map(|l| l.strip_prefix("acked "))
        .map(str::to_string)
        .collect();
    Child {
        acked,
        stdout,
        stderr: err_reader.join().unwrap(),
        status,
    }
}

fn integrity(db: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn kill_9_at_random_points_loses_nothing_confirmed() {
    let seed = std::env::var("OUTBOX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill -9 campaign: OUTBOX_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server_rng = Rng(seed.rotate_left(17) | 1);
    let collector = Collector::with_policy(move |_| {
        // Slow some answers to widen the in-flight window; fail a few.
        std::thread::sleep(Duration::from_millis(server_rng.below(4)));
        if server_rng.below(10) == 0 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let db_s = db.to_str().unwrap().to_string();

    let mut acked: Vec<String> = Vec::new();
    for run in 0..KILLS {
        // Mostly early (start-up, restore, first uploads), sometimes once
        // it is tracking for sure.
        let kill = if rng.below(4) == 0 {
            Kill::AfterFirstAck(Duration::from_millis(rng.below(200)))
        } else {
            Kill::After(Duration::from_millis(rng.below(80)))
        };
        let child = run_child(&db_s, &collector.url, run, "track", kill);
        assert_eq!(
            child.status.signal(),
            Some(9),
            "run {run} ended by itself ({:?}): {}",
            child.status,
            child.stderr
        );
        acked.extend(child.acked);
        if run % 10 == 9 {
            // Now and then, check the file as the kill left it (this also
            // recovers its WAL, so most restarts are left to the Client).
            assert_eq!(integrity(&db), "ok", "after kill {run}");
        }
    }
    let drain = run_child(&db_s, &collector.url, KILLS, "drain", Kill::Never);
    assert!(
        drain.status.success() && drain.stdout.iter().any(|l| l == "drained 0"),
        "drain failed ({:?}): {:?} {}",
        drain.status,
        drain.stdout,
        drain.stderr
    );

    let requests = collector.requests();
    let delivered: HashSet<String> = collector.delivered().into_iter().collect();
    println!(
        "{} events confirmed, {} delivered, {} requests",
        acked.len(),
        delivered.len(),
        requests.len()
    );
    assert!(!acked.is_empty(), "the children confirmed nothing");

    // 1. Nothing confirmed is lost.
    let missing: Vec<&String> = acked.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "confirmed but never delivered: {missing:?}"
    );

    // 2. First deliveries in tracking order; 3. duplicates only from the
    // last acknowledged batch before the sending incarnation started,
    // judged in the order the requests were sent (see `crash_log`: the
    // collector may log a killed child's last batch after the next
    // child's first).
    let log: Vec<Logged<'_>> = requests
        .iter()
        .map(|r| Logged {
            run: run_of(r),
            status: r.status,
            ids: &r.ids,
        })
        .collect();
    let tally = crash_log::check(&log).unwrap_or_else(|v| panic!("{v}"));
    println!(
        "{} duplicate deliveries, all from unapplied acknowledgements",
        tally.duplicates
    );

    // 4. The database is sound and empty.
    assert_eq!(integrity(&db), "ok");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}
