//! volstore: container volumes without a daemon.
//!
//! A volume is a named directory that outlives the containers using it. Every volume
//! driver speaks the eight verbs of the Docker volume plugin API ([`Driver`]); the
//! [`local`] driver keeps volumes on this machine in Docker's own layout (and can mount
//! tmpfs, bind, NFS and block-device volumes, or cap a volume's size with a loop-backed
//! image), and [`plugin`] speaks the plugin protocol in both directions: it serves any
//! [`Driver`] on a unix socket for Docker Engine, and it drives any existing plugin
//! socket as a [`Driver`].

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod local;
pub mod mounter;
pub mod names;
pub mod options;
pub mod plugin;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use cargohold_core::{Error, ErrorKind, Result};
pub use local::LocalDriver;
pub use names::check_name;

/// Driver options of one volume, as `docker volume create -o KEY=VALUE` passes them.
pub type Options = BTreeMap<String, String>;

/// The eight verbs of the Docker volume plugin API, as a Rust trait.
///
/// Contract every driver keeps (checked by the `conformance` suite):
/// - names are checked with [`check_name`] before any driver work: a bad name is
///   `InvalidArgument` and nothing is created;
/// - `create` of a new name makes an empty volume; of an existing name with the same
///   options it succeeds and changes nothing; with different options it is
///   `AlreadyExists` (Docker silently keeps the old options; cargohold says so);
///   unknown or malformed options are `InvalidArgument`, a device that does not exist
///   `NotFound`, and in both cases nothing is created;
/// - `mount(name, id)` returns the path where the volume's content is, mounting it
///   first if it is the first holder; it is idempotent per `id` (mounting twice with one
///   id holds once). `unmount(name, id)` releases that holder, unmounting at the last
///   one; releasing an id that does not hold the volume is `InvalidArgument`. Holders
///   are exact across processes;
/// - `remove` of a volume with holders is `InUse` and changes nothing; of a missing one
///   `NotFound`;
/// - `path` is where the content is while mounted, `None` when the driver only knows it
///   once mounted (the local driver always knows it);
/// - `get` and `list` describe volumes; `list` is cheap (no per-volume mount work).
pub trait Driver: Send + Sync {
    /// Create the volume `name` with driver options `options`.
    fn create(&self, name: &str, options: &Options) -> Result<()>;

    /// Remove the volume `name` and its content. `InUse` while it has holders.
    fn remove(&self, name: &str) -> Result<()>;

    /// Hold the volume for the mount id `id` and return where its content is.
    fn mount(&self, name: &str, id: &str) -> Result<PathBuf>;

    /// Release the hold of `id` on `name`, unmounting it after the last holder.
    fn unmount(&self, name: &str, id: &str) -> Result<()>;

    /// Where the volume's content is (`None` if the driver knows only once mounted).
    fn path(&self, name: &str) -> Result<Option<PathBuf>>;

    /// Describe one volume (`NotFound` if it does not exist).
    fn get(&self, name: &str) -> Result<Volume>;

    /// Describe every volume, sorted by name.
    fn list(&self) -> Result<Vec<Volume>>;

    /// What the driver is: its scope.
    fn capabilities(&self) -> Capabilities;
}

/// A volume as the plugin API describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    /// The volume's name.
    pub name: String,
    /// Where its content is, when known.
    pub mountpoint: Option<PathBuf>,
    /// Creation time, RFC 3339 in UTC, when known.
    pub created_at: Option<String>,
    /// Driver-specific status (free-form JSON values), empty when the driver has none.
    pub status: BTreeMap<String, serde_json::Value>,
}

/// Whether a driver's volumes are visible on this machine only or cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Volumes exist on this machine only (the local driver).
    Local,
    /// Volumes are the same everywhere (a network storage plugin).
    Global,
}

/// A driver's capabilities, as `/VolumeDriver.Capabilities` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// The scope of the driver's volumes.
    pub scope: Scope,
}

/// Format seconds since the Unix epoch as RFC 3339 in UTC (`2026-11-22T18:31:01Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_375_861), "2026-11-22T19:31:01Z");
    }
}
