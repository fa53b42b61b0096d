//! `cargohold demo`: the README's main job. Runs the container storage lifecycle end to
//! end on the store and prints what happened, with sizes and timings.
//!
//! The image is built by the command itself (two small but real OCI layer tars: a base
//! with files, a directory, a symlink and a hardlink, and a change layer with a
//! whiteout), so the demo needs nothing from the network.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use cargohold_core::{Digest, Error, Result};
use layerstore::{ApplyOptions, Labels};

use crate::{Ctx, layer};

/// Options of `cargohold demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep what the demo created instead of removing it at the end.
    #[arg(long)]
    pub keep: bool,
}

/// A running account of the steps.
#[derive(Debug, Default)]
struct Report {
    total_ms: f64,
}

impl Report {
    /// Run one step, timing it; `f` returns a one-line summary.
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
        let start = Instant::now();
        let (value, summary) = f()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        self.total_ms += ms;
        println!("{name:<30} {ms:>9.1} ms  {summary}");
        Ok(value)
    }
}

fn demo_err(op: &'static str, e: std::io::Error) -> Error {
    Error::io(op, "demo", e)
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("demo paths are short");
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// Layer 1: a tiny root filesystem, gzip-compressed as registries serve layers.
fn base_layer() -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        b.append(&header(path, kind, mode, data.len() as u64), data)
    };
    for d in [
        "etc/",
        "bin/",
        "usr/",
        "usr/share/",
        "usr/share/doc/",
        "var/",
        "var/lib/",
        "tmp/",
    ] {
        add(
            d,
            tar::EntryType::Directory,
            if d == "tmp/" { 0o1777 } else { 0o755 },
            b"",
        )
        .map_err(|e| demo_err("build", e))?;
    }
    add(
        "etc/os-release",
        tar::EntryType::Regular,
        0o644,
        b"NAME=cargohold-demo\nVERSION=1\n",
    )
    .map_err(|e| demo_err("build", e))?;
    add(
        "bin/hello",
        tar::EntryType::Regular,
        0o755,
        b"#!/bin/sh\necho hello from cargohold\n",
    )
    .map_err(|e| demo_err("build", e))?;
    add(
        "usr/share/doc/README",
        tar::EntryType::Regular,
        0o644,
        &vec![b'r'; 64 * 1024],
    )
    .map_err(|e| demo_err("build", e))?;
    let mut link = header("bin/sh", tar::EntryType::Symlink, 0o777, 0);
    link.set_link_name("hello")
        .map_err(|e| demo_err("build", e))?;
    link.set_cksum();
    b.append(&link, &b""[..])
        .map_err(|e| demo_err("build", e))?;
    let mut hard = header("bin/hello-again", tar::EntryType::Link, 0o755, 0);
    hard.set_link_name("bin/hello")
        .map_err(|e| demo_err("build", e))?;
    hard.set_cksum();
    b.append(&hard, &b""[..])
        .map_err(|e| demo_err("build", e))?;
    let tar = b.into_inner().map_err(|e| demo_err("build", e))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).map_err(|e| demo_err("gzip", e))?;
    gz.finish().map_err(|e| demo_err("gzip", e))
}

/// Layer 2: a change on top of layer 1 — a new file and a deletion (a whiteout).
fn change_layer() -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let motd = b"Welcome to the cargohold demo.\n";
    b.append(
        &header("etc/", tar::EntryType::Directory, 0o755, 0),
        &b""[..],
    )
    .map_err(|e| demo_err("build", e))?;
    b.append(
        &header(
            "etc/motd",
            tar::EntryType::Regular,
            0o644,
            motd.len() as u64,
        ),
        &motd[..],
    )
    .map_err(|e| demo_err("build", e))?;
    b.append(
        &header(
            "usr/share/doc/.wh.README",
            tar::EntryType::Regular,
            0o644,
            0,
        ),
        &b""[..],
    )
    .map_err(|e| demo_err("build", e))?;
    b.into_inner().map_err(|e| demo_err("build", e))
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Run the lifecycle.
pub fn run(ctx: &Ctx, args: DemoArgs) -> Result<()> {
    println!(
        "cargohold demo on {} ({})",
        ctx.root.display(),
        if rustix::process::geteuid().is_root() {
            "root"
        } else {
            "unprivileged"
        }
    );
    let mut r = Report::default();
    let store = r.step("open layer store", || {
        let store = layer::open(ctx)?;
        let n = store.layers()?.len();
        Ok((store, format!("{n} layers already there")))
    })?;
    let (l1, l2) = r.step("build a two-layer image", || {
        let (l1, l2) = (base_layer()?, change_layer()?);
        let s = format!(
            "layer 1 {} gzip, layer 2 {} tar",
            human(l1.len() as u64),
            human(l2.len() as u64)
        );
        Ok(((l1, l2), s))
    })?;
    let base = r.step("apply layer 1 (gzip)", || {
        let l = store.apply_layer(&mut &l1[..], None, &ApplyOptions::default())?;
        let s = format!("{} diff_id {}", short(&l.chain_id), short(&l.diff_id));
        Ok((l, s))
    })?;
    let top = r.step("apply layer 2 (whiteout)", || {
        let l = store.apply_layer(&mut &l2[..], Some(&base.chain_id), &ApplyOptions::default())?;
        Ok((
            l.clone(),
            format!("{} on {}", short(&l.chain_id), short(&base.chain_id)),
        ))
    })?;
    r.step("apply layer 2 again (known)", || {
        let before = store.extractions();
        let opts = ApplyOptions {
            expected_diff_id: Some(top.diff_id.clone()),
            ..ApplyOptions::default()
        };
        let l = store.apply_layer(&mut &l2[..], Some(&base.chain_id), &opts)?;
        let extracted = store.extractions() - before;
        Ok((
            (),
            format!(
                "same chain id: {}, extracted again: {}",
                l.chain_id == top.chain_id,
                extracted
            ),
        ))
    })?;
    let name = format!("demo-{}", std::process::id());
    r.step("create container", || {
        let mounts = store.prepare_container(&name, Some(&top.chain_id), Labels::new())?;
        Ok((
            (),
            format!(
                "{name}: {} mount(s) of type {}",
                mounts.len(),
                mounts.first().map(|m| m.kind.as_str()).unwrap_or("-")
            ),
        ))
    })?;
    let target = ctx.root.join("mnt").join(&name);
    r.step("mount container", || {
        std::fs::create_dir_all(&target).map_err(|e| Error::io("mkdir", target.display(), e))?;
        store.mount(&name, &target)?;
        Ok(((), target.display().to_string()))
    })?;
    r.step("write into the container", || {
        let result = write_into(&target);
        store.unmount(&target)?;
        result
    })?;
    r.step("container diff", || {
        let changes = layer::container_changes(&store, &name)?;
        let list: Vec<String> = changes.iter().map(|(k, p)| format!("{k} {p}")).collect();
        Ok(((), list.join(", ")))
    })?;
    let committed = r.step("commit container", || {
        let l = store.commit_container(&name, Labels::new())?;
        let s = format!("new layer {} ({} tar)", short(&l.chain_id), human(l.size));
        Ok((l, s))
    })?;
    let export = ctx.root.join("demo-export.tar");
    r.step("export the new layer", || {
        let (d, n) = layer::write_to(&export, |out| {
            store.diff(&committed.chain_id.to_string(), out)
        })?;
        let mut f =
            std::fs::File::open(&export).map_err(|e| Error::io("open", export.display(), e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io("read", export.display(), e))?;
        let check = Digest::sha256(&buf) == d;
        Ok((
            (),
            format!(
                "{} {} (file hashes to its diff_id: {check})",
                export.display(),
                human(n)
            ),
        ))
    })?;
    if !args.keep {
        r.step("clean up", || {
            let _ = std::fs::remove_file(&export);
            let _ = std::fs::remove_dir(&target);
            let mut removed = 0;
            for id in [&committed.chain_id, &top.chain_id, &base.chain_id] {
                match store.remove_layer(id) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == cargohold_core::ErrorKind::InUse => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(((), format!("{removed} layers removed")))
        })?;
    }
    let usage = store.snapshots().root().path().to_owned();
    println!(
        "{:<30} {:>9.1} ms  store at {}",
        "total",
        r.total_ms,
        usage.display()
    );
    Ok(())
}

fn write_into(target: &Path) -> Result<((), String)> {
    let hello = std::fs::read_to_string(target.join("bin/hello"))
        .map_err(|e| Error::io("read", "bin/hello", e))?;
    let gone = !target.join("usr/share/doc/README").exists();
    std::fs::write(
        target.join("etc/written-by-demo"),
        b"hello from the container\n",
    )
    .map_err(|e| Error::io("write", "etc/written-by-demo", e))?;
    std::fs::remove_file(target.join("etc/os-release"))
        .map_err(|e| Error::io("remove", "etc/os-release", e))?;
    Ok((
        (),
        format!(
            "bin/hello has {} bytes, README whited out: {gone}; wrote etc/written-by-demo, removed etc/os-release",
            hello.len()
        ),
    ))
}

fn short(d: &Digest) -> String {
    format!("{}:{}", d.algorithm(), &d.hex()[..12])
}
