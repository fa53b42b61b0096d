//! Without this, layers applied on an overlay store could lose their whiteouts or
//! opaque directories, so a container on them would see files its image deleted.

use std::io::Cursor;

use layerstore::{ApplyOptions, Driver, DriverChoice, LayerStore};

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if name.ends_with('/') { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn overlay_layers_keep_deletions_and_opaque_dirs() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts overlays and must run as root"
    );
    let t = tempfile::tempdir().unwrap();
    let store = LayerStore::open(t.path().join("store"), DriverChoice::Overlay).unwrap();
    let l1 = store
        .apply_layer(
            &mut Cursor::new(tar_of(&[
                ("etc/", b""),
                ("etc/keep", b"k"),
                ("etc/gone", b"g"),
                ("opq/", b""),
                ("opq/old", b"o"),
            ])),
            None,
            &ApplyOptions::default(),
        )
        .unwrap();
    let l2 = store
        .apply_layer(
            &mut Cursor::new(tar_of(&[
                ("etc/.wh.gone", b""),
                ("opq/", b""),
                ("opq/.wh..wh..opq", b""),
                ("opq/new", b"n"),
            ])),
            Some(&l1.chain_id),
            &ApplyOptions::default(),
        )
        .unwrap();
    let target = t.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    store
        .prepare_container("c", Some(&l2.chain_id), Default::default())
        .unwrap();
    store.mount("c", &target).unwrap();
    let seen = (
        target.join("etc/keep").exists(),
        target.join("etc/gone").exists(),
        target.join("opq/old").exists(),
        target.join("opq/new").exists(),
    );
    store.unmount(&target).unwrap();
    assert_eq!(seen, (true, false, false, true));
    store.remove("c").unwrap();
    store.remove_layer(&l2.chain_id).unwrap();
    store.remove_layer(&l1.chain_id).unwrap();
    assert!(
        layerstore::mounts::mounts_below(t.path())
            .unwrap()
            .is_empty()
    );
}
