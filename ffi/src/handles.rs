//! The table of live handles: every handle given to C is recorded here until its
//! `_free`, so a NULL, stale, foreign or double-freed handle is `INVALID_ARGUMENT`
//! instead of undefined behaviour.

use std::any::TypeId;
use std::collections::HashSet;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use cargohold_core::{Error, ErrorKind, Result};

type Table = Option<HashSet<(usize, TypeId)>>;

/// Read-locked by every call (calls on many threads check handles at once),
/// write-locked only by `_open` and `_free`.
static LIVE: RwLock<Table> = RwLock::new(None);

fn live() -> RwLockWriteGuard<'static, Table> {
    // A poisoned table is still a valid set: nothing panics while holding it.
    LIVE.write().unwrap_or_else(|p| p.into_inner())
}

fn live_read() -> RwLockReadGuard<'static, Table> {
    LIVE.read().unwrap_or_else(|p| p.into_inner())
}

/// Box `value`, record it as live and return the pointer handed to C.
pub(crate) fn register<T: 'static>(value: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    live()
        .get_or_insert_with(HashSet::new)
        .insert((ptr as usize, TypeId::of::<T>()));
    ptr
}

fn is_live<T: 'static>(ptr: *const T) -> bool {
    live_read()
        .as_ref()
        .is_some_and(|s| s.contains(&(ptr as usize, TypeId::of::<T>())))
}

/// Borrow the live handle `ptr` of type `T`.
///
/// # Safety
/// The caller must not free the handle while the borrow is in use (the C contract:
/// no `_free` concurrent with another call on the same handle).
pub(crate) unsafe fn borrow<'a, T: 'static>(ptr: *const T, what: &str) -> Result<&'a T> {
    if ptr.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "handle",
            what,
            "NULL handle",
        ));
    }
    if !is_live(ptr) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "handle",
            what,
            "not a live handle (freed, or never made by cargohold)",
        ));
    }
    // SAFETY: `ptr` came from `register::<T>` and has not been released (it is in the
    // live table), so it points to a valid `T` that outlives this call by contract.
    Ok(unsafe { &*ptr })
}

/// Release the handle `ptr`: `Ok` for NULL or a live handle (now dropped),
/// `InvalidArgument` for anything else (a double free), which is left untouched.
pub(crate) fn release<T: 'static>(ptr: *mut T, what: &str) -> Result<()> {
    if ptr.is_null() {
        return Ok(());
    }
    let removed = {
        let mut table = live();
        let removed = table
            .as_mut()
            .is_some_and(|s| s.remove(&(ptr as usize, TypeId::of::<T>())));
        if table.as_ref().is_some_and(HashSet::is_empty) {
            // No handle is live: free the table, so a program that freed every handle
            // leaves nothing allocated by cargohold at exit (valgrind checks this).
            *table = None;
        }
        removed
    };
    if !removed {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "free",
            what,
            "not a live handle (already freed, or never made by cargohold)",
        ));
    }
    // SAFETY: the pointer was made by `Box::into_raw` in `register::<T>` and was live;
    // removing it from the table first makes this the only release.
    drop(unsafe { Box::from_raw(ptr) });
    Ok(())
}
