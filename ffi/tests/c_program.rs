//! Without these, the header or the libraries could stop working for a real C
//! program (a missing symbol, a wrong signature, a leak, a crash in the static link),
//! and nothing in Rust would notice: a C program is compiled against the committed
//! header, linked to the shared and to the static library with the flags `pkg-config`
//! reads from `cargohold.pc`, and run under valgrind (no memory error, no leak).

mod fixture;

use std::path::Path;
use std::process::Command;

use fixture::{check_stores, include_dir, layer_tars, lib_dir, require_root, run, under_valgrind};

#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// Install the header, the libraries and `cargohold.pc` (from `cargohold.pc.in`) under
/// `prefix` as a package would, and return what `pkg-config` says to compile with.
fn pkg_config(prefix: &Path, link: Link) -> Vec<String> {
    let (inc, libdir, pc) = (
        prefix.join("include"),
        prefix.join("lib"),
        prefix.join("lib/pkgconfig"),
    );
    for d in [&inc, &pc] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(include_dir().join("cargohold.h"), inc.join("cargohold.h")).unwrap();
    for lib in ["libcargohold.so", "libcargohold.a"] {
        std::fs::copy(lib_dir().join(lib), libdir.join(lib)).unwrap();
    }
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("cargohold.pc.in");
    let text = std::fs::read_to_string(template)
        .unwrap()
        .replace("@PREFIX@", prefix.to_str().unwrap())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(pc.join("cargohold.pc"), text).unwrap();
    let mut cmd = Command::new("pkg-config");
    cmd.env("PKG_CONFIG_PATH", &pc)
        .args(["--cflags", "--libs"])
        .args(matches!(link, Link::Static).then_some("--static"))
        .arg("cargohold");
    run(&mut cmd)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn compile(work: &Path, link: Link) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/lifecycle.c");
    let exe = work.join("lifecycle");
    let prefix = work.join("prefix");
    let flags = pkg_config(&prefix, link);
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c11",
        "-D_GNU_SOURCE",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
    ])
    .arg(&src)
    .arg("-o")
    .arg(&exe);
    match link {
        Link::Shared => {
            cc.args(&flags)
                .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
        }
        // The same flags, with the archive named instead of the shared library.
        Link::Static => {
            cc.args(flags.iter().map(|f| match f.as_str() {
                "-lcargohold" => "-l:libcargohold.a",
                f => f,
            }));
        }
    }
    run(&mut cc);
    exe
}

fn lifecycle(link: Link, driver: &str) {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    layer_tars(work);
    let exe = compile(work, link);
    let stdout = under_valgrind(&exe, &[work.as_os_str(), driver.as_ref()]);
    check_stores(work, driver, &stdout);
}

#[test]
fn shared_library_runs_the_lifecycle_on_overlay_under_valgrind() {
    lifecycle(Link::Shared, "overlay");
}

#[test]
fn static_library_runs_the_lifecycle_on_vfs_under_valgrind() {
    lifecycle(Link::Static, "vfs");
}
