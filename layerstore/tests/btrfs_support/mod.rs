//! A loop-mounted btrfs for the tests that need one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A btrfs filesystem on a sparse image, mounted at `.0`; lazily unmounted on drop (the
/// loop device goes with the last reference).
pub struct BtrfsMount(pub PathBuf);

impl Drop for BtrfsMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Make a `size`-byte sparse btrfs image in `dir` and mount it at `dir/mnt`.
pub fn mount_btrfs(dir: &Path, size: u64) -> BtrfsMount {
    assert!(
        rustix::process::geteuid().is_root(),
        "the btrfs tests mount a loop device: run them as root"
    );
    let image = dir.join("btrfs.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(size)
        .unwrap();
    let out = Command::new("mkfs.btrfs")
        .arg("-q")
        .arg(&image)
        .output()
        .expect("mkfs.btrfs (btrfs-progs) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount -o loop of a btrfs image");
    BtrfsMount(mnt)
}
