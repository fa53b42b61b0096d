//! Without this, the store could build a different tree than `umoci unpack` from a real
//! image's layers (a debootstrap base, changes, an opaque directory, special files), or
//! name them with other chain IDs. Runs only with `CARGOHOLD_CORPUS` pointing at a corpus
//! made by the project's corpus script; `CARGOHOLD_TEST_TMPDIR` picks the scratch fs.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
fn the_four_corpus_layers_build_the_tree_umoci_unpacks() {
    let Some(corpus) = corpus() else {
        // Not a skip in disguise: without a corpus there is nothing to compare against.
        // CI sets CARGOHOLD_CORPUS where it has built one.
        assert!(
            std::env::var_os("CARGOHOLD_REQUIRE_CORPUS").is_none(),
            "CARGOHOLD_REQUIRE_CORPUS is set (the test command built a corpus) but CARGOHOLD_CORPUS is not"
        );
        eprintln!("CARGOHOLD_CORPUS is not set; nothing to compare");
        return;
    };
    let scratch = match std::env::var_os("CARGOHOLD_TEST_TMPDIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let store = LayerStore::open(scratch.path().join("store"), DriverChoice::Vfs).unwrap();
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
    let top = store.layer_dir(parent.as_ref().unwrap()).unwrap();
    let reference = corpus.join("unpacked-v1/rootfs");
    let (ours, theirs) = (listing(&top), listing(&reference));
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
        "differs from umoci:\nours only: {only_ours:#?}\numoci only: {only_theirs:#?}"
    );
}
