//! Without this, the store could build a different tree than `umoci unpack` from a real
//! image's layers (a debootstrap base, changes, an opaque directory, special files), or
//! name them with other chain IDs — with vfs, with btrfs (layers as snapshots), or in
//! overlay's merged view. Runs only with `CARGOHOLD_CORPUS` pointing at a corpus
//! made by the project's corpus script; `CARGOHOLD_TEST_TMPDIR` picks the scratch fs.

mod btrfs_support;

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use btrfs_support::mount_btrfs;
use cargohold_core::Digest;
use layerstore::{ApplyOptions, DriverChoice, LayerStore, chain_id};

fn corpus() -> Option<PathBuf> {
    std::env::var_os("CARGOHOLD_CORPUS").map(PathBuf::from)
}

/// Every path with type, mode, owner, size, link count and link target, sorted.
fn listing(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %U:%G %s %l %T@\\n"])
        .current_dir(root)
        .output()
        .expect("find is required");
    assert!(out.status.success());
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            // Directory sizes depend on the filesystem, not the layer.
            let f: Vec<&str> = l.split(' ').collect();
            if f.get(1) == Some(&"d") {
                format!("{} d {} {}", f[0], f[2], f[3])
            } else {
                l.to_owned()
            }
        })
        .collect();
    // Extended attributes (capabilities and the like), one line per file.
    let x = Command::new("getfattr")
        .args(["-R", "-d", "-h", "-m", "-", "--absolute-names", "."])
        .current_dir(root)
        .output()
        .expect("getfattr is required");
    let text = String::from_utf8_lossy(&x.stdout);
    v.extend(
        text.split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| b.trim().replace('\n', " | ")),
    );
    v.sort();
    v
}

/// The corpus, or `None` (with the reason printed) when the test command built none.
fn corpus_or_nothing() -> Option<PathBuf> {
    let Some(corpus) = corpus() else {
        // Not a skip in disguise: without a corpus there is nothing to compare against.
        // CI sets CARGOHOLD_CORPUS where it has built one.
        assert!(
            std::env::var_os("CARGOHOLD_REQUIRE_CORPUS").is_none(),
            "CARGOHOLD_REQUIRE_CORPUS is set (the test command built a corpus) but CARGOHOLD_CORPUS is not"
        );
        eprintln!("CARGOHOLD_CORPUS is not set; nothing to compare");
        return None;
    };
    Some(corpus)
}

fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_TEST_TMPDIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap()
}

/// Apply the four corpus layers (gzip) in order, checking their IDs; the top chain ID.
fn apply_corpus(store: &LayerStore, corpus: &Path) -> Digest {
    let mut parent: Option<Digest> = None;
    for name in ["1-base", "2-changes", "3-opaque", "4-special"] {
        let plain = corpus.join("layers").join(format!("{name}.tar"));
        let (diff_id, _) = cargohold_core::digest::digest_reader(
            File::open(&plain).unwrap(),
            cargohold_core::Algorithm::Sha256,
        )
        .unwrap();
        let gz = corpus.join("layers").join(format!("{name}.tar.gz"));
        let layer = store
            .apply_layer(
                &mut File::open(&gz).unwrap(),
                parent.as_ref(),
                &ApplyOptions::default(),
            )
            .unwrap();
        assert_eq!(layer.diff_id, diff_id, "{name}");
        assert_eq!(layer.chain_id, chain_id(parent.as_ref(), &diff_id));
        parent = Some(layer.chain_id);
    }
    parent.unwrap()
}

/// The tree at `top` is the one `umoci unpack` made of the same image.
fn assert_like_umoci(top: &Path, corpus: &Path, driver: &str) {
    let reference = corpus.join("unpacked-v1/rootfs");
    let (ours, theirs) = (listing(top), listing(&reference));
    let (ours_set, theirs_set): (HashSet<_>, HashSet<_>) =
        (ours.iter().collect(), theirs.iter().collect());
    let only_ours: Vec<_> = ours
        .iter()
        .filter(|l| !theirs_set.contains(l))
        .take(20)
        .collect();
    let only_theirs: Vec<_> = theirs
        .iter()
        .filter(|l| !ours_set.contains(l))
        .take(20)
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{driver} differs from umoci:\nours only: {only_ours:#?}\numoci only: {only_theirs:#?}"
    );
}

#[test]
fn the_four_corpus_layers_build_the_tree_umoci_unpacks() {
    let Some(corpus) = corpus_or_nothing() else {
        return;
    };
    let scratch = scratch();
    let store = LayerStore::open(scratch.path().join("store"), DriverChoice::Vfs).unwrap();
    let top = apply_corpus(&store, &corpus);
    assert_like_umoci(&store.layer_dir(&top).unwrap(), &corpus, "vfs");
}

#[test]
fn btrfs_and_overlay_build_the_same_tree_from_the_corpus() {
    let Some(corpus) = corpus_or_nothing() else {
        return;
    };
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts a loop btrfs and an overlay: run it as root"
    );
    let scratch = scratch();

    // btrfs: every layer a snapshot of its parent, the top one complete.
    let guard = mount_btrfs(scratch.path(), 2 << 30);
    let mnt = guard.0.clone();
    let store = LayerStore::open(mnt.join("store"), DriverChoice::Btrfs).unwrap();
    let top = apply_corpus(&store, &corpus);
    assert_like_umoci(&store.layer_dir(&top).unwrap(), &corpus, "btrfs");
    drop(store);
    drop(guard);

    // overlay: the merged view of a container on the top layer.
    let store = LayerStore::open(scratch.path().join("overlay"), DriverChoice::Overlay).unwrap();
    let top = apply_corpus(&store, &corpus);
    store
        .prepare_container("view", Some(&top), Default::default())
        .unwrap();
    let target = scratch.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    store.mount("view", &target).unwrap();
    let listed = std::panic::catch_unwind(|| assert_like_umoci(&target, &corpus, "overlay"));
    store.unmount(&target).unwrap();
    layerstore::Driver::remove(&store, "view").unwrap();
    if let Err(e) = listed {
        std::panic::resume_unwind(e);
    }
}
