//! The plugin protocol on the wire matches the documented request and response shapes,
//! both ways; without this, client and server could agree with each other and still be
//! useless to Docker Engine and to every plugin written for it.
//!
//! Each file under `tests/fixtures/plugin/` is a sequence of exchanges written from the
//! documented API. The server replays them on a fresh local driver over a raw socket
//! and its answers must match (as JSON values, with `{{store}}` standing for the store
//! directory, `{{rfc3339}}` for a UTC timestamp and `{{err:KIND}}` for a message that
//! starts with `[KIND] `), with exactly the stated number of driver calls. The
//! exchanges marked `client` are also played the other way: a fake plugin answers the
//! golden response and must have received exactly the golden request.

mod plugin_fake;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use plugin_fake::{Answer, FakePlugin, RawClient};
use serde_json::Value;
use volstore::plugin::{CONTENT_TYPE, Client, serve};
use volstore::{Capabilities, Driver, ErrorKind, LocalDriver, Options, Result, Volume};

#[derive(serde::Deserialize)]
struct Golden {
    #[allow(dead_code)]
    about: String,
    exchanges: Vec<Exchange>,
}

#[derive(serde::Deserialize)]
struct Exchange {
    request: GoldenRequest,
    response: GoldenResponse,
    driver_calls: usize,
    #[serde(default)]
    client: bool,
}

#[derive(serde::Deserialize)]
struct GoldenRequest {
    #[serde(default = "post")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
    raw: Option<String>,
}

fn post() -> String {
    "POST".into()
}

impl GoldenRequest {
    fn bytes(&self) -> Vec<u8> {
        match (&self.body, &self.raw) {
            (Some(body), None) => serde_json::to_vec(body).unwrap(),
            (None, Some(raw)) => raw.as_bytes().to_vec(),
            (None, None) => Vec::new(),
            (Some(_), Some(_)) => panic!("a request has a body or a raw body, not both"),
        }
    }
}

#[derive(serde::Deserialize)]
struct GoldenResponse {
    status: u16,
    body: Value,
}

fn fixtures() -> Vec<(String, Golden)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugin");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "golden files missing in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let golden = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, golden)
        })
        .collect()
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
}

/// Whether `actual` matches the templated `expected`; the first difference otherwise.
fn matches(
    expected: &Value,
    actual: &Value,
    store: &str,
    at: &str,
) -> std::result::Result<(), String> {
    let differ = || Err(format!("at {at}: expected {expected}, got {actual}"));
    match (expected, actual) {
        (Value::String(e), Value::String(a)) => {
            if e == "{{rfc3339}}" {
                return if is_rfc3339_utc(a) { Ok(()) } else { differ() };
            }
            if let Some(kind) = e.strip_prefix("{{err:").and_then(|k| k.strip_suffix("}}")) {
                let prefix = format!("[{kind}] ");
                return match a.strip_prefix(&prefix) {
                    Some(rest) if !rest.is_empty() => Ok(()),
                    _ => differ(),
                };
            }
            if e.replace("{{store}}", store) == *a {
                Ok(())
            } else {
                differ()
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<_> = e.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            if ek != ak {
                return differ();
            }
            for (k, ev) in e {
                matches(ev, &a[k], store, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return differ();
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, store, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => differ(),
    }
}

/// The local driver, counting every call that reaches it.
struct Counting {
    inner: LocalDriver,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Driver for Counting {
    fn create(&self, name: &str, options: &Options) -> Result<()> {
        self.tick();
        self.inner.create(name, options)
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.tick();
        self.inner.remove(name)
    }
    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        self.tick();
        self.inner.mount(name, id)
    }
    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        self.tick();
        self.inner.unmount(name, id)
    }
    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        self.tick();
        Driver::path(&self.inner, name)
    }
    fn get(&self, name: &str) -> Result<Volume> {
        self.tick();
        self.inner.get(name)
    }
    fn list(&self) -> Result<Vec<Volume>> {
        self.tick();
        self.inner.list()
    }
    fn capabilities(&self) -> Capabilities {
        self.tick();
        self.inner.capabilities()
    }
}

#[test]
fn the_server_answers_every_golden_request_with_its_golden_response() {
    for (name, golden) in fixtures() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDriver::open(dir.path().join("volumes")).unwrap();
        let store = local.path().to_string_lossy().into_owned();
        let calls = Arc::new(AtomicUsize::new(0));
        let driver = Counting {
            inner: local,
            calls: calls.clone(),
        };
        let socket = dir.path().join("plugin.sock");
        let server = serve(Arc::new(driver), &socket).unwrap();
        let mut raw = RawClient::connect(&socket);
        for (i, ex) in golden.exchanges.iter().enumerate() {
            let at = format!("{name} #{i} {}", ex.request.path);
            let before = calls.load(Ordering::SeqCst);
            let (status, ctype, body) = raw.send(
                &ex.request.method,
                &ex.request.path,
                &ex.request.headers,
                ex.request.bytes(),
            );
            let body: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{at}: the answer is not JSON: {e}"));
            assert_eq!(status, ex.response.status, "{at}: status; body {body}");
            assert_eq!(ctype.as_deref(), Some(CONTENT_TYPE), "{at}: content type");
            if let Err(diff) = matches(&ex.response.body, &body, &store, &at) {
                panic!("{diff}");
            }
            let made = calls.load(Ordering::SeqCst) - before;
            assert_eq!(made, ex.driver_calls, "{at}: driver calls");
        }
        drop(raw);
        server.shutdown().unwrap();
        assert!(!socket.exists(), "{name}: socket left after shutdown");
    }
}

/// Fill a golden response's templates with concrete values, as a plugin would answer.
fn fill(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "{{rfc3339}}" => Value::String("2026-11-22T18:31:01Z".into()),
        Value::String(s) => match s.strip_prefix("{{err:").and_then(|k| k.strip_suffix("}}")) {
            Some(kind) => Value::String(format!("[{kind}] the fake plugin says no")),
            None => Value::String(s.replace("{{store}}", "/srv/fake/volumes")),
        },
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), fill(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(fill).collect()),
        other => other.clone(),
    }
}

fn expected_kind(response: &Value) -> Option<ErrorKind> {
    let err = response.get("Err")?.as_str()?;
    let kind = err.strip_prefix("{{err:")?.strip_suffix("}}")?;
    Some(
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .unwrap_or_else(|| panic!("unknown kind {kind}")),
    )
}

fn str_field<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

/// Make the driver call a golden request stands for; the answer as JSON for comparison
/// with the filled golden response (`Err` is the kind's name on failure).
fn play(client: &Client, path: &str, body: &Value) -> std::result::Result<Value, ErrorKind> {
    let name = || str_field(body, "Name");
    let id = || str_field(body, "ID");
    let volume = |v: Volume| {
        let mut out = serde_json::json!({"Name": v.name});
        if let Some(m) = v.mountpoint {
            out["Mountpoint"] = Value::String(m.to_string_lossy().into_owned());
        }
        if let Some(c) = v.created_at {
            out["CreatedAt"] = Value::String(c);
        }
        if !v.status.is_empty() {
            out["Status"] = serde_json::to_value(v.status).unwrap();
        }
        out
    };
    let kind = |e: volstore::Error| e.kind();
    Ok(match path {
        "/VolumeDriver.Create" => {
            let opts: Options = serde_json::from_value(body["Opts"].clone()).unwrap();
            client.create(name(), &opts).map_err(kind)?;
            serde_json::json!({"Err": ""})
        }
        "/VolumeDriver.Remove" => {
            client.remove(name()).map_err(kind)?;
            serde_json::json!({"Err": ""})
        }
        "/VolumeDriver.Mount" => {
            let p = client.mount(name(), id()).map_err(kind)?;
            serde_json::json!({"Mountpoint": p.to_string_lossy(), "Err": ""})
        }
        "/VolumeDriver.Unmount" => {
            client.unmount(name(), id()).map_err(kind)?;
            serde_json::json!({"Err": ""})
        }
        "/VolumeDriver.Path" => {
            let p = client.path(name()).map_err(kind)?.unwrap_or_default();
            serde_json::json!({"Mountpoint": p.to_string_lossy(), "Err": ""})
        }
        "/VolumeDriver.Get" => {
            let v = client.get(name()).map_err(kind)?;
            serde_json::json!({"Volume": volume(v), "Err": ""})
        }
        "/VolumeDriver.List" => {
            let vs: Vec<Value> = client
                .list()
                .map_err(kind)?
                .into_iter()
                .map(volume)
                .collect();
            serde_json::json!({"Volumes": vs, "Err": ""})
        }
        other => panic!("no driver call for {other}"),
    })
}

#[test]
fn the_client_sends_every_golden_request_and_reads_every_golden_response() {
    let all = fixtures();
    let find = |file: &str| {
        let (_, g) = all.iter().find(|(n, _)| n == file).unwrap();
        g.exchanges.iter().find(|e| e.client).unwrap()
    };
    let activate = find("activate.json");
    let capabilities = find("capabilities.json");
    let mut played = 0;
    for (name, golden) in &all {
        for (i, ex) in golden
            .exchanges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.client)
        {
            let at = format!("{name} #{i} {}", ex.request.path);
            if ex.request.path == "/Plugin.Activate"
                || ex.request.path == "/VolumeDriver.Capabilities"
            {
                continue; // played by every connect below
            }
            let fake = FakePlugin::start();
            for hs in [activate, capabilities] {
                fake.script(Answer::json(hs.response.status, &fill(&hs.response.body)));
            }
            let client = Client::connect(&fake.socket).unwrap();
            let handshake = fake.take_recorded();
            assert_eq!(handshake.len(), 2, "{at}: handshake requests");
            for (got, want) in handshake.iter().zip([activate, capabilities]) {
                assert_eq!(got.method, "POST");
                assert_eq!(got.path, want.request.path);
                assert_eq!(got.json(), want.request.body, "{at}: handshake body");
                assert_eq!(
                    got.headers.get("accept").map(String::as_str),
                    Some(CONTENT_TYPE)
                );
            }

            let answer = fill(&ex.response.body);
            fake.script(Answer::json(ex.response.status, &answer));
            let outcome = play(&client, &ex.request.path, ex.request.body.as_ref().unwrap());
            let sent = fake.take_recorded();
            assert_eq!(sent.len(), 1, "{at}: one request, never repeated");
            assert_eq!(sent[0].method, "POST", "{at}");
            assert_eq!(sent[0].path, ex.request.path, "{at}");
            assert_eq!(sent[0].json(), ex.request.body, "{at}: request body");
            assert_eq!(
                sent[0].headers.get("content-type").map(String::as_str),
                Some(CONTENT_TYPE),
                "{at}"
            );
            match (expected_kind(&ex.response.body), outcome) {
                (None, Ok(value)) => assert_eq!(value, answer, "{at}: what the client read"),
                (Some(kind), Err(got)) => assert_eq!(got, kind, "{at}: error kind"),
                (want, got) => panic!("{at}: expected {want:?}, got {got:?}"),
            }
            assert_eq!(fake.unused(), 0, "{at}");
            played += 1;
        }
    }
    assert!(played >= 15, "only {played} client exchanges played");
}

#[test]
fn an_oversized_request_is_refused_before_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let driver = Counting {
        inner: LocalDriver::open(dir.path().join("volumes")).unwrap(),
        calls: calls.clone(),
    };
    let socket = dir.path().join("plugin.sock");
    let server = serve(Arc::new(driver), &socket).unwrap();
    let mut raw = RawClient::connect(&socket);
    let huge = serde_json::json!({"Name": "vol", "Opts": {"o": "x".repeat(2 << 20)}});
    let (status, _, body) = raw.send(
        "POST",
        "/VolumeDriver.Create",
        &BTreeMap::new(),
        serde_json::to_vec(&huge).unwrap(),
    );
    assert_eq!(status, 413);
    let body: Value = serde_json::from_slice(&body).unwrap();
    matches(
        &serde_json::json!({"Err": "{{err:limit_exceeded}}"}),
        &body,
        "",
        "413",
    )
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    drop(raw);
    server.shutdown().unwrap();
}
