//! The `chatvault` binary driven as a user would.
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::path::Path;

use chatvault_core::Role;

mod common;
use common::{chatvault, local_vault, stderr, stdout, two_owner_store};

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_bad_url_is_a_usage_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = chatvault()
        .current_dir(tmp.path())
        .args(["--store", "ftp://nowhere", "stat"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad store URL \"ftp://nowhere\""),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("local:DIR"),
        "names the forms: {}",
        stderr(&out)
    );
    let out = chatvault()
        .current_dir(tmp.path())
        .arg("stat")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("CHATVAULT_STORE"), "{}", stderr(&out));
    let out = chatvault().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(entries(tmp.path()), 0);
}

#[test]
fn a_missing_store_is_unreachable_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for args in [vec!["stat"], vec!["verify"], vec!["ls"]] {
        let out = chatvault()
            .env("CHATVAULT_STORE", format!("local:{}", missing.display()))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot open store"),
            "{}",
            stderr(&out)
        );
    }
    let db = tmp.path().join("none.db");
    let out = chatvault()
        .args(["--store", &format!("sqlite:{}", db.display()), "stat"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(entries(tmp.path()), 0, "nothing was created");
}

#[test]
fn an_unreadable_archive_is_damage_and_the_store_is_not_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.tar");
    std::fs::write(&garbage, vec![0x5a; 3000]).unwrap();
    let dst = tmp.path().join("dst");
    let out = chatvault()
        .args(["--store", &format!("local:{}", dst.display()), "import"])
        .arg(&garbage)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a readable archive"),
        "{}",
        stderr(&out)
    );
    assert!(!dst.exists(), "the destination store was created");

    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let out = chatvault()
        .args(["--store", &format!("local:{}", dst.display()), "import"])
        .arg(&empty_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no manifest.json"),
        "{}",
        stderr(&out)
    );
    let out = chatvault()
        .args(["--store", "memory:", "import", "/no/such/archive"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!dst.exists());
}

#[test]
fn stat_ls_show_export_import_copy_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let src = two_owner_store(&tmp.path().join("src"));
    let out = chatvault()
        .args(["--store", &src, "stat", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stat: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(stat["conversations"], 2);
    assert_eq!(stat["messages"], 5);
    assert_eq!(stat["attachment_bytes"], 5_000);
    assert_eq!(stat["owners"], 2);

    let out = chatvault()
        .args(["--store", &src, "ls", "--owner", "alice", "--json"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let id = lines[0]["id"].as_str().unwrap().to_owned();
    let out = chatvault()
        .args(["--store", &src, "show", &id, "-n", "2"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("[2] user: alice says 1") && text.contains("[3] user: alice says 2"),
        "{text}"
    );
    assert!(!text.contains("[1] "), "only the last 2: {text}");

    let archive = tmp.path().join("backup.tar");
    let out = chatvault()
        .args(["--store", &src, "export", "-o"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exported 2 conversations, 5 messages"),
        "{}",
        stderr(&out)
    );

    let db = format!("sqlite:{}", tmp.path().join("app.db").display());
    let out = chatvault()
        .args(["--store", &db, "import"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("added 2 conversations"),
        "{}",
        stderr(&out)
    );
    let out = chatvault()
        .args(["--store", &db, "import"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to add"), "{}", stderr(&out));

    let db2 = format!("sqlite:{}", tmp.path().join("copy.db").display());
    let out = chatvault().args(["copy", &src, &db2]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = chatvault().args(["copy", &src, &db2]).output().unwrap();
    assert!(stderr(&out).contains("nothing to add"), "{}", stderr(&out));

    let out = chatvault()
        .args(["--store", &db2, "verify", "--read-blobs", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        (report["clean"].as_bool(), report["messages"].as_u64()),
        (Some(true), Some(5))
    );

    // Damage: one attachment's bytes changed.
    let files_dir = tmp.path().join("copy.db.files");
    let blob = find_file(&files_dir.join("data")).expect("an attachment file");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let out = chatvault()
        .args(["--store", &db2, "verify"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "same size: only --read-blobs sees it"
    );
    let out = chatvault()
        .args(["--store", &db2, "verify", "--read-blobs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(stdout(&out).contains("DAMAGE"), "{}", stdout(&out));
    let out = chatvault()
        .args(["verify", "--archive"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn find_file(dir: &Path) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_file() {
            return Some(path);
        }
        if let Some(found) = find_file(&path) {
            return Some(found);
        }
    }
    None
}

/// The exported conversations' ids, from a directory archive's conversation files.
fn exported_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("conversations"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let head: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            head["record"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn export_since_keeps_the_conversations_active_since() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let src = two_owner_store(&dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let since = chatvault_core::backend::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Bob's conversation gets a message after `since`; Alice's does not.
    let bob_id = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let vault = local_vault(&dir);
        let bob = "bob".parse().unwrap();
        let page = vault
            .list_conversations(&bob, &chatvault_core::ListOptions::new())
            .await
            .unwrap();
        let mut c = vault
            .get_conversation(&page.items[0].id)
            .await
            .unwrap()
            .unwrap();
        c.add_message(Role::User, "bob again").await.unwrap();
        c.id().to_string()
    });
    let export = |name: &str, since: &str| {
        let out = chatvault()
            .args(["--store", &src, "export", "--since", since, "-o"])
            .arg(tmp.path().join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{since}: {}", stderr(&out));
        out
    };
    let out = export("rfc3339", &since.to_rfc3339());
    assert!(
        stderr(&out).contains("exported 1 conversations, 3 messages, 0 attachments"),
        "{}",
        stderr(&out)
    );
    assert_eq!(exported_ids(&tmp.path().join("rfc3339")), [bob_id]);
    // A date is its midnight UTC.
    export("old-date", "2000-01-01");
    assert_eq!(exported_ids(&tmp.path().join("old-date")).len(), 2);
    let out = export("future-date", "2999-12-31");
    assert!(
        stderr(&out).contains("exported 0 conversations"),
        "{}",
        stderr(&out)
    );
    // With an offset: the same instant.
    let offset = since
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    export("offset", &offset);
    assert_eq!(exported_ids(&tmp.path().join("offset")).len(), 1);

    for bad in [
        vec!["--since", "yesterday"],
        vec!["--since", "2025-13-01"],
        vec!["--since", "2025-01-01", "--conversation", "x"],
    ] {
        let out = chatvault()
            .args(["--store", &src, "export", "-o"])
            .arg(tmp.path().join("bad"))
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(!tmp.path().join("bad").exists(), "{bad:?} wrote an export");
    }
    let out = chatvault()
        .args(["--store", &src, "export", "--since", "yesterday"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
}
