//! Without these, regstore could drift from the real registry:2 layout: a real registry
//! (Debian's docker-registry, distribution 2.8) must serve what regstore wrote to skopeo
//! byte for byte, regstore must read what skopeo pushed through a real registry, and an
//! upload a real registry started must resume in regstore from its saved hash state.
//! Needs docker-registry, skopeo, curl and tar on PATH (fails loudly without them).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cargohold_core::Digest;
use regstore::drivers::Filesystem;
use regstore::hashstate::ResumableSha256;
use regstore::{MediaType, Registry, layout};
use serde_json::{Value, json};

/// A running docker-registry, killed on drop.
struct RealRegistry {
    child: Child,
    port: u16,
}

impl RealRegistry {
    fn start(root: &Path, scratch: &Path) -> RealRegistry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = scratch.join(format!("config-{port}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (distribution 2.8) must be installed");
        let mut reg = RealRegistry { child, port };
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return reg;
            }
            if let Some(status) = reg.child.try_wait().unwrap() {
                panic!("docker-registry exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("docker-registry did not listen on {port}");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn layer_tar(scratch: &Path, content: &str) -> Vec<u8> {
    let dir = scratch.join(format!("tree-{}", Digest::sha256(content.as_bytes()).hex()));
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/hello"), content).unwrap();
    run(Command::new("tar").arg("-C").arg(&dir).args([
        "--owner=0",
        "--group=0",
        "--mtime=@0",
        "-cf",
        "-",
        ".",
    ]))
}

fn config(arch: &str, layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({"architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(layer)]}, "config": {}}))
    .unwrap()
}

fn manifest(cfg: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::sha256(cfg), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256(layer), "size": layer.len()}]}))
    .unwrap()
}

/// Read back every tag, manifest (and index child) and blob of every repository.
fn verify_everything(reg: &Registry) -> usize {
    let mut checked = 0;
    for repo in reg.catalog(None, None).unwrap() {
        for d in reg.manifests(&repo).unwrap() {
            let m = reg.get_manifest(&repo, &d.to_string()).unwrap();
            let v: Value = serde_json::from_slice(&m.bytes).unwrap();
            if m.media_type.is_index() {
                for child in v["manifests"].as_array().unwrap() {
                    reg.get_manifest(&repo, child["digest"].as_str().unwrap())
                        .unwrap();
                }
            } else {
                let layers = v["layers"].as_array().unwrap().iter();
                for b in std::iter::once(&v["config"]).chain(layers) {
                    let d = Digest::parse(b["digest"].as_str().unwrap()).unwrap();
                    let data = reg.read_blob(&repo, &d).unwrap();
                    assert_eq!(data.len() as u64, b["size"].as_u64().unwrap());
                    checked += 1;
                }
            }
            checked += 1;
        }
        if let Ok(tags) = reg.tags(&repo, None, None) {
            for t in tags {
                reg.get_manifest(&repo, &t).unwrap();
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn regstore_reads_what_skopeo_pushed_through_registry2() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let oci = scratch.path().join("oci");
    std::fs::create_dir_all(oci.join("blobs/sha256")).unwrap();
    let layer = layer_tar(scratch.path(), "pushed by skopeo\n");
    let cfg = config("amd64", &layer);
    let man = manifest(&cfg, &layer);
    for b in [&layer, &cfg, &man] {
        std::fs::write(oci.join("blobs/sha256").join(Digest::sha256(b).hex()), b).unwrap();
    }
    std::fs::write(oci.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": MediaType::OciManifest.as_str(),
        "digest": Digest::sha256(&man), "size": man.len(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(oci.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    let real = RealRegistry::start(&root, scratch.path());
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", oci.display()))
        .arg(format!("docker://{}/pushed/img:v1", real.addr())));
    real.stop();

    let reg = Registry::open(Filesystem::new(&root).unwrap());
    assert_eq!(reg.catalog(None, None).unwrap(), ["pushed/img"]);
    assert_eq!(reg.tags("pushed/img", None, None).unwrap(), ["v1"]);
    let got = reg.get_manifest("pushed/img", "v1").unwrap();
    let v: Value = serde_json::from_slice(&got.bytes).unwrap();
    // skopeo compresses the layer on the way; the config travels as it was.
    let cfg_d = Digest::parse(v["config"]["digest"].as_str().unwrap()).unwrap();
    assert!(
        reg.read_blob("pushed/img", &cfg_d).unwrap() == cfg,
        "config bytes changed"
    );
    let layer_d = Digest::parse(v["layers"][0]["digest"].as_str().unwrap()).unwrap();
    assert_eq!(
        reg.stat_blob("pushed/img", &layer_d).unwrap().size,
        v["layers"][0]["size"].as_u64().unwrap()
    );
    assert!(verify_everything(&reg) >= 4);
}

#[test]
fn registry2_serves_what_regstore_wrote_byte_identically() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let reg = Registry::open(Filesystem::new(&root).unwrap());
    let repo = "written/app";
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer = layer_tar(scratch.path(), &format!("hello from {arch}\n"));
        let cfg = config(arch, &layer);
        reg.put_blob(repo, &layer).unwrap();
        reg.put_blob(repo, &cfg).unwrap();
        let man = manifest(&cfg, &layer);
        let d = reg
            .put_manifest(repo, &Digest::sha256(&man).to_string(), &man, None)
            .unwrap();
        children.push(
            json!({"mediaType": MediaType::OciManifest.as_str(), "digest": d, "size": man.len(),
            "platform": {"architecture": arch, "os": "linux"}}),
        );
    }
    let index = serde_json::to_vec_pretty(&json!({"schemaVersion": 2, "mediaType": MediaType::OciIndex.as_str(), "manifests": children})).unwrap();
    let index_d = reg.put_manifest(repo, "multi", &index, None).unwrap();
    let empty = reg.put_blob(repo, b"{}").unwrap();
    let art = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest, "size": 2}],
        "subject": {"mediaType": MediaType::OciIndex.as_str(), "digest": index_d, "size": index.len()}}))
    .unwrap();
    let art_d = reg
        .put_manifest(repo, &Digest::sha256(&art).to_string(), &art, None)
        .unwrap();
    assert_eq!(
        reg.referrers(repo, &index_d, None).unwrap()[0].digest,
        art_d
    );

    let real = RealRegistry::start(&root, scratch.path());
    let raw = |reference: &str| {
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo}{reference}", real.addr())))
    };
    let got = raw(":multi");
    assert_eq!(Digest::sha256(&got), index_d);
    assert_eq!(Digest::sha256(&raw(&format!("@{art_d}"))), art_d);
    assert_eq!(
        Digest::sha256(&raw(&format!(
            "@{}",
            children[1]["digest"].as_str().unwrap()
        )))
        .to_string(),
        children[1]["digest"].as_str().unwrap()
    );
    let out = scratch.path().join("pulled");
    run(Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-oci-accept-uncompressed-layers",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{}/{repo}:multi", real.addr()))
        .arg(format!("oci:{}:multi", out.display())));
    real.stop();
    let pulled: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        pulled["manifests"][0]["digest"].as_str().unwrap(),
        index_d.to_string()
    );
    for c in &children {
        let d = Digest::parse(c["digest"].as_str().unwrap()).unwrap();
        let bytes = std::fs::read(out.join("blobs/sha256").join(d.hex())).unwrap();
        assert_eq!(Digest::sha256(&bytes), d);
    }
}

fn upload_id_from_location(headers: &str) -> (String, String) {
    let loc = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("a Location header");
    let path = loc.trim().split('?').next().unwrap();
    (
        path.rsplit('/').next().unwrap().to_owned(),
        loc.trim().to_owned(),
    )
}

#[test]
fn upload_started_by_registry2_resumes_in_regstore() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let data: Vec<u8> = (0..300_007u32).map(|i| (i * 31 % 253) as u8).collect();
    let first = 100_003usize;
    std::fs::write(scratch.path().join("part1"), &data[..first]).unwrap();
    let real = RealRegistry::start(&root, scratch.path());
    let base = format!("http://{}", real.addr());
    let started = run(Command::new("curl")
        .args(["-sfi", "-X", "POST"])
        .arg(format!("{base}/v2/resume/me/blobs/uploads/")));
    let (id, url) = upload_id_from_location(&String::from_utf8_lossy(&started));
    let url = if url.starts_with("http") {
        url
    } else {
        format!("{base}{url}")
    };
    run(Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", scratch.path().join("part1").display()))
        .arg(&url));
    real.stop();

    let reg = Registry::open(Filesystem::new(&root).unwrap());
    // The state registry:2 saved is byte-identical to ours after the same bytes.
    let saved = reg
        .driver()
        .get_content(
            &layout::upload_hashstates("resume/me", &id)
                .join(&first.to_string())
                .unwrap(),
        )
        .unwrap();
    let mut ours = ResumableSha256::new();
    ours.update(&data[..first]);
    assert_eq!(saved, ours.marshal());
    let up = reg.resume_upload("resume/me", &id).unwrap();
    assert_eq!(up.status().unwrap().offset, first as u64);
    assert_eq!(
        up.hash_state(first as u64).unwrap().1,
        0,
        "nothing re-hashed"
    );
    up.append(first as u64, &data[first..]).unwrap();
    let d = up
        .commit(&Digest::sha256(&data), Some(data.len() as u64))
        .unwrap()
        .digest;
    assert!(reg.read_blob("resume/me", &d).unwrap() == data);

    // And the real registry serves the blob regstore finished.
    let real = RealRegistry::start(&root, scratch.path());
    let got = run(Command::new("curl")
        .args(["-sf"])
        .arg(format!("http://{}/v2/resume/me/blobs/{d}", real.addr())));
    assert!(got == data, "registry:2 served other bytes");
}

#[test]
fn corpus_registry_root_reads_back_verified() {
    let Some(corpus) = std::env::var_os("CARGOHOLD_CORPUS") else {
        assert!(
            std::env::var_os("CARGOHOLD_REQUIRE_CORPUS").is_none(),
            "CARGOHOLD_REQUIRE_CORPUS is set (the test command built a corpus) but CARGOHOLD_CORPUS is not"
        );
        eprintln!("CARGOHOLD_CORPUS not set: the corpus check is not run");
        return;
    };
    let root: PathBuf = Path::new(&corpus).join("registry-root");
    let reg = Registry::open(Filesystem::new(&root).unwrap());
    assert!(!reg.catalog(None, None).unwrap().is_empty());
    assert!(verify_everything(&reg) > 0);
}
