//! The core's layering, checked on its sources: the driver sits on top of
//! the machine and the store contract, never under them. Issue 17 item 8
//! found a circle (the machine and `Input` imported `StoreSummary` from the
//! driver, which imports the machine); the contract now lives in
//! `store.rs`, and this test keeps the circle from coming back.

use std::fs;
use std::path::Path;

/// Files that may name the driver: the driver itself and the crate root
/// (its `mod` line and re-exports).
const MAY_NAME_THE_DRIVER: &[&str] = &["driver.rs", "lib.rs"];

#[test]
fn nothing_below_the_driver_imports_from_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut offenders = Vec::new();
    for entry in fs::read_dir(&src).expect("core/src is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".rs") || MAY_NAME_THE_DRIVER.contains(&name) {
            continue;
        }
        let text = fs::read_to_string(&path).expect("a source file is UTF-8");
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            if line.contains("crate::driver") || line.contains("super::driver") {
                offenders.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    // The machine, its input and the store contract are among them.
    assert!(
        checked >= 10,
        "only {checked} files read in {}",
        src.display()
    );
    assert!(
        offenders.is_empty(),
        "the driver is above the machine and the store contract; these import from it:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_store_contract_is_where_the_machine_and_the_driver_take_it_from() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let read = |f: &str| fs::read_to_string(src.join(f)).expect("a core source file");
    assert!(read("store.rs").contains("pub struct StoreSummary"));
    assert!(read("store.rs").contains("pub trait Store"));
    // (driver.rs is compiled twice, blocking and async, each time next to
    // its own store.rs: it names it `super::store`.)
    for user in ["machine.rs", "input.rs", "driver.rs"] {
        let text = read(user);
        assert!(
            text.contains("crate::store::") || text.contains("super::store::"),
            "{user} takes the store contract from store.rs"
        );
    }
}
