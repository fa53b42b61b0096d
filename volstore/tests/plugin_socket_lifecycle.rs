//! The plugin server owns its socket path safely and keeps serving: it replaces only a
//! dead server's socket, never a live one or a file, lets calls in flight finish on
//! shutdown, removes only its own socket, serves many callers at once and outlives a
//! panicking driver call; without this, restarting a plugin after a crash would fail,
//! starting a second one would cut off the first, and one driver bug would stop all.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use volstore::plugin::{Client, serve};
use volstore::{Capabilities, Driver, ErrorKind, LocalDriver, Options, Result, Volume};

fn local(dir: &Path) -> Arc<dyn Driver> {
    Arc::new(LocalDriver::open(dir.join("volumes")).unwrap())
}

#[test]
fn a_dead_servers_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    drop(UnixListener::bind(&socket).unwrap()); // what a killed server leaves
    assert!(socket.exists());
    let server = serve(local(dir.path()), &socket).unwrap();
    let client = Client::connect(&socket).unwrap();
    client.create("vol", &Options::new()).unwrap();
    client.remove("vol").unwrap();
    drop(client);
    server.shutdown().unwrap();
    assert!(!socket.exists());
}

#[test]
fn a_live_socket_is_in_use_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let first = serve(local(dir.path()), &socket).unwrap();
    let err = serve(local(dir.path()), &socket).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InUse);
    let client = Client::connect(&socket).unwrap();
    assert_eq!(client.list().unwrap(), vec![]);
    drop(client);
    first.shutdown().unwrap();
    assert!(!socket.exists());
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugin.sock");
    std::fs::write(&file, b"precious").unwrap();
    let err = serve(local(dir.path()), &file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");

    let missing = dir.path().join("no/such/dir/plugin.sock");
    let err = serve(local(dir.path()), &missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn two_servers_starting_at_once_get_one_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    drop(UnixListener::bind(&socket).unwrap());
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| serve(local(dir.path()), &socket)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let kinds: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.kind()))
        .collect();
    assert!(
        kinds.contains(&None) && kinds.contains(&Some(ErrorKind::InUse)),
        "{kinds:?}"
    );
    let client = Client::connect(&socket).unwrap();
    assert_eq!(client.list().unwrap(), vec![]);
    drop(client);
    drop(results);
    assert!(
        !socket.exists(),
        "the winner removed its socket when dropped"
    );
}

#[test]
fn shutdown_removes_only_its_own_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let old = serve(local(dir.path()), &socket).unwrap();
    // Someone removed the socket and another server took the path.
    std::fs::remove_file(&socket).unwrap();
    let new = serve(local(dir.path()), &socket).unwrap();
    old.shutdown().unwrap();
    assert!(socket.exists(), "the new server's socket stays");
    let client = Client::connect(&socket).unwrap();
    assert_eq!(client.list().unwrap(), vec![]);
    drop(client);
    drop(new);
    assert!(!socket.exists());
}

/// The local driver, with `mount` stopping until the test lets it go.
struct Gate {
    inner: LocalDriver,
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Driver for Gate {
    fn create(&self, name: &str, options: &Options) -> Result<()> {
        self.inner.create(name, options)
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.inner.remove(name)
    }
    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        self.entered.lock().unwrap().send(()).unwrap();
        self.release.lock().unwrap().recv().unwrap();
        self.inner.mount(name, id)
    }
    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        self.inner.unmount(name, id)
    }
    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        Driver::path(&self.inner, name)
    }
    fn get(&self, name: &str) -> Result<Volume> {
        self.inner.get(name)
    }
    fn list(&self) -> Result<Vec<Volume>> {
        self.inner.list()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[test]
fn a_call_in_flight_is_answered_before_shutdown_completes() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gate = Gate {
        inner: LocalDriver::open(dir.path().join("volumes")).unwrap(),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    };
    let server = serve(Arc::new(gate), &socket).unwrap();
    let client = Client::connect(&socket).unwrap();
    client.create("vol", &Options::new()).unwrap();

    std::thread::scope(|s| {
        let mounting = s.spawn(|| client.mount("vol", "c1"));
        entered.recv().unwrap();
        let stopping = s.spawn(|| server.shutdown());
        // Wait (bounded) until the server stopped accepting new connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_ok() {
            assert!(Instant::now() < deadline, "the server kept accepting");
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).unwrap();
        let path = mounting
            .join()
            .unwrap()
            .expect("the mount in flight is answered");
        assert!(path.is_dir());
        stopping.join().unwrap().unwrap();
    });
    assert!(!socket.exists());
    // The driver did its work: the holder is recorded in the store.
    let store = LocalDriver::open(dir.path().join("volumes")).unwrap();
    assert_eq!(store.remove("vol").unwrap_err().kind(), ErrorKind::InUse);
    store.unmount("vol", "c1").unwrap();
    store.remove("vol").unwrap();
}

#[test]
fn one_client_serves_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let server = serve(local(dir.path()), &socket).unwrap();
    let client = Client::connect(&socket).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let client = &client;
            s.spawn(move || {
                let name = format!("vol{t}");
                for round in 0..20 {
                    client.create(&name, &Options::new()).unwrap();
                    let id = format!("c{round}");
                    let p = client.mount(&name, &id).unwrap();
                    assert!(p.ends_with(format!("{name}/_data")));
                    assert_eq!(client.remove(&name).unwrap_err().kind(), ErrorKind::InUse);
                    client.unmount(&name, &id).unwrap();
                    client.remove(&name).unwrap();
                }
            });
        }
    });
    assert_eq!(client.list().unwrap(), vec![]);
    drop(client);
    server.shutdown().unwrap();
    assert!(!socket.exists());
}

#[test]
fn a_client_outlives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let server = serve(local(dir.path()), &socket).unwrap();
    let client = Client::connect(&socket).unwrap();
    client.create("vol", &Options::new()).unwrap();
    server.shutdown().unwrap();
    // While no server runs, calls fail as Io (and nothing is retried later).
    assert_eq!(client.get("vol").unwrap_err().kind(), ErrorKind::Io);
    let server = serve(local(dir.path()), &socket).unwrap();
    // The kept-alive connection died with the old server; the client opens a new one.
    assert_eq!(client.get("vol").unwrap().name, "vol");
    client.remove("vol").unwrap();
    drop(client);
    server.shutdown().unwrap();
    assert!(!socket.exists());
}

#[test]
fn the_socket_is_for_its_owner_and_group_only() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let server = serve(local(dir.path()), &socket).unwrap();
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let mut entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["plugin.sock", "volumes"], "no staging left");
    server.shutdown().unwrap();
}

/// The local driver, with `get` panicking.
struct Panicky(LocalDriver);

impl Driver for Panicky {
    fn create(&self, name: &str, options: &Options) -> Result<()> {
        self.0.create(name, options)
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.0.remove(name)
    }
    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        self.0.mount(name, id)
    }
    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        self.0.unmount(name, id)
    }
    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        Driver::path(&self.0, name)
    }
    fn get(&self, _name: &str) -> Result<Volume> {
        panic!("a driver bug");
    }
    fn list(&self) -> Result<Vec<Volume>> {
        self.0.list()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

#[test]
fn a_panicking_driver_call_is_io_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    let driver = Panicky(LocalDriver::open(dir.path().join("volumes")).unwrap());
    let server = serve(Arc::new(driver), &socket).unwrap();
    let client = Client::connect(&socket).unwrap();
    client.create("vol", &Options::new()).unwrap();
    assert_eq!(client.get("vol").unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(client.list().unwrap().len(), 1, "the server still answers");
    client.remove("vol").unwrap();
    drop(client);
    server.shutdown().unwrap();
    assert!(!socket.exists());
}
