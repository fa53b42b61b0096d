//! Without these, a layer applied with its sync deferred could be torn after a power
//! cut yet still be served (the failure containerd users met before `sync_fs`), be
//! dropped while it is still good (same boot, same mount), never become durable,
//! or take a durable layer built on it down with it.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use cargohold_core::Digest;
use layerstore::{ApplyOptions, Driver, DriverChoice, ErrorKind, Kind, Layer, LayerStore};

fn open(path: &Path) -> LayerStore {
    let s = LayerStore::open(path, DriverChoice::Vfs).unwrap();
    assert!(
        s.snapshots().session().is_some(),
        "deferred syncs need a kernel that names its mounts uniquely (Linux 6.8)"
    );
    s
}

fn apply(s: &LayerStore, parent: Option<&Layer>, file: &str, defer: bool) -> Layer {
    let mut tar = support::TarMaker::new();
    tar.file(file, file.as_bytes());
    let tar = tar.finish();
    s.apply_layer(
        &mut Cursor::new(&tar),
        parent.map(|p| &p.chain_id),
        &ApplyOptions {
            defer_sync: defer,
            ..Default::default()
        },
    )
    .unwrap()
}

fn read_in(s: &LayerStore, name: &str, path: &str) -> Vec<u8> {
    let rec = s.snapshots().get(name).unwrap();
    let roots = s.snapshots().content_roots(&rec).unwrap();
    roots
        .iter()
        .find_map(|r| r.read(path).ok())
        .unwrap_or_else(|| panic!("{path} not in {name}"))
}

fn gone(s: &LayerStore, l: &Layer) -> bool {
    match s.layer(&l.chain_id) {
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => panic!("{e}"),
    }
}

/// What a store opened after a reboot finds: every deferred mark names another
/// session. Rewrites the records in place, as another boot would have left them.
fn as_after_a_reboot(store: &Path) -> usize {
    let mut marked = 0;
    for entry in std::fs::read_dir(store.join("meta")).unwrap() {
        let path = entry.unwrap().path();
        let mut rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if let Some(mark) = rec.get_mut("unsynced") {
            *mark = "00000000-0000-0000-0000-000000000000/1".into();
            std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
            marked += 1;
        }
    }
    marked
}

fn snapshot_dirs(store: &Path) -> usize {
    std::fs::read_dir(store.join("snapshots")).unwrap().count()
}

#[test]
fn a_deferred_layer_is_usable_at_once_and_kept_in_the_same_session() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("store");
    let s = open(&path);
    let l = apply(&s, None, "a", true);
    assert!(!l.durable);
    assert_eq!(read_in(&s, &l.chain_id.to_string(), "a"), b"a");
    s.prepare_container("c", Some(&l.chain_id), Default::default())
        .unwrap();
    drop(s);
    // Another open in the same boot, through the same mount: nothing may be lost, so
    // nothing is dropped.
    let s = open(&path);
    let again = s.layer(&l.chain_id).unwrap();
    assert!(!again.durable);
    assert_eq!(read_in(&s, &l.chain_id.to_string(), "a"), b"a");
    assert_eq!(s.stat("c").unwrap().kind, Kind::Active);
    // Applying it again finds it, deferred or not.
    assert_eq!(apply(&s, None, "a", false).chain_id, l.chain_id);
}

#[test]
fn sync_makes_the_deferred_layers_durable_and_names_them() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("store");
    let s = open(&path);
    let a = apply(&s, None, "a", true);
    let b = apply(&s, Some(&a), "b", true);
    let c = apply(&s, None, "c", false);
    assert!(c.durable);
    let mut synced = s.sync().unwrap();
    synced.sort();
    let mut want = vec![a.chain_id.clone(), b.chain_id.clone()];
    want.sort();
    assert_eq!(synced, want);
    for l in [&a, &b, &c] {
        assert!(s.layer(&l.chain_id).unwrap().durable, "{}", l.chain_id);
    }
    assert_eq!(s.sync().unwrap(), Vec::<Digest>::new());
    // Durable now: a store opened after a reboot keeps them.
    assert_eq!(as_after_a_reboot(&path), 0);
    drop(s);
    let s = open(&path);
    assert_eq!(s.layers().unwrap().len(), 3);
}

#[test]
fn a_store_opened_in_another_session_drops_deferred_layers_and_what_stands_on_them() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("store");
    let s = open(&path);
    let base = apply(&s, None, "base", false);
    let kept = apply(&s, None, "kept", true);
    assert_eq!(s.sync().unwrap(), vec![kept.chain_id.clone()]);
    let deferred = apply(&s, Some(&base), "deferred", true);
    let above = apply(&s, Some(&deferred), "above", true);
    s.prepare_container("on-above", Some(&above.chain_id), Default::default())
        .unwrap();
    s.view(
        "view-on-deferred",
        Some(&deferred.chain_id.to_string()),
        Default::default(),
    )
    .unwrap();
    s.prepare_container("on-base", Some(&base.chain_id), Default::default())
        .unwrap();
    let other = apply(&s, None, "other", false);
    let late = apply(&s, None, "late", true);
    drop(s);
    assert_eq!(as_after_a_reboot(&path), 3, "deferred, above and late");

    let s = open(&path);
    for l in [&deferred, &above, &late] {
        assert!(gone(&s, l), "{} survived another session", l.chain_id);
    }
    for key in ["on-above", "view-on-deferred"] {
        assert_eq!(
            s.stat(key).unwrap_err().kind(),
            ErrorKind::NotFound,
            "{key}"
        );
    }
    for l in [&base, &other, &kept] {
        let found = s.layer(&l.chain_id).unwrap();
        assert!(found.durable);
    }
    assert_eq!(read_in(&s, "on-base", "base"), b"base");
    // Their directories went too (base, other, kept and the container on base remain),
    // and nothing still counts them as children: the base can go once its container has.
    assert_eq!(snapshot_dirs(&path), 4);
    assert!(s.snapshots().leftovers().unwrap().is_empty());
    s.remove("on-base").unwrap();
    s.remove_layer(&base.chain_id).unwrap();
    // Applied again, a dropped layer comes back under the same chain ID.
    assert_eq!(
        apply(&s, Some(&other), "x", true).parent,
        Some(other.chain_id.clone())
    );
    let base = apply(&s, None, "base", false);
    assert_eq!(
        apply(&s, Some(&base), "deferred", true).chain_id,
        deferred.chain_id
    );
}

#[test]
fn a_durable_layer_or_commit_on_deferred_layers_makes_them_durable() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("store");
    let s = open(&path);
    let a = apply(&s, None, "a", true);
    let b = apply(&s, Some(&a), "b", true);
    let c = apply(&s, Some(&b), "c", false);
    assert!(c.durable);
    for l in [&a, &b] {
        assert!(s.layer(&l.chain_id).unwrap().durable, "{}", l.chain_id);
    }
    let d = apply(&s, None, "d", true);
    let mounts = s
        .prepare_container("k", Some(&d.chain_id), Default::default())
        .unwrap();
    std::fs::write(mounts[0].source.join("new"), b"new").unwrap();
    let committed = s.commit_container("k", Default::default()).unwrap();
    assert!(committed.durable);
    assert!(s.layer(&d.chain_id).unwrap().durable);
    // Nothing is left marked, so another session keeps everything.
    assert_eq!(s.sync().unwrap(), Vec::<Digest>::new());
    drop(s);
    assert_eq!(as_after_a_reboot(&path), 0);
    let s = open(&path);
    assert_eq!(s.layers().unwrap().len(), 5);
}

/// A loop-mounted ext4 image, unmounted when dropped.
struct Disk {
    image: PathBuf,
    mnt: PathBuf,
    mounted: bool,
}

impl Disk {
    fn new(dir: &Path) -> Disk {
        let image = dir.join("disk.img");
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        run(Command::new("mkfs.ext4").arg("-q").arg(&image));
        let mut d = Disk {
            image,
            mnt,
            mounted: false,
        };
        d.mount();
        d
    }

    fn mount(&mut self) {
        run(Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&self.image)
            .arg(&self.mnt));
        self.mounted = true;
    }

    fn unmount(&mut self) {
        run(Command::new("umount").arg(&self.mnt));
        self.mounted = false;
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_filesystem_mounted_again_loses_the_layers_never_synced() {
    support::require_root();
    let t = tempfile::tempdir().unwrap();
    let mut disk = Disk::new(t.path());
    let path = disk.mnt.join("store");
    let s = open(&path);
    let synced = apply(&s, None, "synced", true);
    s.sync().unwrap();
    let unsynced = apply(&s, None, "unsynced", true);
    let durable = apply(&s, None, "durable", false);
    drop(s);
    // Unmounting writes everything back, but the store cannot know that a new mount
    // follows a clean unmount rather than a crash: what was never synced is dropped.
    disk.unmount();
    disk.mount();
    let s = open(&path);
    assert!(gone(&s, &unsynced));
    for l in [&synced, &durable] {
        assert!(s.layer(&l.chain_id).unwrap().durable);
        let file = if l.chain_id == synced.chain_id {
            "synced"
        } else {
            "durable"
        };
        assert_eq!(read_in(&s, &l.chain_id.to_string(), file), file.as_bytes());
    }
    drop(s);
    disk.unmount();
}

#[test]
fn a_durable_apply_that_finds_the_layer_deferred_makes_it_durable() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&t.path().join("store"));
    let a = apply(&s, None, "a", true);
    let b = apply(&s, Some(&a), "b", true);
    // Found by its diff ID, without reading the stream.
    let again = s
        .apply_layer(
            &mut std::io::empty(),
            Some(&a.chain_id),
            &ApplyOptions {
                expected_diff_id: Some(b.diff_id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.chain_id, b.chain_id);
    assert!(again.durable);
    assert!(s.layer(&a.chain_id).unwrap().durable);
    // Asked for deferred, a found layer is returned as it is.
    let c = apply(&s, None, "c", true);
    assert!(!apply(&s, None, "c", true).durable);
    assert_eq!(s.sync().unwrap(), vec![c.chain_id]);
}
