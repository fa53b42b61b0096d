//! The vfs driver (placeholder, being built).
