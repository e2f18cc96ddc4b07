//! What reaches the disk: messages, titles, metadata and an attachment written through the
//! wrappers over the local backends and SQLite, then every stored byte read raw (every
//! file under the stores' directories, the SQLite database and its WAL): no plaintext.
//! The same writes without the wrappers are found by the same scan, which proves it looks
//! in the right places.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chatvault_core::{ChatVault, Metadata, NewMessage, Part, Role, UserId};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_sql::SqliteMessages;
use common::{fresh_dir, keyring};

/// Strings that must not appear anywhere in the stores.
const SECRETS: [&str; 7] = [
    "PLAINTEXT-MESSAGE-Zebra",
    "PLAINTEXT-TOOL-ARGS-Quokka",
    "PLAINTEXT-MSG-META-Ibis",
    "PLAINTEXT-TITLE-Okapi",
    "PLAINTEXT-FILENAME-Tapir",
    "PLAINTEXT-ATTACHMENT-Narwhal",
    "PLAINTEXT-FAILURE-Gecko",
];

/// Writes a conversation holding every secret through `vault`.
async fn write_secrets(vault: &ChatVault) {
    let alice: UserId = "alice@example.com".parse().unwrap();
    let mut c = vault.create_conversation(Some(&alice)).await.unwrap();
    c.rename(SECRETS[3]).await.unwrap();
    let mut meta = Metadata::new();
    meta.insert("note".into(), SECRETS[2].into());
    c.add(NewMessage::new(Role::User, SECRETS[0]).with_metadata(meta))
        .await
        .unwrap();
    let call = Part::tool_call("call_1", "lookup", serde_json::json!({"q": SECRETS[1]}));
    let reply = c
        .add(NewMessage::with_parts(Role::Assistant, vec![call]))
        .await
        .unwrap();
    let failed = chatvault_core::MessageUpdate {
        failure: Some(SECRETS[6].into()),
        status: Some(chatvault_core::MessageStatus::Failed),
        ..Default::default()
    };
    c.update_message(&reply.id, reply.revision, &failed)
        .await
        .unwrap();
    // 200 KB: several segments, the secret in each.
    let body = Bytes::from(SECRETS[5].repeat(200_000 / SECRETS[5].len()));
    let name = format!("{}.txt", SECRETS[4]);
    let file = c
        .attach_file(&name, body.clone(), "text/plain")
        .await
        .unwrap();
    let back = c.file_content(&file.id).await.unwrap();
    assert_eq!(
        back,
        Some(body),
        "the attachment reads back through the wrappers"
    );
    let read = c.messages().await.unwrap();
    assert_eq!(read[0].content(), SECRETS[0], "messages read back");
    assert_eq!(read[1].failure.as_deref(), Some(SECRETS[6]));
}

/// Every secret found in the bytes of every file under `dirs`.
fn found(dirs: &[&Path]) -> Vec<&'static str> {
    let mut all = Vec::new();
    for dir in dirs {
        collect(dir, &mut all);
    }
    assert!(!all.is_empty(), "the scan read no bytes");
    SECRETS
        .iter()
        .copied()
        .filter(|s| all.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect()
}

fn collect(path: &Path, out: &mut Vec<u8>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            collect(&entry.unwrap().path(), out);
        }
    } else if path.is_file() {
        out.extend(std::fs::read(path).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_in_clear_on_local_disk() {
    let dir = fresh_dir();
    let store = LocalMessages::open(dir.join("messages")).unwrap();
    let keys = keyring(Arc::new(store.clone()));
    let vault = ChatVault::new(
        EncryptedMessages::new(store, keys.clone()),
        EncryptedFiles::new(LocalFiles::new(dir.join("files")).unwrap(), keys),
    );
    write_secrets(&vault).await;
    assert_eq!(
        found(&[&dir]),
        Vec::<&str>::new(),
        "plaintext in {}",
        dir.display()
    );

    // The control: the same writes in clear are found.
    let clear = fresh_dir();
    let vault = ChatVault::new(
        LocalMessages::open(clear.join("messages")).unwrap(),
        LocalFiles::new(clear.join("files")).unwrap(),
    );
    write_secrets(&vault).await;
    assert_eq!(
        found(&[&clear]),
        SECRETS.to_vec(),
        "the scan finds clear data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_in_clear_in_sqlite_rows() {
    let dir = fresh_dir();
    let url = format!("sqlite://{}", dir.join("chat.db").display());
    let keys = keyring(Arc::new(SqliteMessages::connect(&url).await.unwrap()));
    let vault = ChatVault::new(
        EncryptedMessages::new(SqliteMessages::connect(&url).await.unwrap(), keys.clone()),
        EncryptedFiles::new(LocalFiles::new(dir.join("files")).unwrap(), keys),
    );
    write_secrets(&vault).await;
    assert_eq!(
        found(&[&dir]),
        Vec::<&str>::new(),
        "plaintext in {}",
        dir.display()
    );
    // Every text column of every row, as SQL reads it.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let dump = table_text(&pool).await;
    assert!(dump.len() > 1000, "the rows were read");
    for s in SECRETS {
        assert!(!dump.contains(s), "{s} in a row");
    }

    let clear = fresh_dir();
    let url = format!("sqlite://{}", clear.join("chat.db").display());
    let vault = ChatVault::new(
        SqliteMessages::connect(&url).await.unwrap(),
        LocalFiles::new(clear.join("files")).unwrap(),
    );
    write_secrets(&vault).await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let dump = table_text(&pool).await;
    assert!(
        dump.contains(SECRETS[0]) && dump.contains(SECRETS[3]),
        "the control finds clear rows"
    );
}

/// The text of every column of every row of every table.
async fn table_text(pool: &sqlx::SqlitePool) -> String {
    use sqlx::Row;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = String::new();
    for t in tables {
        // Table names from sqlite_master, quoted: the test's own database.
        let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM \"{t}\""));
        let rows = sqlx::query(sql).fetch_all(pool).await.unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    out.push_str(&text);
                } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
    }
    out
}
