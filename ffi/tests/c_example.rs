//! examples/track.c, compiled with the system `cc` against the static
//! library this build made, tracks events into a collector on 127.0.0.1
//! and checks they were delivered; the test checks the collector got each.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn target_dir() -> PathBuf {
    // The test runs from <target>/<profile>/deps/; the library is uplifted
    // to <target>/<profile>/.
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("profile dir")
        .to_path_buf()
}

#[test]
fn the_c_example_tracks_events_that_arrive() {
    let lib = target_dir().join("liboutbox_ffi.a");
    assert!(
        lib.exists(),
        "{} is missing: `cargo test` does not build a staticlib; run `cargo build -p outbox-ffi` with the same profile first (scripts/test does)",
        lib.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("track");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg(manifest.join("examples/track.c"))
        .arg("-I")
        .arg(manifest.join("include"))
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&lib)
        .args([
            "-lpthread",
            "-ldl",
            "-lm",
            "-lrt",
            "-lutil",
            "-lgcc_s",
            "-lc",
        ])
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let collector = common::Collector::start();
    let db = dir.path().join("events.db");
    let count = 7;
    let out = Command::new(&exe)
        .arg(&collector.endpoint)
        .arg(&db)
        .arg(count.to_string())
        .output()
        .expect("run track");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "track failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let events = collector.events();
    let ns: Vec<i64> = events
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "track");
            assert_eq!(e["event"], "Button Clicked");
            assert_eq!(e["userId"], "c-user");
            e["properties"]["n"].as_i64().expect("properties.n")
        })
        .collect();
    assert_eq!(
        ns,
        (0..count).collect::<Vec<i64>>(),
        "collector got {events:?}\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("delivered {count} of {count}, 0 pending")),
        "{stdout}"
    );
}
