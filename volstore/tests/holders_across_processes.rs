//! Holders are exact when many processes share one store, and `open` cleans up what a
//! crash or a reboot left; without these, a volume could be unmounted under a running
//! container, stay mounted forever, be populated twice, or be created twice.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use volstore::{Driver, LocalDriver, Options};

const ROLE: &str = "CARGOHOLD_TEST_CHILD_ROLE";
const STORE: &str = "CARGOHOLD_TEST_CHILD_STORE";
const ARG: &str = "CARGOHOLD_TEST_CHILD_ARG";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests mount tmpfs: run them as root"
    );
}

fn tmpfs() -> Options {
    [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=4m")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mounted(p: &Path) -> bool {
    volstore::mounter::mount_points().unwrap().contains(p)
}

/// Run the child role if this process is a child; returns whether it was.
fn child() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let d = LocalDriver::open(std::env::var_os(STORE).unwrap()).unwrap();
    let arg = std::env::var(ARG).unwrap();
    match role.as_str() {
        "churn" => {
            for i in 0..15 {
                let id = format!("{arg}-{i}");
                d.mount("shared", &id).unwrap();
                d.mount("shared", &id).unwrap();
                d.unmount("shared", &id).unwrap();
            }
        }
        "populate" => {
            let copied = d.populate("seeded", Path::new(&arg)).unwrap();
            println!("copied={copied}");
        }
        "create" => {
            let mut o = Options::new();
            if arg == "tmpfs" {
                o = tmpfs();
            }
            match d.create("raced", &o) {
                Ok(()) => println!("created=ok"),
                Err(e) => println!("created={}", e.kind().as_str()),
            }
        }
        other => panic!("unknown role {other}"),
    }
    true
}

fn spawn(test: &str, store: &Path, role: &str, arg: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(STORE, store)
        .env(ARG, arg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The value the child printed after `key=`.
fn reported(child: Child, key: &str) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {text}");
    let at = text.find(&format!("{key}=")).expect("child reported") + key.len() + 1;
    text[at..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn holders_are_exact_across_processes() {
    if child() {
        return;
    }
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("volumes");
    let d = LocalDriver::open(&store).unwrap();
    d.create("shared", &tmpfs()).unwrap();
    let p = d.mount("shared", "parent").unwrap();
    std::fs::write(p.join("keep"), b"held all along").unwrap();
    let kids: Vec<Child> = (0..4)
        .map(|i| {
            spawn(
                "holders_are_exact_across_processes",
                &store,
                "churn",
                &format!("k{i}"),
            )
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
    }
    // 120 mounts and unmounts by four processes left exactly the parent's hold, and
    // never unmounted the tmpfs under it.
    assert_eq!(d.inspect("shared").unwrap().holders, ["parent"]);
    assert_eq!(std::fs::read(p.join("keep")).unwrap(), b"held all along");
    d.unmount("shared", "parent").unwrap();
    assert!(!mounted(&p));
    d.remove("shared").unwrap();
}

#[test]
fn two_first_uses_populate_once() {
    if child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("volumes");
    let src = dir.path().join("image-content");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    for i in 0..200 {
        std::fs::write(src.join(format!("etc/f{i}")), vec![b'x'; 2048]).unwrap();
    }
    let d = LocalDriver::open(&store).unwrap();
    d.create("seeded", &Options::new()).unwrap();
    let src_s = src.to_str().unwrap();
    let a = spawn("two_first_uses_populate_once", &store, "populate", src_s);
    let b = spawn("two_first_uses_populate_once", &store, "populate", src_s);
    let mut results = vec![reported(a, "copied"), reported(b, "copied")];
    results.sort();
    assert_eq!(results, ["false", "true"]);
    let data = d.data_path("seeded");
    assert_eq!(std::fs::read_dir(data.join("etc")).unwrap().count(), 200);
    // Later first uses do nothing, even after the content was emptied.
    std::fs::remove_dir_all(data.join("etc")).unwrap();
    assert!(!d.populate("seeded", &src).unwrap());
    assert!(!data.join("etc").exists());
}

#[test]
fn racing_creators_agree() {
    if child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("volumes");
    let _d = LocalDriver::open(&store).unwrap();
    let same: Vec<Child> = (0..4)
        .map(|_| spawn("racing_creators_agree", &store, "create", "plain"))
        .collect();
    for k in same {
        assert_eq!(reported(k, "created"), "ok");
    }
    let other = spawn("racing_creators_agree", &store, "create", "tmpfs");
    assert_eq!(reported(other, "created"), "already_exists");
    let names: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["raced"], "no temporary directory left");
}

#[test]
fn open_drops_holders_a_reboot_or_a_lost_mount_left() {
    if child() {
        return;
    }
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("volumes");
    let d = LocalDriver::open(&store).unwrap();
    d.create("lost", &tmpfs()).unwrap();
    d.create("old", &Options::new()).unwrap();
    d.create("fine", &Options::new()).unwrap();
    let lost = d.mount("lost", "c-lost").unwrap();
    d.mount("old", "c-old").unwrap();
    d.mount("fine", "c-fine").unwrap();
    drop(d);
    // What a crash and a reboot leave: the tmpfs gone under its holder, and a holder
    // recorded in another boot.
    rustix::mount::unmount(&lost, rustix::mount::UnmountFlags::empty()).unwrap();
    let state_file = store.join("old/cargohold-holders.json");
    let mut st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    st["boot_id"] = serde_json::json!("00000000-0000-0000-0000-000000000000");
    std::fs::write(&state_file, serde_json::to_vec(&st).unwrap()).unwrap();

    let d = LocalDriver::open(&store).unwrap();
    let mut stale: Vec<_> = d
        .stale()
        .iter()
        .map(|s| (s.volume.clone(), s.holders.clone()))
        .collect();
    stale.sort();
    assert_eq!(
        stale,
        [
            ("lost".to_string(), vec!["c-lost".to_string()]),
            ("old".to_string(), vec!["c-old".to_string()])
        ]
    );
    assert!(d.inspect("lost").unwrap().holders.is_empty());
    assert!(d.inspect("old").unwrap().holders.is_empty());
    assert_eq!(d.inspect("fine").unwrap().holders, ["c-fine"]);
    d.remove("lost").unwrap();
    d.remove("old").unwrap();
    d.unmount("fine", "c-fine").unwrap();
    d.remove("fine").unwrap();
}

#[test]
fn open_unmounts_a_volume_mount_nobody_holds() {
    if child() {
        return;
    }
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("volumes");
    let d = LocalDriver::open(&store).unwrap();
    d.create("orphan", &tmpfs()).unwrap();
    let data = d.data_path("orphan");
    drop(d);
    // A process killed between its mount and its state write leaves this.
    rustix::mount::mount(
        "tmpfs",
        &data,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    let d = LocalDriver::open(&store).unwrap();
    assert_eq!(d.stale().len(), 1);
    assert_eq!(d.stale()[0].volume, "orphan");
    assert!(!mounted(&data));
    d.remove("orphan").unwrap();
}

#[test]
fn a_holders_file_a_power_loss_tore_reads_as_no_holders() {
    if child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("volumes");
    let d = LocalDriver::open(&store).unwrap();
    let req = volstore::local::CreateRequest {
        labels: [("app".to_string(), "db".to_string())].into(),
        ..Default::default()
    };
    d.create_volume(Some("torn"), &req).unwrap();
    d.mount("torn", "c1").unwrap();
    drop(d);
    // What a power cut right after a holder change can leave: the rename reached the
    // disk, the data did not.
    std::fs::write(store.join("torn/cargohold-holders.json"), b"").unwrap();
    let d = LocalDriver::open(&store).unwrap();
    let info = d.inspect("torn").unwrap();
    assert!(info.holders.is_empty());
    assert_eq!(info.labels.get("app").map(String::as_str), Some("db"));
    d.remove("torn").unwrap();
}
