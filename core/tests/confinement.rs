//! Without these, a hostile path or symlink could create, change or read files outside a
//! store root: every escape attempt must fail with a typed error (or be confined, for
//! `InRoot`), through both resolvers, and leave the outside untouched.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cargohold_core::ErrorKind;
use cargohold_core::root::{Confine, Resolver, Root};
use rustix::fs::OFlags;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

/// `base/root` is the store root; `base/outside` holds a secret that must never change.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"top secret").unwrap();
    fs::write(root.join("dir/file"), b"inside").unwrap();
    symlink(&outside, root.join("abs")).unwrap();
    symlink("../outside", root.join("rel")).unwrap();
    symlink("../../../../../../..", root.join("up")).unwrap();
    symlink("loop2", root.join("loop1")).unwrap();
    symlink("loop1", root.join("loop2")).unwrap();
    symlink("dir", root.join("dirlink")).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        outside,
    }
}

/// A listing of `dir` with contents, to prove nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let data = if p.is_file() {
            fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        out.push((p, data));
    }
    out.sort();
    out
}

fn resolvers() -> [Resolver; 2] {
    [Resolver::Openat2, Resolver::Walk]
}

#[test]
fn beneath_refuses_every_escape_with_path_escape() {
    for resolver in resolvers() {
        let fx = fixture();
        let before = snapshot(&fx.outside);
        let parent_before = snapshot(fx.root.parent().unwrap());
        let root = Root::open_with(&fx.root, Confine::Beneath, resolver).unwrap();
        let cases: Vec<(&str, ErrorKind)> = vec![
            (
                "create ../outside/new",
                root.create_file("../outside/new", 0o644, true)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
            ),
            (
                "create abs/new",
                root.create_file("abs/new", 0o644, true)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
            ),
            (
                "create rel/new",
                root.create_file("rel/new", 0o644, true)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
            ),
            (
                "open rel/secret",
                root.open_file("rel/secret", OFlags::RDONLY)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
            ),
            (
                "open abs/secret",
                root.open_file("abs/secret", OFlags::RDWR)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
            ),
            ("mkdir up/x", root.mkdir("up/x", 0o755).unwrap_err().kind()),
            (
                "remove rel/secret",
                root.remove_file("rel/secret").unwrap_err().kind(),
            ),
            (
                "rename out",
                root.rename("dir/file", "../outside/moved")
                    .unwrap_err()
                    .kind(),
            ),
            (
                "rename in",
                root.rename("rel/secret", "stolen").unwrap_err().kind(),
            ),
            (
                "hardlink in",
                root.hardlink("rel/secret", "stolen").unwrap_err().kind(),
            ),
            (
                "hardlink out",
                root.hardlink("dir/file", "abs/planted").unwrap_err().kind(),
            ),
            (
                "readlink through",
                root.read_link("rel/secret").unwrap_err().kind(),
            ),
            (
                "symlink through",
                root.symlink("/x", "abs/planted").unwrap_err().kind(),
            ),
            (
                "open dir ..",
                root.open_dir("..").map(drop).unwrap_err().kind(),
            ),
            (
                "metadata ../outside",
                root.metadata("../outside/secret")
                    .map(drop)
                    .unwrap_err()
                    .kind(),
            ),
            (
                "remove_all rel/secret",
                root.remove_all("rel/secret").unwrap_err().kind(),
            ),
        ];
        for (what, kind) in cases {
            assert_eq!(kind, ErrorKind::PathEscape, "{what} with {resolver:?}");
        }
        assert_eq!(
            snapshot(&fx.outside),
            before,
            "outside changed with {resolver:?}"
        );
        assert_eq!(snapshot(fx.root.parent().unwrap()), parent_before);
    }
}

#[test]
fn in_root_confines_escapes_to_the_root() {
    for resolver in resolvers() {
        let fx = fixture();
        let before = snapshot(&fx.outside);
        let root = Root::open_with(&fx.root, Confine::InRoot, resolver).unwrap();
        // `..` at the root stays at the root.
        root.create_file("../../../clamped", 0o644, true).unwrap();
        assert!(fx.root.join("clamped").is_file(), "{resolver:?}");
        // A relative symlink climbing out lands inside the root.
        root.mkdir_all("outside", 0o755).unwrap();
        root.create_file("rel/through-rel", 0o644, true).unwrap();
        assert!(
            fx.root.join("outside/through-rel").is_file(),
            "{resolver:?}"
        );
        // An absolute symlink resolves from the root: the outside path does not exist
        // inside the root, so the write fails instead of escaping.
        let err = root.create_file("abs/planted", 0o644, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{resolver:?}");
        // Reading through them sees only the root.
        let err = root.open_file("abs/secret", OFlags::RDONLY).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // Hardlinks to outside files are impossible: the source resolves inside.
        assert_eq!(
            root.hardlink("rel/secret", "stolen").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        // A symlink through a symlink to a directory inside is fine.
        assert_eq!(root.read("dirlink/file").unwrap(), b"inside");
        assert_eq!(
            snapshot(&fx.outside),
            before,
            "outside changed with {resolver:?}"
        );
    }
}

#[test]
fn symlink_loops_and_bad_names_are_typed_errors() {
    for resolver in resolvers() {
        for confine in [Confine::InRoot, Confine::Beneath] {
            let fx = fixture();
            let root = Root::open_with(&fx.root, confine, resolver).unwrap();
            let kind = root.create_file("loop1/x", 0o644, true).unwrap_err().kind();
            assert!(
                matches!(kind, ErrorKind::InvalidArgument | ErrorKind::PathEscape),
                "loop gave {kind:?} with {resolver:?} {confine:?}"
            );
            for bad in ["", ".", "dir/..", "dir/.", "/"] {
                let err = root.create_file(bad, 0o644, true).unwrap_err();
                assert_eq!(
                    err.kind(),
                    ErrorKind::InvalidArgument,
                    "{bad:?} {resolver:?}"
                );
                assert_eq!(
                    root.remove_file(bad).unwrap_err().kind(),
                    ErrorKind::InvalidArgument
                );
            }
            assert_eq!(
                root.create_file("nul\0byte", 0o644, true)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidArgument
            );
            assert_eq!(
                root.open_file("dir", OFlags::RDONLY)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidArgument
            );
            assert_eq!(
                root.open_file("missing", OFlags::RDONLY)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
                ErrorKind::NotFound
            );
            assert_eq!(
                root.mkdir_all("a/../../b", 0o755)
                    .map(drop)
                    .unwrap_err()
                    .kind(),
                ErrorKind::PathEscape
            );
        }
    }
}

#[test]
fn final_symlinks_are_never_followed_by_create_or_remove() {
    for resolver in resolvers() {
        let fx = fixture();
        let before = snapshot(&fx.outside);
        let root = Root::open_with(&fx.root, Confine::InRoot, resolver).unwrap();
        symlink(fx.outside.join("secret"), fx.root.join("trap")).unwrap();
        // Truncating create through a final symlink must not write the target.
        let kind = root
            .create_file("trap", 0o644, false)
            .map(drop)
            .unwrap_err()
            .kind();
        assert_eq!(kind, ErrorKind::InvalidArgument, "{resolver:?}");
        assert_eq!(
            root.create_file("trap", 0o644, true)
                .map(drop)
                .unwrap_err()
                .kind(),
            ErrorKind::AlreadyExists
        );
        // Removing the symlink removes the link, not its target.
        root.remove_file("trap").unwrap();
        assert!(!fx.root.join("trap").exists());
        assert_eq!(snapshot(&fx.outside), before);
    }
}

#[test]
fn ordinary_operations_work_inside_the_root() {
    for resolver in resolvers() {
        let fx = fixture();
        let root = Root::open_with(&fx.root, Confine::Beneath, resolver).unwrap();
        let d = root.mkdir_all("a/b/c", 0o755).unwrap();
        drop(d);
        {
            use std::io::Write;
            let mut f = root.create_file("a/b/c/f", 0o640, true).unwrap();
            f.write_all(b"hello").unwrap();
        }
        assert_eq!(root.read("a/b/c/f").unwrap(), b"hello");
        root.rename("a/b/c/f", "a/g").unwrap();
        root.hardlink("a/g", "a/h").unwrap();
        assert_eq!(root.metadata("a/h").unwrap().st_nlink, 2);
        root.symlink("g", "a/s").unwrap();
        assert_eq!(root.read_link("a/s").unwrap(), PathBuf::from("g"));
        assert_eq!(
            root.rename_noreplace("a/h", "a/g").unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        root.remove_all("a").unwrap();
        assert!(!root.exists("a").unwrap());
        root.remove_all("never-existed").unwrap();
        let sub = root.sub_root("dir", Confine::Beneath).unwrap();
        assert_eq!(sub.read("file").unwrap(), b"inside");
        assert_eq!(
            sub.open_file("../dir/file", OFlags::RDONLY)
                .map(drop)
                .unwrap_err()
                .kind(),
            ErrorKind::PathEscape
        );
    }
}

/// A symlink swapped in while writes run (the classic race) must never let a write
/// land outside: `d` flips between a real directory and a symlink to the outside.
#[test]
fn symlinks_created_mid_operation_cannot_redirect_writes() {
    for resolver in resolvers() {
        for confine in [Confine::InRoot, Confine::Beneath] {
            let fx = fixture();
            let root = Root::open_with(&fx.root, confine, resolver).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let flipper = {
                let stop = stop.clone();
                let rootp = fx.root.clone();
                let outside = fx.outside.clone();
                std::thread::spawn(move || {
                    let d = rootp.join("d");
                    let tmp_dir = rootp.join("d.dir");
                    let tmp_link = rootp.join("d.link");
                    let mut flips = 0u32;
                    while !stop.load(Ordering::Relaxed) && flips < 20_000 {
                        let _ = fs::create_dir(&tmp_dir);
                        let _ = fs::rename(&tmp_dir, &d);
                        let _ = symlink(&outside, &tmp_link);
                        let _ = fs::rename(&tmp_link, &d);
                        let _ = fs::remove_dir_all(&d);
                        let _ = fs::remove_file(&d);
                        flips += 1;
                    }
                })
            };
            for i in 0..3000 {
                let _ = root.create_file(format!("d/f{i}"), 0o644, true);
                let _ = root.mkdir(format!("d/m{i}"), 0o755);
            }
            stop.store(true, Ordering::Relaxed);
            flipper.join().unwrap();
            let leaked: Vec<_> = fs::read_dir(&fx.outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n != "secret")
                .collect();
            assert!(
                leaked.is_empty(),
                "{resolver:?} {confine:?} leaked {leaked:?}"
            );
        }
    }
}

#[test]
fn xattrs_owner_times_and_devices_through_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Root::open(tmp.path(), Confine::Beneath).unwrap();
    let d = root.mkdir_all("x", 0o755).unwrap();
    drop(d.create_file("f".as_ref(), 0o600, true).unwrap());
    d.set_xattr("f".as_ref(), "user.cargohold.test", b"\x00\xffv")
        .unwrap();
    assert_eq!(
        d.get_xattr("f".as_ref(), "user.cargohold.test")
            .unwrap()
            .unwrap(),
        b"\x00\xffv"
    );
    assert!(
        d.list_xattrs("f".as_ref())
            .unwrap()
            .contains(&"user.cargohold.test".to_owned())
    );
    assert_eq!(d.get_xattr("f".as_ref(), "user.absent").unwrap(), None);
    d.set_times("f".as_ref(), (1, 0), (1_000_000_000, 5))
        .unwrap();
    assert_eq!(d.stat("f".as_ref()).unwrap().st_mtime, 1_000_000_000);
    d.chmod("f".as_ref(), 0o4755).unwrap();
    assert_eq!(d.stat("f".as_ref()).unwrap().st_mode & 0o7777, 0o4755);
    d.mknod("fifo".as_ref(), rustix::fs::FileType::Fifo, 0o644, 0, 0)
        .unwrap();
    let names: Vec<_> = d.entries().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 2);
    if rustix::process::geteuid().is_root() {
        d.chown(
            "f".as_ref(),
            cargohold_core::root::Owner {
                uid: 1234,
                gid: 5678,
            },
        )
        .unwrap();
        assert_eq!(d.stat("f".as_ref()).unwrap().st_uid, 1234);
        d.mknod(
            "null".as_ref(),
            rustix::fs::FileType::CharacterDevice,
            0o666,
            1,
            3,
        )
        .unwrap();
        assert_eq!(
            rustix::fs::major(d.stat("null".as_ref()).unwrap().st_rdev),
            1
        );
    }
    assert_eq!(
        d.open_dir("f".as_ref()).map(drop).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        d.mkdir("a/b".as_ref(), 0o755).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
