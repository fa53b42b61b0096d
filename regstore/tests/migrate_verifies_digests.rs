//! Without these, `migrate` could copy a store between backends losing files, putting
//! links before the blobs they name, or carrying a corrupt blob across unnoticed.

mod image_support;

use std::sync::Arc;

use cargohold_core::{Digest, ErrorKind};
use regstore::drivers::{Filesystem, Memory, open_location};
use regstore::migrate::migrate;
use regstore::{Key, Registry, StorageDriver, layout};

/// A registry with one tagged image (config + one layer) and an upload in progress.
fn populated(driver: Arc<dyn StorageDriver>) -> (Registry, Digest, String) {
    let reg = Registry::on(driver);
    let (md, _) = image_support::image(&reg, "lib/app", "v1", &vec![7u8; 300_000]);
    let up = reg.start_upload("lib/app").unwrap();
    up.append(0, &b"half a layer"[..]).unwrap();
    (reg, md, up.id().to_owned())
}

fn files(d: &dyn StorageDriver) -> Vec<(Key, Vec<u8>)> {
    d.walk(&Key::root())
        .unwrap()
        .into_iter()
        .filter(|i| !i.is_dir)
        .map(|i| {
            let bytes = d.get_content(&i.key).unwrap();
            (i.key, bytes)
        })
        .collect()
}

#[test]
fn a_store_crosses_backends_whole_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (src, md, upload) = populated(Arc::new(Memory::new()));
    let fs = Filesystem::new(dir.path().join("reg")).unwrap();
    let report = migrate(src.driver(), &fs).unwrap();
    assert_eq!(report.blobs, 3, "config, layer and manifest");
    assert_eq!(files(src.driver()), files(&fs));

    // And back again into a third backend: the image and the upload work there.
    let back = Memory::new();
    migrate(&fs, &back).unwrap();
    let reg = Registry::open(back);
    assert_eq!(reg.resolve_tag("lib/app", "v1").unwrap(), md);
    let got = reg.get_manifest("lib/app", "v1").unwrap();
    assert_eq!(Digest::sha256(&got.bytes), md);
    let up = reg.resume_upload("lib/app", &upload).unwrap();
    assert_eq!(up.status().unwrap().offset, 12);

    // A second run finds every blob there and copies none of them again.
    let again = migrate(src.driver(), &fs).unwrap();
    assert_eq!((again.blobs, again.blobs_skipped), (0, 3));
}

#[test]
fn a_corrupt_blob_stops_the_copy_and_is_not_kept() {
    let (src, _, _) = populated(Arc::new(Memory::new()));
    // Flip the layer's bytes in place (same size): its key no longer names its content.
    let layer = Digest::sha256(&vec![7u8; 300_000]);
    let key = layout::blob_data(&layer);
    src.driver().put_content(&key, &vec![8u8; 300_000]).unwrap();
    let dst = Memory::new();
    let e = migrate(src.driver(), &dst).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    assert_eq!(dst.stat(&key).unwrap_err().kind(), ErrorKind::NotFound);
    // Blobs go first: no link reached the destination.
    let links: Vec<_> = dst
        .walk(&Key::root())
        .map(|all| {
            all.into_iter()
                .filter(|i| i.key.as_str().ends_with("/link"))
                .collect()
        })
        .unwrap_or_else(|_| Vec::new());
    assert!(links.is_empty(), "{links:?}");
}

#[test]
fn locations_name_their_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg");
    let d = open_location(path.to_str().unwrap()).unwrap();
    assert_eq!(d.name(), "filesystem");
    assert!(path.is_dir());
    for bad in ["s3://", "s3:///prefix"] {
        assert_eq!(
            open_location(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
}
