//! Without this, `include/cargohold.h` could drift from the Rust ABI it declares, and C
//! or Go programs would call functions with the wrong signatures.
//! Regenerate with `CARGOHOLD_BLESS=1 cargo test -p cargohold-ffi --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_the_generated_one() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/cargohold.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    if std::env::var_os("CARGOHOLD_BLESS").is_some() {
        std::fs::write(&header, &generated).unwrap();
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/cargohold.h is stale: regenerate it with CARGOHOLD_BLESS=1 cargo test -p cargohold-ffi --test header"
    );
}
