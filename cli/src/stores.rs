//! Where the stores live under one root, and opening them.

use std::path::PathBuf;

use cargohold_core::Result;

use crate::{Ctx, output};

/// `/var/lib/cargohold` for root; `$XDG_DATA_HOME/cargohold` or
/// `~/.local/share/cargohold` for anybody else.
pub fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/cargohold");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("cargohold");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/cargohold")
}

/// The layer store's directory.
pub fn layers_dir(ctx: &Ctx) -> PathBuf {
    ctx.root.join("layers")
}

/// The volume store's directory (volumes in Docker's layout below it).
pub fn volumes_dir(ctx: &Ctx) -> PathBuf {
    ctx.root.join("volumes")
}

/// The registry store's directory, in registry:2's layout, so a registry:2 whose
/// `rootdirectory` points here serves it.
pub fn registry_dir(ctx: &Ctx) -> PathBuf {
    ctx.root.join("registry")
}

/// Where the registry store is: `--registry` (a directory or `s3://BUCKET/PREFIX`),
/// else [`registry_dir`].
pub fn registry_location(ctx: &Ctx) -> String {
    match &ctx.registry {
        Some(r) => r.clone(),
        None => registry_dir(ctx).display().to_string(),
    }
}

/// Open the registry store at [`registry_location`].
pub fn open_registry(ctx: &Ctx) -> Result<regstore::Registry> {
    let driver = regstore::drivers::open_location(&registry_location(ctx))?;
    Ok(regstore::Registry::on(driver))
}

/// `cargohold info`.
pub fn info(ctx: &Ctx) -> Result<()> {
    let rows = vec![
        ("root", ctx.root.display().to_string()),
        ("layers", layers_dir(ctx).display().to_string()),
        ("volumes", volumes_dir(ctx).display().to_string()),
        ("registry", registry_location(ctx)),
    ];
    output::pairs(ctx, &rows);
    Ok(())
}
