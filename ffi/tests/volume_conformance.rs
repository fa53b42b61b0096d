//! Without this, the C volume functions could drift from the volume driver contract
//! (a kind lost at the boundary, a path mangled, a holder dropped) while the Rust
//! driver still passes: a `volstore::Driver` made only of C calls runs the whole
//! volume driver conformance suite.

use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::ptr;

use cargohold::volumes::*;
use cargohold::{
    cargohold_error, cargohold_error_free, cargohold_error_kind_name, cargohold_error_message,
    cargohold_status, cargohold_string_free,
};
use cargohold_core::{Error, ErrorKind, Result};
use volstore::conformance::Fixture;
use volstore::{Capabilities, Driver, Options, Scope, Volume};

/// A volume driver that goes through the C ABI only.
struct CDriver(*mut cargohold_volume_store);

// SAFETY: the C handle is documented Send + Sync (it wraps the Send + Sync local driver).
unsafe impl Send for CDriver {}
// SAFETY: as above.
unsafe impl Sync for CDriver {}

impl Drop for CDriver {
    fn drop(&mut self) {
        // SAFETY: the handle is live and no call is in flight (we own it).
        let st = unsafe { cargohold_volume_store_free(self.0) };
        assert_eq!(st, cargohold_status::Ok);
    }
}

fn cstr(s: &str) -> Result<CString> {
    // Interior NULs cannot cross the C ABI: the suite's bad names must still be refused.
    CString::new(s).map_err(|_| Error::new(ErrorKind::InvalidArgument, "c string", s, "NUL"))
}

/// Turn a status and its error object back into an Error of the same kind.
fn check(st: cargohold_status, err: *mut cargohold_error) -> Result<()> {
    if st == cargohold_status::Ok {
        assert!(err.is_null(), "no error object on success");
        return Ok(());
    }
    assert!(!err.is_null(), "an error object on failure");
    // SAFETY: `err` is a live error object from the call; the strings it returns live
    // as long as it (or are static).
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
    Err(Error::new(kind, "c abi", "volume", msg))
}

/// Take a returned string (may be NULL) and free it.
fn take(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a live string returned by cargohold, freed right after copying.
    unsafe {
        let s = CStr::from_ptr(p).to_str().unwrap().to_owned();
        cargohold_string_free(p);
        Some(s)
    }
}

impl Driver for CDriver {
    fn create(&self, name: &str, options: &Options) -> Result<()> {
        let name = cstr(name)?;
        let opts = cstr(&serde_json::to_string(options).unwrap())?;
        let mut err = ptr::null_mut();
        // SAFETY: live handle, NUL-terminated strings, NULL out_name.
        let st = unsafe {
            cargohold_volume_create(
                self.0,
                name.as_ptr(),
                opts.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                &mut err,
            )
        };
        check(st, err)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let name = cstr(name)?;
        let mut err = ptr::null_mut();
        // SAFETY: live handle and NUL-terminated strings.
        let st = unsafe { cargohold_volume_remove(self.0, name.as_ptr(), false, &mut err) };
        check(st, err)
    }

    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let (name, id) = (cstr(name)?, cstr(id)?);
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, NUL-terminated strings, writable out-params.
        let st = unsafe {
            cargohold_volume_mount(self.0, name.as_ptr(), id.as_ptr(), &mut out, &mut err)
        };
        check(st, err)?;
        Ok(PathBuf::from(take(out).expect("a mount path")))
    }

    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        let (name, id) = (cstr(name)?, cstr(id)?);
        let mut err = ptr::null_mut();
        // SAFETY: live handle and NUL-terminated strings.
        let st = unsafe { cargohold_volume_unmount(self.0, name.as_ptr(), id.as_ptr(), &mut err) };
        check(st, err)
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        let name = cstr(name)?;
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, NUL-terminated string, writable out-params.
        let st = unsafe { cargohold_volume_path(self.0, name.as_ptr(), &mut out, &mut err) };
        check(st, err)?;
        Ok(take(out).map(PathBuf::from))
    }

    fn get(&self, name: &str) -> Result<Volume> {
        let name = cstr(name)?;
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, NUL-terminated string, writable out-params.
        let st = unsafe { cargohold_volume_get(self.0, name.as_ptr(), &mut out, &mut err) };
        check(st, err)?;
        let v: serde_json::Value = serde_json::from_str(&take(out).unwrap()).unwrap();
        Ok(volume_of(&v))
    }

    fn list(&self) -> Result<Vec<Volume>> {
        let (mut err, mut out) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, writable out-params.
        let st = unsafe { cargohold_volume_list(self.0, &mut out, &mut err) };
        check(st, err)?;
        let v: serde_json::Value = serde_json::from_str(&take(out).unwrap()).unwrap();
        Ok(v.as_array().unwrap().iter().map(volume_of).collect())
    }

    fn capabilities(&self) -> Capabilities {
        let (mut err, mut scope) = (ptr::null_mut(), u32::MAX);
        // SAFETY: live handle, writable out-params.
        let st = unsafe { cargohold_volume_capabilities(self.0, &mut scope, &mut err) };
        check(st, err).expect("capabilities cannot fail on a live handle");
        let scope = match scope {
            CARGOHOLD_VOLUME_SCOPE_LOCAL => Scope::Local,
            CARGOHOLD_VOLUME_SCOPE_GLOBAL => Scope::Global,
            other => panic!("unknown scope {other}"),
        };
        Capabilities { scope }
    }
}

fn volume_of(v: &serde_json::Value) -> Volume {
    let mut status = std::collections::BTreeMap::new();
    status.insert(
        "holders".to_owned(),
        serde_json::json!(v["holders"].as_array().unwrap().len()),
    );
    Volume {
        name: v["name"].as_str().unwrap().to_owned(),
        mountpoint: v["mountpoint"].as_str().map(PathBuf::from),
        created_at: v["created_at"].as_str().map(str::to_owned),
        status,
    }
}

fn c_fixture() -> Fixture {
    let local = volstore::conformance::local_fixture();
    // Reuse the local fixture's temporary directory and leftover check; drive the same
    // store directory through a handle opened by C.
    let root = local_root(&local);
    let croot = CString::new(root.to_str().unwrap()).unwrap();
    let (mut err, mut handle) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: NUL-terminated root, writable out-params.
    let st = unsafe { cargohold_volume_store_open(croot.as_ptr(), &mut handle, &mut err) };
    check(st, err).expect("open through C");
    let Fixture {
        driver,
        leftovers,
        keep,
    } = local;
    drop(driver);
    Fixture {
        driver: Box::new(CDriver(handle)),
        leftovers,
        keep,
    }
}

fn local_root(f: &Fixture) -> PathBuf {
    let dir = f
        .keep
        .downcast_ref::<tempfile::TempDir>()
        .expect("the local fixture keeps its temporary directory");
    dir.path().join("volumes")
}

volstore::volume_driver_conformance!(c_fixture);
