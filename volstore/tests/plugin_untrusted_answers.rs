//! The plugin client turns every bad answer from a plugin into a typed error and never
//! repeats a request it sent; without this, a broken or hostile plugin could hang the
//! caller, crash it, or have one create or mount happen twice.
//!
//! Kinds: an answer that is not what the protocol says (not JSON, a missing or
//! mistyped field, an empty or relative mountpoint, another volume's name, a volume
//! listed twice, an unknown scope) is
//! `Corrupt`; a failed status without a readable `Err`, a closed connection, a refused
//! connection or a timeout is `Io`; a plugin that is not a volume driver is
//! `Unsupported`.

mod plugin_fake;

use std::time::Duration;

use plugin_fake::{Answer, FakePlugin};
use serde_json::json;
use volstore::plugin::{Client, Timeouts};
use volstore::{Driver, ErrorKind, Options, Scope};

fn connected(fake: &FakePlugin) -> Client {
    fake.script_handshake();
    let client = Client::connect(&fake.socket).unwrap();
    assert_eq!(fake.take_recorded().len(), 2);
    client
}

fn raw(status: u16, body: &str) -> Answer {
    Answer::Reply(status, body.as_bytes().to_vec())
}

/// Each call gets `answer`; the error kind, after checking one request was sent.
fn kind_after(fake: &FakePlugin, client: &Client, answer: Answer, call: &str) -> ErrorKind {
    fake.script(answer);
    let err = match call {
        "create" => client.create("vol", &Options::new()).unwrap_err(),
        "remove" => client.remove("vol").unwrap_err(),
        "mount" => client.mount("vol", "c1").unwrap_err(),
        "unmount" => client.unmount("vol", "c1").unwrap_err(),
        "path" => client.path("vol").unwrap_err(),
        "get" => client.get("vol").unwrap_err(),
        "list" => client.list().unwrap_err(),
        other => panic!("{other}"),
    };
    let sent = fake.take_recorded();
    assert_eq!(sent.len(), 1, "{call}: sent once, never repeated");
    assert_eq!(fake.unused(), 0);
    err.kind()
}

#[test]
fn answers_that_are_not_the_protocol_are_corrupt() {
    let fake = FakePlugin::start();
    let client = connected(&fake);
    for (call, body) in [
        ("create", "not json"),
        ("create", ""),
        ("remove", "[1, 2]"),
        ("mount", r#"{"Mountpoint": 7}"#),
        ("mount", r#"{"Err": ""}"#),
        ("mount", r#"{"Mountpoint": "", "Err": ""}"#),
        ("path", r#"{"Mountpoint": ["/a"]}"#),
        ("get", r#"{"Err": ""}"#),
        ("get", r#"{"Volume": {"Mountpoint": "/x"}, "Err": ""}"#),
        (
            "get",
            r#"{"Volume": {"Name": "other", "Mountpoint": "/x"}, "Err": ""}"#,
        ),
        (
            "get",
            r#"{"Volume": {"Name": "vol", "Status": "fine"}, "Err": ""}"#,
        ),
        ("list", r#"{"Volumes": {"Name": "vol"}}"#),
        ("list", r#"{"Volumes": [{"Mountpoint": "/x"}]}"#),
        ("list", r#"{"Volumes": [], "Err": 5}"#),
        ("mount", r#"{"Mountpoint": "relative/dir", "Err": ""}"#),
        ("path", r#"{"Mountpoint": "../up", "Err": ""}"#),
        (
            "get",
            r#"{"Volume": {"Name": "vol", "Mountpoint": "x"}, "Err": ""}"#,
        ),
        (
            "list",
            r#"{"Volumes": [{"Name": "a", "Mountpoint": "a/_data"}]}"#,
        ),
        (
            "list",
            r#"{"Volumes": [{"Name": "a"}, {"Name": "b"}, {"Name": "a"}]}"#,
        ),
    ] {
        assert_eq!(
            kind_after(&fake, &client, raw(200, body), call),
            ErrorKind::Corrupt,
            "{call} answered {body}"
        );
    }
}

#[test]
fn failures_without_a_readable_err_are_io() {
    let fake = FakePlugin::start();
    let client = connected(&fake);
    for (call, status, body) in [
        ("create", 500, "internal error"),
        ("remove", 404, "404 page not found"),
        ("mount", 500, r#"{"Err": ""}"#),
        ("get", 502, ""),
        ("list", 500, r#"{"Error": "no such volume"}"#),
    ] {
        assert_eq!(
            kind_after(&fake, &client, raw(status, body), call),
            ErrorKind::Io,
            "{call} answered {status} {body}"
        );
    }
}

#[test]
fn foreign_err_messages_are_read_by_their_words() {
    let fake = FakePlugin::start();
    let client = connected(&fake);
    for (status, message, kind) in [
        (500, "no such volume: vol", ErrorKind::NotFound),
        (200, "volume vol not found", ErrorKind::NotFound),
        (500, "volume vol is in use", ErrorKind::InUse),
        (500, "volume already exists", ErrorKind::AlreadyExists),
        (500, "invalid option: colour", ErrorKind::InvalidArgument),
        (200, "the backend is on fire", ErrorKind::Io),
        (500, "[not_found] get vol: gone", ErrorKind::NotFound),
        (
            200,
            "[limit_exceeded] create vol: quota",
            ErrorKind::LimitExceeded,
        ),
    ] {
        let answer = Answer::json(status, &json!({ "Err": message }));
        assert_eq!(
            kind_after(&fake, &client, answer, "remove"),
            kind,
            "{status} {message}"
        );
    }
}

#[test]
fn a_plugin_that_is_not_a_volume_driver_is_refused() {
    let fake = FakePlugin::start();
    fake.script(Answer::json(200, &json!({"Implements": ["NetworkDriver"]})));
    let err = Client::connect(&fake.socket).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        fake.take_recorded().len(),
        1,
        "nothing asked past activation"
    );

    for body in ["", "{}", r#"{"Implements": "VolumeDriver"}"#] {
        fake.script(raw(200, body));
        let err = Client::connect(&fake.socket).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Corrupt,
            "activation answered {body:?}"
        );
    }
    fake.script(raw(500, "plugin not ready"));
    assert_eq!(
        Client::connect(&fake.socket).unwrap_err().kind(),
        ErrorKind::Io
    );
}

#[test]
fn capabilities_are_read_and_an_unknown_scope_is_corrupt() {
    let fake = FakePlugin::start();
    fake.script(Answer::json(200, &json!({"Implements": ["VolumeDriver"]})));
    fake.script(Answer::json(
        200,
        &json!({"Capabilities": {"Scope": "global"}}),
    ));
    let client = Client::connect(&fake.socket).unwrap();
    assert_eq!(client.capabilities().scope, Scope::Global);

    // A plugin older than the Capabilities call fails it: local, as Docker assumes.
    fake.script(Answer::json(200, &json!({"Implements": ["VolumeDriver"]})));
    fake.script(raw(404, "404 page not found"));
    let client = Client::connect(&fake.socket).unwrap();
    assert_eq!(client.capabilities().scope, Scope::Local);

    fake.script(Answer::json(200, &json!({"Implements": ["VolumeDriver"]})));
    fake.script(Answer::json(
        200,
        &json!({"Capabilities": {"Scope": "planet"}}),
    ));
    assert_eq!(
        Client::connect(&fake.socket).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}

#[test]
fn a_plugin_that_never_answers_times_out_as_io() {
    let fake = FakePlugin::start();
    fake.script_handshake();
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        call: Duration::from_secs(2),
    };
    let client = Client::connect_with(&fake.socket, timeouts).unwrap();
    fake.take_recorded();
    fake.script(Answer::Hang);
    assert_eq!(client.mount("vol", "c1").unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(fake.take_recorded().len(), 1, "the mount was not repeated");

    // The client is still usable afterwards, on a fresh connection.
    fake.script(Answer::json(200, &json!({"Volumes": [], "Err": ""})));
    assert_eq!(client.list().unwrap(), vec![]);

    fake.script(Answer::Hang);
    let err = Client::connect_with(&fake.socket, timeouts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[test]
fn a_socket_nobody_listens_on_is_io() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    assert_eq!(Client::connect(&missing).unwrap_err().kind(), ErrorKind::Io);
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert_eq!(Client::connect(&stale).unwrap_err().kind(), ErrorKind::Io);
}

#[test]
fn bad_names_are_refused_before_anything_is_sent() {
    let fake = FakePlugin::start();
    let client = connected(&fake);
    for bad in ["", "../x", "a/b", ".hidden"] {
        assert_eq!(
            client.create(bad, &Options::new()).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            client.mount(bad, "c1").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert!(
        fake.take_recorded().is_empty(),
        "nothing reached the plugin"
    );
}
