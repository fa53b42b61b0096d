//! Without this, the header's promise that one store handle serves many threads at once
//! could break (a lock-free table corrupted, a call seeing another thread's handle as
//! dead): threads share one volume store handle and one registry handle while others
//! open and free handles of their own.

use std::ffi::{CString, c_char};
use std::ptr;

use cargohold::registry::*;
use cargohold::volumes::*;
use cargohold::{cargohold_status, cargohold_string_free};

/// A raw handle that may be sent to other threads (the header documents it so).
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: the C handles are documented Send + Sync; the test frees them only after
// every thread has joined.
unsafe impl<T> Send for Shared<T> {}

#[test]
fn one_handle_serves_many_threads_while_others_come_and_go() {
    let tmp = tempfile::tempdir().unwrap();
    let root = CString::new(tmp.path().join("v").to_str().unwrap()).unwrap();
    let reg_root = CString::new(tmp.path().join("r").to_str().unwrap()).unwrap();
    let mut vs = ptr::null_mut();
    // SAFETY: valid strings and out-params; NULL error out-params.
    unsafe {
        assert_eq!(
            cargohold_volume_store_open(root.as_ptr(), &mut vs, ptr::null_mut()),
            cargohold_status::Ok
        );
    }
    let shared = Shared(vs);
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let vs = shared;
                for i in 0..25 {
                    let name = CString::new(format!("t{t}-v{i}")).unwrap();
                    // SAFETY: the shared handle is live until the scope ends.
                    unsafe {
                        let st = cargohold_volume_create(
                            vs.0,
                            name.as_ptr(),
                            ptr::null(),
                            ptr::null(),
                            ptr::null_mut(),
                            ptr::null_mut(),
                        );
                        assert_eq!(st, cargohold_status::Ok);
                        let st =
                            cargohold_volume_remove(vs.0, name.as_ptr(), false, ptr::null_mut());
                        assert_eq!(st, cargohold_status::Ok);
                    }
                }
            });
        }
        // Meanwhile, other handles are opened and freed: the table changes under the
        // calls above.
        for _ in 0..2 {
            let reg_root = &reg_root;
            s.spawn(move || {
                for _ in 0..50 {
                    let mut reg = ptr::null_mut();
                    // SAFETY: valid string and out-param; the handle is freed once.
                    unsafe {
                        let st =
                            cargohold_registry_open(reg_root.as_ptr(), &mut reg, ptr::null_mut());
                        assert_eq!(st, cargohold_status::Ok);
                        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
                    }
                }
            });
        }
    });
    let mut list: *mut c_char = ptr::null_mut();
    // SAFETY: live handle and out-param; the list string is freed once.
    unsafe {
        assert_eq!(
            cargohold_volume_list(vs, &mut list, ptr::null_mut()),
            cargohold_status::Ok
        );
        assert_eq!(std::ffi::CStr::from_ptr(list).to_str().unwrap(), "[]");
        cargohold_string_free(list);
        assert_eq!(cargohold_volume_store_free(vs), cargohold_status::Ok);
    }
}
