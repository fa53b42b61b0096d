//! layerstore: image layers and container snapshots without a daemon.
//!
//! A [`LayerStore`] keeps read-only image *layers* (each made by applying an OCI layer
//! tar on top of a parent and identified by its chain ID) and writable container
//! snapshots on top of them, in one directory that several processes may use at once.
//! How a snapshot is laid out on disk and mounted is a [`Driver`]'s business (`vfs`:
//! full copies; `overlay`: upper dirs over lower dirs); the bookkeeping every driver
//! shares (parents, labels, locks, crash clean-up) lives in [`snapshots`].

pub mod archive;
pub mod chain_id;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod drivers;
pub mod layer_tar;
pub mod mounts;
pub mod snapshots;
pub mod store;

use std::path::PathBuf;

pub use cargohold_core::{Error, ErrorKind, Result};
pub use chain_id::chain_id;
pub use store::{ApplyOptions, Layer, LayerStore};

/// Labels attached to a snapshot: free-form key/value strings kept with its metadata.
pub type Labels = std::collections::BTreeMap<String, String>;

/// Snapshots in containerd's snapshotter shape.
///
/// Vocabulary, used everywhere in this crate:
/// - a **key** names an *active* snapshot: a writable container layer (made by
///   [`Driver::prepare`]) or a read-only *view* (made by [`Driver::view`]);
/// - a **name** names a *committed* snapshot, made from an active one by
///   [`Driver::commit`]; committed snapshots never change and are the only valid parents;
/// - a **layer** is a committed snapshot made by applying an OCI layer tar; its name is
///   its chain ID (see [`chain_id()`]).
///
/// Keys and names share one namespace: a string names at most one snapshot. A valid
/// key is 1 to 1024 bytes of printable characters (no control characters, no NUL);
/// anything else is `InvalidArgument`, checked before any driver code runs.
///
/// Mounts are returned as data ([`Mount`]) so an embedder can mount them in its own
/// mount namespace; nothing here mounts anything except [`LayerStore::mount`].
pub trait Driver: Send + Sync {
    /// Create the writable active snapshot `key` on top of the committed snapshot
    /// `parent` (or empty), returning how to mount it.
    ///
    /// `AlreadyExists` if `key` names any snapshot; `NotFound` if `parent` does not exist;
    /// `InvalidArgument` if `parent` is not committed.
    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>>;

    /// Like [`Driver::prepare`], but the snapshot is a read-only view of `parent`: its
    /// mounts are read-only and it can never be committed.
    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>>;

    /// Turn the active snapshot `key` into the committed snapshot `name`. Commit removes
    /// the active key: afterwards `key` is `NotFound` and `name` is a valid parent.
    ///
    /// `InvalidArgument` for a view; `AlreadyExists` if `name` is taken; `NotFound` if
    /// `key` does not exist or is already committed. Labels given here replace the
    /// snapshot's labels when not empty.
    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()>;

    /// How to mount the active snapshot `key` again (the same as prepare/view returned).
    /// `NotFound` for a missing or committed key.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;

    /// Remove the active or committed snapshot `key` and its data. Refused with `InUse`
    /// while another snapshot has it as parent; `NotFound` if it does not exist.
    fn remove(&self, key: &str) -> Result<()>;

    /// What is known about the snapshot `key` (active or committed).
    fn stat(&self, key: &str) -> Result<Info>;

    /// Call `f` once per snapshot, in no particular order.
    fn walk(&self, f: &mut dyn FnMut(&Info)) -> Result<()>;

    /// Disk usage of the snapshot's own data, not counting its parents. For an active
    /// snapshot the value is computed now; for a committed one it does not change.
    fn usage(&self, key: &str) -> Result<Usage>;
}

/// What a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Writable, made by [`Driver::prepare`].
    Active,
    /// Read-only, made by [`Driver::view`]; cannot be committed.
    View,
    /// Read-only and immutable, made by [`Driver::commit`]; may be a parent.
    Committed,
}

/// What [`Driver::stat`] and [`Driver::walk`] report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (active) or name (committed).
    pub name: String,
    /// The committed parent's name.
    pub parent: Option<String>,
    /// Active, view or committed.
    pub kind: Kind,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Labels.
    pub labels: Labels,
}

/// Disk usage of one snapshot's own data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated (512-byte blocks times 512), each inode counted once.
    pub size: u64,
    /// Inodes, each hardlinked inode counted once.
    pub inodes: u64,
}

/// One mount, as data: what `mount(2)` (or `mount -t <kind> -o <options> <source>
/// <target>`) would be given. An embedder mounts the list in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type: `"overlay"` or `"bind"`.
    pub kind: String,
    /// Source: a directory for a bind mount, `"overlay"` for overlay.
    pub source: PathBuf,
    /// Where to mount it, relative to the container root; `None` for the root itself.
    pub target: Option<PathBuf>,
    /// Mount options, e.g. `"ro"`, `"rbind"`, `"upperdir=..."`, `"workdir=..."`.
    pub options: Vec<String>,
    /// For overlay: the lower directories, topmost first (also in `options` as
    /// `lowerdir=`, kept here unjoined so long chains can be passed by other means).
    pub lowerdirs: Vec<PathBuf>,
}

impl Mount {
    /// Whether the mount is read-only (`ro` among its options).
    pub fn is_read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Which driver a [`LayerStore`] uses. A store records its driver when it is created
/// (`ROOT/driver`) and refuses to be opened with another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// Full directory copies (reflinked where the filesystem allows): works anywhere.
    Vfs,
    /// Overlayfs: layers are lower dirs, containers upper dirs.
    Overlay,
    /// Btrfs: content as subvolumes, children as snapshots (the store must be on btrfs).
    Btrfs,
    /// The driver the store recorded; for a new store, btrfs when it lives on btrfs,
    /// overlay as root elsewhere, vfs otherwise.
    Auto,
}
