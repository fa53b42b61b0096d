//! The `cargohold` command: a thin layer over the cargohold crates for operators and for
//! the quick start. All storage behaviour lives in the crates; this file parses
//! arguments, opens the stores under one root and prints results.
//!
//! Exit codes: 0 success, 1 an operation failed (one line on stderr says what and why),
//! 2 a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use cargohold_core::{Error, ErrorKind};
use clap::{Parser, Subcommand};

mod demo;
mod image;
mod layer;
mod output;
mod progress;
mod stores;
mod volume;

/// cargohold: container storage without a daemon (layers, containers, volumes, images).
#[derive(Debug, Parser)]
#[command(name = "cargohold", version, propagate_version = true)]
struct Cli {
    /// The store root (default: /var/lib/cargohold as root, else
    /// $XDG_DATA_HOME/cargohold or ~/.local/share/cargohold).
    #[arg(long, global = true, env = "CARGOHOLD_ROOT")]
    root: Option<PathBuf>,

    /// Where the registry store lives: a directory, or `s3://BUCKET/PREFIX` for an
    /// S3-compatible bucket configured from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (default: ROOT/registry).
    #[arg(long, global = true, env = "CARGOHOLD_REGISTRY")]
    registry: Option<String>,

    /// Print listings and inspections as JSON.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole container storage lifecycle on the store and report each step.
    Demo(demo::DemoArgs),
    /// Print where the stores live.
    Info,
    /// Images in the registry store: import, export, list, inspect, remove, unpack.
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// The registry store: tags and catalog.
    #[command(subcommand)]
    Registry(image::RegistryCmd),
    /// Image layers: apply, list, inspect, remove, export.
    #[command(subcommand)]
    Layer(layer::LayerCmd),
    /// Container layers: create, mount, diff, commit, remove.
    #[command(subcommand)]
    Container(layer::ContainerCmd),
    /// Volumes: create, list, inspect, remove, prune, mount, export, import.
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
}

/// What every command handler gets.
#[derive(Debug)]
pub struct Ctx {
    /// The store root.
    pub root: PathBuf,
    /// The registry store's location (`--registry`), when not under the root.
    pub registry: Option<String>,
    /// JSON output requested.
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        root: cli.root.unwrap_or_else(stores::default_root),
        registry: cli.registry.filter(|r| !r.is_empty()),
        json: cli.json,
    };
    let result = match cli.command {
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Info => stores::info(&ctx),
        Command::Image(cmd) => image::image(&ctx, cmd),
        Command::Registry(cmd) => image::registry(&ctx, cmd),
        Command::Layer(cmd) => layer::layer(&ctx, cmd),
        Command::Container(cmd) => layer::container(&ctx, cmd),
        Command::Volume(cmd) => volume::volume(&ctx, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            if err.kind() == ErrorKind::InvalidArgument && err.op() == "usage" {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// One line: what failed and why, with the error kind for scripts.
fn report(err: &Error) {
    eprintln!("cargohold: {err} [{}]", err.kind());
}
