//! Without this, a stack deeper than `mount(2)`'s one-page option string (about 37
//! lowers of 108-byte paths) would fail to mount, through either the new mount API or
//! the short-name fallback, and nobody would see it until a deep image arrived.

use std::fs;
use std::path::{Path, PathBuf};

use layerstore::drivers::overlay::mount::{MAX_LOWERS, MountApi, mount_overlay};
use layerstore::drivers::overlay::{BASE_OPTIONS, Overlay};
use layerstore::{ErrorKind, Mount};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "overlay deep-stack tests mount and must run as root"
    );
}

/// A store-like directory whose path is longer than 100 bytes.
fn long_base(tmp: &Path) -> PathBuf {
    let base = tmp.join("a-store-root-with-a-long-name-".repeat(4));
    fs::create_dir_all(&base).unwrap();
    assert!(base.as_os_str().len() > 100);
    base
}

/// `n` lowers, lower `i` holding `only-<i>` and `shared` (= "<i>"), nearest first.
fn lowers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let d = base.join(format!("snapshots/{i:016x}/fs"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("only-{i}")), i.to_string()).unwrap();
            fs::write(d.join("shared"), i.to_string()).unwrap();
            d
        })
        .collect()
}

fn spec(base: &Path, lowers: Vec<PathBuf>, writable: bool) -> Mount {
    let mut options: Vec<String> = BASE_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
    if writable {
        let upper = base.join("upper/fs");
        let work = base.join("upper/work");
        fs::create_dir_all(&upper).unwrap();
        fs::create_dir_all(&work).unwrap();
        options.push(format!("upperdir={}", upper.display()));
        options.push(format!("workdir={}", work.display()));
    } else {
        options.push("ro".to_owned());
    }
    Mount {
        kind: "overlay".to_owned(),
        source: PathBuf::from("overlay"),
        target: None,
        options,
        lowerdirs: lowers,
    }
}

fn assert_no_mounts_below(dir: &Path) {
    let left = layerstore::mounts::mounts_below(dir).unwrap();
    assert!(left.is_empty(), "mounts leaked: {left:?}");
}

fn check_stack(api: MountApi, n: usize, writable: bool) {
    check_stack_shown(api, n, writable, None);
}

/// Like [`check_stack`], and the kernel shows the lowers starting with `shown` (the names
/// the mount was given).
fn check_stack_shown(api: MountApi, n: usize, writable: bool, shown: Option<&str>) {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let base = long_base(tmp.path());
    let ls = lowers(&base, n);
    let m = spec(&base, ls, writable);
    let plain_len: usize = m.lowerdirs.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        plain_len > 4096 || n < 100,
        "the stack must not fit one page"
    );
    let at = base.join("mnt");
    fs::create_dir(&at).unwrap();
    let cwd = std::env::current_dir().unwrap();
    mount_overlay(&m, &at, api).unwrap();
    assert_eq!(
        std::env::current_dir().unwrap(),
        cwd,
        "the process cwd moved"
    );
    let seen = std::panic::catch_unwind(|| {
        if let Some(shown) = shown {
            let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
            let at = at.to_str().unwrap();
            let line = info
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(at))
                .expect("the mount in mountinfo");
            assert!(line.contains(&format!("lowerdir={shown}")), "{line}");
        }
        // Nearest lower wins; the deepest one is still reachable.
        assert_eq!(fs::read_to_string(at.join("shared")).unwrap(), "0");
        assert_eq!(
            fs::read_to_string(at.join(format!("only-{}", n - 1))).unwrap(),
            (n - 1).to_string()
        );
        let entries = fs::read_dir(&at).unwrap().count();
        assert_eq!(entries, n + 1);
        let w = fs::write(at.join("new"), "x");
        assert_eq!(w.is_ok(), writable, "writability: {w:?}");
    });
    layerstore::mounts::unmount(&at).unwrap();
    assert_no_mounts_below(tmp.path());
    if let Err(p) = seen {
        std::panic::resume_unwind(p);
    }
    if writable {
        assert_eq!(
            fs::read_to_string(base.join("upper/fs/new")).unwrap(),
            "x",
            "a write lands in the upper dir"
        );
    }
}

#[test]
fn new_api_mounts_500_lowers_with_upper() {
    check_stack(MountApi::New, MAX_LOWERS, true);
}

#[test]
fn new_api_mounts_500_lowers_read_only() {
    check_stack(MountApi::New, MAX_LOWERS, false);
}

#[test]
fn legacy_mount_reaches_500_lowers_through_short_names() {
    check_stack(MountApi::Legacy, MAX_LOWERS, true);
}

#[test]
fn legacy_mount_uses_plain_paths_when_they_fit() {
    check_stack_shown(MountApi::Legacy, 3, true, Some("/"));
}

#[test]
fn legacy_mount_uses_names_relative_to_the_common_dir_when_they_fit() {
    check_stack_shown(MountApi::Legacy, 120, true, Some("snapshots/"));
}

#[test]
fn legacy_mount_uses_numbered_links_past_that() {
    check_stack_shown(MountApi::Legacy, MAX_LOWERS, false, Some("0:1:2:"));
}

#[test]
fn auto_mounts_500_lowers() {
    check_stack(MountApi::Auto, MAX_LOWERS, true);
}

#[test]
fn more_than_500_lowers_is_invalid_and_mounts_nothing() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let base = long_base(tmp.path());
    let m = spec(&base, lowers(&base, MAX_LOWERS + 1), false);
    let at = base.join("mnt");
    fs::create_dir(&at).unwrap();
    for api in [MountApi::New, MountApi::Legacy, MountApi::Auto] {
        let e = mount_overlay(&m, &at, api).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    assert_no_mounts_below(tmp.path());
}

#[test]
fn bad_specs_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let base = long_base(tmp.path());
    let at = base.join("mnt");
    fs::create_dir(&at).unwrap();
    let mut no_lower = spec(&base, Vec::new(), false);
    no_lower.lowerdirs.clear();
    let mut bind = spec(&base, lowers(&base, 2), false);
    bind.kind = "bind".to_owned();
    let mut one_ro = spec(&base, lowers(&base, 1), false);
    one_ro.options.retain(|o| o == "ro");
    let mut upper_only = spec(&base, lowers(&base, 2), true);
    upper_only.options.retain(|o| !o.starts_with("workdir="));
    let mut nul = spec(&base, lowers(&base, 2), false);
    nul.options.push("xino=\0off".to_owned());
    for m in [no_lower, bind, one_ro, upper_only, nul] {
        let e = mount_overlay(&m, &at, MountApi::Auto).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{m:?}");
    }
    assert_no_mounts_below(tmp.path());
}

#[test]
fn a_store_chain_deeper_than_a_page_mounts() {
    require_root();
    use layerstore::Driver;
    let tmp = tempfile::tempdir().unwrap();
    let base = long_base(tmp.path());
    let snaps: Box<dyn Driver> = Box::new(
        layerstore::snapshots::Snapshots::open(base.join("store"), Box::new(Overlay::new()))
            .unwrap(),
    );
    let depth = 60;
    let mut parent: Option<String> = None;
    for i in 0..depth {
        let key = format!("active-{i}");
        snaps
            .prepare(&key, parent.as_deref(), Default::default())
            .unwrap();
        let name = format!("layer-{i}");
        snaps.commit(&name, &key, Default::default()).unwrap();
        parent = Some(name);
    }
    let mounts = snaps
        .prepare("top", parent.as_deref(), Default::default())
        .unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].lowerdirs.len(), depth);
    let opt_len: usize = mounts[0].options.iter().map(|o| o.len() + 1).sum();
    assert!(opt_len > 4096, "the option string must not fit: {opt_len}");
    // Nearest first: the first lower is the direct parent's content dir.
    let last = snaps.stat(&format!("layer-{}", depth - 1)).unwrap();
    assert_eq!(last.kind, layerstore::Kind::Committed);
    let at = base.join("mnt");
    fs::create_dir(&at).unwrap();
    mount_overlay(&mounts[0], &at, MountApi::Auto).unwrap();
    let w = fs::write(at.join("f"), "y");
    layerstore::mounts::unmount(&at).unwrap();
    w.unwrap();
    assert_no_mounts_below(tmp.path());
    snaps.remove("top").unwrap();
    for i in (0..depth).rev() {
        snaps.remove(&format!("layer-{i}")).unwrap();
    }
}
