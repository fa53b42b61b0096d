//! The workload the crash and power-cut tests share: a child process that loops over
//! every kind of write on the three stores of one root, acknowledging each object on
//! standard output once the call that made it returned, and the check that everything
//! acknowledged is still there after the child was killed (or its filesystem cut off).

use std::io::{Cursor, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cargohold_core::Digest;
use layerstore::{ApplyOptions, Driver as _, DriverChoice, LayerStore};
use regstore::Registry;
use regstore::drivers::Filesystem;
use volstore::{Driver as _, LocalDriver, Options};

/// Added to a round's seed for its deferred layer's tar.
const DEFERRED_SEED: u64 = 500_000;

/// What each file of the seed directory a volume is populated from holds.
const SEED_FILE: &[u8] = &[b'c'; 1000];

pub fn layer_tar(seed: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..20u64 {
        let data = format!("seed {seed} file {i}\n").repeat(50 + (i as usize) * 20);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("d{}/f{i}", i % 3), data.as_bytes())
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn say(out: &mut impl Write, line: String) {
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The child: every operation, forever (until killed or until its filesystem fails).
pub fn child(root: &Path) -> ! {
    let seed0 = std::process::id() as u64 * 1_000_000;
    let layers = LayerStore::open(root.join("layers"), DriverChoice::Vfs).unwrap();
    let reg = Registry::open(Filesystem::new(root.join("registry")).unwrap());
    let vols = LocalDriver::open(root.join("volumes")).unwrap();
    let seed_dir = root.join("seed");
    std::fs::create_dir_all(seed_dir.join("etc")).unwrap();
    for i in 0..30 {
        std::fs::write(seed_dir.join(format!("etc/conf{i}")), SEED_FILE).unwrap();
    }
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let seed = seed0 + i;
        // Layers: apply, then a container on it, changed and committed.
        let tar = layer_tar(seed);
        let l = layers
            .apply_layer(&mut Cursor::new(&tar), None, &ApplyOptions::default())
            .unwrap();
        say(&mut out, format!("layer {}", l.chain_id));
        let key = format!("c{seed}");
        let mounts = layers
            .prepare_container(&key, Some(&l.chain_id), Default::default())
            .unwrap();
        std::fs::write(mounts[0].source.join("d0/new"), format!("{seed}")).unwrap();
        let c = layers.commit_container(&key, Default::default()).unwrap();
        say(&mut out, format!("layer {}", c.chain_id));
        // A layer whose sync is deferred, made durable every other round.
        let deferred_seed = seed + DEFERRED_SEED;
        let d = layers
            .apply_layer(
                &mut Cursor::new(layer_tar(deferred_seed)),
                None,
                &ApplyOptions {
                    defer_sync: true,
                    ..Default::default()
                },
            )
            .unwrap();
        say(&mut out, format!("deferred {} {deferred_seed}", d.chain_id));
        if i % 2 == 1 {
            for l in layers.sync().unwrap() {
                say(&mut out, format!("synced {l}"));
            }
        }

        // Registry: a layer blob by a chunked upload, a config, a manifest, a tag.
        let up = reg.start_upload("crash/app").unwrap();
        let half = tar.len() / 2;
        up.append(0, &tar[..half]).unwrap();
        up.append(half as u64, &tar[half..]).unwrap();
        let blob = up
            .commit(&Digest::sha256(&tar), Some(tar.len() as u64))
            .unwrap();
        say(&mut out, format!("blob {}", blob.digest));
        let cfg = reg
            .put_blob(
                "crash/app",
                format!(
                    r#"{{"seed":{seed},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
                    blob.digest
                )
                .as_bytes(),
            )
            .unwrap();
        say(&mut out, format!("blob {}", cfg.digest));
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.digest, "size": cfg.size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob.digest, "size": blob.size}],
        }))
        .unwrap();
        let tag = format!("t{}", seed % 7);
        let m = reg
            .put_manifest("crash/app", &tag, &manifest, None)
            .unwrap();
        say(&mut out, format!("tag crash/app {tag} {m}"));

        // Garbage collection every round, with no grace period (every unmarked blob
        // goes), every other round also deleting untagged manifests.
        {
            let report = regstore::gc::collect(
                &reg,
                regstore::gc::GcOptions {
                    grace: std::time::Duration::ZERO,
                    delete_untagged: i % 2 == 1,
                    ..Default::default()
                },
            )
            .unwrap();
            say(&mut out, format!("gc {}", report.blobs_deleted.len()));
        }

        // Volumes: create, populate, remove the previous one.
        let name = format!("vol{seed}");
        vols.create(&name, &Options::new()).unwrap();
        say(&mut out, format!("volume {name}"));
        vols.populate(&name, &seed_dir).unwrap();
        say(&mut out, format!("populated {name}"));
        if i > 0 {
            let prev = format!("vol{}", seed - 1);
            // Said before the call: a kill after the removal but before "removed" must
            // not count the volume as still acknowledged.
            say(&mut out, format!("removing {prev}"));
            vols.remove(&prev).unwrap();
            say(&mut out, format!("removed {prev}"));
        }
    }
    unreachable!()
}

/// What the killed children acknowledged.
#[derive(Default)]
pub struct Acked {
    pub layers: Vec<Digest>,
    /// Layers applied with their sync deferred, with the seed of their tar.
    pub deferred: std::collections::BTreeMap<Digest, u64>,
    /// Deferred layers a sync reported durable.
    pub synced: std::collections::BTreeSet<Digest>,
    pub blobs: Vec<Digest>,
    pub tags: std::collections::BTreeSet<(String, String)>,
    pub volumes: std::collections::BTreeSet<String>,
    pub populated: std::collections::BTreeSet<String>,
    /// Collections that completed.
    pub collections: usize,
}

impl Acked {
    pub fn take(&mut self, line: &str) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["layer", d] => self.layers.push(Digest::parse(d).unwrap()),
            ["deferred", d, seed] => {
                self.deferred
                    .insert(Digest::parse(d).unwrap(), seed.parse().unwrap());
            }
            ["synced", d] => {
                self.synced.insert(Digest::parse(d).unwrap());
            }
            ["blob", d] => self.blobs.push(Digest::parse(d).unwrap()),
            ["tag", repo, tag, d] => {
                Digest::parse(d).unwrap();
                self.tags.insert((repo.to_string(), tag.to_string()));
            }
            ["volume", n] => {
                self.volumes.insert(n.to_string());
            }
            ["populated", n] => {
                self.populated.insert(n.to_string());
            }
            ["removing", n] | ["removed", n] => {
                self.volumes.remove(*n);
                self.populated.remove(*n);
            }
            ["gc", _] => self.collections += 1,
            _ => {} // the test harness's own lines
        }
    }
}

/// Check what the killed children acknowledged; `remounted` when the filesystem was cut
/// off and mounted again (a power cut) rather than only the writer killed.
pub fn verify(root: &Path, acked: &Acked, remounted: bool) {
    let before = raw_layer_records(&root.join("layers"));
    let layers =
        LayerStore::open(root.join("layers"), DriverChoice::Vfs).expect("the layer store reopens");
    for l in &acked.layers {
        layers.layer(l).unwrap_or_else(|e| {
            panic!(
                "acknowledged layer {l} lost: {e}\nwhat the store held before it was reopened:\n{}",
                before.about(&l.to_string())
            )
        });
    }
    for (l, seed) in &acked.deferred {
        match layers.layer(l) {
            Ok(found) => {
                // After a power cut only a layer made durable (by the sync whose report
                // a cut may have kept from the log) may stand; then it must be whole.
                assert!(
                    found.durable || !remounted,
                    "deferred layer {l} kept unsynced across a power cut"
                );
                let dir = layers.layer_dir(l).unwrap();
                let want = tar::Archive::new(Cursor::new(layer_tar(*seed)))
                    .entries()
                    .unwrap()
                    .map(|e| {
                        let mut e = e.unwrap();
                        let path = e.path().unwrap().into_owned();
                        let mut data = Vec::new();
                        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                        (path, data)
                    })
                    .collect::<Vec<_>>();
                for (path, data) in want {
                    let got = std::fs::read(dir.join(&path))
                        .unwrap_or_else(|e| panic!("deferred layer {l}: {path:?}: {e}"));
                    assert!(got == data, "deferred layer {l}: {path:?} is torn");
                }
            }
            Err(e) if e.kind() == cargohold_core::ErrorKind::NotFound => assert!(
                remounted && !acked.synced.contains(l),
                "deferred layer {l} lost{}",
                if remounted {
                    " though synced"
                } else {
                    " without a power cut"
                }
            ),
            Err(e) => panic!("deferred layer {l}: {e}"),
        }
    }
    for l in layers.layers().unwrap() {
        layers.stat(&l.chain_id.to_string()).unwrap();
    }
    let reg = Registry::open(Filesystem::new(root.join("registry")).unwrap());
    // A collection may take a kill's half-done work and, with untagged manifests
    // deleted, the blobs of manifests a tag moved away from. What a killed collection
    // (a link to a swept blob, an emptied blob directory) or a killed upload (an upload
    // of unknown age) may leave, fsck repairs; anything else it finds is corruption.
    let found = regstore::fsck::check(&reg, Default::default()).expect("fsck runs");
    for f in &found.findings {
        let benign = match &f.damage {
            regstore::fsck::Damage::DanglingLink { .. }
            | regstore::fsck::Damage::EmptyBlobDir { .. }
            | regstore::fsck::Damage::StaleUpload { .. } => true,
            // A link directory whose link file was not yet written (or already
            // removed); a link file that exists but is torn would be corruption.
            regstore::fsck::Damage::BadLink { key } => !root
                .join("registry")
                .join(key.as_str().trim_start_matches('/'))
                .exists(),
            _ => false,
        };
        assert!(benign, "fsck after a kill: {f:?}");
    }
    let repaired = regstore::fsck::check(
        &reg,
        regstore::fsck::FsckOptions {
            repair: true,
            ..Default::default()
        },
    )
    .expect("fsck repairs");
    assert!(
        repaired.findings.iter().all(|f| f.repaired),
        "fsck could not repair: {:?}",
        repaired.findings
    );
    let again = regstore::fsck::check(&reg, Default::default()).expect("fsck runs");
    assert!(
        again.findings.is_empty(),
        "fsck after repair: {:?}",
        again.findings
    );
    for b in &acked.blobs {
        match reg.read_blob("crash/app", b) {
            Ok(data) => assert_eq!(&Digest::sha256(&data), b),
            Err(e) if e.kind() == cargohold_core::ErrorKind::NotFound && acked.collections > 0 => {
                // Collected: fsck above found no manifest that still needs it.
            }
            Err(e) => panic!("acknowledged blob {b} lost: {e}"),
        }
    }
    for (repo, tag) in &acked.tags {
        // The tag may since have moved to a later manifest; it resolves and reads back.
        let d = reg
            .resolve_tag(repo, tag)
            .unwrap_or_else(|e| panic!("acknowledged tag {repo}:{tag} lost: {e}"));
        reg.get_manifest(repo, &d.to_string()).unwrap();
    }
    let vols = LocalDriver::open(root.join("volumes")).expect("the volume store reopens");
    for v in &acked.volumes {
        vols.inspect(v)
            .unwrap_or_else(|e| panic!("acknowledged volume {v} lost: {e}"));
    }
    for v in &acked.populated {
        let etc = vols.data_path(v).join("etc");
        let n = std::fs::read_dir(&etc).unwrap().count();
        assert_eq!(n, 30, "acknowledged populate of {v} incomplete");
        for i in 0..30 {
            let data = std::fs::read(etc.join(format!("conf{i}"))).unwrap();
            assert_eq!(
                data, SEED_FILE,
                "acknowledged populate of {v}: conf{i} lost its data"
            );
        }
    }
    for name in vols.names().unwrap() {
        vols.inspect(&name)
            .unwrap_or_else(|e| panic!("volume {name} unreadable after a kill: {e}"));
    }
    // Reopening cleaned what the killed writer left (temporaries are `.tmp-` names).
    for entry in std::fs::read_dir(vols.path()).unwrap() {
        let n = entry.unwrap().file_name();
        assert!(
            !n.to_string_lossy().starts_with(".tmp-"),
            "left in the volume store: {n:?}"
        );
    }
}

/// The layer store's records and snapshot directories as they are on disk, read before
/// the store is opened (and cleans up), for the message of a failed check.
struct RawRecords {
    records: Vec<(String, serde_json::Value)>,
    dirs: std::collections::BTreeSet<String>,
}

fn raw_layer_records(store: &Path) -> RawRecords {
    let mut records = Vec::new();
    for sub in ["meta", "active"] {
        for e in std::fs::read_dir(store.join(sub)).into_iter().flatten() {
            let e = e.unwrap();
            let data = std::fs::read(e.path()).unwrap_or_default();
            let v = serde_json::from_slice(&data)
                .unwrap_or_else(|_| String::from_utf8_lossy(&data).into_owned().into());
            records.push((format!("{sub}/{}", e.file_name().to_string_lossy()), v));
        }
    }
    let dirs = std::fs::read_dir(store.join("snapshots"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    RawRecords { records, dirs }
}

impl RawRecords {
    /// The records naming `name` as themselves or as their parent, each with whether
    /// its directory was there.
    fn about(&self, name: &str) -> String {
        let mut out = format!(
            "{} records, {} directories\n",
            self.records.len(),
            self.dirs.len()
        );
        for (file, v) in &self.records {
            if v["name"] == name || v["parent"] == name {
                let dir = v["id"].as_str().is_some_and(|id| self.dirs.contains(id));
                out.push_str(&format!("{file} (directory there: {dir}): {v}\n"));
            }
        }
        out
    }
}

pub fn pseudo_random(i: u64) -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 17
}
