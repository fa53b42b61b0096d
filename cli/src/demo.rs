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
use layerstore::Labels;
use volstore::Driver;

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
        println!("{name:<34} {ms:>9.1} ms  {summary}");
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

/// Write the two demo layers as a real OCI image layout (what `skopeo copy oci:` and
/// umoci produce) at `dir`, tagged `v1`.
fn write_layout(dir: &Path, l1_gz: &[u8], l2_tar: &[u8]) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("layout", blobs.display(), e))?;
    let put = |data: &[u8]| -> Result<Digest> {
        let d = Digest::sha256(data);
        std::fs::write(blobs.join(d.hex()), data)
            .map_err(|e| Error::io("layout", d.to_string(), e))?;
        Ok(d)
    };
    let mut gz = flate2::read::GzDecoder::new(l1_gz);
    let mut l1_tar = Vec::new();
    gz.read_to_end(&mut l1_tar)
        .map_err(|e| demo_err("gunzip", e))?;
    let (d1, d2) = (put(l1_gz)?, put(l2_tar)?);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&l1_tar).to_string(), d2.to_string()]},
        "history": [{"created_by": "cargohold demo: base"}, {"created_by": "cargohold demo: change"}],
    });
    let config = serde_json::to_vec(&config).map_err(|e| {
        Error::new(
            cargohold_core::ErrorKind::InvalidArgument,
            "layout",
            "config",
            e,
        )
    })?;
    let dc = put(&config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dc.to_string(), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d1.to_string(), "size": l1_gz.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d2.to_string(), "size": l2_tar.len()},
        ],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| {
        Error::new(
            cargohold_core::ErrorKind::InvalidArgument,
            "layout",
            "manifest",
            e,
        )
    })?;
    let dm = put(&manifest)?;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dm.to_string(), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    let write = |name: &str, data: &[u8]| {
        std::fs::write(dir.join(name), data).map_err(|e| Error::io("layout", name, e))
    };
    write("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write(
        "index.json",
        &serde_json::to_vec(&index).unwrap_or_default(),
    )
}

/// Run the lifecycle.
pub fn run(ctx: &Ctx, args: DemoArgs) -> Result<()> {
    let who = if rustix::process::geteuid().is_root() {
        "root"
    } else {
        "unprivileged"
    };
    println!("cargohold demo on {} ({who})", ctx.root.display());
    let mut r = Report::default();
    let scratch = ctx
        .root
        .join("tmp")
        .join(format!("demo-{}", std::process::id()));
    let layout = scratch.join("oci-in");
    r.step("build a small OCI image", || {
        let (l1, l2) = (base_layer()?, change_layer()?);
        write_layout(&layout, &l1, &l2)?;
        Ok((
            (),
            format!(
                "{}: layer 1 {} gzip, layer 2 {} tar (a whiteout)",
                layout.display(),
                human(l1.len() as u64),
                human(l2.len() as u64)
            ),
        ))
    })?;
    let reg = r.step("open registry store", || {
        let reg = crate::image::open(ctx)?;
        let n = reg.catalog(None, None)?.len();
        Ok((reg, format!("registry:2 layout, {n} repositories")))
    })?;
    r.step("import oci:…:v1 as demo/app:v1", || {
        let t = regstore::oci_layout::import(
            &reg,
            &layout,
            Some("v1"),
            "demo/app",
            "v1",
            &mut |_, _| {},
        )?;
        Ok((
            (),
            format!(
                "{} ({} blobs, {})",
                short(&t.digest),
                t.blobs_copied + t.blobs_present,
                human(t.bytes)
            ),
        ))
    })?;
    let store = r.step("open layer store", || {
        let store = layer::open(ctx)?;
        let n = store.layers()?.len();
        let driver = store.snapshots().backend().name();
        Ok((store, format!("{driver} driver, {n} layers already there")))
    })?;
    let layers = r.step("unpack demo/app:v1", || {
        let layers = crate::image::unpack_layers(&reg, &store, "demo/app:v1")?;
        let ids: Vec<String> = layers.iter().map(|l| short(&l.chain_id)).collect();
        Ok((layers, format!("chain ids {}", ids.join(" → "))))
    })?;
    let top = layers.last().cloned().ok_or_else(|| {
        Error::new(
            cargohold_core::ErrorKind::Corrupt,
            "demo",
            "demo/app:v1",
            "no layers",
        )
    })?;
    r.step("unpack again (known layers)", || {
        let before = store.extractions();
        let again = crate::image::unpack_layers(&reg, &store, "demo/app:v1")?;
        let same = again.last().map(|l| &l.chain_id) == Some(&top.chain_id);
        Ok((
            (),
            format!(
                "same chain ids: {same}, extracted again: {}",
                store.extractions() - before
            ),
        ))
    })?;
    let name = format!("demo-{}", std::process::id());
    r.step("create container", || {
        let mut labels = Labels::new();
        labels.insert(layer::IMAGE_LABEL.to_owned(), "demo/app:v1".to_owned());
        let mounts = store.prepare_container(&name, Some(&top.chain_id), labels)?;
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
    let vols = r.step("open volume store", || {
        let d = crate::volume::open(ctx)?;
        let n = d.names()?.len();
        Ok((
            d,
            format!("Docker's local layout, {n} volumes already there"),
        ))
    })?;
    let vol = format!("demo-data-{}", std::process::id());
    r.step("create a volume, hold it, write", || {
        let mut req = volstore::local::CreateRequest::default();
        req.labels
            .insert("org.cargohold.demo".to_owned(), "true".to_owned());
        vols.create_volume(Some(&vol), &req)?;
        // The container holds the volume under its own name as the mount id.
        let p = vols.mount(&vol, &name)?;
        std::fs::write(p.join("state.txt"), b"written by the demo container\n")
            .map_err(|e| Error::io("write", "state.txt", e))?;
        Ok(((), format!("{vol} held by {name} at {}", p.display())))
    })?;
    r.step("back up the volume", || {
        let backup = scratch.join("volume.tar");
        let f =
            std::fs::File::create(&backup).map_err(|e| Error::io("create", backup.display(), e))?;
        vols.export(&vol, std::io::BufWriter::new(f))?;
        let size = std::fs::metadata(&backup).map(|m| m.len()).unwrap_or(0);
        Ok(((), format!("{} ({} tar)", backup.display(), human(size))))
    })?;
    r.step("container diff", || {
        let changes = layer::container_changes(&store, &name)?;
        let list: Vec<String> = changes.iter().map(|(k, p)| format!("{k} {p}")).collect();
        Ok(((), list.join(", ")))
    })?;
    let committed = r.step("commit container to demo/app:v2", || {
        let l = store.commit_container(&name, Labels::new())?;
        let d = crate::image::commit_image(
            &reg,
            &store,
            Some("demo/app:v1"),
            &l,
            "demo/app:v2",
            &scratch,
        )?;
        Ok((
            l.clone(),
            format!(
                "layer {} ({} tar), image {}",
                short(&l.chain_id),
                human(l.size),
                short(&d)
            ),
        ))
    })?;
    let out = scratch.join("oci-out");
    r.step("export demo/app:v2 as OCI layout", || {
        let t = regstore::oci_layout::export(&reg, "demo/app", "v2", &out, "v2", &mut |_, _| {})?;
        Ok((
            (),
            format!(
                "{} ({} manifests, {} blobs, {})",
                out.display(),
                t.manifests,
                t.blobs_copied,
                human(t.bytes)
            ),
        ))
    })?;
    r.step("garbage-collect the registry", || {
        // The default grace period: blobs pushed in the last hour (this demo's, and any
        // other process's push in progress) are spared, never taken.
        let g = regstore::gc::collect(&reg, regstore::gc::GcOptions::default())?;
        Ok((
            (),
            format!(
                "{} blobs ({}) freed, {} young blobs spared, {} manifests kept in {} repositories",
                g.blobs_deleted.len(),
                human(g.bytes_deleted),
                g.blobs_spared.len(),
                g.manifests_kept,
                g.repositories
            ),
        ))
    })?;
    if !args.keep {
        r.step("clean up", || {
            let _ = std::fs::remove_dir(&target);
            let _ = std::fs::remove_dir_all(&scratch);
            let mut removed = 0;
            let mut ids: Vec<Digest> = vec![committed.chain_id.clone()];
            ids.extend(layers.iter().rev().map(|l| l.chain_id.clone()));
            for id in &ids {
                match store.remove_layer(id) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == cargohold_core::ErrorKind::InUse => {}
                    Err(e) => return Err(e),
                }
            }
            for tag in ["v1", "v2"] {
                reg.untag("demo/app", tag)?;
            }
            vols.unmount(&vol, &name)?;
            vols.remove_volume(&vol, false)?;
            Ok((
                (),
                format!(
                    "{removed} layers removed, demo/app:v1 and :v2 untagged, volume {vol} released and removed"
                ),
            ))
        })?;
    }
    println!("{:<34} {:>9.1} ms", "total", r.total_ms);
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
