//! OCI image layout import and export with a Python progress callback.
//!
//! The callback is called after each blob with ``(done, total)`` in bytes of blob data
//! (configs and layers; blobs already present count as done). ``total`` is worked out
//! before the transfer by reading the manifests, and is None when that fails (the
//! transfer then reports why). An exception raised by the callback stops further calls
//! and is raised once the transfer ends; it does not abort the transfer.

use std::path::Path;

use cargohold_core::{Confine, Digest, Result, Root};
use pyo3::prelude::*;
use regstore::Registry;
use regstore::manifests::classify;
use serde_json::Value;

use crate::streams::Failure;

/// What an import or export moved.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The digest of the top manifest (or index).
    #[pyo3(get)]
    digest: String,
    /// Its media type.
    #[pyo3(get)]
    media_type: String,
    /// Manifests moved (the top one and any index children).
    #[pyo3(get)]
    manifests: usize,
    /// Blobs copied.
    #[pyo3(get)]
    blobs_copied: usize,
    /// Blobs already present, not copied again.
    #[pyo3(get)]
    blobs_present: usize,
    /// Bytes of blob data copied.
    #[pyo3(get)]
    bytes: u64,
}

#[pymethods]
impl Transfer {
    fn __repr__(&self) -> String {
        format!(
            "Transfer(digest={:?}, blobs_copied={}, bytes={})",
            self.digest, self.blobs_copied, self.bytes
        )
    }
}

impl From<regstore::oci_layout::Transfer> for Transfer {
    fn from(t: regstore::oci_layout::Transfer) -> Transfer {
        Transfer {
            digest: t.digest.to_string(),
            media_type: t.media_type.as_str().to_string(),
            manifests: t.manifests,
            blobs_copied: t.blobs_copied,
            blobs_present: t.blobs_present,
            bytes: t.bytes,
        }
    }
}

/// The bytes of blob data below the manifest `bytes`, reading child manifests with
/// `fetch`; `None` when something does not parse (the transfer will say what).
fn blob_total(
    fetch: &dyn Fn(&Digest) -> Result<Vec<u8>>,
    bytes: &[u8],
    depth: usize,
) -> Option<u64> {
    if depth > 4 {
        return None;
    }
    let (mt, v) = classify(bytes, None).ok()?;
    let size = |d: &Value| d.get("size").and_then(Value::as_u64);
    let mut total = 0u64;
    if mt.is_index() {
        for child in v["manifests"].as_array()? {
            let d = Digest::parse(child.get("digest")?.as_str()?).ok()?;
            total += blob_total(fetch, &fetch(&d).ok()?, depth + 1)?;
        }
    } else {
        total += size(&v["config"])?;
        for l in v["layers"].as_array()? {
            total += size(l)?;
        }
    }
    Some(total)
}

/// Total blob bytes of the image `repo:reference` in `reg`.
pub fn registry_total(reg: &Registry, repo: &str, reference: &str) -> Option<u64> {
    let top = reg.get_manifest(repo, reference).ok()?;
    let fetch = |d: &Digest| reg.get_manifest(repo, &d.to_string()).map(|m| m.bytes);
    blob_total(&fetch, &top.bytes, 0)
}

/// Total blob bytes of the image named `ref_name` (or the only one) in the OCI layout
/// at `dir`, read confined to it.
pub fn layout_total(dir: &Path, ref_name: Option<&str>) -> Option<u64> {
    let root = Root::open(dir, Confine::Beneath).ok()?;
    let index: Value = serde_json::from_slice(&root.read("index.json").ok()?).ok()?;
    let entries = index.get("manifests")?.as_array()?;
    let named: Vec<&Value> = entries
        .iter()
        .filter(|e| match ref_name {
            Some(n) => {
                e.get("annotations")
                    .and_then(|a| a.get(regstore::oci_layout::REF_NAME))
                    .and_then(Value::as_str)
                    == Some(n)
            }
            None => true,
        })
        .collect();
    let [entry] = named.as_slice() else {
        return None;
    };
    let fetch = |d: &Digest| root.read(format!("blobs/{}/{}", d.algorithm(), d.hex()));
    let top = Digest::parse(entry.get("digest")?.as_str()?).ok()?;
    blob_total(&fetch, &fetch(&top).ok()?, 0)
}

/// A progress reporter around an optional Python callable.
#[derive(Debug)]
pub struct Progress {
    callback: Option<Py<PyAny>>,
    total: Option<u64>,
    done: u64,
    /// The callback's first exception.
    pub failure: Failure,
}

impl Progress {
    /// A reporter calling `callback(done, total)`.
    pub fn new(callback: Option<Py<PyAny>>) -> Progress {
        Progress {
            callback,
            total: None,
            done: 0,
            failure: Failure::default(),
        }
    }

    /// Whether there is a callback (and a total is worth computing).
    pub fn wanted(&self) -> bool {
        self.callback.is_some()
    }

    /// Set the total announced with every call.
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// One blob of `size` bytes is done (called with the GIL released).
    pub fn blob(&mut self, _d: &Digest, size: u64) {
        self.done += size;
        let Some(cb) = &self.callback else { return };
        if self.failure.is_set() {
            return;
        }
        Python::attach(|py| {
            if let Err(e) = cb.call1(py, (self.done, self.total)) {
                self.failure.set(e);
            }
        });
    }
}
