//! `cargohold volume ...`: the volume store (the local driver, Docker's layout).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use cargohold_core::{Error, ErrorKind, Result};
use volstore::local::CreateRequest;
use volstore::{Driver, LocalDriver};

use crate::{Ctx, output, stores};

/// The mount id the command holds volumes under unless told otherwise.
pub const CLI_MOUNT_ID: &str = "cargohold-cli";

/// `cargohold volume ...`
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCmd {
    /// Create a volume (anonymous, with a generated name, when NAME is left out) and
    /// print its name.
    Create {
        /// Volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
        name: Option<String>,
        /// Driver option: type=tmpfs|none|nfs|ext4|..., device=..., o=..., size=...
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
        /// Label to keep with the volume.
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
    },
    /// List volumes.
    Ls,
    /// Show one volume.
    Inspect {
        /// Volume name.
        name: String,
    },
    /// Remove a volume (refused while it is held, unless --force).
    Rm {
        /// Unmount and remove even while held.
        #[arg(long, short)]
        force: bool,
        /// Volume name.
        name: String,
    },
    /// Remove unused anonymous volumes (all unused volumes with --all).
    Prune {
        /// Also named volumes.
        #[arg(long, short)]
        all: bool,
    },
    /// Hold a volume (mounting it if it has options) and print where its content is.
    Mount {
        /// Volume name.
        name: String,
        /// Mount id to hold it under.
        #[arg(long, default_value = CLI_MOUNT_ID)]
        id: String,
    },
    /// Release a hold (unmounting at the last).
    Unmount {
        /// Volume name.
        name: String,
        /// Mount id that holds it.
        #[arg(long, default_value = CLI_MOUNT_ID)]
        id: String,
    },
    /// Copy a directory into an empty, never-populated volume.
    Populate {
        /// Volume name.
        name: String,
        /// Directory to copy.
        dir: PathBuf,
    },
    /// Back up a volume's content as a tar (`-` for standard output).
    Export {
        /// Volume name.
        name: String,
        /// Where to write the tar.
        file: PathBuf,
    },
    /// Restore a tar (plain, gzip or zstd) into an empty volume (`-` for standard input).
    Import {
        /// Volume name.
        name: String,
        /// The tar.
        file: PathBuf,
    },
    /// Serve the volume store as a Docker volume plugin on a unix socket until SIGINT
    /// or SIGTERM (e.g. /run/docker/plugins/cargohold.sock, then
    /// `docker volume create -d cargohold NAME`).
    ServePlugin {
        /// The socket to listen on.
        #[arg(long)]
        socket: PathBuf,
    },
}

fn usage(what: &str, detail: &str) -> Error {
    Error::new(ErrorKind::InvalidArgument, "usage", what, detail)
}

/// Parse `KEY=VALUE` pairs.
fn pairs(items: &[String], what: &str) -> Result<std::collections::BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(usage(kv, &format!("a {what} is KEY=VALUE"))),
        })
        .collect()
}

/// Open the volume store under the root.
pub fn open(ctx: &Ctx) -> Result<LocalDriver> {
    let d = LocalDriver::open(stores::volumes_dir(ctx))?;
    for s in d.stale() {
        eprintln!(
            "cargohold: volume {}: dropped stale holders {:?} ({})",
            s.volume, s.holders, s.reason
        );
    }
    Ok(d)
}

/// Serve `d` on `socket` until SIGINT or SIGTERM.
fn serve_plugin(d: LocalDriver, socket: &std::path::Path) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    // Blocked before the server's threads start, so they inherit the mask and the
    // signal waits here for `wait` to take it.
    signals
        .thread_block()
        .map_err(|e| Error::new(ErrorKind::Io, "serve plugin", "signals", e.to_string()))?;
    let server = volstore::plugin::serve(std::sync::Arc::new(d), socket)?;
    eprintln!(
        "cargohold: serving the volume plugin on {}",
        socket.display()
    );
    let sig = signals
        .wait()
        .map_err(|e| Error::new(ErrorKind::Io, "serve plugin", "signals", e.to_string()))?;
    eprintln!("cargohold: {sig}: stopping");
    server.shutdown()
}

/// `cargohold volume ...`
pub fn volume(ctx: &Ctx, cmd: VolumeCmd) -> Result<()> {
    let d = open(ctx)?;
    match cmd {
        VolumeCmd::ServePlugin { socket } => return serve_plugin(d, &socket),
        VolumeCmd::Create { name, opts, label } => {
            let req = CreateRequest {
                options: pairs(&opts, "driver option")?,
                labels: pairs(&label, "label")?,
            };
            let v = d.create_volume(name.as_deref(), &req)?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls => {
            let mut rows = Vec::new();
            for name in d.names()? {
                let info = match d.inspect(&name) {
                    Ok(i) => i,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let kind = info.options.get("type").cloned().unwrap_or_else(|| {
                    if info.options.contains_key("size") {
                        "sized".into()
                    } else {
                        "dir".into()
                    }
                });
                rows.push(vec![
                    info.name,
                    kind,
                    info.holders.len().to_string(),
                    info.created_at,
                ]);
            }
            output::table(ctx, &["NAME", "TYPE", "HOLDERS", "CREATED"], &rows);
        }
        VolumeCmd::Inspect { name } => {
            let info = d.inspect(&name)?;
            let value = serde_json::to_value(&info).expect("serialises");
            output::json_value(&value);
        }
        VolumeCmd::Rm { force, name } => {
            d.remove_volume(&name, force)?;
            println!("{name}");
        }
        VolumeCmd::Prune { all } => {
            let r = d.prune(all)?;
            if ctx.json {
                output::json_value(&serde_json::to_value(&r).expect("serialises"));
            } else {
                for n in &r.removed {
                    println!("{n}");
                }
                eprintln!(
                    "removed {} volume(s), {} bytes reclaimed",
                    r.removed.len(),
                    r.bytes
                );
            }
        }
        VolumeCmd::Mount { name, id } => println!("{}", d.mount(&name, &id)?.display()),
        VolumeCmd::Unmount { name, id } => d.unmount(&name, &id)?,
        VolumeCmd::Populate { name, dir } => {
            let copied = d.populate(&name, &dir)?;
            println!(
                "{}",
                if copied {
                    "copied"
                } else {
                    "already populated"
                }
            );
        }
        VolumeCmd::Export { name, file } => {
            if file.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
                d.export(&name, &mut out)?;
                out.flush()
                    .map_err(|e| Error::io("export volume", "stdout", e))?;
            } else {
                let f = File::create(&file)
                    .map_err(|e| Error::io("export volume", file.display(), e))?;
                let mut out = BufWriter::with_capacity(1 << 20, f);
                let r = d.export(&name, &mut out).and_then(|()| {
                    out.flush()
                        .map_err(|e| Error::io("export volume", file.display(), e))
                });
                if r.is_err() {
                    let _ = std::fs::remove_file(&file);
                }
                r?;
            }
        }
        VolumeCmd::Import { name, file } => {
            if file.as_os_str() == "-" {
                d.import(&name, BufReader::with_capacity(1 << 20, std::io::stdin()))?;
            } else {
                let f =
                    File::open(&file).map_err(|e| Error::io("import volume", file.display(), e))?;
                d.import(&name, BufReader::with_capacity(1 << 20, f))?;
            }
        }
    }
    Ok(())
}
