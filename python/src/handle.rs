//! A store handle a Python object owns until `close()`: calls in flight keep the store
//! alive (they hold a clone of the `Arc`), calls after `close()` are `ValueError`.

use std::sync::{Arc, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// An open store, or nothing once closed.
#[derive(Debug)]
pub struct Handle<T> {
    inner: RwLock<Option<Arc<T>>>,
    what: &'static str,
}

impl<T> Handle<T> {
    /// A handle on an open store; `what` names it in the closed-store error.
    pub fn new(store: T, what: &'static str) -> Handle<T> {
        Handle {
            inner: RwLock::new(Some(Arc::new(store))),
            what,
        }
    }

    /// The store; `ValueError` once closed.
    pub fn get(&self) -> PyResult<Arc<T>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard
            .clone()
            .ok_or_else(|| PyValueError::new_err(format!("operation on a closed {}", self.what)))
    }

    /// Drop this handle's reference; idempotent.
    pub fn close(&self) -> Option<Arc<T>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}
