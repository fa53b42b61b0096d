//! A served driver driven through the plugin client keeps the whole volume driver
//! contract, error kinds included, and so does a client served again (a plugin that
//! proxies another plugin); without this, a volume used through the plugin socket could
//! behave differently from the same volume used directly.

volstore::volume_driver_conformance!(volstore::plugin::plugin_fixture);

mod proxied {
    use std::sync::{Arc, Mutex};

    use volstore::Driver;
    use volstore::conformance::Fixture;
    use volstore::plugin::{Client, plugin_fixture, serve};

    /// Client → server → client → server → local driver.
    fn proxied_fixture() -> Fixture {
        let inner = plugin_fixture();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("proxy.sock");
        let served: Arc<dyn Driver> = Arc::from(inner.driver);
        let server = Arc::new(Mutex::new(Some(serve(served, &socket).unwrap())));
        let client = Client::connect(&socket).unwrap();
        let held = server.clone();
        let inner_leftovers = inner.leftovers;
        let path = dir.path().to_path_buf();
        Fixture {
            driver: Box::new(client),
            leftovers: Box::new(move || {
                let mut left = Vec::new();
                if let Some(server) = held.lock().unwrap().take()
                    && let Err(e) = server.shutdown()
                {
                    left.push(format!("proxy shutdown failed: {e}"));
                }
                for entry in std::fs::read_dir(&path).unwrap().flatten() {
                    left.push(format!("{} after shutdown", entry.path().display()));
                }
                left.extend(inner_leftovers());
                left
            }),
            keep: Box::new((server, dir, inner.keep)),
        }
    }

    volstore::volume_driver_conformance!(proxied_fixture);
}
