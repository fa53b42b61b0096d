//! Without these, layers that umoci writes (`umoci insert` leaves Go's tar writer
//! unclosed: the stream stops right after the last file's data, without padding or
//! end-of-archive blocks) would be refused as corrupt, or, with too lenient a fix, a tar
//! cut inside a file would be taken as complete. Needs umoci and root.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cargohold_core::{Algorithm, Confine, Digest, ErrorKind, Root};
use layerstore::archive::{self, ApplyOptions, Compression, InventoryOptions};
use layerstore::{DriverChoice, LayerStore};
use support::{Scratch, gzip, require_root};
use tar::{EntryType, Header};

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is umoci installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn umoci(args: &[&str]) {
    run(Command::new("umoci").args(args));
}

fn root(p: &Path) -> Root {
    Root::open(p, Confine::InRoot).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

/// The layers of `tag` as (blob path, blob digest, diff ID), bottom first.
fn layers(layout: &Path, tag: &str) -> Vec<(PathBuf, Digest, Digest)> {
    let index = json(&layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag in index");
    let manifest = json(&blob(layout, desc["digest"].as_str().unwrap()));
    let config = json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| {
            let digest = l["digest"].as_str().unwrap();
            (
                blob(layout, digest),
                digest.parse().unwrap(),
                d.as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn uncompressed_len(path: &Path) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let (_, mut r) = archive::decompressor(std::io::BufReader::new(f)).unwrap();
    std::io::copy(&mut r, &mut std::io::sink()).unwrap()
}

/// A source tree whose last tar entry is a file of a size that is not a multiple of
/// 512, so an unclosed writer leaves the stream unpadded.
fn source_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("a"), b"hello\n").unwrap();
    std::fs::write(dir.join("sub/deeper/zz-last"), vec![b'z'; 3893]).unwrap();
    std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
    let bin: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("sub/blob"), bin).unwrap();
}

/// An OCI layout with tag `ins` (one `umoci insert` layer) and tag `rep` (that plus a
/// `umoci repack` layer that deletes, adds and changes files).
fn make_image(tmp: &Path) -> PathBuf {
    let layout = tmp.join("oci");
    let l = layout.to_str().unwrap();
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &format!("{l}:ins")]);
    let src = tmp.join("src");
    source_tree(&src);
    umoci(&[
        "insert",
        "--image",
        &format!("{l}:ins"),
        src.to_str().unwrap(),
        "/x",
    ]);
    let bundle = tmp.join("bundle");
    let b = bundle.to_str().unwrap();
    umoci(&["unpack", "--image", &format!("{l}:ins"), b]);
    let rootfs = bundle.join("rootfs");
    std::fs::remove_file(rootfs.join("x/a")).unwrap();
    std::fs::write(rootfs.join("x/new"), b"added by repack\n").unwrap();
    std::fs::write(rootfs.join("x/sub/deeper/zz-last"), b"short now").unwrap();
    umoci(&["repack", "--image", &format!("{l}:rep"), b]);
    std::fs::remove_dir_all(&bundle).unwrap();
    layout
}

/// The tree `umoci unpack` makes of `tag`, for comparison.
fn umoci_tree(layout: &Path, tag: &str, tmp: &Path) -> PathBuf {
    let bundle = tmp.join(format!("ref-{tag}"));
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:{tag}", layout.display()),
        bundle.to_str().unwrap(),
    ]);
    bundle.join("rootfs")
}

fn assert_same_tree(ours: &Path, theirs: &Path) {
    let opts = InventoryOptions {
        ignore_overlay_xattrs: true,
        ignore_symlink_mtimes: false,
    };
    let a = archive::inventory_with(&root(ours), &opts).unwrap();
    let b = archive::inventory_with(&root(theirs), &opts).unwrap();
    assert!(a.len() > 5, "the tree holds the layer's entries");
    assert_eq!(a, b, "our tree differs from umoci's");
}

#[test]
fn umoci_insert_layer_applies_with_its_digests() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let layout = make_image(tmp.path());
    let ins = layers(&layout, "ins");
    assert_eq!(ins.len(), 1);
    let (path, digest, diff_id) = &ins[0];
    let len = uncompressed_len(path);
    assert_ne!(
        len % 512,
        0,
        "umoci insert no longer writes unpadded tars; the hand-built cases still guard"
    );
    let target = tmp.path().join("ours");
    std::fs::create_dir(&target).unwrap();
    let opts = ApplyOptions {
        expected_diff_id: Some(diff_id.clone()),
        expected_compressed_digest: Some(digest.clone()),
        ..ApplyOptions::default()
    };
    let f = std::fs::File::open(path).unwrap();
    let applied = archive::apply(f, &root(&target), &[], &opts).unwrap();
    assert_eq!(applied.compression, Compression::Gzip);
    assert_eq!(applied.uncompressed_size, len);
    assert_eq!(&applied.diff_id, diff_id);
    assert_same_tree(&target, &umoci_tree(&layout, "ins", tmp.path()));
}

#[test]
fn umoci_insert_and_repack_layers_stack_like_umoci_unpack() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let layout = make_image(tmp.path());
    let rep = layers(&layout, "rep");
    assert_eq!(rep.len(), 2);
    let target = tmp.path().join("ours");
    std::fs::create_dir(&target).unwrap();
    for (path, digest, diff_id) in &rep {
        let opts = ApplyOptions {
            expected_diff_id: Some(diff_id.clone()),
            expected_compressed_digest: Some(digest.clone()),
            ..ApplyOptions::default()
        };
        let f = std::fs::File::open(path).unwrap();
        archive::apply(f, &root(&target), &[], &opts).unwrap();
    }
    assert!(
        !target.join("x/a").exists(),
        "the repack whiteout deleted x/a"
    );
    assert_same_tree(&target, &umoci_tree(&layout, "rep", tmp.path()));
}

#[test]
fn umoci_insert_layer_through_the_store() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let layout = make_image(tmp.path());
    let reference = umoci_tree(&layout, "rep", tmp.path());
    for driver in [DriverChoice::Vfs, DriverChoice::Overlay] {
        let store_dir = tmp.path().join(format!("store-{driver:?}"));
        let store = LayerStore::open(&store_dir, driver).unwrap();
        let mut parent = None;
        for (path, digest, diff_id) in layers(&layout, "rep") {
            let opts = layerstore::ApplyOptions {
                expected_diff_id: Some(diff_id.clone()),
                expected_compressed_digest: Some(digest),
                ..Default::default()
            };
            let mut f = std::fs::File::open(path).unwrap();
            let layer = store.apply_layer(&mut f, parent.as_ref(), &opts).unwrap();
            assert_eq!(layer.diff_id, diff_id);
            parent = Some(layer.chain_id);
        }
        let top = parent.unwrap();
        let mnt = tmp.path().join(format!("mnt-{driver:?}"));
        std::fs::create_dir(&mnt).unwrap();
        store
            .prepare_container("c", Some(&top), Default::default())
            .unwrap();
        store.mount("c", &mnt).unwrap();
        let same = std::panic::catch_unwind(|| assert_same_tree(&mnt, &reference));
        store.unmount(&mnt).unwrap();
        same.unwrap();
    }
}

/// A tar in the shape an unclosed Go writer leaves: every entry but the last padded,
/// the last file's data unpadded, no end-of-archive blocks. Returns it with the
/// offset where the last file's data starts.
fn unpadded_tar(last_len: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let header = |name: &str, kind: EntryType, size: usize| {
        let mut h = Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size as u64);
        h.set_cksum();
        h
    };
    out.extend_from_slice(header("d/", EntryType::Directory, 0).as_bytes());
    let first = b"first file\n";
    out.extend_from_slice(header("d/first", EntryType::Regular, first.len()).as_bytes());
    out.extend_from_slice(first);
    out.resize(out.len().next_multiple_of(512), 0);
    out.extend_from_slice(header("d/last", EntryType::Regular, last_len).as_bytes());
    let start = out.len();
    out.extend((0..last_len).map(|i| (i % 200) as u8 + 1));
    (out, start)
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

fn apply_bytes(data: &[u8]) -> (Scratch, layerstore::Result<archive::Applied>) {
    let s = Scratch::new();
    let r = archive::apply(data, &s.target(), &[], &ApplyOptions::default());
    (s, r)
}

#[test]
fn hand_built_unpadded_tar_applies_plain_gzip_and_zstd() {
    for last_len in [1usize, 1000, 3893, 70_001] {
        let (tar, _) = unpadded_tar(last_len);
        assert_ne!(tar.len() % 512, 0);
        for (kind, bytes) in [
            (Compression::None, tar.clone()),
            (Compression::Gzip, gzip(&tar)),
            (Compression::Zstd, zstd(&tar)),
        ] {
            let (s, r) = apply_bytes(&bytes);
            let applied = r.unwrap_or_else(|e| panic!("{kind:?} {last_len}: {e}"));
            assert_eq!(applied.compression, kind);
            assert_eq!(applied.entries, 3);
            assert_eq!(applied.uncompressed_size, tar.len() as u64);
            assert_eq!(applied.diff_id, Digest::of(Algorithm::Sha256, &tar));
            let got = std::fs::read(s.path().join("target/d/last")).unwrap();
            assert_eq!(got.len(), last_len);
            assert_eq!(got, tar[tar.len() - last_len..]);
            assert_eq!(
                std::fs::read(s.path().join("target/d/first")).unwrap(),
                b"first file\n"
            );
        }
    }
}

#[test]
fn a_tar_cut_inside_the_last_file_stays_corrupt() {
    let (tar, start) = unpadded_tar(3893);
    for cut in [start + 1, start + 512, start + 3584, tar.len() - 1] {
        let short = &tar[..cut];
        for bytes in [short.to_vec(), gzip(short), zstd(short)] {
            let (s, r) = apply_bytes(&bytes);
            let e = r.expect_err("a cut file is not a complete tar");
            assert_eq!(e.kind(), ErrorKind::Corrupt, "cut at {cut}: {e}");
            drop(s);
        }
    }
}

#[test]
fn a_tar_cut_inside_the_padding_or_a_header_stays_corrupt() {
    let (tar, start) = unpadded_tar(3893);
    let mut padded = tar.clone();
    padded.extend_from_slice(&[0u8; 10]);
    let header_cut = &tar[..start - 100];
    for bytes in [
        padded.clone(),
        gzip(&padded),
        header_cut.to_vec(),
        gzip(header_cut),
    ] {
        let (_s, r) = apply_bytes(&bytes);
        assert_eq!(
            r.expect_err("not a complete tar").kind(),
            ErrorKind::Corrupt
        );
    }
}

#[test]
fn a_gzip_stream_without_its_trailer_stays_corrupt() {
    let (tar, _) = unpadded_tar(3893);
    let gz = gzip(&tar);
    // The trailer is the last 8 bytes (CRC32 and length).
    let (_s, r) = apply_bytes(&gz[..gz.len() - 8]);
    assert_eq!(r.expect_err("no trailer").kind(), ErrorKind::Corrupt);
}

#[test]
fn unpadded_tars_still_obey_the_limits() {
    let (tar, _) = unpadded_tar(70_001);
    let s = Scratch::new();
    let opts = ApplyOptions {
        max_uncompressed_bytes: Some(tar.len() as u64 - 1),
        ..ApplyOptions::default()
    };
    let e = archive::apply(&tar[..], &s.target(), &[], &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    let opts = ApplyOptions {
        max_uncompressed_bytes: Some(tar.len() as u64),
        ..ApplyOptions::default()
    };
    archive::apply(&tar[..], &Scratch::new().target(), &[], &opts).unwrap();
}
