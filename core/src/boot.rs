//! Which boot, and which mount of a filesystem, the running process sees: what lets a
//! store tell whether data it wrote without syncing could have been lost since.
//!
//! Data in the page cache survives as long as the kernel that holds it and the mount
//! it was written through: a reboot or a crash loses what was not written back, and
//! so does a filesystem cut off and mounted again (a shut-down filesystem, a device
//! that went away). A [`write_session`] names both, so a store that records it next to
//! unsynced data can tell, later, whether that data may be gone (another session) or
//! is still served from the same cache (the same session).

use std::os::fd::AsFd;

use rustix::fs::{AtFlags, StatxFlags};

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): a mount ID never reused until reboot.
const MNT_ID_UNIQUE: u32 = 0x4000;

/// The current boot's id (`/proc/sys/kernel/random/boot_id`), if the kernel says.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `<boot id>/<unique mount id>` of the mount `fd` is on: equal for every descriptor
/// opened through the same mount in the same boot, different after a reboot or once
/// the filesystem was unmounted and mounted again. `None` where the kernel cannot say
/// (no boot id, or a kernel older than 6.8 whose mount IDs are reused): a caller must
/// then not rely on a session and sync instead.
///
/// A bind mount, or the same filesystem seen from another mount namespace, is another
/// mount and so another session.
pub fn write_session(fd: impl AsFd) -> Option<String> {
    let boot = boot_id()?;
    let unique = StatxFlags::from_bits_retain(MNT_ID_UNIQUE);
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, unique).ok()?;
    (st.stx_mask & MNT_ID_UNIQUE != 0).then(|| format!("{boot}/{}", st.stx_mnt_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's (major, minor).
    fn kernel() -> (u32, u32) {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    #[test]
    fn a_session_is_the_same_through_one_mount_and_differs_across_mounts() {
        let here = write_session(std::fs::File::open("/").unwrap());
        if kernel() < (6, 8) {
            assert_eq!(here, None, "no unique mount IDs before Linux 6.8");
            return;
        }
        let here = here.expect("Linux 6.8 or later has unique mount IDs");
        let again = write_session(std::fs::File::open("/").unwrap()).unwrap();
        assert_eq!(here, again);
        assert!(here.starts_with(&format!("{}/", boot_id().unwrap())));
        // /proc is always another mount than /.
        let proc = write_session(std::fs::File::open("/proc").unwrap()).unwrap();
        assert_ne!(here, proc);
    }
}
