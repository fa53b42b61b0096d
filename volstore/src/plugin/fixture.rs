//! A conformance fixture: a [`Client`] talking to a [`serve`]d local driver.

use std::sync::{Arc, Mutex};

use super::{Client, Server, serve};
use crate::Driver;
use crate::conformance::{Fixture, local_fixture};

/// The local driver in a fresh temporary directory, served on a socket next to it and
/// driven through a [`Client`]. Leftovers are the local driver's, plus anything the
/// server leaves: checking them shuts the server down, and reports a failed shutdown
/// or a socket still there after it.
pub fn plugin_fixture() -> Fixture {
    let local = local_fixture();
    let sockets = tempfile::tempdir().expect("temp dir");
    let socket = sockets.path().join("cargohold.sock");
    let driver: Arc<dyn Driver> = Arc::from(local.driver);
    let server = serve(driver, &socket).expect("serve the local driver");
    let client = Client::connect(&socket).expect("connect to the served driver");
    let server: Arc<Mutex<Option<Server>>> = Arc::new(Mutex::new(Some(server)));
    let held = server.clone();
    let local_leftovers = local.leftovers;
    let dir = sockets.path().to_path_buf();
    Fixture {
        driver: Box::new(client),
        leftovers: Box::new(move || {
            let mut left = local_leftovers();
            if let Some(server) = held.lock().expect("server slot").take()
                && let Err(e) = server.shutdown()
            {
                left.push(format!("server shutdown failed: {e}"));
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    left.push(format!("{} after shutdown", entry.path().display()));
                }
            }
            left
        }),
        keep: Box::new((server, sockets, local.keep)),
    }
}
