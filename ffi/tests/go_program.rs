//! Without this, a Go embedder could not use the library (a symbol cgo cannot link, a
//! type cgo cannot express, a callback that cannot come back into Go): a cgo program
//! is built against the committed header and the static library and run through the
//! whole lifecycle under valgrind (no memory error, no leak from cargohold).

mod fixture;

use std::path::Path;
use std::process::Command;

use fixture::{check_stores, layer_tars, lib_dir, require_root, run, under_valgrind};

#[test]
fn go_program_runs_the_lifecycle_through_cgo_under_valgrind() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    layer_tars(&work);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go");
    let exe = tmp.path().join("lifecycle-go");
    let lib = lib_dir().join("libcargohold.a");
    let go = |args: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new("go");
        cmd.current_dir(&src)
            .args(args)
            .env("CGO_ENABLED", "1")
            .env(
                "CGO_LDFLAGS",
                format!("{} -lpthread -ldl -lm", lib.display()),
            )
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOCACHE", tmp.path().join("gocache"))
            .env("GOPATH", tmp.path().join("gopath"))
            .env("HOME", tmp.path());
        run(&mut cmd)
    };
    // vet first: it flags pointer misuse across cgo that a run may not show.
    go(&["vet".as_ref(), ".".as_ref()]);
    go(&[
        "build".as_ref(),
        "-o".as_ref(),
        exe.as_os_str(),
        ".".as_ref(),
    ]);
    let stdout = under_valgrind(&exe, &[work.as_os_str(), "overlay".as_ref()]);
    check_stores(&work, "overlay", &stdout);
}
