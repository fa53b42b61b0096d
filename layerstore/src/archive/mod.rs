//! OCI layer tars: apply and export (placeholder, being built).
