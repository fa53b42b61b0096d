//! Storage drivers (placeholder, being built).

pub mod overlay;
pub mod vfs;
