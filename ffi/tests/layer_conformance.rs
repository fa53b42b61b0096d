//! Without this, the C snapshot functions could drift from the layer store's `Driver`
//! contract (a kind lost at the boundary, a mount spec mangled, labels or parents
//! dropped) while the Rust store still passes: a `layerstore::Driver` made only of C
//! calls runs the whole snapshot driver conformance suite.

use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::ptr;

use cargohold::containers::{cargohold_container_mounts, cargohold_container_remove};
use cargohold::layers::*;
use cargohold::snapshots::*;
use cargohold::{
    cargohold_error, cargohold_error_free, cargohold_error_kind_name, cargohold_error_message,
    cargohold_status, cargohold_string_free,
};
use cargohold_core::{Error, ErrorKind, Result};
use layerstore::conformance::Fixture;
use layerstore::{Driver, Info, Kind, Labels, Mount, Usage};
use serde_json::Value;

/// A snapshot driver that goes through the C ABI only.
struct CDriver(*mut cargohold_layer_store);

// SAFETY: the C handle is documented Send + Sync (it wraps the Send + Sync layer store).
unsafe impl Send for CDriver {}
// SAFETY: as above.
unsafe impl Sync for CDriver {}

impl Drop for CDriver {
    fn drop(&mut self) {
        // SAFETY: the handle is live and no call is in flight (we own it).
        let st = unsafe { cargohold_layer_store_free(self.0) };
        assert_eq!(st, cargohold_status::Ok);
    }
}

fn cstr(s: &str) -> Result<CString> {
    // Interior NULs cannot cross the C ABI: the suite's bad keys must still be refused.
    CString::new(s).map_err(|_| Error::new(ErrorKind::InvalidArgument, "c string", s, "NUL"))
}

fn opt(s: Option<&str>) -> Result<Option<CString>> {
    s.map(cstr).transpose()
}

fn ptr_of(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |c| c.as_ptr())
}

/// Turn a status and its error object back into an Error of the same kind.
fn check(st: cargohold_status, err: *mut cargohold_error) -> Result<()> {
    if st == cargohold_status::Ok {
        assert!(err.is_null(), "no error object on success");
        return Ok(());
    }
    assert!(!err.is_null(), "an error object on failure");
    // SAFETY: `err` is a live error object from the call; its strings live as long
    // as it (or are static); it is freed once.
    let (kind, msg) = unsafe {
        let name = CStr::from_ptr(cargohold_error_kind_name(err))
            .to_str()
            .unwrap();
        let msg = CStr::from_ptr(cargohold_error_message(err))
            .to_string_lossy()
            .into_owned();
        let kind = ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or_else(|| panic!("unknown kind name {name}"));
        cargohold_error_free(err);
        (kind, msg)
    };
    Err(Error::new(kind, "c abi", "snapshot", msg))
}

/// Take a returned JSON string and free it.
fn take_json(p: *mut c_char) -> Value {
    assert!(!p.is_null());
    // SAFETY: a live string returned by cargohold, freed right after copying.
    let s = unsafe {
        let s = CStr::from_ptr(p).to_str().unwrap().to_owned();
        cargohold_string_free(p);
        s
    };
    serde_json::from_str(&s).unwrap()
}

fn labels_json(l: &Labels) -> Result<CString> {
    cstr(&serde_json::to_string(l).unwrap())
}

fn mounts_of(v: &Value) -> Vec<Mount> {
    let paths = |v: &Value| -> Vec<PathBuf> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| PathBuf::from(p.as_str().unwrap()))
            .collect()
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| Mount {
            kind: m["type"].as_str().unwrap().to_owned(),
            source: PathBuf::from(m["source"].as_str().unwrap()),
            target: m["target"].as_str().map(PathBuf::from),
            options: m["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_owned())
                .collect(),
            lowerdirs: paths(&m["lowerdirs"]),
        })
        .collect()
}

fn info_of(v: &Value) -> Info {
    Info {
        name: v["name"].as_str().unwrap().to_owned(),
        parent: v["parent"].as_str().map(str::to_owned),
        kind: match v["kind"].as_str().unwrap() {
            "active" => Kind::Active,
            "view" => Kind::View,
            "committed" => Kind::Committed,
            other => panic!("unknown kind {other}"),
        },
        created: v["created"].as_u64().unwrap(),
        labels: serde_json::from_value(v["labels"].clone()).unwrap(),
    }
}

impl CDriver {
    fn make(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
        view: bool,
    ) -> Result<Vec<Mount>> {
        let (key, parent, labels) = (cstr(key)?, opt(parent)?, labels_json(&labels)?);
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        let f = match view {
            true => cargohold_snapshot_view,
            false => cargohold_snapshot_prepare,
        };
        // SAFETY: live handle, NUL-terminated strings, writable out-params.
        let st = unsafe {
            f(
                self.0,
                key.as_ptr(),
                ptr_of(&parent),
                labels.as_ptr(),
                &mut out,
                &mut err,
            )
        };
        check(st, err)?;
        Ok(mounts_of(&take_json(out)))
    }
}

impl Driver for CDriver {
    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.make(key, parent, labels, false)
    }

    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.make(key, parent, labels, true)
    }

    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        let (name, key, labels) = (cstr(name)?, cstr(key)?, labels_json(&labels)?);
        let mut err = ptr::null_mut();
        // SAFETY: live handle and NUL-terminated strings.
        let st = unsafe {
            cargohold_snapshot_commit(
                self.0,
                name.as_ptr(),
                key.as_ptr(),
                labels.as_ptr(),
                &mut err,
            )
        };
        check(st, err)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let key = cstr(key)?;
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, NUL-terminated string, writable out-params.
        let st = unsafe { cargohold_container_mounts(self.0, key.as_ptr(), &mut out, &mut err) };
        check(st, err)?;
        Ok(mounts_of(&take_json(out)))
    }

    fn remove(&self, key: &str) -> Result<()> {
        let key = cstr(key)?;
        let mut err = ptr::null_mut();
        // SAFETY: live handle and NUL-terminated string.
        let st = unsafe { cargohold_container_remove(self.0, key.as_ptr(), &mut err) };
        check(st, err)
    }

    fn stat(&self, key: &str) -> Result<Info> {
        let key = cstr(key)?;
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, NUL-terminated string, writable out-params.
        let st = unsafe { cargohold_snapshot_stat(self.0, key.as_ptr(), &mut out, &mut err) };
        check(st, err)?;
        Ok(info_of(&take_json(out)))
    }

    fn walk(&self, f: &mut dyn FnMut(&Info)) -> Result<()> {
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, writable out-params.
        let st = unsafe { cargohold_snapshot_walk(self.0, &mut out, &mut err) };
        check(st, err)?;
        for v in take_json(out).as_array().unwrap() {
            f(&info_of(v));
        }
        Ok(())
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        let key = cstr(key)?;
        let (mut err, mut size, mut inodes) = (ptr::null_mut(), 0u64, 0u64);
        // SAFETY: live handle, NUL-terminated string, writable out-params.
        let st = unsafe {
            cargohold_snapshot_usage(self.0, key.as_ptr(), &mut size, &mut inodes, &mut err)
        };
        check(st, err)?;
        Ok(Usage { size, inodes })
    }
}

/// The suite's vfs layer store fixture, driven through a handle opened by C on the
/// same root (the Rust handle is dropped first).
fn c_fixture() -> Fixture {
    let Fixture {
        driver,
        root,
        guard,
        tempdir,
    } = layerstore::conformance::layerstore_vfs_fixture();
    drop(driver);
    let croot = CString::new(root.to_str().unwrap()).unwrap();
    let (mut err, mut handle) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: NUL-terminated root, writable out-params.
    let st = unsafe {
        cargohold_layer_store_open(
            croot.as_ptr(),
            CARGOHOLD_LAYER_DRIVER_VFS,
            &mut handle,
            &mut err,
        )
    };
    check(st, err).expect("open through C");
    Fixture {
        driver: Box::new(CDriver(handle)),
        root,
        guard,
        tempdir,
    }
}

layerstore::driver_conformance_tests!(through_c, c_fixture);
