//! The checks. Each takes a fresh fixture and panics on a broken rule.

use std::fs;
use std::path::Path;

use super::{Fixture, require_root};
use crate::{ErrorKind, Kind, Labels, Mount, Result};

fn no_labels() -> Labels {
    Labels::new()
}

fn kind_of<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

/// Mount `mounts` at a fresh directory next to the store, run `f` on it, unmount.
fn with_mounted<T>(fx: &Fixture, mounts: &[Mount], f: impl FnOnce(&Path) -> T) -> T {
    require_root("a check that mounts");
    let at = tempfile::tempdir_in(fx.tempdir.path()).expect("mount point");
    crate::mounts::mount_all(mounts, at.path()).expect("mount the returned mounts");
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(at.path())));
    crate::mounts::unmount(at.path()).expect("unmount");
    match out {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn write(fx: &Fixture, key: &str, files: &[(&str, &str)]) {
    let mounts = fx.driver.mounts(key).expect("mounts of active key");
    with_mounted(fx, &mounts, |root| {
        for (name, data) in files {
            let p = root.join(name);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).expect("mkdir");
            }
            fs::write(&p, data).expect("write into the active snapshot");
        }
    });
}

/// prepare → commit → prepare on it → commit → view: parents and kinds as stated.
pub fn prepare_commit_view_chain(fx: &Fixture) {
    let d = &fx.driver;
    assert!(!d.prepare("a-active", None, no_labels()).unwrap().is_empty());
    d.commit("a", "a-active", no_labels()).unwrap();
    d.prepare("b-active", Some("a"), no_labels()).unwrap();
    d.commit("b", "b-active", no_labels()).unwrap();
    d.view("v", Some("b"), no_labels()).unwrap();
    let b = d.stat("b").unwrap();
    assert_eq!((b.kind, b.parent.as_deref()), (Kind::Committed, Some("a")));
    let v = d.stat("v").unwrap();
    assert_eq!((v.kind, v.parent.as_deref()), (Kind::View, Some("b")));
    assert_eq!(d.stat("a").unwrap().parent, None);
    for k in ["v", "b", "a"] {
        d.remove(k).unwrap();
    }
}

/// A snapshot with children cannot be removed; after the children go, it can.
pub fn remove_refused_while_children_exist(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("p-active", None, no_labels()).unwrap();
    d.commit("p", "p-active", no_labels()).unwrap();
    d.prepare("child", Some("p"), no_labels()).unwrap();
    assert_eq!(kind_of(d.remove("p")), ErrorKind::InUse);
    assert_eq!(d.stat("p").unwrap().kind, Kind::Committed);
    d.remove("child").unwrap();
    d.remove("p").unwrap();
    assert_eq!(kind_of(d.stat("p")), ErrorKind::NotFound);
}

/// A view is read-only: committing it is `InvalidArgument`, and it stays a view.
pub fn commit_of_a_view_is_refused(fx: &Fixture) {
    let d = &fx.driver;
    d.view("v", None, no_labels()).unwrap();
    assert_eq!(
        kind_of(d.commit("n", "v", no_labels())),
        ErrorKind::InvalidArgument
    );
    assert_eq!(d.stat("v").unwrap().kind, Kind::View);
    assert_eq!(kind_of(d.stat("n")), ErrorKind::NotFound);
    d.remove("v").unwrap();
}

/// Commit removes the active key; committing twice is `NotFound`; a taken name is
/// `AlreadyExists`.
pub fn commit_removes_the_active_key(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    d.commit("n", "k", no_labels()).unwrap();
    assert_eq!(kind_of(d.stat("k")), ErrorKind::NotFound);
    assert_eq!(kind_of(d.mounts("k")), ErrorKind::NotFound);
    assert_eq!(
        kind_of(d.commit("n2", "k", no_labels())),
        ErrorKind::NotFound
    );
    d.prepare("k2", None, no_labels()).unwrap();
    assert_eq!(
        kind_of(d.commit("n", "k2", no_labels())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(d.stat("k2").unwrap().kind, Kind::Active);
    d.remove("k2").unwrap();
    d.remove("n").unwrap();
}

/// stat and walk agree; usage grows with data written and is frozen at commit.
pub fn stat_walk_and_usage(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    let before = d.usage("k").unwrap();
    write(fx, "k", &[("big", &"x".repeat(1 << 20))]);
    let after = d.usage("k").unwrap();
    assert!(
        after.size >= before.size + (1 << 20),
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.inodes, before.inodes + 1);
    d.commit("n", "k", no_labels()).unwrap();
    assert_eq!(d.usage("n").unwrap(), after);
    d.view("v", Some("n"), no_labels()).unwrap();
    let mut seen = Vec::new();
    d.walk(&mut |i| seen.push((i.name.clone(), i.kind)))
        .unwrap();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("n".to_owned(), Kind::Committed),
            ("v".to_owned(), Kind::View)
        ]
    );
    assert_eq!(d.stat("v").unwrap(), {
        let mut found = None;
        d.walk(&mut |i| {
            if i.name == "v" {
                found = Some(i.clone())
            }
        })
        .unwrap();
        found.unwrap()
    });
    d.remove("v").unwrap();
    d.remove("n").unwrap();
}

/// Labels given at prepare are kept; labels given at commit replace them.
pub fn labels_kept_and_replaced(fx: &Fixture) {
    let d = &fx.driver;
    let l1: Labels = [("a".to_owned(), "1".to_owned())].into();
    let l2: Labels = [("b".to_owned(), "2".to_owned())].into();
    d.prepare("k", None, l1.clone()).unwrap();
    assert_eq!(d.stat("k").unwrap().labels, l1);
    d.commit("n", "k", l2.clone()).unwrap();
    assert_eq!(d.stat("n").unwrap().labels, l2);
    d.prepare("k2", None, l1.clone()).unwrap();
    d.commit("n2", "k2", no_labels()).unwrap();
    assert_eq!(d.stat("n2").unwrap().labels, l1);
    d.remove("n").unwrap();
    d.remove("n2").unwrap();
}

/// Files written in an active snapshot are seen in a view of its commit, and a child's
/// writes do not reach the parent.
pub fn files_written_visible_in_view_after_commit(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    write(fx, "k", &[("etc/hostname", "one"), ("top", "t")]);
    d.commit("base", "k", no_labels()).unwrap();
    d.prepare("k2", Some("base"), no_labels()).unwrap();
    write(fx, "k2", &[("etc/hostname", "two")]);
    d.commit("next", "k2", no_labels()).unwrap();
    for (name, want) in [("base", "one"), ("next", "two")] {
        let v = format!("{name}-view");
        let mounts = d.view(&v, Some(name), no_labels()).unwrap();
        with_mounted(fx, &mounts, |root| {
            assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), want);
            assert_eq!(fs::read_to_string(root.join("top")).unwrap(), "t");
        });
        d.remove(&v).unwrap();
    }
    d.remove("next").unwrap();
    d.remove("base").unwrap();
}

/// A file deleted in a child layer is gone in views of the child, present in the parent.
pub fn deletions_across_layers(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    write(fx, "k", &[("dir/gone", "x"), ("dir/kept", "y")]);
    d.commit("base", "k", no_labels()).unwrap();
    let mounts = d.prepare("k2", Some("base"), no_labels()).unwrap();
    with_mounted(fx, &mounts, |root| {
        fs::remove_file(root.join("dir/gone")).unwrap();
    });
    d.commit("next", "k2", no_labels()).unwrap();
    let mounts = d.view("v", Some("next"), no_labels()).unwrap();
    with_mounted(fx, &mounts, |root| {
        assert!(!root.join("dir/gone").exists());
        assert!(root.join("dir/kept").exists());
    });
    let mounts = d.view("vb", Some("base"), no_labels()).unwrap();
    with_mounted(fx, &mounts, |root| assert!(root.join("dir/gone").exists()));
    for k in ["v", "vb", "next", "base"] {
        d.remove(k).unwrap();
    }
}

/// The mounts of an active snapshot mount, are writable, and `mounts` repeats them.
pub fn mounts_are_data_that_mount(fx: &Fixture) {
    let d = &fx.driver;
    let mounts = d.prepare("k", None, no_labels()).unwrap();
    assert_eq!(d.mounts("k").unwrap(), mounts);
    assert!(mounts.iter().all(|m| !m.is_read_only()));
    with_mounted(fx, &mounts, |root| {
        fs::write(root.join("f"), "data").unwrap();
        assert_eq!(fs::read_to_string(root.join("f")).unwrap(), "data");
    });
    d.remove("k").unwrap();
}

/// A view is read-only: its mounts say `ro` and writing through them fails.
pub fn view_mounts_are_read_only(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    d.commit("n", "k", no_labels()).unwrap();
    let mounts = d.view("v", Some("n"), no_labels()).unwrap();
    assert!(mounts.iter().any(Mount::is_read_only));
    with_mounted(fx, &mounts, |root| {
        let err = fs::write(root.join("f"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_erofs()));
    });
    d.remove("v").unwrap();
    d.remove("n").unwrap();
}

fn libc_erofs() -> i32 {
    rustix::io::Errno::ROFS.raw_os_error()
}

/// After remove, the key has no mounts, no stat, and can be created again.
pub fn removed_key_has_no_mounts(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    d.remove("k").unwrap();
    assert_eq!(kind_of(d.mounts("k")), ErrorKind::NotFound);
    assert_eq!(kind_of(d.stat("k")), ErrorKind::NotFound);
    assert_eq!(kind_of(d.remove("k")), ErrorKind::NotFound);
    d.prepare("k", None, no_labels()).unwrap();
    d.remove("k").unwrap();
}

/// Empty, overlong and control-character keys are `InvalidArgument` everywhere.
pub fn invalid_keys_are_refused(fx: &Fixture) {
    let d = &fx.driver;
    let long = "x".repeat(crate::snapshots::MAX_KEY_LEN + 1);
    for bad in ["", "a\0b", "line\nbreak", long.as_str()] {
        assert_eq!(
            kind_of(d.prepare(bad, None, no_labels())),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind_of(d.view(bad, None, no_labels())),
            ErrorKind::InvalidArgument
        );
        assert_eq!(kind_of(d.stat(bad)), ErrorKind::InvalidArgument);
        assert_eq!(kind_of(d.remove(bad)), ErrorKind::InvalidArgument);
        assert_eq!(kind_of(d.mounts(bad)), ErrorKind::InvalidArgument);
    }
    d.prepare("ok", None, no_labels()).unwrap();
    assert_eq!(
        kind_of(d.commit("", "ok", no_labels())),
        ErrorKind::InvalidArgument
    );
    let mut n = 0;
    d.walk(&mut |_| n += 1).unwrap();
    assert_eq!(n, 1);
    d.remove("ok").unwrap();
}

/// A key or name names one snapshot: reusing it is `AlreadyExists`.
pub fn duplicate_keys_are_refused(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("k", None, no_labels()).unwrap();
    assert_eq!(
        kind_of(d.prepare("k", None, no_labels())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind_of(d.view("k", None, no_labels())),
        ErrorKind::AlreadyExists
    );
    d.commit("n", "k", no_labels()).unwrap();
    assert_eq!(
        kind_of(d.prepare("n", None, no_labels())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(d.stat("n").unwrap().kind, Kind::Committed);
    d.remove("n").unwrap();
}

/// A parent that does not exist is `NotFound`, and nothing is created.
pub fn missing_parents_are_refused(fx: &Fixture) {
    let d = &fx.driver;
    assert_eq!(
        kind_of(d.prepare("k", Some("nope"), no_labels())),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind_of(d.view("v", Some("nope"), no_labels())),
        ErrorKind::NotFound
    );
    assert_eq!(kind_of(d.stat("k")), ErrorKind::NotFound);
    assert_eq!(kind_of(d.stat("v")), ErrorKind::NotFound);
}

/// Only committed snapshots are parents: an active or view parent is `InvalidArgument`.
pub fn active_parent_is_refused(fx: &Fixture) {
    let d = &fx.driver;
    d.prepare("a", None, no_labels()).unwrap();
    d.view("v", None, no_labels()).unwrap();
    assert_eq!(
        kind_of(d.prepare("k", Some("a"), no_labels())),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind_of(d.prepare("k", Some("v"), no_labels())),
        ErrorKind::InvalidArgument
    );
    assert_eq!(kind_of(d.stat("k")), ErrorKind::NotFound);
    d.remove("a").unwrap();
    d.remove("v").unwrap();
}
