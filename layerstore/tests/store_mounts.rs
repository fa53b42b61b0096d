//! Without this, two users mounting one container would stack two mounts, the first
//! unmount would pull the directory from under the second, or a mounted container could
//! be removed.

use std::path::Path;

use layerstore::{Driver, DriverChoice, ErrorKind, LayerStore};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
}

fn mount_count(target: &Path) -> usize {
    let canon = std::fs::canonicalize(target).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap()))
        .count()
}

#[test]
fn mounts_are_counted_on_disk_and_the_last_unmount_unmounts() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let target = t.path().join("rootfs");
    let other_target = t.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    std::fs::create_dir(&other_target).unwrap();
    let a = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    let b = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    a.prepare("c", None, Default::default()).unwrap();
    a.view("v", None, Default::default()).unwrap();

    a.mount("c", &target).unwrap();
    std::fs::write(target.join("hello"), "world").unwrap();
    b.mount("c", &target).unwrap();
    assert_eq!(
        mount_count(&target),
        1,
        "a second user must share the mount"
    );
    assert_eq!(
        b.mount("c", &other_target).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(b.mount("v", &target).unwrap_err().kind(), ErrorKind::InUse);
    assert_eq!(a.remove("c").unwrap_err().kind(), ErrorKind::InUse);

    a.unmount(&target).unwrap();
    assert_eq!(mount_count(&target), 1, "one user is left");
    assert_eq!(
        std::fs::read_to_string(target.join("hello")).unwrap(),
        "world"
    );
    b.unmount(&target).unwrap();
    assert_eq!(mount_count(&target), 0, "the last unmount unmounts");
    assert!(!target.join("hello").exists());
    assert_eq!(a.unmount(&target).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        a.mount("missing", &target).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    a.remove("c").unwrap();
    a.remove("v").unwrap();
    assert!(
        layerstore::mounts::mounts_below(t.path())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_stale_mount_record_is_dropped_on_open() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let target = t.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    {
        let s = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
        s.prepare("c", None, Default::default()).unwrap();
        s.mount("c", &target).unwrap();
    }
    // The holder is gone and something else unmounted (as after a reboot).
    layerstore::mounts::unmount(&target).unwrap();
    let s = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    s.remove("c").unwrap();
}
