//! Volumes with options are real mounts, made at the first holder and undone at the
//! last; without these tests a tmpfs, bind, block-device or size-capped volume could be
//! left mounted, never mounted, or mounted with the wrong options.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use volstore::local::CreateRequest;
use volstore::mounter::{Call, Recorder, mount_points};
use volstore::{Driver, ErrorKind, LocalDriver, Options};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests mount filesystems: run them as root"
    );
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mounted(p: &Path) -> bool {
    mount_points().unwrap().contains(p)
}

/// The filesystem type and options the mount table shows for `p`.
fn mount_entry(p: &Path) -> (String, String) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if Path::new(f[4]) == p {
            let dash = f.iter().position(|x| *x == "-").unwrap();
            return (f[dash + 1].to_string(), format!("{},{}", f[5], f[dash + 3]));
        }
    }
    panic!("{} is not mounted", p.display());
}

fn store() -> (tempfile::TempDir, LocalDriver) {
    let dir = tempfile::tempdir().unwrap();
    let d = LocalDriver::open(dir.path().join("volumes")).unwrap();
    (dir, d)
}

#[test]
fn tmpfs_is_mounted_at_the_first_holder_and_unmounted_at_the_last() {
    require_root();
    let (_t, d) = store();
    d.create(
        "scratch",
        &opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=8m,mode=0750,nosuid"),
        ]),
    )
    .unwrap();
    let data = d.data_path("scratch");
    assert!(!mounted(&data));
    let p = d.mount("scratch", "c1").unwrap();
    assert_eq!(p, data);
    let (fstype, options) = mount_entry(&data);
    assert_eq!(fstype, "tmpfs");
    assert!(options.contains("size=8192k"), "{options}");
    assert!(options.contains("nosuid"), "{options}");
    assert!(options.contains("mode=750"), "{options}");
    std::fs::write(data.join("f"), b"in tmpfs").unwrap();
    d.mount("scratch", "c2").unwrap();
    d.unmount("scratch", "c1").unwrap();
    assert!(mounted(&data), "unmounted while c2 still holds it");
    d.unmount("scratch", "c2").unwrap();
    assert!(!mounted(&data));
    // tmpfs content goes with the mount, as with Docker.
    assert!(!data.join("f").exists());
    d.remove("scratch").unwrap();
}

#[test]
fn bind_volumes_show_the_source_directory() {
    require_root();
    let (t, d) = store();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello"), b"from the host").unwrap();
    let src_s = src.to_str().unwrap();
    d.create(
        "host",
        &opts(&[("type", "none"), ("o", "bind,ro"), ("device", src_s)]),
    )
    .unwrap();
    let p = d.mount("host", "c1").unwrap();
    assert_eq!(std::fs::read(p.join("hello")).unwrap(), b"from the host");
    let (_, options) = mount_entry(&p);
    assert!(options.starts_with("ro"), "read-only bind: {options}");
    assert_eq!(
        std::fs::write(p.join("new"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    d.unmount("host", "c1").unwrap();
    assert!(!mounted(&p));
    d.remove("host").unwrap();
    assert!(
        src.join("hello").exists(),
        "removing a bind volume keeps its source"
    );
}

#[test]
fn a_device_volume_mounts_an_image_through_a_loop_device() {
    require_root();
    let (t, d) = store();
    let image = t.path().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .status()
        .unwrap();
    assert!(st.success(), "mkfs.ext4 (e2fsprogs) is needed");
    let image_s = image.to_str().unwrap();
    d.create("disk", &opts(&[("type", "ext4"), ("device", image_s)]))
        .unwrap();
    let p = d.mount("disk", "c1").unwrap();
    let (fstype, _) = mount_entry(&p);
    assert_eq!(fstype, "ext4");
    std::fs::write(p.join("persisted"), b"on the image").unwrap();
    d.unmount("disk", "c1").unwrap();
    assert!(!mounted(&p));
    // The loop device went with the mount (autoclear): nothing still backs the image.
    let out = Command::new("losetup")
        .args(["-j", image_s])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "loop device left attached"
    );
    let p = d.mount("disk", "c2").unwrap();
    assert_eq!(std::fs::read(p.join("persisted")).unwrap(), b"on the image");
    d.unmount("disk", "c2").unwrap();
    d.remove("disk").unwrap();
}

#[test]
fn a_size_cap_is_a_loop_backed_image_that_fills_up() {
    require_root();
    let (_t, d) = store();
    d.create("capped", &opts(&[("size", "16m")])).unwrap();
    let p = d.mount("capped", "c1").unwrap();
    assert_eq!(mount_entry(&p).0, "ext4");
    assert!(
        std::fs::read_dir(&p).unwrap().next().is_none(),
        "a new capped volume is empty (no lost+found)"
    );
    let big = vec![7u8; 1 << 20];
    let mut written = 0u64;
    let err = loop {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.join("fill"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, &big))
        {
            Ok(()) => written += big.len() as u64,
            Err(e) => break e,
        }
        assert!(written <= 32 << 20, "wrote past the cap");
    };
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::NOSPC.raw_os_error())
    );
    assert!(written >= 8 << 20, "the cap leaves room: {written}");
    d.unmount("capped", "c1").unwrap();
    d.remove("capped").unwrap();
}

#[test]
fn nfs_options_reach_the_mount_call() {
    // No NFS client in this kernel (and no server package): the call is recorded.
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let d = LocalDriver::open_with(dir.path().join("volumes"), rec.clone()).unwrap();
    d.create(
        "shared",
        &opts(&[
            ("type", "nfs"),
            ("o", "addr=192.0.2.7,rw,nfsvers=4.1,noexec"),
            ("device", ":/export/data"),
        ]),
    )
    .unwrap();
    let p = d.mount("shared", "c1").unwrap();
    d.mount("shared", "c2").unwrap();
    d.unmount("shared", "c1").unwrap();
    d.unmount("shared", "c2").unwrap();
    let calls = rec.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let Call::Mount { spec, target } = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(target, &p);
    assert_eq!(spec.fstype, "nfs");
    assert_eq!(spec.source, "192.0.2.7:/export/data");
    assert_eq!(spec.data, "addr=192.0.2.7,nfsvers=4.1");
    assert_eq!(spec.flags, rustix::mount::MountFlags::NOEXEC);
    assert_eq!(calls[1], Call::Unmount(p));
    d.remove("shared").unwrap();
}

#[test]
fn forced_removal_unmounts_first() {
    require_root();
    let (_t, d) = store();
    d.create("tv", &opts(&[("type", "tmpfs"), ("device", "tmpfs")]))
        .unwrap();
    let p = d.mount("tv", "c1").unwrap();
    assert_eq!(d.remove("tv").unwrap_err().kind(), ErrorKind::InUse);
    assert!(mounted(&p));
    d.remove_volume("tv", true).unwrap();
    assert!(!mounted(&p));
    assert_eq!(d.get("tv").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn labels_and_anonymous_volumes_are_kept() {
    let (_t, d) = store();
    let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let v = d
        .create_volume(
            None,
            &CreateRequest {
                options: Options::new(),
                labels: labels.clone(),
            },
        )
        .unwrap();
    assert!(v.anonymous);
    assert_eq!(v.name.len(), 64);
    let again = d.inspect(&v.name).unwrap();
    assert_eq!(again.labels, labels);
    assert!(again.anonymous);
    assert_eq!(again.created_at, v.created_at);
    // Docker's own files are there, named as Docker names them.
    let vol_dir = d.path().join(&v.name);
    assert!(vol_dir.join("_data").is_dir());
    assert!(
        !vol_dir.join("opts.json").exists(),
        "no options, no opts.json (as Docker)"
    );
    d.create(
        "withopts",
        &opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]),
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("withopts/opts.json")).unwrap())
            .unwrap();
    assert_eq!(
        json,
        serde_json::json!({"MountType": "tmpfs", "MountOpts": "size=1m", "MountDevice": "tmpfs", "Quota": {"Size": 0}})
    );
}
