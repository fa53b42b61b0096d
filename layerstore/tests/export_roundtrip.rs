//! Without these, a committed container diff could fail to reproduce the container's
//! tree when applied onto its parent, or the same tree could give different diff IDs
//! (breaking layer dedup by digest).

mod support;

use std::path::Path;

use cargohold_core::{Confine, Root};
use layerstore::archive::{self, ApplyOptions, ChangeKind, InventoryOptions};
use support::require_root;

fn root(p: &Path) -> Root {
    Root::open(p, Confine::InRoot).unwrap()
}

fn cp_a(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A parent tree with a bit of everything, and a child made from a copy of it.
fn trees(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let parent = tmp.join("parent");
    std::fs::create_dir_all(parent.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(parent.join("usr/bin")).unwrap();
    std::fs::create_dir_all(parent.join("var/cache/deep/er")).unwrap();
    std::fs::write(parent.join("etc/conf.d/a"), b"a").unwrap();
    std::fs::write(parent.join("etc/hostname"), b"old").unwrap();
    std::fs::write(parent.join("usr/bin/tool"), b"tool").unwrap();
    std::fs::write(parent.join("var/cache/deep/er/x"), b"x").unwrap();
    std::os::unix::fs::symlink("/usr/bin/tool", parent.join("tool-link")).unwrap();
    let child = tmp.join("child");
    cp_a(&parent, &child);
    // Changes: modify, add (incl. a long name, xattrs, setuid, hardlinks, a fifo),
    // delete a file and a whole tree, change a type.
    std::fs::write(child.join("etc/hostname"), b"new").unwrap();
    std::fs::remove_file(child.join("etc/conf.d/a")).unwrap();
    std::fs::remove_dir_all(child.join("var/cache")).unwrap();
    std::fs::remove_file(child.join("tool-link")).unwrap();
    std::fs::create_dir(child.join("tool-link")).unwrap();
    let long = child.join("x".repeat(150));
    std::fs::create_dir(&long).unwrap();
    std::fs::write(long.join("y".repeat(120)), b"long").unwrap();
    std::fs::write(child.join("usr/bin/suid"), b"suid").unwrap();
    std::process::Command::new("chmod")
        .arg("4755")
        .arg(child.join("usr/bin/suid"))
        .status()
        .unwrap();
    std::fs::hard_link(child.join("usr/bin/suid"), child.join("usr/bin/suid2")).unwrap();
    std::process::Command::new("setfattr")
        .args(["-n", "user.note", "-v", "hello"])
        .arg(child.join("usr/bin/tool"))
        .status()
        .expect("setfattr (attr) is needed");
    std::process::Command::new("mkfifo")
        .arg(child.join("pipe"))
        .status()
        .unwrap();
    (parent, child)
}

#[test]
fn exported_diff_reapplied_onto_the_parent_gives_the_child() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child) = trees(tmp.path());
    let mut tar = Vec::new();
    let exported =
        archive::export_tree_diff(Some(&root(&parent)), &root(&child), &mut tar).unwrap();
    assert_eq!(exported.size, tar.len() as u64);
    let kinds: Vec<_> = exported
        .changes
        .iter()
        .map(|c| (c.kind, c.path.to_str().unwrap().to_owned()))
        .filter(|(_, p)| !p.starts_with("xxx"))
        .collect();
    assert!(
        kinds.contains(&(ChangeKind::Deleted, "var/cache".into())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(ChangeKind::Deleted, "etc/conf.d/a".into())));
    assert!(kinds.contains(&(ChangeKind::Modified, "etc/hostname".into())));
    assert!(kinds.contains(&(ChangeKind::Added, "pipe".into())));
    assert!(
        !kinds
            .iter()
            .any(|(_, p)| p == "usr/bin" || p == "var/cache/deep")
    );

    let rebuilt = tmp.path().join("rebuilt");
    cp_a(&parent, &rebuilt);
    let applied = archive::apply(&tar[..], &root(&rebuilt), &[], &ApplyOptions::default()).unwrap();
    assert_eq!(applied.diff_id, exported.diff_id);
    let opts = InventoryOptions::default();
    assert_eq!(
        archive::inventory_with(&root(&rebuilt), &opts).unwrap(),
        archive::inventory_with(&root(&child), &opts).unwrap()
    );
}

#[test]
fn the_same_tree_always_gives_the_same_diff_id() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child) = trees(tmp.path());
    let a =
        archive::export_tree_diff(Some(&root(&parent)), &root(&child), std::io::sink()).unwrap();
    let b =
        archive::export_tree_diff(Some(&root(&parent)), &root(&child), std::io::sink()).unwrap();
    assert_eq!(a, b);
    // A copy made separately (other inodes, other creation order) gives the same tar.
    let copy = tmp.path().join("copy");
    cp_a(&child, &copy);
    let c = archive::export_tree_diff(Some(&root(&parent)), &root(&copy), std::io::sink()).unwrap();
    assert_eq!(a.diff_id, c.diff_id);
    // A full export (no parent) re-applied into an empty dir gives the tree.
    let mut full = Vec::new();
    archive::export_tree_diff(None, &root(&child), &mut full).unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    archive::apply(&full[..], &root(&empty), &[], &ApplyOptions::default()).unwrap();
    assert_eq!(
        archive::inventory(&root(&empty)).unwrap(),
        archive::inventory(&root(&child)).unwrap()
    );
}

#[test]
fn overlay_upper_dirs_export_whiteouts_and_opaque_dirs() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    std::fs::create_dir_all(lower.join("etc/conf.d")).unwrap();
    std::fs::write(lower.join("etc/conf.d/a"), b"a").unwrap();
    std::fs::write(lower.join("gone"), b"gone").unwrap();
    let upper = tmp.path().join("upper");
    std::fs::create_dir_all(upper.join("etc/conf.d")).unwrap();
    std::fs::write(upper.join("etc/conf.d/b"), b"b").unwrap();
    std::process::Command::new("setfattr")
        .args(["-n", "trusted.overlay.opaque", "-v", "y"])
        .arg(upper.join("etc/conf.d"))
        .status()
        .unwrap();
    std::process::Command::new("mknod")
        .arg(upper.join("gone"))
        .args(["c", "0", "0"])
        .status()
        .unwrap();
    let mut tar = Vec::new();
    archive::export_overlay_upper(&root(&upper), &[&root(&lower)], false, &mut tar).unwrap();
    // Applied onto a full copy of the lower, it gives the merged view.
    let merged = tmp.path().join("merged");
    cp_a(&lower, &merged);
    archive::apply(&tar[..], &root(&merged), &[], &ApplyOptions::default()).unwrap();
    let inv = archive::inventory(&root(&merged)).unwrap();
    let paths: Vec<_> = inv.keys().map(|p| p.to_str().unwrap().to_owned()).collect();
    assert_eq!(paths, ["etc", "etc/conf.d", "etc/conf.d/b"]);
    assert!(inv[Path::new("etc/conf.d")].xattrs.is_empty());
}
