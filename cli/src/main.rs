//! The `cargohold` command.
fn main() {}
