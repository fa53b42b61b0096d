//! Backup, restore, populate and prune keep every byte and every attribute, refuse
//! hostile tars, and never remove a volume in use; without these, a restored volume could
//! differ from its backup or a prune could delete data a container holds.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use cargohold_core::{Confine, Root};
use layerstore::archive;
use volstore::local::CreateRequest;
use volstore::{Driver, ErrorKind, LocalDriver, Options};

fn store() -> (tempfile::TempDir, LocalDriver) {
    let dir = tempfile::tempdir().unwrap();
    let d = LocalDriver::open(dir.path().join("volumes")).unwrap();
    (dir, d)
}

/// A tree with what a volume holds in practice: nested dirs, modes, a symlink, a
/// hardlink, an xattr, an owner (as root), old mtimes.
fn fill(dir: &Path) {
    std::fs::create_dir_all(dir.join("db/pg_wal")).unwrap();
    std::fs::write(dir.join("db/base"), vec![3u8; 100_000]).unwrap();
    std::fs::write(dir.join("db/pg_wal/000001"), b"wal").unwrap();
    std::fs::set_permissions(
        dir.join("db/pg_wal"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("db/base"), std::fs::Permissions::from_mode(0o4640)).unwrap();
    std::fs::hard_link(dir.join("db/base"), dir.join("db/base.link")).unwrap();
    symlink("db/base", dir.join("current")).unwrap();
    xattr_set(&dir.join("db/pg_wal/000001"), "user.origin", b"primary");
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(dir.join("db"), Some(999), Some(999)).unwrap();
    }
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(dir.join("db/pg_wal/000001"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn xattr_set(p: &Path, key: &str, value: &[u8]) {
    rustix::fs::setxattr(p, key, value, rustix::fs::XattrFlags::empty()).unwrap();
}

fn inventory(p: &Path) -> std::collections::BTreeMap<std::path::PathBuf, archive::EntryInfo> {
    archive::inventory(&Root::open(p, Confine::InRoot).unwrap()).unwrap()
}

#[test]
fn export_then_import_is_exact() {
    let (t, d) = store();
    d.create("src", &Options::new()).unwrap();
    let p = d.mount("src", "writer").unwrap();
    fill(&p);
    d.unmount("src", "writer").unwrap();

    let backup = t.path().join("backup.tar");
    d.export("src", std::fs::File::create(&backup).unwrap())
        .unwrap();
    d.create("restored", &Options::new()).unwrap();
    d.import("restored", std::fs::File::open(&backup).unwrap())
        .unwrap();
    assert_eq!(
        inventory(&d.data_path("src")),
        inventory(&d.data_path("restored"))
    );
    let base = std::fs::metadata(d.data_path("restored").join("db/base")).unwrap();
    assert_eq!(base.nlink(), 2, "the hardlink survived as a hardlink");
    // No holder is left by export or import.
    assert!(d.inspect("src").unwrap().holders.is_empty());
    assert!(d.inspect("restored").unwrap().holders.is_empty());
}

#[test]
fn import_refuses_a_non_empty_volume_and_hostile_tars() {
    let (t, d) = store();
    d.create("vol", &Options::new()).unwrap();
    let data = d.data_path("vol");
    std::fs::write(data.join("precious"), b"mine").unwrap();
    let mut good = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    good.append_data(&mut h, "x", &b"x"[..]).unwrap();
    let good = good.into_inner().unwrap();
    assert_eq!(
        d.import("vol", &good[..]).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(std::fs::read(data.join("precious")).unwrap(), b"mine");

    d.create("empty", &Options::new()).unwrap();
    // A good entry first, then one that climbs out: refused, and the volume is empty again.
    let mut evil = good[..good.len() - 1024].to_vec();
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..14].copy_from_slice(b"../../escaped\0");
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    evil.extend_from_slice(h.as_bytes());
    evil.extend_from_slice(b"bad");
    evil.resize(evil.len() + 509 + 1024, 0);
    let e = d.import("empty", &evil[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PathEscape, "{e}");
    assert_eq!(std::fs::read_dir(d.data_path("empty")).unwrap().count(), 0);
    assert!(!t.path().join("escaped").exists());
    assert!(!t.path().join("volumes/escaped").exists());
    // A truncated tar is Corrupt, and also leaves nothing.
    assert_eq!(
        d.import("empty", &good[..700]).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    assert_eq!(std::fs::read_dir(d.data_path("empty")).unwrap().count(), 0);
    assert!(d.inspect("empty").unwrap().holders.is_empty());
}

#[test]
fn populate_copies_attributes_and_the_root_owner() {
    let (t, d) = store();
    let src = t.path().join("image/var/lib/db");
    std::fs::create_dir_all(&src).unwrap();
    fill(&src);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&src, Some(70), Some(70)).unwrap();
    }
    d.create("db", &Options::new()).unwrap();
    assert!(d.populate("db", &src).unwrap());
    let data = d.data_path("db");
    assert_eq!(inventory(&src), inventory(&data));
    let top = std::fs::metadata(&data).unwrap();
    assert_eq!(top.mode() & 0o7777, 0o750);
    if rustix::process::geteuid().is_root() {
        assert_eq!((top.uid(), top.gid()), (70, 70));
    }
}

#[test]
fn prune_removes_only_unused_volumes_it_may() {
    let (_t, d) = store();
    let anon = d
        .create_volume(None, &CreateRequest::default())
        .unwrap()
        .name;
    let held_anon = d
        .create_volume(None, &CreateRequest::default())
        .unwrap()
        .name;
    d.create("named", &Options::new()).unwrap();
    d.create("held", &Options::new()).unwrap();
    std::fs::write(d.data_path(&anon).join("f"), vec![0u8; 64 << 10]).unwrap();
    d.mount(&held_anon, "c1").unwrap();
    d.mount("held", "c2").unwrap();

    let r = d.prune(false).unwrap();
    assert_eq!(r.removed, [anon]);
    assert!(r.bytes >= 64 << 10, "{}", r.bytes);
    let r = d.prune(true).unwrap();
    assert_eq!(r.removed, ["named"]);
    let mut left = d.names().unwrap();
    left.sort();
    let mut want = vec![held_anon.clone(), "held".to_string()];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn content_operations_on_missing_or_bad_names_fail_cleanly() {
    let (t, d) = store();
    assert_eq!(
        d.export("nope", std::io::sink()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        d.import("nope", &b""[..]).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        d.populate("nope", t.path()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        d.export("../x", std::io::sink()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    d.create("vol", &Options::new()).unwrap();
    assert_eq!(
        d.populate("vol", &t.path().join("missing"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(d.inspect("vol").unwrap().holders.is_empty());
}
