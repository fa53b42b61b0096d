//! Without these, `--registry s3://BUCKET/PREFIX` (and `CARGOHOLD_REGISTRY`) could
//! quietly keep images on the local disk instead of the bucket, or a missing bucket could
//! fail as something else. Runs against moto's S3 server (`$CARGOHOLD_MOTO_SERVER`, else
//! `moto_server` on the PATH; a missing one fails the test).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run a peer tool that must succeed.
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start (is it installed?): {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Moto {
    let bin = std::env::var("CARGOHOLD_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", &bin, "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} (scripts/test-all.sh installs it): {e}"));
    let mut m = Moto(child, port);
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(m.0.try_wait().unwrap().is_none(), "{bin} exited");
        assert!(Instant::now() < deadline, "{bin} did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    m
}

fn create_bucket(port: u16, name: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `cargohold --root ROOT ARGS...` with the AWS variables pointing at the server.
fn cargohold(port: u16, root: &Path, registry_env: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargohold"));
    c.arg("--root")
        .arg(root)
        .args(args)
        .env("CARGOHOLD_DRIVER", "vfs")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("CARGOHOLD_REGISTRY");
    if let Some(r) = registry_env {
        c.env("CARGOHOLD_REGISTRY", r);
    }
    c.output().expect("the binary runs")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A one-layer image made by umoci, tagged `t`.
fn umoci_image(base: &Path) -> String {
    let l = base.join("layout");
    let ls = l.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", ls]));
    run(Command::new("umoci").args(["new", "--image", &format!("{ls}:t")]));
    ls.to_owned()
}

#[test]
fn the_registry_store_goes_to_the_bucket_the_flag_names() {
    let server = moto();
    create_bucket(server.1, "images");
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    let root = tmp.path().join("store");
    let loc = "s3://images/team/reg";

    let line = ok(cargohold(
        server.1,
        &root,
        None,
        &[
            "--registry",
            loc,
            "image",
            "import",
            &format!("oci:{layout}:t"),
            "demo/app:v1",
        ],
    ));
    assert!(line.starts_with("demo/app:v1 sha256:"), "{line}");
    // The variable names the same store.
    let tags = ok(cargohold(
        server.1,
        &root,
        Some(loc),
        &["--json", "registry", "tags", "demo/app"],
    ));
    assert_eq!(tags, r#"[{"tag":"v1"}]"#);
    // Nothing went to the local disk: the default store is empty.
    let local = ok(cargohold(
        server.1,
        &root,
        None,
        &["--json", "registry", "catalog"],
    ));
    assert_eq!(local, "[]");
    // The bucket holds registry:2's layout under the prefix.
    let mut c = regstore::drivers::S3Config::new("images", "team/reg");
    c.endpoint = Some(format!("http://127.0.0.1:{}", server.1));
    c.path_style = true;
    c.access_key_id = Some("testing".into());
    c.secret_access_key = Some("testing".into());
    let s3 = regstore::drivers::S3::open(c).unwrap();
    let reg = regstore::Registry::open(s3);
    assert_eq!(reg.catalog(None, None).unwrap(), ["demo/app"]);

    // A bucket that does not exist fails as NotFound, and says so.
    let o = cargohold(
        server.1,
        &root,
        None,
        &["--registry", "s3://no-such-bucket/x", "registry", "catalog"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("[not_found]"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
