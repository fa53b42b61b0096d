//! Without this, two processes sharing a store could serialize every extraction behind
//! one lock, extract the same layer several times, or disagree about its chain ID.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cargohold_core::Digest;
use layerstore::{ApplyOptions, DriverChoice, LayerStore};

const ROLE: &str = "CARGOHOLD_TEST_CHILD_ROLE";
const STORE: &str = "CARGOHOLD_TEST_CHILD_STORE";
const DIFF: &str = "CARGOHOLD_TEST_CHILD_DIFF_ID";
const COMPRESSED: &str = "CARGOHOLD_TEST_CHILD_COMPRESSED";

fn tar_of(tag: u8, files: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let data = vec![tag; 4096];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("f-{tag}-{i:04}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// The child: apply the tar on stdin, print chain ID and how many tars it extracted.
fn child_apply() {
    let store = LayerStore::open(std::env::var_os(STORE).unwrap(), DriverChoice::Vfs).unwrap();
    let opts = ApplyOptions {
        expected_diff_id: std::env::var(DIFF).ok().map(|d| Digest::parse(&d).unwrap()),
        expected_compressed_digest: std::env::var(COMPRESSED)
            .ok()
            .map(|d| Digest::parse(&d).unwrap()),
        ..Default::default()
    };
    let layer = store
        .apply_layer(&mut std::io::stdin(), None, &opts)
        .unwrap();
    println!(
        "chain={} extractions={}",
        layer.chain_id,
        store.extractions()
    );
    std::process::exit(0);
}

fn spawn(test: &str, root: &Path, diff: Option<&Digest>) -> Child {
    spawn_with(test, root, diff, None)
}

fn spawn_with(
    test: &str,
    root: &Path,
    diff: Option<&Digest>,
    compressed: Option<&Digest>,
) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, "apply")
        .env(STORE, root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(d) = diff {
        cmd.env(DIFF, d.to_string());
    }
    if let Some(d) = compressed {
        cmd.env(COMPRESSED, d.to_string());
    }
    cmd.spawn().unwrap()
}

/// (chain ID, extractions) the child reported.
fn finish(mut child: Child) -> (String, u64) {
    drop(child.stdin.take());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "child failed: {out}");
    // The harness prints "test <name> ... " before the child's line.
    let at = out.find("chain=").expect("child reported");
    let mut parts = out[at..].split_whitespace();
    let chain = parts
        .next()
        .unwrap()
        .trim_start_matches("chain=")
        .to_owned();
    let n = parts
        .next()
        .unwrap()
        .trim_start_matches("extractions=")
        .parse()
        .unwrap();
    (chain, n)
}

/// Feed `data` to every child's stdin from a thread of its own and collect what each
/// reported. With `all_read`, every child must read all of it; otherwise a child may
/// return without reading (it found the layer made, or waited on its lock).
fn feed_and_finish(mut children: Vec<Child>, data: &[u8], all_read: bool) -> Vec<(String, u64)> {
    let feeders: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let mut stdin = c.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                let wrote = stdin.write_all(&data);
                if all_read {
                    wrote.unwrap();
                }
            })
        })
        .collect();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    for f in feeders {
        f.join().unwrap();
    }
    results
}

fn builds_in(root: &Path) -> usize {
    std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp")
        })
        .count()
}

#[test]
fn two_processes_extract_different_layers_at_the_same_time() {
    if std::env::var_os(ROLE).is_some() {
        return child_apply();
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    drop(LayerStore::open(&root, DriverChoice::Vfs).unwrap());
    let tars = [tar_of(1, 100), tar_of(2, 100)];
    let name = "two_processes_extract_different_layers_at_the_same_time";
    let mut children: Vec<Child> = (0..2).map(|_| spawn(name, &root, None)).collect();
    // Feed each half its tar: both are then mid-extraction, each in its own build.
    for (c, tar) in children.iter_mut().zip(&tars) {
        c.stdin
            .as_mut()
            .unwrap()
            .write_all(&tar[..tar.len() / 2])
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while builds_in(&root) < 2 {
        assert!(
            Instant::now() < deadline,
            "the two extractions never overlapped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for (c, tar) in children.iter_mut().zip(&tars) {
        c.stdin
            .as_mut()
            .unwrap()
            .write_all(&tar[tar.len() / 2..])
            .unwrap();
    }
    let results: Vec<_> = children.into_iter().map(finish).collect();
    for ((chain, n), tar) in results.iter().zip(&tars) {
        assert_eq!(chain, &Digest::sha256(tar).to_string());
        assert_eq!(*n, 1);
    }
    let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    assert_eq!(store.layers().unwrap().len(), 2);
    assert!(store.snapshots().leftovers().unwrap().is_empty());
}

#[test]
fn three_processes_applying_one_layer_extract_it_once() {
    if std::env::var_os(ROLE).is_some() {
        return child_apply();
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    drop(LayerStore::open(&root, DriverChoice::Vfs).unwrap());
    let tar = tar_of(7, 100);
    let diff = Digest::sha256(&tar);
    let name = "three_processes_applying_one_layer_extract_it_once";
    let children: Vec<Child> = (0..3).map(|_| spawn(name, &root, Some(&diff))).collect();
    // A child waiting on the layer's lock reads nothing and, once the layer exists,
    // returns without reading its stdin at all.
    let results = feed_and_finish(children, &tar, false);
    assert!(
        results.iter().all(|(c, _)| c == &diff.to_string()),
        "{results:?}"
    );
    let total: u64 = results.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1, "{results:?}");
    let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    assert_eq!(store.layers().unwrap().len(), 1);
    assert!(store.snapshots().leftovers().unwrap().is_empty());
}

#[test]
fn three_processes_without_a_known_diff_id_agree_on_one_layer() {
    if std::env::var_os(ROLE).is_some() {
        return child_apply();
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    drop(LayerStore::open(&root, DriverChoice::Vfs).unwrap());
    let tar = tar_of(9, 50);
    let name = "three_processes_without_a_known_diff_id_agree_on_one_layer";
    let children: Vec<Child> = (0..3).map(|_| spawn(name, &root, None)).collect();
    // Knowing nothing of the layer, every child reads its whole stream.
    let results = feed_and_finish(children, &tar, true);
    let want = Digest::sha256(&tar).to_string();
    assert!(results.iter().all(|(c, _)| c == &want), "{results:?}");
    let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    assert_eq!(store.layers().unwrap().len(), 1);
    assert!(store.snapshots().leftovers().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(root.join("snapshots")).unwrap().count(),
        1,
        "the losers' builds were not thrown away"
    );
}

#[test]
fn three_processes_knowing_only_the_compressed_digest_extract_once() {
    if std::env::var_os(ROLE).is_some() {
        return child_apply();
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    drop(LayerStore::open(&root, DriverChoice::Vfs).unwrap());
    let tar = tar_of(5, 100);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let compressed = Digest::sha256(&gz);
    let name = "three_processes_knowing_only_the_compressed_digest_extract_once";
    let children: Vec<Child> = (0..3)
        .map(|_| spawn_with(name, &root, None, Some(&compressed)))
        .collect();
    // A child that finds the layer made returns without reading its stdin.
    let results = feed_and_finish(children, &gz, false);
    let want = Digest::sha256(&tar).to_string();
    assert!(results.iter().all(|(c, _)| c == &want), "{results:?}");
    let total: u64 = results.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total, 1,
        "one extraction among three processes: {results:?}"
    );
    let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    let layers = store.layers().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].compressed_digest.as_ref(), Some(&compressed));
    assert!(store.snapshots().leftovers().unwrap().is_empty());

    // Later, in this process: the same stream again is found without reading it.
    let again = store
        .apply_layer(
            &mut std::io::empty(),
            None,
            &ApplyOptions {
                expected_compressed_digest: Some(compressed.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.chain_id.to_string(), want);
    assert_eq!(store.extractions(), 0);
}
