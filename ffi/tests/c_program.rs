//! Without these, the header or the libraries could stop working for a real C
//! program (a missing symbol, a wrong signature, a leak, a crash in the static link),
//! and nothing in Rust would notice: a C program is compiled against the committed
//! header, linked to the shared and to the static library, and run under valgrind
//! (no memory error, no leak).

mod fixture;

use std::path::Path;
use std::process::Command;

use fixture::{check_stores, include_dir, layer_tars, lib_dir, require_root, run, under_valgrind};

#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

fn compile(work: &Path, link: Link) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/lifecycle.c");
    let exe = work.join("lifecycle");
    let lib = lib_dir();
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c11",
        "-D_GNU_SOURCE",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
        "-I",
    ])
    .arg(include_dir())
    .arg(&src)
    .arg("-o")
    .arg(&exe);
    match link {
        Link::Shared => {
            cc.arg("-L")
                .arg(&lib)
                .arg("-lcargohold")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static => {
            cc.arg(lib.join("libcargohold.a"))
                .args(["-lpthread", "-ldl", "-lm"]);
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
