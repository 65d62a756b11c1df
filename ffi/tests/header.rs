//! The checked-in C headers are what cbindgen makes of the sources today:
//! `ffi/include/outbox.h` of this crate, and
//! `ffi/embedded/include/outbox_embedded.h` of the embedded staticlib
//! (which builds only for thumbv7em, so its check lives in this host crate:
//! cbindgen only parses its source). A stale header fails here (and so in
//! scripts/test and .ci/run). `OUTBOX_BLESS=1 cargo test -p outbox-ffi
//! --test header` rewrites both.

use std::path::Path;

/// Generates the header of the crate in `crate_dir` with its cbindgen.toml
/// and compares it with the checked-in `header` (relative to `crate_dir`),
/// or rewrites it under `OUTBOX_BLESS=1`.
fn check_header(crate_dir: &Path, header: &str) {
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8 header");
    let path = crate_dir.join(header);
    if std::env::var("OUTBOX_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &fresh).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is stale: run `OUTBOX_BLESS=1 cargo test -p outbox-ffi --test header` and commit \
         it\n--- generated ---\n{fresh}",
        path.display()
    );
}

#[test]
fn the_checked_in_header_is_what_cbindgen_generates() {
    check_header(Path::new(env!("CARGO_MANIFEST_DIR")), "include/outbox.h");
}

#[test]
fn the_checked_in_embedded_header_is_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded");
    check_header(&dir, "include/outbox_embedded.h");
}
