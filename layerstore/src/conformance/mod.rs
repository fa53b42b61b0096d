//! The [`Driver`] conformance suite, modelled on containerd's snapshotter suite.
//!
//! Every check gets a fresh [`Fixture`] (a driver over its own temporary root), runs,
//! and ends by asserting nothing was left behind: no temporary entries, no mounts below
//! the root, no lock held. [`crate::driver_conformance_tests!`] stamps one `#[test]` per
//! check for a driver:
//!
//! ```text
//! layerstore::driver_conformance_tests!(vfs, || layerstore::conformance::vfs_fixture());
//! ```
//!
//! Checks that mount (the data returned must really mount) need root and fail loudly
//! without it.

mod checks;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cargohold_core::atomic::is_temp_name;
use cargohold_core::root::FileType;
use cargohold_core::{Dir, FileLock, LockMode};

pub use checks::*;

use crate::Driver;

/// A driver over a temporary root, removed on drop.
pub struct Fixture {
    /// The driver under test.
    pub driver: Box<dyn Driver>,
    /// Its root directory.
    pub root: PathBuf,
    /// Dropped after the driver and before `tempdir` (e.g. unmounts the filesystem the
    /// root lives on).
    pub guard: Option<Box<dyn std::any::Any>>,
    /// Kept alive for the fixture's lifetime.
    pub tempdir: tempfile::TempDir,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("root", &self.root).finish()
    }
}

/// A vfs [`crate::snapshots::Snapshots`] in a fresh temporary directory.
pub fn vfs_fixture() -> Fixture {
    backend_fixture(Box::new(crate::drivers::vfs::Vfs))
}

/// The shared bookkeeping over any `backend`, in a fresh temporary directory.
pub fn backend_fixture(backend: Box<dyn crate::drivers::Backend>) -> Fixture {
    let tempdir = scratch_dir();
    let root = tempdir.path().join("store");
    let driver = crate::snapshots::Snapshots::open(&root, backend).expect("open a store");
    Fixture {
        driver: Box::new(driver),
        root,
        guard: None,
        tempdir,
    }
}

/// A vfs [`crate::LayerStore`] (the store's own `Driver`, which also counts mounts) in
/// a fresh temporary directory.
pub fn layerstore_vfs_fixture() -> Fixture {
    let tempdir = scratch_dir();
    let root = tempdir.path().join("store");
    let driver =
        crate::LayerStore::open(&root, crate::DriverChoice::Vfs).expect("open a vfs layer store");
    Fixture {
        driver: Box::new(driver),
        root,
        guard: None,
        tempdir,
    }
}

/// A temporary directory for a check, under `CARGOHOLD_TEST_TMPDIR` when set.
pub fn scratch_dir() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_TEST_TMPDIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("create a temporary directory")
}

/// Panic unless the process is root (for checks that mount).
pub fn require_root(check: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{check} mounts and must run as root"
    );
}

/// Assert that nothing was left below `root`: no temporary entries, no mounts, no lock
/// file that another holder still has.
pub fn assert_clean(root: &Path) {
    let mounts = crate::mounts::mounts_below(root).expect("read mountinfo");
    assert!(
        mounts.is_empty(),
        "mounts left below {}: {mounts:?}",
        root.display()
    );
    let dir = Dir::open_path(root).expect("open root");
    let mut bad = Vec::new();
    scan(&dir, root, &mut bad);
    assert!(bad.is_empty(), "left behind: {bad:?}");
}

/// Try to take a lock file, a few times over a second: a process another test thread
/// is starting holds a copy of every descriptor open at its `fork` until its `exec`
/// closes them, so a lock released a moment ago can look held for that long. A leaked
/// lock stays held.
fn probe_lock(dir: &Dir, name: &OsStr) -> cargohold_core::Result<Option<FileLock>> {
    for _ in 0..20 {
        if let Some(l) = FileLock::try_lock(dir, name, LockMode::Exclusive)? {
            return Ok(Some(l));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    FileLock::try_lock(dir, name, LockMode::Exclusive)
}

fn scan(dir: &Dir, at: &Path, bad: &mut Vec<String>) {
    for (name, kind) in dir.entries().expect("list") {
        let path = at.join(&name);
        if is_temp_name(&name) {
            bad.push(format!("temporary entry {}", path.display()));
        }
        if kind == FileType::RegularFile && Path::new(&name).extension() == Some(OsStr::new("lock"))
        {
            match probe_lock(dir, &name) {
                Ok(Some(_)) => {}
                Ok(None) => bad.push(format!("lock still held {}", path.display())),
                Err(e) => bad.push(format!("lock {}: {e}", path.display())),
            }
        }
        if kind == FileType::Directory {
            scan(&dir.open_dir(&name).expect("open"), &path, bad);
        }
    }
}

/// Stamp one `#[test]` per conformance check for a driver: `$name` names the module
/// the tests go in, `$fixture` is an expression returning a [`Fixture`] (called once
/// per check).
#[macro_export]
macro_rules! driver_conformance_tests {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::driver_conformance_tests!(@checks $fixture;
                prepare_commit_view_chain,
                remove_refused_while_children_exist,
                commit_of_a_view_is_refused,
                commit_removes_the_active_key,
                stat_walk_and_usage,
                labels_kept_and_replaced,
                files_written_visible_in_view_after_commit,
                deletions_across_layers,
                mounts_are_data_that_mount,
                view_mounts_are_read_only,
                removed_key_has_no_mounts,
                invalid_keys_are_refused,
                duplicate_keys_are_refused,
                missing_parents_are_refused,
                active_parent_is_refused,
            );
        }
    };
    (@checks $fixture:expr; $($check:ident,)*) => {
        $(
            #[test]
            fn $check() {
                let fixture: $crate::conformance::Fixture = ($fixture)();
                $crate::conformance::$check(&fixture);
                $crate::conformance::assert_clean(&fixture.root);
            }
        )*
    };
}
