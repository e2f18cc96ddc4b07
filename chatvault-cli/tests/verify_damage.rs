//! `chatvault verify` against every kind of damage chatvault-local's damage fuzzer
//! (`chatvault-local/tests/damage_fuzzer.rs`) injects into a local store: each target
//! (checkpoint, seq index, lock file, log, the listing index's snapshot, journal and
//! directory, 0.1's `users/`) damaged each way the fuzzer damages it (deleted, cut, a
//! byte flipped, a digit changed, garbage appended, overwritten; a log: a byte flipped,
//! garbage appended, a record cut short), at a fixed place. Every damage that changes a
//! file is reported (exit code 4); a clean store reports nothing.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};

use chatvault_core::{ListOptions, Role};

mod common;
use common::{chatvault, local_vault};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Header,
    Index,
    Lock,
    Log,
    ListingSnapshot,
    ListingJournal,
    ListingDir,
    UsersDir,
}

impl Target {
    /// What `verify` must name when it reports this target's damage (any of these).
    fn reported_as(self) -> &'static [&'static str] {
        match self {
            Target::Header => &["header.json"],
            // An entry that shows a record past the log's end makes the store treat the
            // conversation as damaged (it cannot tell lost messages from index damage).
            Target::Index => &["/index-", "damaged log"],
            Target::Lock => &["/lock"],
            Target::Log => &["damaged log", "unfinished record"],
            Target::ListingSnapshot | Target::ListingJournal | Target::ListingDir => {
                &["listing index"]
            }
            Target::UsersDir => &[],
        }
    }
}

/// The fuzzer's ways of damaging a file (`how % 6`), and a log (`how % 3`).
const FILE_HOWS: [&str; 6] = [
    "delete",
    "cut",
    "flip a byte",
    "change a digit",
    "append garbage",
    "overwrite",
];
const LOG_HOWS: [&str; 3] = ["flip a byte", "append garbage", "append a cut record"];

/// A local store shaped like the fuzzer's: conversations of one user, one of 40
/// messages with an updated one (its checkpoint rewritten), listed once (the listing
/// index has a snapshot), then written to again (its journal has lines).
fn template(dir: &Path) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let vault = local_vault(dir);
        let user = "u".parse().unwrap();
        let mut big = vault.create_conversation(Some(&user)).await.unwrap();
        for i in 0..40 {
            big.add_message(Role::User, format!("message {i}"))
                .await
                .unwrap();
        }
        let second = big.messages().await.unwrap()[1].clone();
        big.update_message(
            &second.id,
            second.revision,
            &chatvault_core::MessageUpdate {
                parts: Some(vec![chatvault_core::Part::text("edited")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut small = vault.create_conversation(Some(&user)).await.unwrap();
        small.add_message(Role::User, "hello").await.unwrap();
        let listed = vault
            .list_conversations(&user, &ListOptions::new())
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 2);
        big.add_message(Role::Assistant, "after the listing")
            .await
            .unwrap();
    });
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn starting_with(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        })
}

/// The file the fuzzer's `file_of` names, in the conversation with the most messages.
fn file_of(messages: &Path, target: Target) -> PathBuf {
    let biggest = std::fs::read_dir(messages.join("conversations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|d| {
            starting_with(d, "log-")
                .map(|l| std::fs::metadata(l).unwrap().len())
                .unwrap_or(0)
        })
        .unwrap();
    let index = messages.join("index");
    match target {
        Target::Header => biggest.join("header.json"),
        Target::Index => starting_with(&biggest, "index-").unwrap(),
        Target::Lock => biggest.join("lock"),
        Target::Log => starting_with(&biggest, "log-").unwrap(),
        Target::ListingSnapshot => index.join("snapshot"),
        Target::ListingJournal => starting_with(&index, "journal-").unwrap(),
        Target::ListingDir => index,
        Target::UsersDir => messages.join("users"),
    }
}

/// Damages `path` the way the fuzzer's `damage` does with `how`, with byte 0x5a, at its
/// middle (a journal is cut inside its last line: see
/// `a_journal_cut_between_a_change_and_its_confirmation_is_no_damage`); returns whether
/// anything changed.
fn damage(path: &Path, target: Target, how: usize) -> bool {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
        return true;
    }
    let bytes = std::fs::read(path).unwrap();
    let pos = if target == Target::ListingJournal && how == 1 {
        bytes.len() - 5
    } else {
        bytes.len() / 2
    };
    let byte = 0x5a;
    let mut out = bytes.clone();
    if target == Target::Log {
        match how {
            0 => out[pos] ^= byte,
            1 => out.extend(std::iter::repeat_n(byte, 17)),
            _ => {
                let tail = out[out.len() - 150..].to_vec();
                out.extend_from_slice(&tail[..tail.len() / 2]);
            }
        }
    } else {
        match how {
            0 => {
                std::fs::remove_file(path).unwrap();
                return true;
            }
            1 => out.truncate(pos),
            2 if !out.is_empty() => out[pos] ^= byte,
            3 => {
                if let Some(d) = (pos..out.len()).find(|&i| out[i].is_ascii_digit()) {
                    out[d] = b'0' + (out[d] - b'0' + 1 + byte % 9) % 10;
                }
            }
            4 => out.extend(std::iter::repeat_n(byte, 23)),
            _ => out = vec![byte; bytes.len()],
        }
    }
    std::fs::write(path, &out).unwrap();
    out != bytes
}

/// Runs `verify` on the local store in `store`; returns its exit code and its stdout
/// then stderr.
fn verify(store: &Path) -> (Option<i32>, String) {
    let (code, out, err) = common::run(&format!("local:{}", store.display()), &["verify"]);
    (code, format!("{out}{err}"))
}

#[test]
fn verify_reports_every_kind_of_damage_the_local_fuzzer_injects() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("template");
    template(&clean);
    let (code, text) = verify(&clean);
    assert_eq!(code, Some(0), "a clean store: {text}");
    assert!(!text.contains("DAMAGE"), "{text}");

    let mut cases = Vec::new();
    for target in [
        Target::Header,
        Target::Index,
        Target::Lock,
        Target::ListingSnapshot,
        Target::ListingJournal,
    ] {
        for (how, what) in FILE_HOWS.iter().enumerate() {
            cases.push((target, how, *what));
        }
    }
    for (how, what) in LOG_HOWS.iter().enumerate() {
        cases.push((Target::Log, how, *what));
    }
    cases.push((Target::ListingDir, 0, "delete"));
    cases.push((Target::UsersDir, 0, "delete"));

    let mut reported = 0;
    for (n, (target, how, what)) in cases.iter().enumerate() {
        let store = tmp.path().join(format!("case-{n}"));
        copy_tree(&clean, &store);
        let path = file_of(&store.join("messages"), *target);
        let changed = damage(&path, *target, *how);
        let (code, text) = verify(&store);
        let case = format!("{target:?}, {what} ({})", path.display());
        if !changed {
            // An empty lock file cut, flipped or overwritten is the same empty file: no
            // damage happened, and none is reported.
            assert_eq!(*target, Target::Lock, "{case}: the damage changed nothing");
            assert_eq!(code, Some(0), "{case}: {text}");
            continue;
        }
        if *target == Target::UsersDir {
            // 0.1's user index, kept empty: opening the store (as verify does) creates
            // it again, so there is nothing left to report.
            assert_eq!(code, Some(0), "{case}: {text}");
            assert!(path.is_dir(), "{case}: users/ was not created again");
            continue;
        }
        assert_eq!(code, Some(4), "{case}: not reported:\n{text}");
        assert!(
            target.reported_as().iter().any(|name| text
                .lines()
                .any(|l| l.starts_with("DAMAGE") && l.contains(name))),
            "{case}: reported, but not as {:?}:\n{text}",
            target.reported_as()
        );
        reported += 1;
    }
    // Lock: deleted and garbage appended; the other four leave an empty file empty.
    assert_eq!(
        reported,
        5 * 6 - 4 + 3 + 1,
        "every damage that changed a file"
    );
}

/// The journal written after the listing holds two lines: the append's tentative claim
/// (before its commit) and its confirmed one (after). Cut between them, it is exactly
/// what a process killed between a change's commit and its confirmation leaves (or a
/// writer still at work): the store settles such a line by reading the conversation at
/// the next listing. So `verify` does not call it damage; the listing is right.
#[test]
fn a_journal_cut_between_a_change_and_its_confirmation_is_no_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    template(&store);
    let journal = file_of(&store.join("messages"), Target::ListingJournal);
    let bytes = std::fs::read(&journal).unwrap();
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 2, "a tentative and a confirmed line");
    let tentative = String::from_utf8_lossy(lines[0]);
    assert!(tentative.contains(r#""s":"t""#), "{tentative}");
    std::fs::write(&journal, lines[0]).unwrap();
    let (code, text) = verify(&store);
    assert_eq!(code, Some(0), "{text}");
    let out = chatvault()
        .args(["--store", &format!("local:{}", store.display())])
        .args(["ls", "--owner", "u", "--json"])
        .output()
        .unwrap();
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<u64> = listed
        .iter()
        .map(|s| s["message_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [41, 1], "newest activity first, the append counted");
}
