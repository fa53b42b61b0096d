//! The C ABI of cargohold.
