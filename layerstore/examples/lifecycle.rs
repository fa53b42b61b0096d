//! A layer's and a container's life: open a store, apply a layer tar (the one named on
//! the command line, or a tiny generated one), prepare a container on it, write a file
//! into it, commit it into a new layer, and print the chain IDs.
//!
//! ```text
//! cargo run -p layerstore --example lifecycle -- STORE_DIR [LAYER.tar[.gz|.zst]]
//! ```

use std::fs::File;
use std::io::{Cursor, Read};

use layerstore::{ApplyOptions, Driver, DriverChoice, LayerStore, Result};

fn tiny_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"hello from a generated layer\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "etc/motd", &data[..])
        .expect("build the tiny layer");
    b.into_inner().expect("finish the tiny layer")
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: lifecycle STORE_DIR [LAYER.tar[.gz|.zst]]");
        std::process::exit(2);
    };
    let store = LayerStore::open(&root, DriverChoice::Vfs)?;

    let mut reader: Box<dyn Read + Send> = match args.next() {
        Some(path) => Box::new(
            File::open(&path)
                .map_err(|e| layerstore::Error::io("open", path.to_string_lossy(), e))?,
        ),
        None => Box::new(Cursor::new(tiny_layer())),
    };
    let base = store.apply_layer(&mut reader, None, &ApplyOptions::default())?;
    println!(
        "base layer   chain_id={} diff_id={}",
        base.chain_id, base.diff_id
    );

    let key = format!("lifecycle-{}", std::process::id());
    let mounts = store.prepare_container(&key, Some(&base.chain_id), Default::default())?;
    println!(
        "container    {key}: {} mount(s), first {:?}",
        mounts.len(),
        mounts[0]
    );

    // Without mounting: vfs's bind source is the container's own directory.
    let file = mounts[0].source.join("hello.txt");
    std::fs::write(&file, b"written in the container\n")
        .map_err(|e| layerstore::Error::io("write", file.display(), e))?;

    let layer = store.commit_container(&key, Default::default())?;
    println!(
        "new layer    chain_id={} diff_id={}",
        layer.chain_id, layer.diff_id
    );
    println!("layers in the store: {}", store.layers()?.len());
    println!(
        "usage of the new layer: {:?}",
        store.usage(&layer.chain_id.to_string())?
    );
    Ok(())
}
