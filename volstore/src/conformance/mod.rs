//! The contract of [`Driver`], as checks every driver must pass.
//!
//! A driver's test file makes a [`Fixture`] (a fresh, empty driver and a way to see
//! what it left behind) and stamps one `#[test]` per check with
//! [`crate::volume_driver_conformance!`]. Every check ends by removing what it made and
//! asserting the fixture reports nothing left over (no volumes, temporary files,
//! markers or mounts).

use std::path::Path;

use crate::{Driver, ErrorKind, Options};

/// A fresh driver under test.
pub struct Fixture {
    /// The driver.
    pub driver: Box<dyn Driver>,
    /// Everything the driver's storage still holds (files, mounts), described; empty
    /// when it is clean.
    pub leftovers: Box<dyn Fn() -> Vec<String>>,
    /// Whatever must live as long as the driver (temporary directories, servers).
    pub keep: Box<dyn std::any::Any>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn names(d: &dyn Driver) -> Vec<String> {
    d.list().unwrap().into_iter().map(|v| v.name).collect()
}

/// Assert the fixture is clean.
pub fn assert_clean(f: &Fixture) {
    assert_eq!(names(&*f.driver), Vec::<String>::new(), "volumes left");
    let left = (f.leftovers)();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Create, describe, list and remove.
pub fn create_get_list_remove(f: &Fixture) {
    let d = &*f.driver;
    d.create("beta", &Options::new()).unwrap();
    d.create("alpha", &Options::new()).unwrap();
    assert_eq!(names(d), ["alpha", "beta"]);
    let v = d.get("alpha").unwrap();
    assert_eq!(v.name, "alpha");
    if let Some(p) = d.path("alpha").unwrap() {
        assert_eq!(v.mountpoint.as_deref(), Some(p.as_path()));
    }
    d.remove("alpha").unwrap();
    assert_eq!(names(d), ["beta"]);
    assert_eq!(d.get("alpha").unwrap_err().kind(), ErrorKind::NotFound);
    d.remove("beta").unwrap();
    assert_clean(f);
}

/// The same name with the same options is the same volume; with others, an error.
pub fn create_is_idempotent_with_the_same_options(f: &Fixture) {
    let d = &*f.driver;
    let tmpfs = opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]);
    d.create("vol", &Options::new()).unwrap();
    d.create("vol", &Options::new()).unwrap();
    assert_eq!(
        d.create("vol", &tmpfs).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(names(d), ["vol"]);
    d.remove("vol").unwrap();
    assert_clean(f);
}

/// Names Docker refuses are refused before anything is made.
pub fn bad_names_create_nothing(f: &Fixture) {
    let d = &*f.driver;
    let long = "v".repeat(256);
    for bad in [
        "",
        "a",
        "../x",
        "a/b",
        "..",
        ".hidden",
        "-dash",
        "sp ace",
        long.as_str(),
    ] {
        assert_eq!(
            d.create(bad, &Options::new()).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
        for kind in [
            d.get(bad).unwrap_err().kind(),
            d.remove(bad).unwrap_err().kind(),
            d.mount(bad, "id").unwrap_err().kind(),
        ] {
            assert_eq!(kind, ErrorKind::InvalidArgument, "{bad:?}");
        }
    }
    assert_clean(f);
}

/// Unknown options and missing devices are refused before anything is made.
pub fn bad_options_create_nothing(f: &Fixture) {
    let d = &*f.driver;
    let k = |o: &Options| d.create("vol", o).unwrap_err().kind();
    assert_eq!(k(&opts(&[("colour", "blue")])), ErrorKind::InvalidArgument);
    assert_eq!(k(&opts(&[("o", "size=1m")])), ErrorKind::InvalidArgument);
    assert_eq!(
        k(&opts(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", "/nonexistent/cargohold")
        ])),
        ErrorKind::NotFound
    );
    assert_eq!(
        k(&opts(&[
            ("type", "ext4"),
            ("device", "/nonexistent/cargohold.img")
        ])),
        ErrorKind::NotFound
    );
    assert_clean(f);
}

/// Every verb on a missing volume is `NotFound`.
pub fn missing_volumes_are_not_found(f: &Fixture) {
    let d = &*f.driver;
    assert_eq!(d.get("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.remove("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        d.mount("nope", "id").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        d.unmount("nope", "id").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(d.path("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert_clean(f);
}

/// Mounting twice with one id holds once; releasing an id that does not hold fails.
pub fn holders_are_idempotent_per_id(f: &Fixture) {
    let d = &*f.driver;
    d.create("vol", &Options::new()).unwrap();
    let p1 = d.mount("vol", "c1").unwrap();
    let p2 = d.mount("vol", "c1").unwrap();
    assert_eq!(p1, p2);
    d.unmount("vol", "c1").unwrap();
    // Held once, released once: a second release is an error, and removal works.
    assert_eq!(
        d.unmount("vol", "c1").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        d.unmount("vol", "never").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    d.remove("vol").unwrap();
    assert_clean(f);
}

/// A held volume is not removed; the last release makes it removable.
pub fn removal_is_refused_while_held(f: &Fixture) {
    let d = &*f.driver;
    d.create("vol", &Options::new()).unwrap();
    d.mount("vol", "c1").unwrap();
    d.mount("vol", "c2").unwrap();
    assert_eq!(d.remove("vol").unwrap_err().kind(), ErrorKind::InUse);
    d.unmount("vol", "c1").unwrap();
    assert_eq!(d.remove("vol").unwrap_err().kind(), ErrorKind::InUse);
    assert_eq!(names(d), ["vol"]);
    d.unmount("vol", "c2").unwrap();
    d.remove("vol").unwrap();
    assert_clean(f);
}

/// What a holder writes is there for the next holder.
pub fn content_outlives_mounts(f: &Fixture) {
    let d = &*f.driver;
    d.create("vol", &Options::new()).unwrap();
    let p = d.mount("vol", "writer").unwrap();
    std::fs::write(p.join("data.txt"), b"kept").unwrap();
    d.unmount("vol", "writer").unwrap();
    let p = d.mount("vol", "reader").unwrap();
    assert_eq!(
        std::fs::read(Path::new(&p).join("data.txt")).unwrap(),
        b"kept"
    );
    d.unmount("vol", "reader").unwrap();
    d.remove("vol").unwrap();
    assert_clean(f);
}

/// Stamp one `#[test]` per conformance check, each with a fresh fixture from `$make`.
#[macro_export]
macro_rules! volume_driver_conformance {
    ($make:expr) => {
        $crate::volume_driver_conformance!(@each $make;
            create_get_list_remove,
            create_is_idempotent_with_the_same_options,
            bad_names_create_nothing,
            bad_options_create_nothing,
            missing_volumes_are_not_found,
            holders_are_idempotent_per_id,
            removal_is_refused_while_held,
            content_outlives_mounts
        );
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let fixture: $crate::conformance::Fixture = ($make)();
                $crate::conformance::$check(&fixture);
            }
        )*
    };
}

/// A fixture for the local driver in a fresh temporary directory: leftovers are any
/// entry in the store directory and any mount under it.
pub fn local_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("volumes");
    let driver = crate::LocalDriver::open(&store).expect("open local driver");
    let canon = driver.path().to_path_buf();
    Fixture {
        driver: Box::new(driver),
        leftovers: Box::new(move || {
            let mut left: Vec<String> = std::fs::read_dir(&canon)
                .map(|rd| {
                    rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for mp in crate::mounter::mount_points().unwrap_or_default() {
                if mp.starts_with(&canon) {
                    left.push(format!("mount {}", mp.display()));
                }
            }
            left
        }),
        keep: Box::new(dir),
    }
}
