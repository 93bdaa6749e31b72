//! Transparency: `/privacy` and `hearth privacy` report what is stored and
//! where the keys are; `hearth export` writes everything (JSON and the
//! bridge's media) into a private zip and audits it.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use common::daemon::{kill, next_text, open, say, start_serve};
use common::{hearth_with_store, run};

#[test]
fn privacy_reports_and_export_takes_everything() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[retention]\nmessages_days = 30\n",
    )
    .unwrap();
    let serve = start_serve(dir.path());
    let (mut cli, mut r) = open(dir.path(), "cli");
    say(
        &mut cli,
        "cli:owner",
        "1",
        "/remind in 3 hours water the ficus",
    );
    assert!(next_text(&mut r).starts_with("Reminder 1 set"));
    say(&mut cli, "cli:owner", "2", "/privacy");
    let report = next_text(&mut r);
    for want in [
        "message(s) in conversations with Hearth",
        "kept 30 days",
        "1 reminder(s) pending",
        "hearth serve has no network at all",
        "(a 0600 file)",
    ] {
        assert!(report.contains(want), "{want} missing from {report}");
    }
    kill(serve);

    let o = run(hearth_with_store(dir.path(), "key", &["privacy", "--json"]));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stored"]["conversation_messages"], 4, "{v:#}");
    assert_eq!(v["retention"]["messages_days"], 30);

    // A picture the bridge saved.
    let inbox = dir.path().join("bridge/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("m1.jpg"), b"\xff\xd8jpeg bytes").unwrap();
    let zip_path = dir.path().join("out.zip");
    let out = zip_path.to_str().unwrap();
    let o = run(hearth_with_store(dir.path(), "key", &["export", "-o", out]));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let mode = std::fs::metadata(&zip_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut read = |name: &str| {
        let mut s = Vec::new();
        zip.by_name(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .read_to_end(&mut s)
            .unwrap();
        s
    };
    let messages = String::from_utf8(read("messages.json")).unwrap();
    assert!(messages.contains("water the ficus"), "{messages}");
    let reminders = String::from_utf8(read("reminders.json")).unwrap();
    assert!(reminders.contains("\"state\": \"pending\""), "{reminders}");
    assert_eq!(read("media/m1.jpg"), b"\xff\xd8jpeg bytes");
    let manifest: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    assert_eq!(manifest["format"], "hearth-export-1");
    assert!(
        manifest["audit"]
            .as_str()
            .unwrap()
            .starts_with("audit log intact")
    );
    for name in ["documents.json", "senders.json", "audit.json"] {
        read(name);
    }
    // Never overwritten; the export is audited.
    let again = run(hearth_with_store(dir.path(), "key", &["export", "-o", out]));
    assert_eq!(again.status.code(), Some(2));
    let o = run(hearth_with_store(
        dir.path(),
        "key",
        &["audit", "tail", "-n", "1", "--json"],
    ));
    let last: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(last["action"], "exported");
}

/// A box where nothing has been stored yet (no key, no database): the
/// commands a new owner tries first say so and exit 0, and create nothing.
#[test]
fn a_fresh_box_has_nothing_to_report_audit_or_export() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["audit", "verify"][..],
        &["audit", "tail"],
        &["privacy"],
        &["export", "-o"],
    ] {
        let mut args = args.to_vec();
        let zip = dir.path().join("out.zip");
        let zip = zip.to_str().unwrap();
        if args == ["export", "-o"] {
            args.push(zip);
        }
        let o = hearth_with_store(dir.path(), "key", &args)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.starts_with("Nothing is stored yet: "),
            "{args:?}: {out}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "a fresh box's commands created {left:?}");
}

/// Under systemd the store key arrives as a credential, which systemd
/// makes mode 0440 in a directory only the unit may enter: it is accepted
/// there (the boot test found the daemon refusing it), and the same mode
/// anywhere else is still refused.
#[test]
fn a_group_readable_systemd_credential_opens_the_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let paths = hearth::paths::Paths {
        data_dir: dir.path().join("data"),
        key_file: creds.join("store.key"),
    };
    drop(hearth::store::Store::open(&paths, hearth::store::Create::IfMissing).unwrap());
    std::fs::set_permissions(&paths.key_file, std::fs::Permissions::from_mode(0o440)).unwrap();
    let privacy = || {
        let mut c = common::hearth(&["privacy"]);
        c.env("HEARTH_DATA_DIR", &paths.data_dir)
            .env("HEARTH_CONFIG", dir.path().join("config.toml"))
            .env_remove("HEARTH_KEY_FILE");
        c
    };
    let mut c = privacy();
    c.env("CREDENTIALS_DIRECTORY", &creds);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    // The same file named as a plain key file: the group bit counts.
    let mut c = privacy();
    c.env_remove("CREDENTIALS_DIRECTORY")
        .env("HEARTH_KEY_FILE", &paths.key_file);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("can be read by other users"),
        "{}",
        common::stderr(&o)
    );
}
