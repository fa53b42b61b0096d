//! The Rust side of the binding overhead measurement (`ingest_bench.py` is the Python
//! side): one timed call, printed in milliseconds.
//!
//! ```text
//! cargo run --release -p cargohold-python --example ingest_bench -- apply LAYER.tar DIR
//! cargo run --release -p cargohold-python --example ingest_bench -- blob BLOB DIR
//! ```
//!
//! `DIR` must not exist; the store is made there (remove it between runs). Only the
//! storage call is timed: `LayerStore::apply_layer` from the opened file, or a blob
//! streamed through an upload into a registry (as `Registry.put_blob(repo, path)` does).

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use cargohold_core::Result;
use layerstore::{ApplyOptions, DriverChoice, LayerStore};
use regstore::Registry;
use regstore::drivers::filesystem::Filesystem;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, input, dir] = args.as_slice() else {
        eprintln!("usage: ingest_bench apply|blob INPUT DIR");
        std::process::exit(2);
    };
    let open = |p: &str| {
        File::open(p)
            .map(|f| BufReader::with_capacity(1 << 20, f))
            .map_err(|e| cargohold_core::Error::io("open", p, e))
    };
    let ms = match mode.as_str() {
        "apply" => {
            let store = LayerStore::open(dir, DriverChoice::Vfs)?;
            let mut r = open(input)?;
            let t = Instant::now();
            store.apply_layer(&mut r, None, &ApplyOptions::default())?;
            t.elapsed()
        }
        "blob" => {
            std::fs::create_dir_all(dir).map_err(|e| cargohold_core::Error::io("mkdir", dir, e))?;
            let reg = Registry::open(Filesystem::new(dir)?);
            let r = open(input)?;
            let t = Instant::now();
            let up = reg.start_upload("bench/blob")?;
            up.append(0, r)?;
            let d = up.digest()?;
            up.commit(&d, None)?;
            t.elapsed()
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    };
    println!("{:.1}", ms.as_secs_f64() * 1000.0);
    Ok(())
}
