//! Without this, the container paths that skip `fsync` (active and view records, their
//! directories, child markers, mount records and target links) could leave a half-written
//! record visible after a process is killed mid-operation, or a store that a reopen
//! cannot reconcile: a parent that can never be removed, a container nobody can remove.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cargohold_core::{Dir, FileLock, LockMode, atomic};
use layerstore::mounts::MountRecord;
use layerstore::snapshots::Record;
use layerstore::{ApplyOptions, Driver, DriverChoice, ErrorKind, Kind, LayerStore};

const ROLE: &str = "CARGOHOLD_TEST_CHILD_ROLE";
const STORE: &str = "CARGOHOLD_TEST_CHILD_STORE";
const BASE: &str = "CARGOHOLD_TEST_CHILD_BASE";
const TARGET: &str = "CARGOHOLD_TEST_CHILD_TARGET";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
}

fn base_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..5 {
        let data = vec![i as u8; 512];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("d/f{i}"), &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A fresh overlay store holding one base layer; returns the layer's name.
fn store_with_base(root: &Path) -> String {
    let s = LayerStore::open(root, DriverChoice::Overlay).unwrap();
    let l = s
        .apply_layer(
            &mut std::io::Cursor::new(base_tar()),
            None,
            &ApplyOptions::default(),
        )
        .unwrap();
    l.chain_id.to_string()
}

/// The child: churn through the container lifecycle forever (bounded), printing one
/// line per round so the parent can kill it at varying points of the next round.
fn child_churn() {
    let store = LayerStore::open(std::env::var_os(STORE).unwrap(), DriverChoice::Overlay).unwrap();
    let base = std::env::var(BASE).unwrap();
    let target = std::env::var_os(TARGET).map(PathBuf::from);
    let pid = std::process::id();
    for i in 0..100_000u64 {
        let c = format!("c-{pid}-{i}");
        let v = format!("v-{pid}-{i}");
        store.prepare(&c, Some(&base), Default::default()).unwrap();
        store.view(&v, Some(&base), Default::default()).unwrap();
        if let Some(t) = &target {
            store.mount(&c, t).unwrap();
            store.mount(&c, t).unwrap();
            std::fs::write(t.join(format!("new-{i}")), b"x").unwrap();
            store.unmount(t).unwrap();
            store.unmount(t).unwrap();
        }
        if i % 2 == 0 {
            let name = format!("n-{pid}-{i}");
            store.commit(&name, &c, Default::default()).unwrap();
            store.remove(&name).unwrap();
        } else {
            store.remove(&c).unwrap();
        }
        store.remove(&v).unwrap();
        println!("round {i}");
    }
    std::process::exit(0);
}

fn spawn(test: &str, root: &Path, base: &str, target: Option<&Path>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, "churn")
        .env(STORE, root)
        .env(BASE, base)
        .stdout(Stdio::piped());
    if let Some(t) = target {
        cmd.env(TARGET, t);
    }
    cmd.spawn().unwrap()
}

/// Let the child finish `rounds` rounds, then kill it somewhere in the next ones.
fn kill_after(mut child: Child, rounds: usize) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = 0;
    let mut line = String::new();
    while seen < rounds {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child stopped early"
        );
        if line.starts_with("round ") {
            seen += 1;
        }
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
}

/// Every visible (non-temporary) `.json` in `dir` parses whole as `T`.
fn assert_whole<T: serde::de::DeserializeOwned>(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp") || !name.ends_with(".json") {
            continue;
        }
        let data = std::fs::read(e.path()).unwrap();
        if let Err(err) = serde_json::from_slice::<T>(&data) {
            panic!("half-visible record {name}: {err}: {data:?}");
        }
        n += 1;
    }
    n
}

/// No lock is held for good. A bounded wait, not a try: the other test's thread may be
/// forking a child at that instant, and until it `exec`s, that child shares (and so
/// holds) whatever lock this process held.
fn assert_no_lock_held(locks: &Path) {
    let dir = Dir::open_path(locks).unwrap();
    for e in std::fs::read_dir(locks).unwrap() {
        let name = e.unwrap().file_name();
        FileLock::lock_timeout(&dir, &name, LockMode::Exclusive, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("lock {name:?} is still held: {e}"));
    }
}

/// Reopen after a kill and check the store is whole and usable: every record's
/// directory exists, nothing temporary is left, and everything the child left can be
/// removed, the base layer last (no stale child marker keeps it).
fn reopen_and_drain(root: &Path, base: &str, target: Option<&Path>) {
    let store = LayerStore::open(root, DriverChoice::Overlay).unwrap();
    // A build killed between its `mkdir` and its `flock` keeps its `.tmpx-` name for
    // core's grace period (it cannot be told from a live builder in that instant);
    // anything else temporary must be gone. The test removes those few by hand.
    let left = store.snapshots().leftovers().unwrap();
    for name in &left {
        assert!(
            name.to_string_lossy().starts_with(atomic::UNLOCKED_PREFIX),
            "left behind: {left:?}"
        );
        let p = root.join("snapshots").join(name);
        assert_eq!(
            std::fs::read_dir(&p).unwrap().count(),
            0,
            "{name:?} holds data"
        );
        std::fs::remove_dir(&p).unwrap();
    }
    assert_no_lock_held(&root.join("locks"));
    let all = store.snapshots().all().unwrap();
    for rec in &all {
        assert!(
            root.join("snapshots").join(&rec.id).is_dir(),
            "{} has no directory",
            rec.name
        );
        store.snapshots().content_roots(rec).unwrap();
    }
    if let Some(t) = target {
        // Whatever the table still counts there goes away through the store; a mount
        // the child made but never recorded (killed in between) is unmounted by hand.
        while store.unmount(t).is_ok() {}
        for m in layerstore::mounts::mounts_below(t).unwrap() {
            layerstore::mounts::unmount(&m).unwrap();
        }
    }
    // Removing the base while anything is on it is refused: the index saw it.
    if all.iter().any(|r| r.name != base) {
        assert_eq!(store.remove(base).unwrap_err().kind(), ErrorKind::InUse);
    }
    for rec in all.iter().filter(|r| r.name != base) {
        store.remove(&rec.name).unwrap();
    }
    store.remove(base).unwrap();
    for d in ["snapshots", "meta", "active", "children"] {
        let left: Vec<_> = std::fs::read_dir(root.join(d)).unwrap().collect();
        assert!(left.is_empty(), "{d} still holds {left:?}");
    }
    let mounts: Vec<_> = std::fs::read_dir(root.join("mounts"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(mounts.is_empty(), "mount table still holds {mounts:?}");
}

#[test]
fn a_killed_container_lifecycle_never_leaves_a_half_visible_record() {
    if std::env::var_os(ROLE).is_some() {
        return child_churn();
    }
    let t = tempfile::tempdir().unwrap();
    for round in 0..12 {
        let root = t.path().join(format!("store-{round}"));
        let base = store_with_base(&root);
        let child = spawn(
            "a_killed_container_lifecycle_never_leaves_a_half_visible_record",
            &root,
            &base,
            None,
        );
        kill_after(child, 1 + round * 3);
        assert!(assert_whole::<Record>(&root.join("meta")) >= 1);
        assert_whole::<Record>(&root.join("active"));
        reopen_and_drain(&root, &base, None);
    }
}

#[test]
fn a_killed_mount_and_unmount_never_leave_a_half_visible_mount_record() {
    if std::env::var_os(ROLE).is_some() {
        return child_churn();
    }
    require_root();
    let t = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let root = t.path().join(format!("store-{round}"));
        let target = t.path().join(format!("mnt-{round}"));
        std::fs::create_dir(&target).unwrap();
        let base = store_with_base(&root);
        let child = spawn(
            "a_killed_mount_and_unmount_never_leave_a_half_visible_mount_record",
            &root,
            &base,
            Some(&target),
        );
        kill_after(child, 1 + round * 2);
        assert_whole::<MountRecord>(&root.join("mounts"));
        assert_whole::<Record>(&root.join("active"));
        reopen_and_drain(&root, &base, Some(&target));
        assert!(
            layerstore::mounts::mounts_below(t.path())
                .unwrap()
                .is_empty()
        );
    }
}

/// Name of the record file of `key` in `meta/` or `active/`.
fn record_file(key: &str) -> String {
    format!(
        "{}.json",
        &cargohold_core::Digest::sha256(key.as_bytes()).hex()[..40]
    )
}

#[test]
fn what_a_power_loss_leaves_of_containers_is_reconciled_on_open() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let base = store_with_base(&root);
    {
        let s = LayerStore::open(&root, DriverChoice::Overlay).unwrap();
        s.prepare("kept", Some(&base), Default::default()).unwrap();
        s.prepare("cut", Some(&base), Default::default()).unwrap();
    }
    // A container record renamed into place whose data never reached the disk.
    let cut = root.join("active").join(record_file("cut"));
    std::fs::write(&cut, b"").unwrap();
    // The child markers were never written back either.
    std::fs::remove_dir_all(root.join("children")).unwrap();
    std::fs::create_dir(root.join("children")).unwrap();

    let s = LayerStore::open(&root, DriverChoice::Overlay).unwrap();
    assert!(!cut.exists(), "an unreadable container record stays");
    assert_eq!(s.stat("cut").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.stat("kept").unwrap().kind, Kind::Active);
    // The markers were rebuilt from the records: the base is still protected.
    assert_eq!(s.remove(&base).unwrap_err().kind(), ErrorKind::InUse);
    // Only the surviving container's directory is left next to the base's.
    assert_eq!(
        std::fs::read_dir(root.join("snapshots")).unwrap().count(),
        2
    );
    s.remove("kept").unwrap();
    s.remove(&base).unwrap();
}

#[test]
fn an_unreadable_committed_record_is_an_error_not_a_silent_loss() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let base = store_with_base(&root);
    std::fs::write(root.join("meta").join(record_file(&base)), b"{").unwrap();
    let err = LayerStore::open(&root, DriverChoice::Overlay).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

#[test]
fn a_marker_left_by_a_killed_removal_does_not_keep_the_parent() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let base = store_with_base(&root);
    let s = LayerStore::open(&root, DriverChoice::Overlay).unwrap();
    s.prepare("c", Some(&base), Default::default()).unwrap();
    // What a removal killed between deleting the record and the marker leaves.
    std::fs::remove_file(root.join("active").join(record_file("c"))).unwrap();
    let markers = root.join("children").join(&record_file(&base)[..40]);
    assert_eq!(std::fs::read_dir(&markers).unwrap().count(), 1);
    // No reopen: the running handle checks the marker's record and drops the marker.
    s.remove(&base).unwrap();
    assert!(!markers.exists());
}
