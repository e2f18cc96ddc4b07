//! Encrypted stores driven as a user would: `--key-store` with the master key in
//! `CHATVAULT_MASTER_KEY` reads and writes through chatvault-crypt's wrappers;
//! `rotate-key` and `shred` manage the owners' data keys. What the store holds on disk
//! is read back raw; key versions are checked through the library's `Keyring`.
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault_core::{ChatVault, Role, UserId};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring, StaticKeyProvider};
use chatvault_local::{LocalFiles, LocalMessages};
use serde_json::Value;

mod common;
use common::{chatvault, files_under, local_vault, run, run_json};

/// The master key, as `CHATVAULT_MASTER_KEY` holds it: 64 hex digits of the bytes below.
const MASTER_HEX: &str = "abababababababababababababababababababababababababababababababab";
const MASTER: [u8; 32] = [0xab; 32];
/// Words that must never be on disk in clear: in a message, and in an attachment.
const SECRET: &str = "zebra-quartz-7149-lighthouse";
const FILE_SECRET: &str = "ocelot-basalt-0388-harbour";

/// A data store `DIR/data` and its key store `DIR/keys`, both local.
struct Paths {
    data: PathBuf,
    keys: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Self {
        Paths {
            data: dir.join("data"),
            keys: dir.join("keys"),
        }
    }

    fn url(&self) -> String {
        format!("local:{}", self.data.display())
    }

    fn key_url(&self) -> String {
        format!("local:{}", self.keys.display())
    }

    /// The keyring over the key store, as the command builds it.
    fn keyring(&self) -> Keyring {
        let store = LocalMessages::open(self.keys.join("messages")).unwrap();
        Keyring::new(Arc::new(store), StaticKeyProvider::new(MASTER))
    }

    /// A vault over the data store, sealed with the key store's keys.
    fn vault(&self) -> ChatVault {
        let keyring = self.keyring();
        ChatVault::new(
            EncryptedMessages::new(
                LocalMessages::open(self.data.join("messages")).unwrap(),
                keyring.clone(),
            ),
            EncryptedFiles::new(LocalFiles::new(self.data.join("files")).unwrap(), keyring),
        )
    }

    /// Runs `chatvault --store DATA --key-store KEYS ARGS..` with the master key.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let key_url = self.key_url();
        run_with_key(&self.url(), &key_url, args)
    }

    /// [`run`](Self::run) of a verb with `--json` that must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.run(&[args, &["--json"]].concat());
        assert_eq!(code, Some(0), "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }
}

/// Runs `chatvault --store URL --key-store KEYS ARGS..` with the master key set.
fn run_with_key(url: &str, key_store: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = chatvault()
        .env("CHATVAULT_MASTER_KEY", MASTER_HEX)
        .args(["--store", url, "--key-store", key_store])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// Writes, through `vault`, a conversation of `owner`'s: the secret (which also titles
/// it), an attachment holding the file secret, a reply. Returns its id.
async fn write_chat(vault: &ChatVault, owner: &str) -> String {
    let owner: UserId = owner.parse().unwrap();
    let mut c = vault.create_conversation(Some(&owner)).await.unwrap();
    c.add_message(Role::User, format!("my locker code is {SECRET}"))
        .await
        .unwrap();
    c.attach_file("code.txt", FILE_SECRET.as_bytes().to_vec(), "text/plain")
        .await
        .unwrap();
    c.add_message(Role::Assistant, format!("{owner}: noted"))
        .await
        .unwrap();
    c.id().to_string()
}

/// Asserts that no file was added, removed or changed, naming those that were; but for
/// a local store's listing index (`messages/index/`), which a listing compacts: derived
/// from the conversations, not data.
fn assert_unchanged(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) {
    let paths = before.keys().chain(after.keys());
    let changed: std::collections::BTreeSet<_> = paths
        .filter(|p| !p.parent().is_some_and(|d| d.ends_with("messages/index")))
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(changed.is_empty(), "changed: {changed:?}");
}

/// The files under `dir` whose bytes hold `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let needle = needle.as_bytes();
    let files = files_under(dir).into_iter();
    files
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(path, _)| path)
        .collect()
}

/// Asserts that the store in `dir` holds neither secret in clear, and that it holds
/// files (so that the search could have found them).
fn assert_no_plaintext(dir: &Path) {
    assert!(files_under(dir).len() > 3, "{}", dir.display());
    assert_eq!(holding(dir, SECRET), Vec::<PathBuf>::new());
    assert_eq!(holding(dir, FILE_SECRET), Vec::<PathBuf>::new());
}

#[test]
fn show_reads_through_the_key_and_the_store_holds_no_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(tmp.path());
    let id = block_on(write_chat(&paths.vault(), "alice"));

    let (code, out, err) = paths.run(&["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("[1] user: my locker code is {SECRET}")),
        "{out}"
    );
    assert!(out.contains("[2] assistant: alice: noted"), "{out}");
    assert!(out.contains("code.txt"), "{out}");
    let (code, out, err) = paths.run(&["ls"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("my locker code is {SECRET}")),
        "the title: {out}"
    );
    // The attachment's bytes come back through the key: an archive export holds them.
    let export = tmp.path().join("export");
    let (code, _, err) = paths.run(&["export", "-o", export.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!holding(&export, FILE_SECRET).is_empty());

    assert_no_plaintext(&paths.data);
    // Without the key the command sees only what is stored.
    let (code, out, err) = run(&paths.url(), &["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains(SECRET), "{out}");
    assert!(!out.contains("alice: noted"), "{out}");
}

#[test]
fn rotate_key_with_reencrypt_advances_the_version_and_everything_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(tmp.path());
    let id = block_on(write_chat(&paths.vault(), "alice"));
    let alice: UserId = "alice".parse().unwrap();
    assert_eq!(
        block_on(paths.keyring().current_version(Some(&alice))).unwrap(),
        Some(1)
    );

    let report = paths.json(&["rotate-key", "--owner", "alice", "--reencrypt"]);
    assert_eq!(report["dry_run"], false, "{report}");
    let owners = report["owners"].as_array().unwrap();
    assert_eq!(owners.len(), 1, "{report}");
    let alice_report = &owners[0];
    assert_eq!(alice_report["owner"], "alice");
    assert_eq!(alice_report["version"], 1);
    assert_eq!(alice_report["new_version"], 2);
    assert_eq!(alice_report["conversations"], 1);
    let re = &alice_report["reencrypted"];
    assert_eq!(re["conversations"], 1, "{report}");
    assert_eq!(re["messages"], 2, "both messages sealed again: {report}");
    assert_eq!(re["titles"], 1, "{report}");
    assert_eq!(re["files"], 1, "{report}");
    assert_eq!(re["conflicts"], 0, "{report}");

    assert_eq!(
        block_on(paths.keyring().current_version(Some(&alice))).unwrap(),
        Some(2)
    );
    let (code, out, err) = paths.run(&["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("my locker code is {SECRET}")),
        "{out}"
    );
    assert!(out.contains("alice: noted"), "{out}");
    let conv = id.parse().unwrap();
    let bytes = block_on(async {
        let c = paths
            .vault()
            .get_conversation(&conv)
            .await
            .unwrap()
            .unwrap();
        let file = c.files()[0].id.clone();
        c.file_content(&file).await.unwrap().unwrap()
    });
    assert_eq!(&bytes[..], FILE_SECRET.as_bytes());
    assert_no_plaintext(&paths.data);

    // Without --reencrypt, the text report: the key moves on, the data stays.
    let (code, out, err) = paths.run(&["rotate-key", "--owner", "alice"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "alice: rotated the data key from version 2 to 3 (1 conversations)\n"
    );
}

#[test]
fn rotate_key_dry_run_says_what_it_would_do_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(tmp.path());
    block_on(write_chat(&paths.vault(), "alice"));
    let before = files_under(tmp.path());

    let args = ["rotate-key", "--owner", "alice", "--reencrypt", "--dry-run"];
    let (code, out, err) = paths.run(&args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "alice: would rotate the data key from version 1 (1 conversations), then \
         re-encrypt them\n"
    );
    let report = paths.json(&args);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["owners"][0]["version"], 1);
    assert_eq!(report["owners"][0]["conversations"], 1);
    assert!(report["owners"][0]["new_version"].is_null(), "{report}");
    assert!(report["owners"][0]["reencrypted"].is_null(), "{report}");

    assert_unchanged(&before, &files_under(tmp.path()));
    let alice: UserId = "alice".parse().unwrap();
    assert_eq!(
        block_on(paths.keyring().current_version(Some(&alice))).unwrap(),
        Some(1)
    );
}

#[test]
fn rotate_key_all_owners_rotates_each_and_an_unknown_owner_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(tmp.path());
    block_on(async {
        let vault = paths.vault();
        write_chat(&vault, "alice").await;
        write_chat(&vault, "alice").await;
        write_chat(&vault, "bob").await;
    });
    let report = paths.json(&["rotate-key", "--all-owners"]);
    let owners = report["owners"].as_array().unwrap();
    let got: Vec<_> = owners
        .iter()
        .map(|o| {
            (
                o["owner"].clone(),
                o["conversations"].clone(),
                o["new_version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("alice".into(), 2.into(), 2.into()),
            ("bob".into(), 1.into(), 2.into())
        ],
        "{report}"
    );

    let (code, out, err) = paths.run(&["rotate-key", "--owner", "carol"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("carol has none"), "{err}");
    let carol: UserId = "carol".parse().unwrap();
    assert_eq!(
        block_on(paths.keyring().current_version(Some(&carol))).unwrap(),
        None,
        "no key was made for carol"
    );
    // Exactly one of --owner and --all-owners.
    let (code, _, err) = paths.run(&["rotate-key"]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn without_the_master_key_or_a_key_store_the_command_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(tmp.path());
    let id = block_on(write_chat(&paths.vault(), "alice"));
    let before = files_under(tmp.path());

    // --key-store without CHATVAULT_MASTER_KEY (the helper clears it).
    let (code, out, err) = run(
        &paths.url(),
        &["--key-store", &paths.key_url(), "show", &id],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("CHATVAULT_MASTER_KEY is not set"), "{err}");
    // A malformed one: the error says what is expected, never the value.
    let out = chatvault()
        .env("CHATVAULT_MASTER_KEY", "not-a-key-0123")
        .args(["--store", &paths.url(), "--key-store", &paths.key_url()])
        .args(["show", &id])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("64 hex digits"), "{err}");
    assert!(!err.contains("not-a-key-0123"), "{err}");
    // A store to create is not created without the key.
    let new = tmp.path().join("new");
    let new_url = format!("local:{}", new.display());
    let export = tmp.path().join("x.tar");
    let (code, _, err) = paths.run(&["export", "-o", export.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(
        &new_url,
        &["--key-store", "same", "import", export.to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(!new.exists());
    std::fs::remove_file(&export).unwrap();

    // rotate-key and shred on a store without --key-store.
    for verb in [
        &["rotate-key", "--owner", "alice"][..],
        &["shred", "--owner", "alice"],
    ] {
        let (code, _, err) = run(&paths.url(), verb);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("needs an encrypted store"), "{err}");
    }
    // A key store that does not exist, for reading: unreachable, and named as the key
    // store.
    let missing = format!("local:{}", tmp.path().join("nokeys").display());
    let (code, _, err) = run_with_key(&paths.url(), &missing, &["show", &id]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("(the key store)"), "{err}");
    assert_unchanged(&before, &files_under(tmp.path()));
}

#[test]
fn a_store_exported_in_clear_is_imported_encrypted_with_the_keys_in_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let id = block_on(write_chat(&local_vault(&plain), "alice"));
    let plain_url = format!("local:{}", plain.display());
    assert!(
        !holding(&plain, SECRET).is_empty(),
        "the plain store is in clear"
    );
    let archive = tmp.path().join("all.tar");
    let (code, _, err) = run(&plain_url, &["export", "-o", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");

    let sealed = tmp.path().join("sealed");
    let sealed_url = format!("local:{}", sealed.display());
    let (code, _, err) = run_with_key(&sealed_url, "same", &["import", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_no_plaintext(&sealed);
    let (code, out, err) = run_with_key(&sealed_url, "same", &["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("my locker code is {SECRET}")),
        "{out}"
    );
    // The key conversations in the store are not the user's: neither listed nor counted.
    let (code, out, err) = run_with_key(&sealed_url, "same", &["stat", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let stat: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stat["conversations"], 1, "{stat}");
    assert_eq!(stat["ownerless"], 0, "{stat}");
    // Without the key they are there, as conversations without an owner.
    let raw = run_json(&sealed_url, &["stat"]);
    assert!(raw["ownerless"].as_u64().unwrap() >= 1, "{raw}");
    // verify reads every message and attachment through the key.
    let (code, out, err) = run_with_key(&sealed_url, "same", &["verify", "--read-blobs"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn shred_makes_one_owners_data_unreadable_and_erase_still_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(tmp.path());
    let (alice, bob) = block_on(async {
        let vault = paths.vault();
        (
            write_chat(&vault, "alice").await,
            write_chat(&vault, "bob").await,
        )
    });
    let report = paths.json(&["shred", "--owner", "alice", "--dry-run"]);
    assert_eq!(report["shredded"], false, "{report}");
    assert_eq!(report["version"], 1, "{report}");
    assert_eq!(report["conversations"], 1, "{report}");
    let (code, _, err) = paths.run(&["show", &alice]);
    assert_eq!(code, Some(0), "the dry run destroyed the key: {err}");

    let report = paths.json(&["shred", "--owner", "alice"]);
    assert_eq!(report["shredded"], true, "{report}");
    let (code, _, err) = paths.run(&["show", &alice]);
    assert_eq!(code, Some(1));
    assert!(err.contains("crypto-shredded"), "{err}");
    let (code, out, err) = paths.run(&["show", &bob]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(SECRET), "{out}");
    // Nothing left to shred is not an error.
    let (code, out, err) = paths.run(&["shred", "--owner", "alice"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("nothing to shred"), "{out}");
    // The unreadable conversation is still erased, bytes and all.
    let (code, out, err) = paths.run(&["erase", "--owner", "alice"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("removed 1 conversations"), "{out}");
    assert_eq!(run_json(&paths.url(), &["stat"])["conversations"], 1);
}

#[test]
fn purge_through_the_key_leaves_the_keys_and_without_it_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let url = format!("local:{}", store.display());
    // Written through the command, with the keys in the store itself.
    let archive = tmp.path().join("one.tar");
    let id = block_on(write_chat(&local_vault(&tmp.path().join("plain")), "alice"));
    let plain_url = format!("local:{}", tmp.path().join("plain").display());
    let (code, _, err) = run(&plain_url, &["export", "-o", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run_with_key(&url, "same", &["import", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let purge = ["purge", "--expired", "--after-creation", "0s"];

    // Without the key the keys would look like expired conversations: refused.
    let (code, out, err) = run(&url, &purge);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("holds the data keys"), "{err}");
    let (code, out, err) = run_with_key(&url, "same", &["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(SECRET), "{out}");

    // Through the key only the user's conversation goes; a new one is sealed with the
    // same, surviving, keys.
    let (code, out, err) = run_with_key(&url, "same", &purge);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("removed 1 conversations"), "{out}");
    let raw = run_json(&url, &["stat"]);
    assert!(
        raw["ownerless"].as_u64().unwrap() >= 1,
        "the keys are left: {raw}"
    );
    let (code, _, err) = run_with_key(&url, "same", &["import", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run_with_key(&url, "same", &["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(SECRET), "{out}");
}

#[test]
fn import_creates_the_key_store_and_copy_reads_and_writes_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let id = block_on(write_chat(&local_vault(&plain), "alice"));
    let archive = tmp.path().join("all.tar");
    let plain_url = format!("local:{}", plain.display());
    let (code, _, err) = run(&plain_url, &["export", "-o", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");

    let paths = Paths::new(tmp.path());
    assert!(!paths.keys.exists());
    let (code, _, err) = paths.run(&["import", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        paths.keys.join("messages").is_dir(),
        "the key store was created"
    );
    assert!(
        !paths.keys.join("files").exists(),
        "a key store needs no files"
    );
    let alice: UserId = "alice".parse().unwrap();
    assert_eq!(
        block_on(paths.keyring().current_version(Some(&alice))).unwrap(),
        Some(1)
    );

    let copy = tmp.path().join("copy");
    let copy_url = format!("local:{}", copy.display());
    let (code, _, err) = run_with_key(
        &paths.url(),
        &paths.key_url(),
        &["copy", &paths.url(), &copy_url],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_no_plaintext(&copy);
    let (code, out, err) = run_with_key(&copy_url, &paths.key_url(), &["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("my locker code is {SECRET}")),
        "{out}"
    );
}
