//! A btrfs container's diff, which skips files the snapshot shares with its parent,
//! finds every change and writes the tar a full comparison writes. Without this, the
//! inode-and-change-time shortcut could miss a change that keeps size and mtime (a
//! rewrite in place with the mtime set back, a chmod, an xattr, a new hardlink), or
//! write a tar that differs from what vfs and overlay export for the same change; and
//! a container's usage could count the whole tree it shares with its image, or a
//! committed layer stay writable.

mod btrfs_support;

use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;

use btrfs_support::mount_btrfs;
use layerstore::archive::{self, ChangeKind};
use layerstore::{ApplyOptions, Driver as _, DriverChoice, LayerStore};

fn base_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    for i in 0..200 {
        add(
            &format!("usr/share/f{i}"),
            format!("file {i}\n").repeat(40).as_bytes(),
        );
    }
    add("etc/rewritten", b"aaaaaaaa");
    add("etc/chmodded", b"mode");
    add("etc/xattred", b"xattr");
    add("etc/linked", b"link me");
    add("etc/deleted", b"gone");
    b.into_inner().unwrap()
}

#[test]
fn snapshot_diff_finds_every_change_and_writes_the_full_comparisons_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mount_btrfs(tmp.path(), 256 << 20);
    let store = LayerStore::open(m.0.join("store"), DriverChoice::Btrfs).unwrap();
    let base = store
        .apply_layer(
            &mut Cursor::new(base_layer()),
            None,
            &ApplyOptions::default(),
        )
        .unwrap();
    let mounts = store
        .prepare_container("c", Some(&base.chain_id), Default::default())
        .unwrap();
    let c = &mounts[0].source;

    // Same size, mtime set back to the parent's: only the change time tells.
    let rewritten = c.join("etc/rewritten");
    let mtime = std::fs::metadata(&rewritten).unwrap().modified().unwrap();
    std::fs::write(&rewritten, b"bbbbbbbb").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&rewritten)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::set_permissions(
        c.join("etc/chmodded"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    rustix::fs::setxattr(
        c.join("etc/xattred"),
        "user.note",
        b"x",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::fs::hard_link(c.join("etc/linked"), c.join("etc/linked-too")).unwrap();
    std::fs::remove_file(c.join("etc/deleted")).unwrap();
    std::fs::write(c.join("etc/added"), b"new").unwrap();

    let changes = store.changes("c").unwrap();
    let got: Vec<(ChangeKind, String)> = changes
        .iter()
        .map(|ch| (ch.kind, ch.path.display().to_string()))
        .collect();
    for (kind, path) in [
        (ChangeKind::Modified, "etc/rewritten"),
        (ChangeKind::Modified, "etc/chmodded"),
        (ChangeKind::Modified, "etc/xattred"),
        (ChangeKind::Added, "etc/linked-too"),
        (ChangeKind::Deleted, "etc/deleted"),
        (ChangeKind::Added, "etc/added"),
    ] {
        assert!(
            got.contains(&(kind, path.to_string())),
            "{kind:?} {path} missing from {got:?}"
        );
    }
    assert!(
        !got.iter().any(|(_, p)| p.starts_with("usr/")),
        "untouched files reported: {got:?}"
    );

    // The store's export (the shortcut) against a full comparison of the same trees.
    let mut ours = Vec::new();
    let (diff_id, _) = store.diff("c", &mut ours).unwrap();
    let parent = cargohold_core::Root::open(
        store.layer_dir(&base.chain_id).unwrap(),
        cargohold_core::Confine::InRoot,
    )
    .unwrap();
    let child = cargohold_core::Root::open(c, cargohold_core::Confine::InRoot).unwrap();
    let mut full = Vec::new();
    let e = archive::export_tree_diff(Some(&parent), &child, &mut full).unwrap();
    assert_eq!(e.diff_id, diff_id);
    assert!(
        ours == full,
        "the snapshot diff's tar differs from the full comparison's"
    );
    assert_eq!(e.changes, changes);

    // A committed layer is a read-only subvolume.
    let err = std::fs::write(store.layer_dir(&base.chain_id).unwrap().join("x"), b"x")
        .expect_err("a committed layer is writable");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );

    // Usage counts the container's own changes, not the tree it shares with its parent.
    let base_usage = store.usage(&base.chain_id.to_string()).unwrap();
    let own = store.usage("c").unwrap();
    assert!(
        own.inodes >= 4 && own.inodes < base_usage.inodes / 4,
        "container usage {own:?} against its image's {base_usage:?}"
    );

    drop(parent);
    drop(child);
    store.remove("c").unwrap();
}
