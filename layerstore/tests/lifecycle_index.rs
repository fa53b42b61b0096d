//! Without this, the indexes that spare a removal and a mount from reading every record
//! (child markers, mount records by key and by target) could let a parent with children
//! be removed, keep a parent without children forever, or refuse a mount because of a
//! link a dead process left; and a store written before the index existed would break.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use layerstore::{ApplyOptions, Driver, DriverChoice, ErrorKind, Kind, LayerStore};

fn base(store: &LayerStore) -> String {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "f", &b"abc"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    store
        .apply_layer(
            &mut std::io::Cursor::new(tar),
            None,
            &ApplyOptions::default(),
        )
        .unwrap()
        .chain_id
        .to_string()
}

fn hash(bytes: &[u8]) -> String {
    cargohold_core::Digest::sha256(bytes).hex()[..40].to_owned()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn every_kind_of_child_keeps_its_parent_until_it_is_gone() {
    let t = tempfile::tempdir().unwrap();
    let s = LayerStore::open(t.path(), DriverChoice::Vfs).unwrap();
    let b = base(&s);
    s.prepare("c", Some(&b), Default::default()).unwrap();
    s.view("v", Some(&b), Default::default()).unwrap();
    s.prepare("d", Some(&b), Default::default()).unwrap();
    s.commit("n", "d", Default::default()).unwrap();
    let markers = t.path().join("children").join(hash(b.as_bytes()));
    assert_eq!(count(&markers), 3, "c, v and n (d's marker moved to n)");
    for key in ["c", "v", "n"] {
        assert_eq!(s.remove(&b).unwrap_err().kind(), ErrorKind::InUse);
        s.remove(key).unwrap();
    }
    s.remove(&b).unwrap();
    assert_eq!(count(&t.path().join("children")), 0);
    // A name freed by a removal can be a parent again, with a fresh index.
    let b2 = base(&s);
    assert_eq!(b2, b);
    s.prepare("c", Some(&b2), Default::default()).unwrap();
    assert_eq!(s.remove(&b2).unwrap_err().kind(), ErrorKind::InUse);
}

#[test]
fn a_store_written_before_the_index_is_migrated_on_open() {
    let t = tempfile::tempdir().unwrap();
    let b = {
        let s = LayerStore::open(t.path(), DriverChoice::Vfs).unwrap();
        let b = base(&s);
        s.prepare("c", Some(&b), Default::default()).unwrap();
        b
    };
    // The old layout: every record in meta/, no active/, no children/.
    let rec = format!("{}.json", hash(b"c"));
    std::fs::rename(
        t.path().join("active").join(&rec),
        t.path().join("meta").join(&rec),
    )
    .unwrap();
    std::fs::remove_dir(t.path().join("active")).unwrap();
    std::fs::remove_dir_all(t.path().join("children")).unwrap();

    let s = LayerStore::open(t.path(), DriverChoice::Vfs).unwrap();
    assert!(t.path().join("active").join(&rec).is_file());
    assert_eq!(s.stat("c").unwrap().kind, Kind::Active);
    assert_eq!(s.remove(&b).unwrap_err().kind(), ErrorKind::InUse);
    s.commit("n", "c", Default::default()).unwrap();
    s.remove("n").unwrap();
    s.remove(&b).unwrap();
}

#[test]
fn a_dead_processs_target_link_does_not_refuse_a_mount() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let s = LayerStore::open(t.path().join("store"), DriverChoice::Overlay).unwrap();
    let b = base(&s);
    s.prepare("c", Some(&b), Default::default()).unwrap();
    s.prepare("other", Some(&b), Default::default()).unwrap();
    // What a mount killed after linking its target but before mounting leaves: a link
    // to the record of a key that is not mounted.
    let canon = std::fs::canonicalize(&target).unwrap();
    let link = t
        .path()
        .join("store/mounts")
        .join(format!("{}.target", hash(canon.as_os_str().as_bytes())));
    std::os::unix::fs::symlink(format!("{}.json", hash(b"other")), &link).unwrap();

    s.mount("c", &target).unwrap();
    assert!(target.join("f").is_file());
    // The link now names c's record; the other key is refused there.
    assert_eq!(
        s.mount("other", &target).unwrap_err().kind(),
        ErrorKind::InUse
    );
    assert_eq!(s.remove("c").unwrap_err().kind(), ErrorKind::InUse);
    s.unmount(&target).unwrap();
    assert!(!target.join("f").exists());
    assert_eq!(s.unmount(&target).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(count(&t.path().join("store/mounts")), 0);
    s.remove("c").unwrap();
    s.remove("other").unwrap();
    s.remove(&b).unwrap();
}
