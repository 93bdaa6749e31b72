//! `scripts/install.sh` stages a correct installation that `hearth doctor
//! --json` passes, and doctor fails with the right check id when the store
//! key is made world-readable or the daemon's unit loses its network
//! isolation.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn doctor(root: &Path) -> (i32, Value) {
    let o = common::run(common::hearth(&[
        "doctor",
        "--root",
        root.to_str().unwrap(),
        "--json",
        "--quick",
    ]));
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", common::stderr(&o)));
    (o.status.code().unwrap(), v)
}

fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_staged_install_passes_and_a_readable_key_fails_by_id() {
    let root = tempfile::tempdir().unwrap();
    let o = Command::new(common::root().join("scripts/install.sh"))
        .args(["--root", root.path().to_str().unwrap()])
        .args(["--owner", "+4915112345678", "--no-models"])
        .env("HEARTH", env!("CARGO_BIN_EXE_hearth"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    // The models the checkout has, in place of a copy.
    let models = root.path().join("var/lib/hearth/models");
    std::fs::remove_dir(&models).unwrap();
    std::os::unix::fs::symlink(common::models_dir(), &models).unwrap();

    let (code, v) = doctor(root.path());
    assert_eq!(failed(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!((code, v["ok"].clone()), (0, Value::Bool(true)));
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "key.store.mode",
        "key.bridge.mode",
        "units.serve",
        "models.hashes",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }

    let key = root.path().join("etc/hearth/store.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, v) = doctor(root.path());
    assert_eq!(code, 1);
    assert_eq!(v["ok"], false);
    assert_eq!(failed(&v), ["key.store.mode"]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A daemon unit that lets serve reach the network.
    let unit = root.path().join("etc/systemd/system/hearth.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("PrivateNetwork=yes\n", "")).unwrap();
    let (code, v) = doctor(root.path());
    assert_eq!(code, 1);
    assert!(failed(&v).contains(&"serve.network".to_string()), "{v:#}");
}
