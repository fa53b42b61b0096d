//! A structured plan of tar entries with hostile names (`..`, absolute paths, symlinks
//! to the outside, hardlinks to them, whiteouts of them) applied into a fresh root with
//! each whiteout format: nothing beside the root may change, and a refusal is a typed
//! error, never a panic.
#![no_main]

use std::path::Path;

use arbitrary::Arbitrary;
use cargohold_core::root::{Confine, Root};
use layerstore::archive::{self, ApplyOptions, WhiteoutFormat};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Part {
    A,
    B,
    Up,
    Dot,
    Abs,
    Sentinel,
    Wh,
    Opq,
}

#[derive(Debug, Arbitrary)]
enum Kind {
    File(u8),
    Dir,
    Symlink(Vec<Part>),
    Hardlink(Vec<Part>),
}

#[derive(Debug, Arbitrary)]
struct Entry {
    name: Vec<Part>,
    kind: Kind,
}

#[derive(Debug, Arbitrary)]
struct Plan {
    entries: Vec<Entry>,
    overlay: bool,
}

fn name(parts: &[Part]) -> String {
    let mut s = String::new();
    for p in parts.iter().take(8) {
        s.push_str(match p {
            Part::A => "a/",
            Part::B => "b/",
            Part::Up => "../",
            Part::Dot => "./",
            Part::Abs => "/",
            Part::Sentinel => "sentinel/",
            Part::Wh => ".wh.a/",
            Part::Opq => ".wh..wh..opq/",
        });
    }
    let t = s.trim_end_matches('/');
    if t.is_empty() { "x".to_owned() } else { t.to_owned() }
}

fn tar_of(plan: &Plan) -> Vec<u8> {
    let mut out = Vec::new();
    for e in plan.entries.iter().take(24) {
        let mut h = tar::Header::new_gnu();
        let n = name(&e.name);
        // Raw names: the tar crate's own checks must not hide what apply sees.
        let bytes = n.as_bytes();
        let len = bytes.len().min(99);
        h.as_old_mut().name[..len].copy_from_slice(&bytes[..len]);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let data: Vec<u8> = match &e.kind {
            Kind::File(b) => {
                h.set_entry_type(tar::EntryType::Regular);
                vec![*b; (*b as usize) % 700]
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                Vec::new()
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                h.set_entry_type(if matches!(e.kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                let t = name(t);
                let tb = t.as_bytes();
                let tl = tb.len().min(99);
                h.as_old_mut().linkname[..tl].copy_from_slice(&tb[..tl]);
                Vec::new()
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn snapshot(dir: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut v = Vec::new();
    for e in walk(dir) {
        let meta = std::fs::symlink_metadata(&e).unwrap();
        let content = if meta.is_file() { std::fs::read(&e).unwrap() } else { Vec::new() };
        v.push((e.display().to_string(), meta.len(), content));
    }
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fuzz_target!(|plan: Plan| {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = tmp.path().join("sentinel");
    std::fs::create_dir_all(sentinel.join("a")).unwrap();
    std::fs::write(sentinel.join("a/secret"), b"keep").unwrap();
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let before = snapshot(&sentinel);
    let root = Root::open(&target, Confine::InRoot).unwrap();
    let opts = ApplyOptions {
        whiteouts: if plan.overlay {
            WhiteoutFormat::Overlay { userxattr: true }
        } else {
            WhiteoutFormat::Remove
        },
        allow_devices: false,
        same_owner: false,
        // A scratch tree: durability is not what this target checks, and a syncfs per
        // input would cost most of the run.
        sync: false,
        ..ApplyOptions::default()
    };
    let _ = archive::apply(&tar_of(&plan)[..], &root, &[], &opts);
    assert_eq!(snapshot(&sentinel), before, "apply changed something outside its root");
    let mut beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    beside.sort();
    assert_eq!(beside, ["sentinel", "target"], "apply created something beside its root");
});
