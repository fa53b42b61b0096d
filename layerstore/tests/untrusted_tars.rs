//! Without these, a hostile layer tar could write, delete or read outside the target
//! directory, smuggle overlay whiteouts, create devices, exhaust the disk, or panic the
//! applier; each case checks the typed error and that a sentinel tree beside the target
//! is untouched.

mod support;

use cargohold_core::ErrorKind;
use layerstore::archive::{self, ApplyOptions, WhiteoutFormat};
use support::{Scratch, TarMaker, gzip, require_root};
use tar::EntryType;

/// Apply `tar` into a fresh target; check the sentinel beside it is unchanged; return
/// the result and the scratch area.
fn apply_hostile(
    tar: &[u8],
    opts: &ApplyOptions,
) -> (Result<archive::Applied, cargohold_core::Error>, Scratch) {
    let s = Scratch::new();
    let before = archive::inventory(&s.sentinel()).unwrap();
    let outside_before: Vec<_> = std::fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let r = archive::apply(tar, &s.target(), &[], opts);
    assert_eq!(
        archive::inventory(&s.sentinel()).unwrap(),
        before,
        "sentinel changed"
    );
    let mut outside_after: Vec<_> = std::fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut ob = outside_before;
    ob.sort();
    outside_after.sort();
    assert_eq!(ob, outside_after, "something was created beside the target");
    (r, s)
}

fn kind_of(tar: &[u8], opts: &ApplyOptions) -> ErrorKind {
    apply_hostile(tar, opts)
        .0
        .expect_err("hostile tar was accepted")
        .kind()
}

#[test]
fn dotdot_names_are_path_escape() {
    let mut t = TarMaker::new();
    t.file_raw(b"../sentinel/secret", 0o644, b"pwned");
    assert_eq!(
        kind_of(&t.finish(), &ApplyOptions::default()),
        ErrorKind::PathEscape
    );

    let mut t = TarMaker::new();
    t.file_raw(b"a/../../sentinel/new", 0o644, b"pwned");
    assert_eq!(
        kind_of(&t.finish(), &ApplyOptions::default()),
        ErrorKind::PathEscape
    );
}

#[test]
fn absolute_names_land_inside_the_target() {
    let mut t = TarMaker::new();
    t.file_raw(b"/etc/passwd", 0o644, b"inside");
    let (r, s) = apply_hostile(&t.finish(), &ApplyOptions::default());
    r.unwrap();
    assert_eq!(
        std::fs::read(s.path().join("target/etc/passwd")).unwrap(),
        b"inside"
    );
}

#[test]
fn writes_through_symlinks_the_tar_made_stay_inside() {
    let mut t = TarMaker::new();
    t.dir("real", 0o755)
        .link(EntryType::Symlink, "etc", "/real")
        .link(EntryType::Symlink, "up", "../../real/..")
        .file("etc/passwd", b"inside")
        .file("up/secret", b"inside too");
    let (r, s) = apply_hostile(&t.finish(), &ApplyOptions::default());
    r.unwrap();
    // `etc -> /real` resolves to target/real, `up -> ../../real/..` to the target
    // itself: chroot semantics, the host's /etc and the sentinel are never reached.
    let target = s.target();
    assert_eq!(target.read("real/passwd").unwrap(), b"inside");
    assert_eq!(target.read("secret").unwrap(), b"inside too");

    // A symlink to itself (`etc -> /etc` in a chroot) cannot be written through.
    let mut t = TarMaker::new();
    t.link(EntryType::Symlink, "etc", "/etc")
        .file("etc/passwd", b"x");
    apply_hostile(&t.finish(), &ApplyOptions::default())
        .0
        .unwrap_err();
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let mut t = TarMaker::new();
    t.link(EntryType::Link, "stolen", "../sentinel/secret");
    assert_eq!(
        kind_of(&t.finish(), &ApplyOptions::default()),
        ErrorKind::PathEscape
    );

    // Through a symlink: resolves inside the target, where there is nothing to link.
    let mut t = TarMaker::new();
    t.link(EntryType::Symlink, "s", "/../sentinel")
        .link(EntryType::Link, "stolen", "s/secret");
    assert_eq!(
        kind_of(&t.finish(), &ApplyOptions::default()),
        ErrorKind::NotFound
    );
}

#[test]
fn whiteouts_cannot_delete_outside() {
    let mut t = TarMaker::new();
    t.dir("sentinel", 0o755)
        .file("sentinel/secret", b"the layer's own")
        .link(EntryType::Symlink, "s", "../sentinel")
        .file_raw(b"s/.wh.secret", 0, b"");
    let (r, s) = apply_hostile(&t.finish(), &ApplyOptions::default());
    r.unwrap();
    // The whiteout went through `s` confined: it deleted the target's own copy.
    assert!(!s.target().exists("sentinel/secret").unwrap());

    let mut t = TarMaker::new();
    t.file_raw(b"a/.wh..", 0, b"");
    assert_eq!(
        kind_of(&t.finish(), &ApplyOptions::default()),
        ErrorKind::InvalidArgument
    );

    let mut t = TarMaker::new();
    t.file_raw(b"../.wh.sentinel", 0, b"");
    assert_eq!(
        kind_of(&t.finish(), &ApplyOptions::default()),
        ErrorKind::PathEscape
    );
}

#[test]
fn smuggled_overlay_xattrs_are_dropped() {
    require_root();
    let mut t = TarMaker::new();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.kept", b"1"),
    ])
    .dir("d", 0o755)
    .pax(&[("SCHILY.xattr.user.overlay.redirect", b"/x")])
    .file("f", b"data");
    let opts = ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay { userxattr: false },
        ..ApplyOptions::default()
    };
    let (r, s) = apply_hostile(&t.finish(), &opts);
    r.unwrap();
    let inv = archive::inventory(&s.target()).unwrap();
    let d = &inv[std::path::Path::new("d")];
    assert_eq!(d.xattrs.keys().collect::<Vec<_>>(), vec!["user.kept"]);
    assert!(inv[std::path::Path::new("f")].xattrs.is_empty());
}

#[test]
fn devices_are_refused_unless_allowed() {
    let mut t = TarMaker::new();
    t.device(EntryType::Char, "null", 1, 3);
    let opts = ApplyOptions {
        allow_devices: false,
        ..ApplyOptions::default()
    };
    assert_eq!(kind_of(&t.finish(), &opts), ErrorKind::PermissionDenied);
    let mut t = TarMaker::new();
    t.device(EntryType::Block, "sda", 8, 0);
    assert_eq!(kind_of(&t.finish(), &opts), ErrorKind::PermissionDenied);
}

#[test]
fn huge_declared_sizes_and_bombs_hit_limits() {
    // A header declaring 1 TiB with no data behind it.
    let mut h = tar::Header::new_ustar();
    h.set_path("big").unwrap();
    h.set_size(1 << 40);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0u8; 1024]);
    let opts = ApplyOptions {
        max_uncompressed_bytes: Some(1 << 20),
        ..ApplyOptions::default()
    };
    assert_eq!(kind_of(&tar, &opts), ErrorKind::LimitExceeded);
    // Without a limit, the missing data is a corrupt tar.
    assert_eq!(kind_of(&tar, &ApplyOptions::default()), ErrorKind::Corrupt);

    // A gzip bomb: 16 MiB of zeros compress to ~16 KiB.
    let mut t = TarMaker::new();
    t.file("zeros", &vec![0u8; 16 << 20]);
    let bomb = gzip(&t.finish());
    assert!(bomb.len() < 1 << 20);
    assert_eq!(kind_of(&bomb, &opts), ErrorKind::LimitExceeded);

    let mut t = TarMaker::new();
    for i in 0..10 {
        t.file(&format!("f{i}"), b"x");
    }
    let opts = ApplyOptions {
        max_entries: Some(5),
        ..ApplyOptions::default()
    };
    assert_eq!(kind_of(&t.finish(), &opts), ErrorKind::LimitExceeded);
}

#[test]
fn truncated_and_garbage_tars_are_corrupt() {
    let mut t = TarMaker::new();
    t.file("a", &[7u8; 5000]).file("b", b"bbb");
    let full = t.finish();
    for cut in [700, 3000, 5300] {
        assert_eq!(
            kind_of(&full[..cut], &ApplyOptions::default()),
            ErrorKind::Corrupt,
            "cut at {cut}"
        );
    }
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(
        kind_of(&garbage, &ApplyOptions::default()),
        ErrorKind::Corrupt
    );
    // A truncated gzip stream.
    let gz = gzip(&full);
    assert_eq!(
        kind_of(&gz[..gz.len() / 2], &ApplyOptions::default()),
        ErrorKind::Corrupt
    );
}
