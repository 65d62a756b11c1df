//! `outbox demo`, run as a process: it must pass its own checks and print
//! its report.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn demo_passes_and_reports() {
    let mut cmd = outbox();
    cmd.args(["demo", "--events", "400"]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status = wait_with_bound(&mut child, Duration::from_secs(180));
    let out = out_t.join().unwrap();
    let err = err_t.join().unwrap();
    assert!(status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("PASS"), "{out}");
    let row = |name: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(&format!("| {name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .split('|')
            .nth(2)
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(row("tracked"), "400");
    assert_eq!(row("delivered, unique"), "399");
    assert_eq!(row("rejected"), "1");
    assert_eq!(row("dropped"), "0");
    // Plain progress lines (stderr is not a terminal here) and the script.
    assert!(err.contains("network down"), "{err}");
    assert!(err.contains("503"), "{err}");
    assert!(err.contains("429"), "{err}");
    assert!(err.contains("dead-letter"), "{err}");
}
