//! The overlay driver (placeholder, being built).
