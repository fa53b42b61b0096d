//! `cargohold image ...` and `cargohold registry ...`: images at rest in the registry
//! store, and the edge where they meet the layer store (unpack, commit to an image).
//!
//! Composing the two tiers is the CLI's job by design (tiers never depend on each
//! other); the storage behaviour itself stays in regstore and layerstore.

use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cargohold_core::{Digest, Error, ErrorKind, Result};
use layerstore::{ApplyOptions, Layer, LayerStore};
use regstore::Registry;
use regstore::fsck::{Damage, FsckOptions, FsckProgress};
use regstore::gc::{GcOptions, GcProgress};
use regstore::{docker_archive, oci_layout};
use serde_json::{Value, json};

use crate::progress::Bar;
use crate::{Ctx, output, stores};

/// `cargohold image ...`
#[derive(Debug, clap::Subcommand)]
pub enum ImageCmd {
    /// Import an image: SRC is `oci:DIR[:TAG]` (an OCI image layout) or
    /// `docker-archive:FILE[:NAME:TAG]` (a `docker save` tar).
    Import {
        /// Where from.
        src: String,
        /// NAME:TAG to store it as (default: the directory's name and the layout's tag).
        name: Option<String>,
    },
    /// Export an image to DEST, `oci:DIR[:TAG]` or `docker-archive:FILE[:NAME:TAG]`.
    Export {
        /// NAME:TAG.
        name: String,
        /// Where to.
        dest: String,
        /// docker-archive only: the platform to take from a multi-platform image
        /// (`os/arch[/variant]`, default this machine's).
        #[arg(long)]
        platform: Option<String>,
    },
    /// List images (every tag of every repository).
    Ls,
    /// Show an image's manifest and config.
    Inspect {
        /// NAME:TAG.
        name: String,
    },
    /// Remove a tag.
    Rm {
        /// NAME:TAG.
        name: String,
    },
    /// Apply an image's layers into the layer store and print their chain IDs.
    Unpack {
        /// NAME:TAG.
        name: String,
    },
}

/// `cargohold registry ...`
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCmd {
    /// List a repository's tags.
    Tags {
        /// Repository name.
        repo: String,
    },
    /// List repositories.
    Catalog,
    /// Collect garbage: delete the blobs no manifest needs and the links to them (and,
    /// with --delete-untagged, the manifests no tag needs; an index's platforms and a
    /// kept image's referrers stay). Pushes from other processes wait while it runs.
    Gc {
        /// Report what would be deleted and the bytes it would free; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete manifests that no tag points at.
        #[arg(long)]
        delete_untagged: bool,
        /// Keep unreferenced blobs younger than this many seconds (pushes whose
        /// manifest has not come yet); 0 collects like registry:2.
        #[arg(long, default_value_t = regstore::gc::DEFAULT_GRACE.as_secs())]
        grace: u64,
    },
    /// Check every blob's digest, every link, tag and manifest, and stale uploads; exit 1
    /// when a problem is left unrepaired.
    Fsck {
        /// Quarantine corrupt blobs, remove dangling links and tags and stale uploads.
        #[arg(long)]
        repair: bool,
    },
}

/// Open the registry store (registry:2's layout under ROOT/registry, or `--registry`).
pub fn open(ctx: &Ctx) -> Result<Registry> {
    stores::open_registry(ctx)
}

/// Split `NAME:TAG` (the tag defaults to `latest`; a `:` inside a host:port is kept).
pub fn split_ref(s: &str) -> Result<(String, String)> {
    let (name, tag) = match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], &s[i + 1..]),
        _ => (s, "latest"),
    };
    regstore::names::check_repository(name)
        .map_err(|e| Error::new(e.kind(), "usage", s, e.detail().to_owned()))?;
    regstore::names::check_tag(tag)
        .map_err(|e| Error::new(e.kind(), "usage", s, e.detail().to_owned()))?;
    Ok((name.to_owned(), tag.to_owned()))
}

/// `oci:DIR[:TAG]` → (DIR, TAG).
fn parse_oci(s: &str) -> Result<(PathBuf, Option<String>)> {
    let rest = s.strip_prefix("oci:").ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            "usage",
            s,
            "expected oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG]",
        )
    })?;
    match rest.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') => Ok((PathBuf::from(dir), Some(tag.to_owned()))),
        _ => Ok((PathBuf::from(rest), None)),
    }
}

/// A progress bar advanced once per blob (drawn only on a terminal).
fn blob_progress(bar: &mut crate::progress::Bar) -> impl FnMut(&Digest, u64) + '_ {
    move |_: &Digest, size: u64| bar.advance(size, true)
}

/// Run `cargohold image ...`.
pub fn image(ctx: &Ctx, cmd: ImageCmd) -> Result<()> {
    let reg = open(ctx)?;
    match cmd {
        ImageCmd::Import { src, name } if src.starts_with("docker-archive:") => {
            docker_archive_import(&reg, &src, name)?
        }
        ImageCmd::Export {
            name,
            dest,
            platform,
        } if dest.starts_with("docker-archive:") => {
            docker_archive_export(&reg, &name, &dest, platform.as_deref())?
        }
        ImageCmd::Import { src, name } => {
            let (dir, tag) = parse_oci(&src)?;
            let (repo, tag_to) = match name {
                Some(n) => split_ref(&n)?,
                None => {
                    let base = dir
                        .file_name()
                        .map(|n| n.to_string_lossy().to_lowercase())
                        .unwrap_or_default();
                    split_ref(&format!("{base}:{}", tag.as_deref().unwrap_or("latest")))?
                }
            };
            let mut bar = crate::progress::Bar::new("importing", None);
            let t = oci_layout::import(
                &reg,
                &dir,
                tag.as_deref(),
                &repo,
                &tag_to,
                &mut blob_progress(&mut bar),
            )?;
            bar.finish();
            println!(
                "{repo}:{tag_to} {} ({} blobs copied, {} present, {} bytes)",
                t.digest, t.blobs_copied, t.blobs_present, t.bytes
            );
        }
        ImageCmd::Export { name, dest, .. } => {
            let (repo, tag) = split_ref(&name)?;
            let (dir, dtag) = parse_oci(&dest)?;
            let mut bar = crate::progress::Bar::new("exporting", None);
            let t = oci_layout::export(
                &reg,
                &repo,
                &tag,
                &dir,
                dtag.as_deref().unwrap_or(&tag),
                &mut blob_progress(&mut bar),
            )?;
            bar.finish();
            println!(
                "{} ({} blobs written, {} bytes)",
                t.digest, t.blobs_copied, t.bytes
            );
        }
        ImageCmd::Ls => {
            let mut rows = Vec::new();
            for repo in reg.catalog(None, None)? {
                for tag in reg.tags(&repo, None, None)? {
                    let m = reg.get_manifest(&repo, &tag)?;
                    rows.push(vec![
                        repo.clone(),
                        tag,
                        m.digest.to_string(),
                        m.media_type.as_str().to_owned(),
                    ]);
                }
            }
            output::table(ctx, &["REPOSITORY", "TAG", "DIGEST", "MEDIA_TYPE"], &rows);
        }
        ImageCmd::Inspect { name } => {
            let (repo, tag) = split_ref(&name)?;
            let m = reg.get_manifest(&repo, &tag)?;
            let manifest: Value = serde_json::from_slice(&m.bytes)
                .map_err(|e| Error::new(ErrorKind::Corrupt, "inspect", &name, e))?;
            let config = manifest["config"]["digest"]
                .as_str()
                .map(|d| -> Result<Value> {
                    let bytes = reg.read_blob(&repo, &Digest::parse(d)?)?;
                    serde_json::from_slice(&bytes)
                        .map_err(|e| Error::new(ErrorKind::Corrupt, "inspect", d, e))
                })
                .transpose()?;
            output::json_value(
                &json!({"name": format!("{repo}:{tag}"), "digest": m.digest.to_string(), "manifest": manifest, "config": config}),
            );
        }
        ImageCmd::Rm { name } => {
            let (repo, tag) = split_ref(&name)?;
            reg.untag(&repo, &tag)?;
            println!("{repo}:{tag}");
        }
        ImageCmd::Unpack { name } => {
            let store = crate::layer::open(ctx)?;
            let layers = unpack_layers(&reg, &store, &name)?;
            for l in layers {
                println!("{}", l.chain_id);
            }
        }
    }
    Ok(())
}

/// `docker-archive:FILE[:NAME:TAG]` → (FILE, NAME:TAG). The file name ends at the first
/// `:` unless the whole rest names an existing file.
fn parse_docker_archive(s: &str) -> Result<(PathBuf, Option<String>)> {
    let rest = s.strip_prefix("docker-archive:").unwrap_or(s);
    if rest.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "usage",
            s,
            "expected docker-archive:FILE[:NAME:TAG]",
        ));
    }
    match rest.split_once(':') {
        Some((file, name)) if !Path::new(rest).exists() && !name.is_empty() => {
            Ok((PathBuf::from(file), Some(name.to_owned())))
        }
        _ => Ok((PathBuf::from(rest), None)),
    }
}

/// `docker.io/library/x:t` → `x:t`, the name a user typed.
fn familiar(name: &str) -> &str {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    n.strip_prefix("library/").unwrap_or(n)
}

/// `image import docker-archive:FILE[:NAME:TAG] [NAME:TAG]`: stored as NAME:TAG, else as
/// the name the image has in the archive, else as the file's name.
fn docker_archive_import(reg: &Registry, src: &str, name: Option<String>) -> Result<()> {
    let (file, picked) = parse_docker_archive(src)?;
    let target = match (name, &picked) {
        (Some(n), _) => n,
        (None, Some(p)) => familiar(p).to_owned(),
        (None, None) => {
            let images = docker_archive::images(&file)?;
            match images.as_slice() {
                [one] if !one.repo_tags.is_empty() => familiar(&one.repo_tags[0]).to_owned(),
                _ => file
                    .file_stem()
                    .map(|n| n.to_string_lossy().to_lowercase())
                    .unwrap_or_default(),
            }
        }
    };
    let (repo, tag) = split_ref(&target)?;
    let mut bar = crate::progress::Bar::new("importing", None);
    let t = docker_archive::import(
        reg,
        &file,
        picked.as_deref(),
        &repo,
        &tag,
        &mut blob_progress(&mut bar),
    )?;
    bar.finish();
    println!(
        "{repo}:{tag} {} ({} blobs copied, {} present, {} bytes)",
        t.digest, t.blobs_copied, t.blobs_present, t.bytes
    );
    Ok(())
}

/// `image export NAME:TAG docker-archive:FILE[:NAME:TAG] [--platform os/arch]`.
fn docker_archive_export(
    reg: &Registry,
    name: &str,
    dest: &str,
    platform: Option<&str>,
) -> Result<()> {
    let (repo, tag) = split_ref(name)?;
    let (file, named) = parse_docker_archive(dest)?;
    let repo_tag = match named {
        Some(n) => {
            let (r, t) = split_ref(&n)?;
            format!("{r}:{t}")
        }
        None => format!("{repo}:{tag}"),
    };
    let platform = platform.map(docker_archive::Platform::parse).transpose()?;
    let mut bar = crate::progress::Bar::new("exporting", None);
    let t = docker_archive::export(
        reg,
        &repo,
        &tag,
        &file,
        Some(&repo_tag),
        platform.as_ref(),
        &mut blob_progress(&mut bar),
    )?;
    bar.finish();
    println!(
        "{} ({} blobs written, {} bytes)",
        t.digest, t.blobs_copied, t.bytes
    );
    Ok(())
}

/// Run `cargohold registry ...`.
pub fn registry(ctx: &Ctx, cmd: RegistryCmd) -> Result<()> {
    let reg = open(ctx)?;
    match cmd {
        RegistryCmd::Tags { repo } => {
            let rows: Vec<Vec<String>> = reg
                .tags(&repo, None, None)?
                .into_iter()
                .map(|t| vec![t])
                .collect();
            output::table(ctx, &["TAG"], &rows);
        }
        RegistryCmd::Catalog => {
            let rows: Vec<Vec<String>> = reg
                .catalog(None, None)?
                .into_iter()
                .map(|r| vec![r])
                .collect();
            output::table(ctx, &["REPOSITORY"], &rows);
        }
        RegistryCmd::Gc {
            dry_run,
            delete_untagged,
            grace,
        } => registry_gc(ctx, &reg, dry_run, delete_untagged, grace)?,
        RegistryCmd::Fsck { repair } => registry_fsck(ctx, &reg, repair)?,
    }
    Ok(())
}

fn registry_gc(
    ctx: &Ctx,
    reg: &Registry,
    dry_run: bool,
    delete_untagged: bool,
    grace: u64,
) -> Result<()> {
    let mut marking = Some(Bar::new("marking", None));
    let mut sweeping: Option<Bar> = None;
    let mut cb = |p: GcProgress| match p {
        GcProgress::Marked { .. } => {
            if let Some(b) = marking.as_mut() {
                b.advance(0, true);
            }
        }
        GcProgress::Swept { .. } => {
            if let Some(b) = marking.take() {
                b.finish();
            }
            sweeping
                .get_or_insert_with(|| Bar::new("sweeping", None))
                .advance(0, true);
        }
    };
    let r = regstore::gc::collect(
        reg,
        GcOptions {
            dry_run,
            delete_untagged,
            grace: Duration::from_secs(grace),
            progress: Some(&mut cb),
        },
    )?;
    for b in [marking, sweeping].into_iter().flatten() {
        b.finish();
    }
    if ctx.json {
        let pairs = |v: &[(String, Digest)]| -> Vec<Value> {
            v.iter()
                .map(|(r, d)| json!({"repository": r, "digest": d}))
                .collect()
        };
        println!(
            "{}",
            json!({
                "dry_run": r.dry_run,
                "repositories": r.repositories,
                "manifests_kept": r.manifests_kept,
                "marked": r.marked,
                "manifests_deleted": pairs(&r.manifests_deleted),
                "blobs_deleted": r.blobs_deleted,
                "bytes_freed": r.bytes_deleted,
                "links_deleted": pairs(&r.links_deleted),
                "blobs_spared": r.blobs_spared,
                "manifests_missing": pairs(&r.manifests_missing),
            })
        );
        return Ok(());
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    output::pairs(
        ctx,
        &[
            ("repositories", r.repositories.to_string()),
            ("manifests kept", r.manifests_kept.to_string()),
            (
                if r.dry_run {
                    "manifests to delete"
                } else {
                    "manifests deleted"
                },
                r.manifests_deleted.len().to_string(),
            ),
            (
                if r.dry_run {
                    "blobs to delete"
                } else {
                    "blobs deleted"
                },
                r.blobs_deleted.len().to_string(),
            ),
            (
                if r.dry_run {
                    "bytes to free"
                } else {
                    "bytes freed"
                },
                r.bytes_deleted.to_string(),
            ),
            ("links removed", r.links_deleted.len().to_string()),
            ("blobs spared (grace)", r.blobs_spared.len().to_string()),
        ],
    );
    for (repo, d) in &r.manifests_deleted {
        println!("{verb} manifest {repo}@{d}");
    }
    for d in &r.blobs_deleted {
        println!("{verb} blob {d}");
    }
    Ok(())
}

/// What a finding is about, in one string.
fn damage_object(d: &Damage) -> String {
    match d {
        Damage::CorruptBlob { digest, actual } => format!("{digest} (bytes are {actual})"),
        Damage::EmptyBlobDir { digest } => digest.to_string(),
        Damage::BadLink { key } => key.to_string(),
        Damage::DanglingLink { key, .. } => key.to_string(),
        Damage::DanglingTag { repository, tag } => format!("{repository}:{tag}"),
        Damage::UnreadableManifest { repository, digest } => format!("{repository}@{digest}"),
        Damage::MissingReference {
            repository,
            manifest,
            missing,
        } => format!("{repository}@{manifest} needs {missing}"),
        Damage::StaleUpload { repository, id } => format!("{repository} upload {id}"),
    }
}

fn registry_fsck(ctx: &Ctx, reg: &Registry, repair: bool) -> Result<()> {
    let mut hashing = Some(Bar::new("hashing blobs", None));
    let mut repos: Option<Bar> = None;
    let mut last = 0;
    let mut cb = |p: FsckProgress| match p {
        FsckProgress::Blob { bytes, .. } => {
            if let Some(b) = hashing.as_mut() {
                b.advance(bytes - last, true);
                last = bytes;
            }
        }
        FsckProgress::Repository { .. } => {
            if let Some(b) = hashing.take() {
                b.finish();
            }
            repos
                .get_or_insert_with(|| Bar::new("repositories", None))
                .advance(0, true);
        }
    };
    let r = regstore::fsck::check(
        reg,
        FsckOptions {
            repair,
            progress: Some(&mut cb),
            ..FsckOptions::default()
        },
    )?;
    for b in [hashing, repos].into_iter().flatten() {
        b.finish();
    }
    if ctx.json {
        let findings: Vec<Value> = r
            .findings
            .iter()
            .map(|f| {
                json!({"kind": f.damage.kind(), "object": damage_object(&f.damage),
                    "repaired": f.repaired,
                    "quarantined": f.quarantined.as_ref().map(|k| k.to_string())})
            })
            .collect();
        let counts: serde_json::Map<String, Value> = r
            .counts()
            .into_iter()
            .map(|(k, n)| (k.to_owned(), json!(n)))
            .collect();
        println!(
            "{}",
            json!({
                "blobs_checked": r.blobs_checked,
                "bytes_checked": r.bytes_checked,
                "repositories": r.repositories,
                "links_checked": r.links_checked,
                "manifests_checked": r.manifests_checked,
                "counts": counts,
                "findings": findings,
                "unrepaired": r.unrepaired(),
            })
        );
    } else {
        output::pairs(
            ctx,
            &[
                ("blobs checked", r.blobs_checked.to_string()),
                ("bytes checked", r.bytes_checked.to_string()),
                ("repositories", r.repositories.to_string()),
                ("links checked", r.links_checked.to_string()),
                ("manifests checked", r.manifests_checked.to_string()),
                ("problems", r.findings.len().to_string()),
                ("unrepaired", r.unrepaired().to_string()),
            ],
        );
        if !r.is_clean() {
            let rows: Vec<Vec<String>> = r
                .findings
                .iter()
                .map(|f| {
                    let done = match (&f.quarantined, f.repaired) {
                        (Some(q), _) => format!("quarantined to {q}"),
                        (None, true) => "removed".to_owned(),
                        (None, false) => "-".to_owned(),
                    };
                    vec![f.damage.kind().to_owned(), damage_object(&f.damage), done]
                })
                .collect();
            output::table(ctx, &["KIND", "OBJECT", "REPAIR"], &rows);
        }
    }
    match r.unrepaired() {
        0 => Ok(()),
        n => Err(Error::new(
            ErrorKind::Corrupt,
            "fsck",
            stores::registry_dir(ctx).display(),
            format!("{n} problem(s) left unrepaired"),
        )),
    }
}

/// The image manifest for this machine's platform: `name` itself, or the matching child
/// of an index.
fn platform_manifest(reg: &Registry, repo: &str, reference: &str) -> Result<(Digest, Value)> {
    let m = reg.get_manifest(repo, reference)?;
    let v: Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| Error::new(ErrorKind::Corrupt, "unpack", reference, e))?;
    if !m.media_type.is_index() {
        return Ok((m.digest, v));
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let child = v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["platform"]["architecture"] == arch && c["platform"]["os"] == "linux")
        .or_else(|| v["manifests"].as_array().and_then(|a| a.first()))
        .and_then(|c| c["digest"].as_str())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "unpack",
                reference,
                "no manifest for this platform",
            )
        })?;
    platform_manifest(reg, repo, child)
}

/// Apply the layers of image `name` (bottom first) into the layer store, streaming each
/// blob out of the registry store and checking both its digest and its diff ID.
pub fn unpack_layers(reg: &Registry, store: &LayerStore, name: &str) -> Result<Vec<Layer>> {
    let (repo, tag) = split_ref(name)?;
    let (_, manifest) = platform_manifest(reg, &repo, &tag)?;
    let config_digest = Digest::parse(manifest["config"]["digest"].as_str().unwrap_or(""))?;
    let config: Value = serde_json::from_slice(&reg.read_blob(&repo, &config_digest)?)
        .map_err(|e| Error::new(ErrorKind::Corrupt, "unpack", &config_digest, e))?;
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| Digest::parse(d.as_str().unwrap_or("")))
        .collect::<Result<_>>()?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    if layers.len() != diff_ids.len() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "unpack",
            name,
            "the config's diff_ids do not match the layers",
        ));
    }
    let total = layers.iter().filter_map(|d| d["size"].as_u64()).sum();
    let mut bar = crate::progress::Bar::new("unpacking", Some(total));
    let mut out: Vec<Layer> = Vec::new();
    let top = layers.len().saturating_sub(1);
    for (i, (desc, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        let blob = Digest::parse(desc["digest"].as_str().unwrap_or(""))?;
        let opts = ApplyOptions {
            expected_diff_id: Some(diff_id),
            expected_compressed_digest: Some(blob.clone()),
            // One sync for the whole image: the top layer's makes the ones below,
            // applied without theirs, durable before it returns (found already there,
            // the top one is synced then).
            defer_sync: i < top,
            ..ApplyOptions::default()
        };
        let r = BufReader::with_capacity(1 << 20, reg.blob_reader(&repo, &blob, 0, None)?);
        let mut r = crate::progress::Counting {
            inner: r,
            bar: &mut bar,
        };
        let parent = out.last().map(|l| l.chain_id.clone());
        out.push(store.apply_layer(&mut r, parent.as_ref(), &opts)?);
        bar.advance(0, true);
    }
    bar.finish();
    Ok(out)
}

/// Tag the committed container layer `layer` as image `name`: the base image's layers
/// (when the container came from one) plus `layer`'s diff as a new uncompressed layer,
/// with the base config's `rootfs.diff_ids` and history extended.
pub fn commit_image(
    reg: &Registry,
    store: &LayerStore,
    base: Option<&str>,
    layer: &Layer,
    name: &str,
    scratch: &Path,
) -> Result<Digest> {
    let (repo, tag) = split_ref(name)?;
    let (mut config, mut layers) = match base {
        Some(b) => {
            let (brepo, btag) = split_ref(b)?;
            let (_, m) = platform_manifest(reg, &brepo, &btag)?;
            let cd = Digest::parse(m["config"]["digest"].as_str().unwrap_or(""))?;
            let config: Value = serde_json::from_slice(&reg.read_blob(&brepo, &cd)?)
                .map_err(|e| Error::new(ErrorKind::Corrupt, "commit", &cd, e))?;
            let layers = m["layers"].as_array().cloned().unwrap_or_default();
            for l in &layers {
                reg.mount_blob(
                    &brepo,
                    &repo,
                    &Digest::parse(l["digest"].as_str().unwrap_or(""))?,
                )?;
            }
            (config, layers)
        }
        None => (
            json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}),
            Vec::new(),
        ),
    };
    // The new layer's tar, from the layer store, into the registry under the digest it
    // was written with (checked on the way; on object storage no upload and no copy).
    std::fs::create_dir_all(scratch).map_err(|e| Error::io("commit", scratch.display(), e))?;
    let mut tmp = tempfile_in(scratch)?;
    let (diff_id, size) = store.diff(&layer.chain_id.to_string(), &mut tmp)?;
    tmp.rewind()
        .map_err(|e| Error::io("commit", "layer tar", e))?;
    reg.put_blob_as(
        &repo,
        &diff_id,
        Some(size),
        BufReader::with_capacity(1 << 20, tmp),
    )?;
    layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id.to_string(), "size": size}));
    match config["rootfs"]["diff_ids"].as_array_mut() {
        Some(ids) => ids.push(json!(diff_id.to_string())),
        None => {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "commit",
                name,
                "the base config has no rootfs.diff_ids",
            ));
        }
    }
    if let Some(h) = config["history"].as_array_mut() {
        h.push(json!({"created_by": "cargohold container commit"}));
    }
    let config_bytes = serde_json::to_vec(&config)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, "commit", name, e))?;
    let config_desc = reg.put_blob(&repo, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_desc.digest.to_string(), "size": config_bytes.len()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, "commit", name, e))?;
    reg.put_manifest(
        &repo,
        &tag,
        &bytes,
        Some("application/vnd.oci.image.manifest.v1+json"),
    )
}

fn tempfile_in(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(format!(".commit-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("commit", path.display(), e))?;
    let _ = std::fs::remove_file(&path);
    Ok(f)
}
