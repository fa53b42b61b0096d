//! layerstore: image layers and container snapshots (placeholder, being built).

pub mod archive;
pub mod drivers;
