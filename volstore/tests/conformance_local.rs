//! The local driver keeps the whole volume driver contract; without this, a change to it
//! could break what every caller (the CLI, the plugin server) relies on.

volstore::volume_driver_conformance!(volstore::conformance::local_fixture);
