//! Without this, overlay could leave redirects or metadata-only copies in an upper dir
//! (a renamed lower directory, a chmod of a lower file), and a diff that reads the upper
//! dir alone would silently miss the renamed tree or the file's data; and a container's
//! usage could start walking its (large) lowers instead of its upper dir alone.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use layerstore::Driver;
use layerstore::drivers::overlay::Overlay;

#[test]
fn renames_of_lower_dirs_are_refused_and_chmod_copies_the_whole_file() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let snaps: Box<dyn Driver> =
        Box::new(layerstore::snapshots::Snapshots::open(&root, Box::new(Overlay::new())).unwrap());
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();
    let data = vec![7u8; 64 * 1024];

    let m = snaps
        .prepare("base-active", None, Default::default())
        .unwrap();
    layerstore::mounts::mount_all(&m, &at).unwrap();
    fs::create_dir(at.join("dir")).unwrap();
    fs::write(at.join("dir/inner"), b"i").unwrap();
    fs::write(at.join("big"), &data).unwrap();
    layerstore::mounts::unmount(&at).unwrap();
    snaps
        .commit("base", "base-active", Default::default())
        .unwrap();

    let m = snaps
        .prepare("c", Some("base"), Default::default())
        .unwrap();
    assert_eq!(m[0].kind, "overlay");
    layerstore::mounts::mount_all(&m, &at).unwrap();
    let r = std::panic::catch_unwind(|| {
        let e = fs::rename(at.join("dir"), at.join("moved")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(18), "EXDEV expected, got {e}");
        fs::set_permissions(at.join("big"), fs::Permissions::from_mode(0o600)).unwrap();
    });
    layerstore::mounts::unmount(&at).unwrap();
    r.unwrap();

    let upper = std::path::PathBuf::from(
        m[0].options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .expect("an upperdir option"),
    );
    assert!(
        !upper.join("moved").exists(),
        "no renamed dir in the upper dir"
    );
    let big = upper.join("big");
    assert_eq!(fs::metadata(&big).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::read(&big).unwrap(), data, "the full data was copied up");
    assert!(
        fs::metadata(&big).unwrap().blocks() * 512 >= data.len() as u64,
        "a metadata-only copy has no data blocks"
    );
    assert!(
        layerstore::mounts::mounts_below(tmp.path())
            .unwrap()
            .is_empty()
    );
    snaps.remove("c").unwrap();
    snaps.remove("base").unwrap();
}

#[test]
fn usage_counts_the_upper_dir_only_and_a_committed_layer_keeps_its_size() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let snaps: Box<dyn Driver> =
        Box::new(layerstore::snapshots::Snapshots::open(&root, Box::new(Overlay::new())).unwrap());
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();
    let m = snaps
        .prepare("base-active", None, Default::default())
        .unwrap();
    layerstore::mounts::mount_all(&m, &at).unwrap();
    fs::write(at.join("big"), vec![1u8; 1 << 20]).unwrap();
    layerstore::mounts::unmount(&at).unwrap();
    snaps
        .commit("base", "base-active", Default::default())
        .unwrap();
    let base = snaps.usage("base").unwrap();
    assert!(base.size >= 1 << 20, "{base:?}");

    let m = snaps
        .prepare("c", Some("base"), Default::default())
        .unwrap();
    let empty = snaps.usage("c").unwrap();
    assert!(
        empty.size < 64 << 10,
        "a fresh container counts its lowers: {empty:?}"
    );
    layerstore::mounts::mount_all(&m, &at).unwrap();
    let w = fs::write(at.join("small"), vec![2u8; 16 << 10]);
    layerstore::mounts::unmount(&at).unwrap();
    w.unwrap();
    let used = snaps.usage("c").unwrap();
    assert!(used.size >= empty.size + (16 << 10), "{used:?}");
    assert!(
        used.size < 1 << 20,
        "the container's usage walks its lowers: {used:?}"
    );
    assert_eq!(used.inodes, empty.inodes + 1);
    snaps.commit("top", "c", Default::default()).unwrap();
    assert_eq!(
        snaps.usage("top").unwrap(),
        used,
        "a committed layer keeps its size"
    );
    assert_eq!(snaps.usage("base").unwrap(), base);
    snaps.remove("top").unwrap();
    snaps.remove("base").unwrap();
    assert!(
        layerstore::mounts::mounts_below(tmp.path())
            .unwrap()
            .is_empty()
    );
}
