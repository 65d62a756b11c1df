//! ffi/embedded/include/outbox_embedded.h is what cbindgen makes of
//! ffi/embedded/src today: a stale header fails here (and so in
//! scripts/test). The embedded crate builds only for thumbv7em, so its
//! check lives in this host crate: cbindgen only parses its source.
//! `OUTBOX_BLESS=1 cargo test -p outbox-ffi --test embedded_header`
//! rewrites it.

use std::path::Path;

#[test]
fn the_checked_in_embedded_header_is_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8 header");
    let path = dir.join("include/outbox_embedded.h");
    if std::env::var("OUTBOX_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/outbox_embedded.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "ffi/embedded/include/outbox_embedded.h is stale: run `OUTBOX_BLESS=1 cargo test -p \
         outbox-ffi --test embedded_header` and commit it\n--- generated ---\n{fresh}"
    );
}
