//! `cargohold layer ...` and `cargohold container ...`: the layer store.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use cargohold_core::{Digest, Error, ErrorKind, Result};
use layerstore::{ApplyOptions, Driver, DriverChoice, Kind, Labels, LayerStore};

use crate::{Ctx, output, stores};

/// Label that records which image a container was created from.
pub const IMAGE_LABEL: &str = "org.cargohold.image";

/// `cargohold layer ...`
#[derive(Debug, clap::Subcommand)]
pub enum LayerCmd {
    /// Apply a layer tar (plain, gzip or zstd) and print its chain ID.
    Apply {
        /// The layer tar.
        file: PathBuf,
        /// The layer it goes on top of.
        #[arg(long)]
        parent: Option<String>,
        /// The diff ID it must have (sha256 of the uncompressed tar).
        #[arg(long)]
        diff_id: Option<String>,
        /// Return without waiting for the files to reach the disk; the layer stays
        /// usable, but a store opened after a crash, reboot or remount drops it unless
        /// `layer sync` (or a durable layer on top) made it durable first.
        #[arg(long)]
        defer_sync: bool,
    },
    /// Make the layers applied with --defer-sync durable; prints their chain IDs.
    Sync,
    /// List layers.
    Ls,
    /// Show one layer.
    Inspect {
        /// Chain ID.
        id: String,
    },
    /// Remove a layer (refused while a layer or container is on top of it).
    Rm {
        /// Chain ID.
        id: String,
    },
    /// Write a layer's changes against its parent as an OCI layer tar.
    Export {
        /// Chain ID.
        id: String,
        /// Where to write the tar (`-` for standard output).
        file: PathBuf,
    },
}

/// `cargohold container ...`
#[derive(Debug, clap::Subcommand)]
pub enum ContainerCmd {
    /// Create a writable container layer on an image or a layer.
    Create {
        /// Container name.
        name: String,
        /// Image (NAME:TAG in the registry store); its layers are unpacked first.
        #[arg(long, conflicts_with = "layer")]
        image: Option<String>,
        /// Top layer (chain ID) instead of an image; empty when neither is given.
        #[arg(long)]
        layer: Option<String>,
    },
    /// Mount the container's root filesystem and print its path.
    Mount {
        /// Container name.
        name: String,
    },
    /// Unmount the container's root filesystem.
    Unmount {
        /// Container name.
        name: String,
    },
    /// List what the container changed (A added, C changed, D deleted).
    Diff {
        /// Container name.
        name: String,
    },
    /// Commit the container into a new layer (and, with NAME:TAG, a new image in the
    /// registry store); prints the layer's chain ID.
    Commit {
        /// Container name.
        name: String,
        /// Image to store the result as.
        image: Option<String>,
    },
    /// List containers.
    Ls,
    /// Remove a container (refused while mounted).
    Rm {
        /// Container name.
        name: String,
    },
}

/// Open the layer store under the root with the driver this user can use.
pub fn open(ctx: &Ctx) -> Result<LayerStore> {
    LayerStore::open(stores::layers_dir(ctx), driver_choice())
}

/// `CARGOHOLD_DRIVER` (`vfs`, `overlay` or `btrfs`) when set; otherwise the driver the
/// store recorded, or for a new store btrfs on btrfs, overlay as root, vfs otherwise.
pub fn driver_choice() -> DriverChoice {
    match std::env::var("CARGOHOLD_DRIVER").as_deref() {
        Ok("vfs") => DriverChoice::Vfs,
        Ok("overlay") => DriverChoice::Overlay,
        Ok("btrfs") => DriverChoice::Btrfs,
        _ => DriverChoice::Auto,
    }
}

fn digest_arg(what: &str, s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| Error::new(e.kind(), "usage", what, e.detail().to_owned()))
}

/// Container names are one path component, as Docker's.
pub fn check_container_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            "container",
            name,
            "names are [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 bytes",
        ))
    }
}

fn mount_point(ctx: &Ctx, name: &str) -> PathBuf {
    ctx.root.join("mnt").join(name)
}

/// Run `cargohold layer ...`.
pub fn layer(ctx: &Ctx, cmd: LayerCmd) -> Result<()> {
    let store = open(ctx)?;
    match cmd {
        LayerCmd::Apply {
            file,
            parent,
            diff_id,
            defer_sync,
        } => {
            let parent = parent.map(|p| digest_arg("--parent", &p)).transpose()?;
            let opts = ApplyOptions {
                expected_diff_id: diff_id.map(|d| digest_arg("--diff-id", &d)).transpose()?,
                defer_sync,
                ..ApplyOptions::default()
            };
            let f = File::open(&file).map_err(|e| Error::io("open", file.display(), e))?;
            let layer = store.apply_layer(
                &mut BufReader::with_capacity(1 << 20, f),
                parent.as_ref(),
                &opts,
            )?;
            println!("{}", layer.chain_id);
        }
        LayerCmd::Sync => {
            for id in store.sync()? {
                println!("{id}");
            }
        }
        LayerCmd::Ls => {
            let mut layers = store.layers()?;
            layers.sort_by_key(|l| l.created);
            let rows: Vec<Vec<String>> = layers
                .iter()
                .map(|l| {
                    vec![
                        l.chain_id.to_string(),
                        l.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                        l.diff_id.to_string(),
                        l.size.to_string(),
                    ]
                })
                .collect();
            output::table(ctx, &["CHAIN_ID", "PARENT", "DIFF_ID", "SIZE"], &rows);
        }
        LayerCmd::Inspect { id } => {
            let l = store.layer(&digest_arg("ID", &id)?)?;
            let usage = store.usage(&l.chain_id.to_string())?;
            output::json_value(&serde_json::json!({
                "chain_id": l.chain_id.to_string(),
                "parent": l.parent.map(|p| p.to_string()),
                "diff_id": l.diff_id.to_string(),
                "compressed_digest": l.compressed_digest.map(|d| d.to_string()),
                "size": l.size,
                "created": l.created,
                "durable": l.durable,
                "disk_usage": usage.size,
                "inodes": usage.inodes,
            }));
        }
        LayerCmd::Rm { id } => {
            let id = digest_arg("ID", &id)?;
            store.remove_layer(&id)?;
            println!("{id}");
        }
        LayerCmd::Export { id, file } => {
            let id = digest_arg("ID", &id)?;
            store.layer(&id)?;
            let (diff_id, size) = write_to(&file, |out| store.diff(&id.to_string(), out))?;
            eprintln!("{diff_id} {size} bytes");
        }
    }
    Ok(())
}

/// Write through `f` to `file` (or standard output for `-`).
pub fn write_to<T>(file: &Path, f: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    if file == Path::new("-") {
        let stdout = std::io::stdout();
        let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
        let v = f(&mut out)?;
        out.flush().map_err(|e| Error::io("write", "stdout", e))?;
        return Ok(v);
    }
    let created = File::create(file).map_err(|e| Error::io("create", file.display(), e))?;
    let mut out = BufWriter::with_capacity(1 << 20, created);
    let v = f(&mut out)?;
    out.flush()
        .map_err(|e| Error::io("write", file.display(), e))?;
    Ok(v)
}

/// Run `cargohold container ...`.
pub fn container(ctx: &Ctx, cmd: ContainerCmd) -> Result<()> {
    let store = open(ctx)?;
    match cmd {
        ContainerCmd::Create { name, image, layer } => {
            check_container_name(&name)?;
            let mut labels = Labels::new();
            let top = match (image, layer) {
                (Some(image), _) => {
                    let reg = crate::image::open(ctx)?;
                    let layers = crate::image::unpack_layers(&reg, &store, &image)?;
                    labels.insert(IMAGE_LABEL.to_owned(), image);
                    layers.last().map(|l| l.chain_id.clone())
                }
                (None, Some(layer)) => Some(digest_arg("--layer", &layer)?),
                (None, None) => None,
            };
            store.prepare_container(&name, top.as_ref(), labels)?;
            println!("{name}");
        }
        ContainerCmd::Mount { name } => {
            check_container_name(&name)?;
            let target = mount_point(ctx, &name);
            std::fs::create_dir_all(&target)
                .map_err(|e| Error::io("mount", target.display(), e))?;
            store.mount(&name, &target)?;
            println!("{}", target.display());
        }
        ContainerCmd::Unmount { name } => {
            check_container_name(&name)?;
            store.unmount(&mount_point(ctx, &name))?;
        }
        ContainerCmd::Diff { name } => {
            let changes = container_changes(&store, &name)?;
            if ctx.json {
                let arr: Vec<_> = changes
                    .iter()
                    .map(|(k, p)| serde_json::json!({"kind": k, "path": p}))
                    .collect();
                output::json_value(&serde_json::Value::Array(arr));
            } else {
                for (k, p) in changes {
                    println!("{k} {p}");
                }
            }
        }
        ContainerCmd::Commit { name, image } => {
            if let Some(image) = &image {
                crate::image::split_ref(image)?;
            }
            let info = store.stat(&name)?;
            let layer = store.commit_container(&name, Labels::new())?;
            if let Some(image) = image {
                let reg = crate::image::open(ctx)?;
                let base = info.labels.get(IMAGE_LABEL).map(String::as_str);
                let digest = crate::image::commit_image(
                    &reg,
                    &store,
                    base,
                    &layer,
                    &image,
                    &ctx.root.join("tmp"),
                )?;
                eprintln!("{image} {digest}");
            }
            println!("{}", layer.chain_id);
        }
        ContainerCmd::Ls => {
            let mut rows = Vec::new();
            store.walk(&mut |info| {
                if info.kind == Kind::Active {
                    rows.push(vec![
                        info.name.clone(),
                        info.parent.clone().unwrap_or_default(),
                    ]);
                }
            })?;
            rows.sort();
            output::table(ctx, &["NAME", "IMAGE", "LAYER"], &rows);
        }
        ContainerCmd::Rm { name } => {
            let info = store.stat(&name)?;
            if info.kind == Kind::Committed {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "container rm",
                    name,
                    "that is a layer, not a container",
                ));
            }
            store.remove(&name)?;
            let _ = std::fs::remove_dir(mount_point(ctx, &name));
            println!("{name}");
        }
    }
    Ok(())
}

/// The changes of container `name` as (`A`|`C`|`D`, path), as `docker diff` prints them.
pub fn container_changes(store: &LayerStore, name: &str) -> Result<Vec<(char, String)>> {
    use layerstore::archive::ChangeKind;
    Ok(store
        .changes(name)?
        .into_iter()
        .map(|c| {
            let k = match c.kind {
                ChangeKind::Added => 'A',
                ChangeKind::Modified => 'C',
                ChangeKind::Deleted => 'D',
            };
            (k, format!("/{}", c.path.display()))
        })
        .collect())
}
