//! Without these, the `fsync`-free publication paths (records a reboot may lose) could
//! replace where they must refuse, leave temporaries behind, or show a directory before
//! it is renamed into place.

use std::ffi::OsStr;

use cargohold_core::ErrorKind;
use cargohold_core::atomic::{self, TempDir};
use cargohold_core::root::Dir;

fn names(dir: &Dir) -> Vec<String> {
    let mut v: Vec<_> = dir
        .entries()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn volatile_writes_replace_refuse_and_leave_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let name = OsStr::new("rec.json");
    atomic::write_new_file_volatile(&dir, name, b"one", 0o600).unwrap();
    let err = atomic::write_new_file_volatile(&dir, name, b"two", 0o600).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(tmp.path().join("rec.json")).unwrap(), b"one");
    atomic::write_file_volatile(&dir, name, b"three", 0o600).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("rec.json")).unwrap(),
        b"three"
    );
    assert_eq!(names(&dir), ["rec.json"]);
}

#[test]
fn a_volatile_publish_renames_the_whole_directory_and_refuses_an_existing_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let build = TempDir::new(&dir, 0o700).unwrap();
    build.dir().mkdir(OsStr::new("fs"), 0o755).unwrap();
    let published = build.publish_volatile(&dir, OsStr::new("snap")).unwrap();
    assert_eq!(names(&published), ["fs"]);
    assert_eq!(names(&dir), ["snap"]);

    let second = TempDir::new(&dir, 0o700).unwrap();
    let err = second
        .publish_volatile(&dir, OsStr::new("snap"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // The refused build was dropped with the error: nothing of it remains.
    assert_eq!(names(&dir), ["snap"]);
}
