//! A served driver driven through the plugin client keeps the whole volume driver
//! contract, error kinds included; without this, a volume used through the plugin
//! socket could behave differently from the same volume used directly.

volstore::volume_driver_conformance!(volstore::plugin::plugin_fixture);
