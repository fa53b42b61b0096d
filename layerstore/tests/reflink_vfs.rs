//! Without this, vfs children could silently become full copies on reflink-capable
//! filesystems (wasting space and time), or a reflinked child could share writes with
//! its parent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use layerstore::drivers::vfs::copy::{COPIED, REFLINKED};
use layerstore::{Driver, DriverChoice, LayerStore};

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd} is required: {e}"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// A loop-mounted reflink-capable xfs, unmounted (and its loop device freed) on drop.
struct Xfs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Xfs {
    fn new() -> Xfs {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test mounts and must run as root"
        );
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let img = dir.path().join("xfs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(400 << 20)
            .unwrap();
        run(
            "mkfs.xfs",
            &["-q", "-m", "reflink=1", img.to_str().unwrap()],
        );
        run(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
        );
        Xfs { mnt, _dir: dir }
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn free_bytes(p: &Path) -> u64 {
    let s = rustix::fs::statvfs(p).unwrap();
    s.f_bavail * s.f_frsize
}

fn content_dir(store: &LayerStore, key: &str) -> PathBuf {
    store.mounts(key).unwrap()[0].source.clone()
}

#[test]
fn children_share_extents_on_xfs_and_writes_stay_private() {
    let fs = Xfs::new();
    let store = LayerStore::open(fs.mnt.join("store"), DriverChoice::Vfs).unwrap();
    store
        .prepare("base-active", None, Default::default())
        .unwrap();
    let big = vec![0x5au8; 64 << 20];
    std::fs::write(content_dir(&store, "base-active").join("big"), &big).unwrap();
    store
        .commit("base", "base-active", Default::default())
        .unwrap();
    rustix::fs::sync();

    let (reflinked, copied) = (
        REFLINKED.load(Ordering::Relaxed),
        COPIED.load(Ordering::Relaxed),
    );
    let before = free_bytes(&fs.mnt);
    store
        .prepare("child", Some("base"), Default::default())
        .unwrap();
    rustix::fs::sync();
    let after = free_bytes(&fs.mnt);
    assert!(
        REFLINKED.load(Ordering::Relaxed) > reflinked,
        "FICLONE was not used"
    );
    assert_eq!(
        COPIED.load(Ordering::Relaxed),
        copied,
        "a file was copied byte by byte"
    );
    assert!(
        before.saturating_sub(after) < 8 << 20,
        "the child took {} bytes for a 64 MiB file",
        before.saturating_sub(after)
    );

    let child_file = content_dir(&store, "child").join("big");
    assert_eq!(std::fs::read(&child_file).unwrap(), big);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&child_file)
            .unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"changed in the child").unwrap();
    }
    store
        .view("base-view", Some("base"), Default::default())
        .unwrap();
    assert_eq!(
        std::fs::read(content_dir(&store, "base-view").join("big")).unwrap(),
        big
    );
    for k in ["base-view", "child", "base"] {
        store.remove(k).unwrap();
    }
}

#[test]
fn without_reflinks_a_child_is_a_faithful_copy() {
    // Whether reflinked or copied (ext4 and tmpfs have no FICLONE), the child keeps
    // modes, owners, xattrs, times, hardlinks, devices, fifos and symlinks.
    assert!(
        rustix::process::geteuid().is_root(),
        "this test chowns and mknods as root"
    );
    let t = tempfile::tempdir().unwrap();
    let store = LayerStore::open(t.path().join("store"), DriverChoice::Vfs).unwrap();
    store.prepare("a", None, Default::default()).unwrap();
    let src = content_dir(&store, "a");
    std::fs::create_dir(src.join("d")).unwrap();
    std::fs::write(src.join("d/f"), "file").unwrap();
    std::fs::hard_link(src.join("d/f"), src.join("link")).unwrap();
    std::os::unix::fs::symlink("d/f", src.join("sym")).unwrap();
    run("chmod", &["4750", src.join("d/f").to_str().unwrap()]);
    run(
        "chown",
        &["-h", "123:456", src.join("sym").to_str().unwrap()],
    );
    run("chown", &["7:8", src.join("d").to_str().unwrap()]);
    run(
        "setfattr",
        &[
            "-n",
            "user.k",
            "-v",
            "value",
            src.join("d/f").to_str().unwrap(),
        ],
    );
    run(
        "mknod",
        &[src.join("null").to_str().unwrap(), "c", "1", "3"],
    );
    run("mkfifo", &[src.join("fifo").to_str().unwrap()]);
    run(
        "touch",
        &[
            "-h",
            "-d",
            "2001-02-03 04:05:06",
            src.join("sym").to_str().unwrap(),
        ],
    );
    run(
        "touch",
        &["-d", "2002-02-03 04:05:06", src.join("d").to_str().unwrap()],
    );
    store.commit("base", "a", Default::default()).unwrap();
    store
        .prepare("b", Some("base"), Default::default())
        .unwrap();
    store
        .view("base-view", Some("base"), Default::default())
        .unwrap();
    let (old, new) = (content_dir(&store, "base-view"), content_dir(&store, "b"));
    assert_eq!(describe(&old), describe(&new));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(new.join("d/f")).unwrap().ino(),
        std::fs::metadata(new.join("link")).unwrap().ino()
    );
    assert_ne!(
        std::fs::metadata(new.join("d/f")).unwrap().ino(),
        std::fs::metadata(old.join("d/f")).unwrap().ino()
    );
    for k in ["base-view", "b", "base"] {
        store.remove(k).unwrap();
    }
}

/// Every path with type, mode, owner, mtime, size, rdev, link target and xattrs.
fn describe(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %U:%G %T@ %s %n %l\\n"])
        .current_dir(root)
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(". "))
        .map(str::to_owned)
        .collect();
    let x = Command::new("getfattr")
        .args(["-R", "-d", "-h", "--absolute-names", "."])
        .current_dir(root)
        .output()
        .unwrap();
    lines.push(String::from_utf8(x.stdout).unwrap());
    let rdev = Command::new("stat")
        .args(["-c", "%t:%T", "null"])
        .current_dir(root)
        .output()
        .unwrap();
    lines.push(String::from_utf8(rdev.stdout).unwrap());
    lines.sort();
    lines
}
