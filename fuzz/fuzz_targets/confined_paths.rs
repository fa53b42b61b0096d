//! A plan of file operations with hostile paths (`..`, absolute symlinks, symlinks to
//! the outside made earlier in the same plan) run through a `Root`, in both
//! confinements: the directory beside the root must never change.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use cargohold_core::root::{Confine, Resolver, Root};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Part {
    A,
    B,
    Up,
    Dot,
    Slash,
    Outside,
}

#[derive(Debug, Arbitrary)]
struct P(Vec<Part>);

impl P {
    fn path(&self, outside: &Path) -> PathBuf {
        let mut s = String::new();
        for p in self.0.iter().take(12) {
            match p {
                Part::A => s.push_str("a/"),
                Part::B => s.push_str("b/"),
                Part::Up => s.push_str("../"),
                Part::Dot => s.push_str("./"),
                Part::Slash => s.push('/'),
                Part::Outside => s.push_str(&format!("{}/", outside.display())),
            }
        }
        s.push('x');
        PathBuf::from(s)
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Mkdir(P),
    MkdirAll(P),
    Create(P),
    Symlink(P, P),
    Hardlink(P, P),
    Rename(P, P),
    Remove(P),
    RemoveAll(P),
    Read(P),
}

#[derive(Debug, Arbitrary)]
struct Plan {
    beneath: bool,
    walk: bool,
    ops: Vec<Op>,
}

fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = fs::read(&p).unwrap_or_default();
            (p, data)
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|plan: Plan| {
    let tmp = tempfile::tempdir().unwrap();
    let root_path = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root_path).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("x"), b"sentinel").unwrap();
    let before = listing(&outside);
    let confine = if plan.beneath { Confine::Beneath } else { Confine::InRoot };
    let resolver = if plan.walk { Resolver::Walk } else { Resolver::Openat2 };
    let root = Root::open_with(&root_path, confine, resolver).unwrap();
    for op in plan.ops.iter().take(32) {
        let _ = match op {
            Op::Mkdir(p) => root.mkdir(p.path(&outside), 0o755),
            Op::MkdirAll(p) => root.mkdir_all(p.path(&outside), 0o755).map(drop),
            Op::Create(p) => root.create_file(p.path(&outside), 0o644, false).map(drop),
            Op::Symlink(t, p) => root.symlink(t.path(&outside), p.path(&outside)),
            Op::Hardlink(s, p) => root.hardlink(s.path(&outside), p.path(&outside)),
            Op::Rename(s, p) => root.rename(s.path(&outside), p.path(&outside)),
            Op::Remove(p) => root.remove_file(p.path(&outside)),
            Op::RemoveAll(p) => root.remove_all(p.path(&outside)),
            Op::Read(p) => root.read(p.path(&outside)).map(|data| assert_ne!(data, b"sentinel")),
        };
    }
    assert_eq!(listing(&outside), before, "the outside changed: {plan:?}");
});
