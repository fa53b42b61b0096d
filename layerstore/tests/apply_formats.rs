//! Without these, a layer in one of the formats registries serve (plain, gzip, pigz's
//! multi-member gzip, zstd) or an entry type or attribute images rely on (setuid,
//! owners, xattrs, capabilities, devices, fifos, hardlinks into parent layers,
//! whiteouts of both kinds) would be applied wrongly, or a digest would not be checked.

mod support;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cargohold_core::{Confine, Digest, ErrorKind, Root};
use layerstore::archive::{self, ApplyOptions, Compression, EntryKind, WhiteoutFormat};
use support::{Scratch, TarMaker, gzip, require_root};
use tar::EntryType;

fn sample() -> Vec<u8> {
    let mut t = TarMaker::new();
    t.dir("d", 0o755)
        .file("d/a", b"alpha")
        .file("b", &vec![9u8; 300_000]);
    t.finish()
}

#[test]
fn compression_is_detected_and_both_digests_computed() {
    let plain = sample();
    let mut multi = gzip(&plain[..1024]);
    multi.extend_from_slice(&gzip(&plain[1024..]));
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (bytes, want) in [
        (plain.clone(), Compression::None),
        (gzip(&plain), Compression::Gzip),
        (multi, Compression::Gzip),
        (zst, Compression::Zstd),
    ] {
        let s = Scratch::new();
        let got = archive::apply(&bytes[..], &s.target(), &[], &ApplyOptions::default()).unwrap();
        assert_eq!(got.compression, want);
        assert_eq!(got.diff_id, Digest::sha256(&plain));
        assert_eq!(got.compressed_digest, Digest::sha256(&bytes));
        assert_eq!(got.uncompressed_size, plain.len() as u64);
        assert_eq!(got.entries, 3);
        assert_eq!(s.target().read("d/a").unwrap(), b"alpha");
        assert_eq!(s.target().read("b").unwrap(), vec![9u8; 300_000]);
    }
}

#[test]
fn digests_cover_padding_and_mismatches_are_typed() {
    let mut plain = sample();
    plain.extend_from_slice(&[0u8; 10_240]);
    let s = Scratch::new();
    let got = archive::apply(&plain[..], &s.target(), &[], &ApplyOptions::default()).unwrap();
    assert_eq!(got.diff_id, Digest::sha256(&plain));

    let wrong = Digest::sha256(b"something else");
    for opts in [
        ApplyOptions {
            expected_diff_id: Some(wrong.clone()),
            ..ApplyOptions::default()
        },
        ApplyOptions {
            expected_compressed_digest: Some(wrong.clone()),
            ..ApplyOptions::default()
        },
    ] {
        let s = Scratch::new();
        let gz = gzip(&plain);
        let err = archive::apply(&gz[..], &s.target(), &[], &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DigestMismatch);
    }
    let s = Scratch::new();
    let gz = gzip(&plain);
    let ok = ApplyOptions {
        expected_diff_id: Some(Digest::sha256(&plain)),
        expected_compressed_digest: Some(Digest::sha256(&gz)),
        ..ApplyOptions::default()
    };
    archive::apply(&gz[..], &s.target(), &[], &ok).unwrap();
}

#[test]
fn every_entry_type_and_attribute() {
    require_root();
    let long = format!("{}/{}", "x".repeat(120), "y".repeat(120));
    let mut t = TarMaker::new();
    t.dir("bin", 0o755)
        .file_owned("bin/su", 0o4755, 0, 0, b"setuid")
        .file_owned("bin/sg", 0o2711, 1000, 1001, b"setgid")
        .dir("tmp", 0o1777)
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            (
                "SCHILY.xattr.security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
        ])
        .file_owned("bin/ping", 0o755, 0, 0, b"ping")
        .link(EntryType::Symlink, "sh", "/bin/su")
        .link(EntryType::Link, "bin/su2", "bin/su")
        .device(EntryType::Char, "null", 1, 3)
        .device(EntryType::Block, "loop9", 7, 9)
        .device(EntryType::Fifo, "pipe", 0, 0);
    // A long name through PAX.
    t.pax(&[("path", long.as_bytes())])
        .file("short-name", b"long");
    let s = Scratch::new();
    archive::apply(&t.finish()[..], &s.target(), &[], &ApplyOptions::default()).unwrap();
    let inv = archive::inventory(&s.target()).unwrap();
    let e = |p: &str| {
        inv.get(Path::new(p))
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    assert_eq!(e("bin/su").mode, 0o4755);
    assert_eq!(
        (e("bin/sg").mode, e("bin/sg").uid, e("bin/sg").gid),
        (0o2711, 1000, 1001)
    );
    assert_eq!(e("tmp").mode, 0o1777);
    assert_eq!(e("bin/ping").xattrs.get("user.note").unwrap(), b"hello");
    assert!(e("bin/ping").xattrs.contains_key("security.capability"));
    assert_eq!(e("sh").kind, EntryKind::Symlink);
    assert_eq!(e("sh").link_target.as_deref(), Some(Path::new("/bin/su")));
    assert_eq!(
        e("bin/su2").hardlinked_with.as_deref(),
        Some(Path::new("bin/su"))
    );
    assert_eq!(
        (e("null").kind, e("null").rdev),
        (EntryKind::Char, Some((1, 3)))
    );
    assert_eq!(
        (e("loop9").kind, e("loop9").rdev),
        (EntryKind::Block, Some((7, 9)))
    );
    assert_eq!(e("pipe").kind, EntryKind::Fifo);
    assert_eq!(
        e(&long).sha256.as_deref(),
        Some(Digest::sha256(b"long").hex())
    );
    assert_eq!(e("bin/su").mtime, Some(1_600_000_000));
    // Directory mtimes are restored after their contents were written.
    let md = std::fs::metadata(s.path().join("target/bin")).unwrap();
    assert_eq!(md.mtime(), 1_600_000_000);
}

#[test]
fn redefinitions_and_type_changes_replace_entries() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("target/was_dir/sub")).unwrap();
    std::fs::write(s.path().join("target/was_file"), b"old").unwrap();
    std::fs::write(s.path().join("target/shared"), b"old").unwrap();
    std::fs::hard_link(
        s.path().join("target/shared"),
        s.path().join("target/other"),
    )
    .unwrap();
    let mut t = TarMaker::new();
    t.file("was_dir", b"now a file")
        .dir("was_file", 0o755)
        .file("was_file/inner", b"inner")
        .file("twice", b"first")
        .file("twice", b"second")
        .file("shared", b"new");
    let s2 = &s;
    archive::apply(&t.finish()[..], &s2.target(), &[], &ApplyOptions::default()).unwrap();
    let r = s.target();
    assert_eq!(r.read("was_dir").unwrap(), b"now a file");
    assert_eq!(r.read("was_file/inner").unwrap(), b"inner");
    assert_eq!(r.read("twice").unwrap(), b"second");
    assert_eq!(r.read("shared").unwrap(), b"new");
    // The other name of the old inode is not written through.
    assert_eq!(r.read("other").unwrap(), b"old");
}

#[test]
fn hardlinks_to_lower_files_are_copied_up() {
    let lower_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(lower_dir.path().join("usr")).unwrap();
    std::fs::write(lower_dir.path().join("usr/tool"), b"from the parent").unwrap();
    let lower = Root::open(lower_dir.path(), Confine::InRoot).unwrap();
    let s = Scratch::new();
    let mut t = TarMaker::new();
    t.link(EntryType::Link, "usr/alias", "usr/tool");
    let opts = ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay { userxattr: false },
        ..ApplyOptions::default()
    };
    archive::apply(&t.finish()[..], &s.target(), &[&lower], &opts).unwrap();
    let inv = archive::inventory(&s.target()).unwrap();
    assert_eq!(
        inv[Path::new("usr/tool")].sha256,
        Some(Digest::sha256(b"from the parent").hex().to_owned())
    );
    assert_eq!(
        inv[Path::new("usr/tool")].hardlinked_with.as_deref(),
        Some(Path::new("usr/alias"))
    );
    // The lower is untouched.
    assert_eq!(
        std::fs::metadata(lower_dir.path().join("usr/tool"))
            .unwrap()
            .nlink(),
        1
    );
}

fn populated_parent(s: &Scratch) {
    let t = s.path().join("target");
    std::fs::create_dir_all(t.join("etc/conf.d")).unwrap();
    std::fs::write(t.join("etc/conf.d/old"), b"old").unwrap();
    std::fs::write(t.join("etc/keep"), b"keep").unwrap();
    std::fs::write(t.join("gone"), b"gone").unwrap();
}

#[test]
fn whiteouts_remove_format() {
    let s = Scratch::new();
    populated_parent(&s);
    let mut t = TarMaker::new();
    // This layer's entry comes before the opaque marker: it must survive it.
    t.file("etc/conf.d/new", b"new")
        .file_raw(b"etc/conf.d/.wh..wh..opq", 0, b"")
        .file_raw(b".wh.gone", 0, b"");
    archive::apply(&t.finish()[..], &s.target(), &[], &ApplyOptions::default()).unwrap();
    let inv = archive::inventory(&s.target()).unwrap();
    let paths: Vec<_> = inv.keys().map(|p| p.to_str().unwrap().to_owned()).collect();
    assert_eq!(paths, ["etc", "etc/conf.d", "etc/conf.d/new", "etc/keep"]);
}

#[test]
fn whiteouts_overlay_format() {
    require_root();
    for userxattr in [false, true] {
        let s = Scratch::new();
        let mut t = TarMaker::new();
        t.dir("etc", 0o755)
            .file_raw(b"etc/.wh..wh..opq", 0, b"")
            .file_raw(b".wh.gone", 0, b"");
        let opts = ApplyOptions {
            whiteouts: WhiteoutFormat::Overlay { userxattr },
            ..ApplyOptions::default()
        };
        archive::apply(&t.finish()[..], &s.target(), &[], &opts).unwrap();
        let inv = archive::inventory(&s.target()).unwrap();
        let gone = &inv[Path::new("gone")];
        assert_eq!((gone.kind, gone.rdev), (EntryKind::Char, Some((0, 0))));
        let key = if userxattr {
            "user.overlay.opaque"
        } else {
            "trusted.overlay.opaque"
        };
        assert_eq!(
            inv[Path::new("etc")].xattrs.get(key).map(|v| &v[..]),
            Some(&b"y"[..])
        );
    }
}

#[test]
fn sparse_gnu_entries_are_expanded() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut f = std::fs::File::create(src.join("holes")).unwrap();
    f.write_all(b"start").unwrap();
    f.set_len(8 << 20).unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(src.join("holes"))
        .unwrap();
    f.write_all(b"end").unwrap();
    drop(f);
    let tarpath = tmp.path().join("sparse.tar");
    let st = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-cf"])
        .arg(&tarpath)
        .arg("-C")
        .arg(&src)
        .arg("holes")
        .status()
        .expect("GNU tar is needed");
    assert!(st.success());
    let bytes = std::fs::read(&tarpath).unwrap();
    let s = Scratch::new();
    archive::apply(&bytes[..], &s.target(), &[], &ApplyOptions::default()).unwrap();
    assert_eq!(
        s.target().read("holes").unwrap(),
        std::fs::read(src.join("holes")).unwrap()
    );
}

#[test]
fn whiteouts_under_a_directory_turned_file_are_no_ops() {
    // umoci writes these when a layer replaces a directory by a file.
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("target/doc/pkg")).unwrap();
    std::fs::write(s.path().join("target/doc/pkg/changelog"), b"old").unwrap();
    let mut t = TarMaker::new();
    t.file("doc/pkg", b"now a file")
        .file_raw(b"doc/pkg/.wh.changelog", 0, b"")
        .file_raw(b"missing/dir/.wh.x", 0, b"");
    archive::apply(&t.finish()[..], &s.target(), &[], &ApplyOptions::default()).unwrap();
    assert_eq!(s.target().read("doc/pkg").unwrap(), b"now a file");
    assert!(!s.target().exists("missing").unwrap());
}
