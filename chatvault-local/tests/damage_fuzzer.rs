//! Issue 8, item 9: a bounded-time damage fuzzer for `LocalMessages`.
//!
//! A proptest state machine in all but name: each case runs a random sequence of
//! operations (appends, conversation updates, message updates, attachments, creations and
//! deletions) on a few conversations, with random damage
//! to the store's files between them, and after every damage opens the store afresh and
//! checks it against a model of what was acknowledged:
//!
//! - every call returns a value or a typed error, never panics;
//! - a conversation reads back with every acknowledged message, exactly, in seq order
//!   1..n, or reports a `Corrupt` error (damage it cannot repair and will not hide);
//! - a conversation once found `Corrupt` is still checked after every later step: it may
//!   stay `Corrupt` or recover exactly, never read back wrong or partial data, and a write
//!   that succeeds on it must continue its acknowledged seqs;
//! - a conversation that reads back is listed; a deleted one neither reads back nor is
//!   listed, and its id can be created again;
//! - the next append gets seq n + 1.
//!
//! Damage: to derived and housekeeping files (checkpoints, indexes, lock files, the
//! listing index, `users/`), anything: deletion, truncation, byte flips, changed digits,
//! appended garbage. To the message logs, the truth: byte flips (bit rot) and appended
//! bytes (garbage, or a record cut short as a killed writer leaves it). Not zeros at the
//! end of a log nor cuts into it: bytes a power cut did not flush look exactly like
//! that, so a store cannot tell them from lost acknowledged data without a copy.
//!
//! The case count is fixed (`CASES`) so that the test takes well under a minute in a
//! debug build.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{ContentType, ConversationId, FileId, StorageKey, UserId};
use chatvault_core::{
    ConversationPatch, ConversationRecord, FileAttachment, ListOptions, Message, MessageUpdate,
    MessagesBackend, NewMessage, Part, Role,
};
use chatvault_local::LocalMessages;
use proptest::prelude::*;

const CASES: u32 = 256;
/// The conversations a case may touch: the first two exist from the start, the others
/// are created (and any is deleted, and created again) by the steps.
const CONVERSATIONS: [&str; 4] = ["a", "b", "c", "d"];
/// How many of [`CONVERSATIONS`] exist when a case starts.
const INITIAL: usize = 2;

#[derive(Clone, Debug)]
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

#[derive(Clone, Debug)]
enum Step {
    Append {
        conv: usize,
        n: usize,
    },
    Update {
        conv: usize,
    },
    /// `update_message` of the acknowledged message at `pick` (modulo their number).
    Edit {
        conv: usize,
        pick: usize,
    },
    AddFile {
        conv: usize,
    },
    /// `create` (of a conversation that may exist, or was deleted).
    Create {
        conv: usize,
    },
    /// `begin_delete` then `delete`.
    Delete {
        conv: usize,
    },
    Damage {
        conv: usize,
        target: Target,
        how: u8,
        at: u16,
        byte: u8,
    },
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => Just(Target::Header),
        1 => Just(Target::Index),
        1 => Just(Target::Lock),
        3 => Just(Target::Log),
        1 => Just(Target::ListingSnapshot),
        1 => Just(Target::ListingJournal),
        1 => Just(Target::ListingDir),
        1 => Just(Target::UsersDir),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let n = CONVERSATIONS.len();
    prop_oneof![
        3 => (0..n, 1..4usize).prop_map(|(conv, n)| Step::Append { conv, n }),
        1 => (0..n).prop_map(|conv| Step::Update { conv }),
        2 => (0..n, any::<usize>()).prop_map(|(conv, pick)| Step::Edit { conv, pick }),
        1 => (0..n).prop_map(|conv| Step::AddFile { conv }),
        1 => (0..n).prop_map(|conv| Step::Create { conv }),
        1 => (0..n).prop_map(|conv| Step::Delete { conv }),
        3 => (0..n, target(), any::<u8>(), any::<u16>(), 1..=255u8).prop_map(
            |(conv, target, how, at, byte)| Step::Damage { conv, target, how, at, byte }
        ),
    ]
}

fn is_corrupt(err: &chatvault_core::Error) -> bool {
    err.kind() == chatvault_core::ErrorKind::Corrupt
}

fn is_not_found(err: &chatvault_core::Error) -> bool {
    err.kind() == chatvault_core::ErrorKind::NotFound
}

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// What was acknowledged of one conversation.
#[derive(Debug, Default)]
struct Model {
    /// Created and not deleted since.
    exists: bool,
    messages: Vec<Message>,
    /// Found damaged (a typed error) at some point: it may stay damaged, or recover
    /// exactly; it is checked like any other.
    corrupt: bool,
}

impl Model {
    /// Checks the error of a write to this conversation: `NotFound` when it does not
    /// exist, else `Corrupt` (the write stored nothing; the model stays as it was).
    fn failed(&mut self, what: &str, e: &chatvault_core::Error, log: &[String]) {
        if !self.exists && is_not_found(e) {
            return;
        }
        assert!(is_corrupt(e), "{what}: untyped error {e}\n{log:#?}");
        self.corrupt = true;
    }
}

fn file_of(root: &Path, conv: &str, target: &Target) -> Option<PathBuf> {
    let cdir = root.join("conversations").join(conv);
    let index = root.join("index");
    let find = |dir: &Path, prefix: &str| {
        fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
            })
    };
    match target {
        Target::Header => Some(cdir.join("header.json")),
        Target::Index => find(&cdir, "index-"),
        Target::Lock => Some(cdir.join("lock")),
        Target::Log => find(&cdir, "log-"),
        Target::ListingSnapshot => Some(index.join("snapshot")),
        Target::ListingJournal => find(&index, "journal-"),
        Target::ListingDir => Some(index),
        Target::UsersDir => Some(root.join("users")),
    }
}

/// Damages one file; returns what was done, for failure messages.
fn damage(root: &Path, conv: &str, target: &Target, how: u8, at: u16, byte: u8) -> String {
    let Some(path) = file_of(root, conv, target) else {
        return format!("{target:?}: no such file");
    };
    if path.is_dir() {
        fs::remove_dir_all(&path).unwrap();
        return format!("removed {}", path.display());
    }
    let Ok(bytes) = fs::read(&path) else {
        return format!("{}: missing", path.display());
    };
    let pos = if bytes.is_empty() {
        0
    } else {
        at as usize % bytes.len()
    };
    if matches!(target, Target::Log) {
        // The truth: bit rot, or bytes appended.
        let mut out = bytes.clone();
        // Half of the flips hit the last 64 bytes: the newest record, whose damage is
        // the hardest to tell from a torn write.
        let pos = if how & 0x80 != 0 {
            out.len().saturating_sub(1 + at as usize % 64)
        } else {
            pos
        };
        match how % 3 {
            0 if !out.is_empty() => out[pos] ^= byte,
            1 => out.extend(std::iter::repeat_n(byte, 1 + at as usize % 40)),
            _ => {
                // A record cut short: the start of a copy of the last record.
                let tail_start = out.len().saturating_sub(1 + at as usize % 200);
                let piece = out[tail_start..].to_vec();
                out.extend_from_slice(&piece[..piece.len() / 2]);
            }
        }
        fs::write(&path, &out).unwrap();
        return format!("log {} how {how} at {pos} byte {byte}", path.display());
    }
    match how % 6 {
        0 => {
            fs::remove_file(&path).unwrap();
        }
        1 => fs::write(&path, &bytes[..pos]).unwrap(),
        2 if !bytes.is_empty() => {
            let mut out = bytes.clone();
            out[pos] ^= byte;
            fs::write(&path, out).unwrap();
        }
        3 => {
            let mut out = bytes.clone();
            if let Some(d) = (pos..out.len()).find(|&i| out[i].is_ascii_digit()) {
                out[d] = b'0' + (out[d] - b'0' + 1 + byte % 9) % 10;
            }
            fs::write(&path, out).unwrap();
        }
        4 => {
            let mut out = bytes.clone();
            out.extend(std::iter::repeat_n(byte, 1 + at as usize % 64));
            fs::write(&path, out).unwrap();
        }
        _ => fs::write(&path, vec![byte; bytes.len()]).unwrap(),
    }
    format!("{} how {} at {pos} byte {byte}", path.display(), how % 6)
}

fn attachment(n: usize) -> FileAttachment {
    FileAttachment::new(
        FileId::parse(format!("f{n}")).unwrap(),
        format!("f{n}.txt"),
        ContentType::parse("text/plain").unwrap(),
        1,
        "0".repeat(64),
        StorageKey::parse(format!("u/c/f{n}/f{n}.txt")).unwrap(),
        chatvault_core::backend::now(),
    )
}

/// Opens the store afresh and checks every conversation against the model.
async fn check(root: &Path, models: &mut [Model], log: &[String]) {
    let store = LocalMessages::open(root).unwrap();
    let listed = store
        .list_conversations(Some(&uid("u")), &ListOptions::new().include_archived(true))
        .await;
    let listed: Vec<String> = match listed {
        Ok(page) => page.items.into_iter().map(|s| s.id.to_string()).collect(),
        Err(e) => panic!("listing failed: {e}\n{log:#?}"),
    };
    for (conv, model) in CONVERSATIONS.iter().zip(models.iter_mut()) {
        if !model.exists {
            match store.get(&cid(conv)).await {
                Ok(None) => {}
                Ok(Some(_)) => panic!("{conv}: a deleted conversation came back\n{log:#?}"),
                Err(e) => panic!("{conv}: reading a deleted conversation: {e}\n{log:#?}"),
            }
            assert!(
                !listed.iter().any(|id| id == conv),
                "{conv}: deleted but listed\n{log:#?}"
            );
            continue;
        }
        match store.get(&cid(conv)).await {
            Ok(Some(c)) => {
                assert_eq!(c.messages, model.messages, "{conv}: messages\n{log:#?}");
                assert_eq!(
                    c.record.message_count,
                    model.messages.len() as u64,
                    "{conv}\n{log:#?}"
                );
                assert!(
                    listed.iter().any(|id| id == conv),
                    "{conv} not listed\n{log:#?}"
                );
            }
            Ok(None) => panic!("{conv}: acknowledged conversation lost\n{log:#?}"),
            Err(e) => {
                assert!(is_corrupt(&e), "{conv}: untyped error {e}\n{log:#?}");
                model.corrupt = true;
            }
        }
    }
}

async fn run(steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = LocalMessages::open(root).unwrap();
    let mut models: Vec<Model> = CONVERSATIONS.iter().map(|_| Model::default()).collect();
    let record = |conv: &str| {
        let mut record = ConversationRecord::new(Some(uid("u")));
        record.id = cid(conv);
        record
    };
    for (conv, model) in CONVERSATIONS.iter().zip(&mut models).take(INITIAL) {
        store.create(&record(conv)).await.unwrap();
        model.exists = true;
    }
    let mut log = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        log.push(format!("{i}: {step:?}"));
        match step {
            Step::Append { conv, n } => {
                let messages = (0..n)
                    .map(|k| NewMessage::new(Role::User, format!("s{i} m{k}")))
                    .collect();
                match store
                    .append_messages(&cid(CONVERSATIONS[conv]), messages)
                    .await
                {
                    Ok(_) if !models[conv].exists => {
                        panic!("append to a deleted conversation succeeded\n{log:#?}")
                    }
                    Ok(appended) => {
                        let model = &mut models[conv];
                        let first = model.messages.len() as u64 + 1;
                        let seqs: Vec<u64> = appended.messages.iter().map(|m| m.seq).collect();
                        assert_eq!(
                            seqs,
                            (first..first + n as u64).collect::<Vec<_>>(),
                            "{log:#?}"
                        );
                        model.messages.extend(appended.messages);
                    }
                    Err(e) => models[conv].failed("append", &e, &log),
                }
            }
            Step::Update { conv } => {
                let patch = ConversationPatch {
                    title: Some(format!("title {i}")),
                    ..Default::default()
                };
                if let Err(e) = store.update(&cid(CONVERSATIONS[conv]), &patch).await {
                    models[conv].failed("update", &e, &log);
                }
            }
            Step::Edit { conv, pick } => {
                let model = &models[conv];
                if !model.exists || model.messages.is_empty() {
                    continue;
                }
                let k = pick % model.messages.len();
                let target = model.messages[k].clone();
                let update = MessageUpdate {
                    parts: Some(vec![Part::text(format!("edited at step {i}"))]),
                    ..Default::default()
                };
                match store
                    .update_message(
                        &cid(CONVERSATIONS[conv]),
                        &target.id,
                        target.revision,
                        &update,
                    )
                    .await
                {
                    Ok(updated) => {
                        assert_eq!(updated.message.seq, target.seq, "{log:#?}");
                        assert_eq!(updated.message.revision, target.revision + 1, "{log:#?}");
                        models[conv].messages[k] = updated.message;
                    }
                    Err(e) => models[conv].failed("update_message", &e, &log),
                }
            }
            Step::AddFile { conv } => {
                if let Err(e) = store
                    .add_file(&cid(CONVERSATIONS[conv]), &attachment(i))
                    .await
                {
                    models[conv].failed("add_file", &e, &log);
                }
            }
            Step::Create { conv } => {
                let model = &mut models[conv];
                match store.create(&record(CONVERSATIONS[conv])).await {
                    Ok(()) if model.exists && !model.corrupt => {
                        panic!("created a conversation that exists\n{log:#?}")
                    }
                    Ok(()) => {
                        *model = Model {
                            exists: true,
                            ..Model::default()
                        }
                    }
                    Err(e) if e.kind() == chatvault_core::ErrorKind::AlreadyExists => {
                        assert!(
                            model.exists,
                            "create of a deleted conversation's id: {e}\n{log:#?}"
                        );
                    }
                    Err(e) => {
                        assert!(is_corrupt(&e), "create: untyped error {e}\n{log:#?}");
                        model.corrupt = true;
                    }
                }
            }
            Step::Delete { conv } => {
                let id = cid(CONVERSATIONS[conv]);
                let model = &mut models[conv];
                let deleted = match store.begin_delete(&id).await {
                    Ok(Some(_)) => store.delete(&id).await.map(|_| true),
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                };
                match deleted {
                    Ok(true) => *model = Model::default(),
                    Ok(false) => assert!(
                        !model.exists || model.corrupt,
                        "delete did not find an existing conversation\n{log:#?}"
                    ),
                    Err(e) => {
                        assert!(is_corrupt(&e), "delete: untyped error {e}\n{log:#?}");
                        model.corrupt = true;
                    }
                }
            }
            Step::Damage {
                conv,
                target,
                how,
                at,
                byte,
            } => {
                log.push(damage(root, CONVERSATIONS[conv], &target, how, at, byte));
                check(root, &mut models, &log).await;
            }
        }
    }
    check(root, &mut models, &log).await;
}

/// The test command's fixed seed, so that a run is reproducible and main stays green on a
/// known set of cases; set `PROPTEST_RNG_SEED` (a number) to explore other sequences.
/// Exploration found one defect so far (a snapshot cut right after its head line hid
/// every conversation from listings); `derived_state.rs`'s
/// `an_index_file_cut_at_a_line_boundary_hides_no_conversation` replays it.
const FIXED_SEED: u64 = 0x00c4_a7fa_0172;

fn seed() -> proptest::test_runner::RngSeed {
    if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        ProptestConfig::default().rng_seed
    } else {
        proptest::test_runner::RngSeed::Fixed(FIXED_SEED)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        rng_seed: seed(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn damage_between_operations_never_loses_an_acknowledged_message(
        steps in prop::collection::vec(step(), 4..20),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(steps));
    }
}
