//! An erase, a purge and a redaction stopped at every write they make, then run again:
//! the rerun leaves nothing of what they remove visible and no attachment's bytes behind.
//! A stop between marking a conversation and removing its record leaves it hidden; the
//! rerun finds it with `list_deleting` and finishes it (`ForgetReport::finished`).

// The faults are hooks on `conformance::Forward`.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chatvault_core::backend::FilesBackendExt;
use chatvault_core::conformance::{Call, FilesHook, Forward, MessagesHook};
use chatvault_core::{
    ChatVault, ConversationId, Error, Expiry, ForgetOptions, MessagesBackend, NewMessage, Part,
    Redaction, Result, Retention, Role, StorageKey, UserId,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use chrono::TimeDelta;

/// Counts the writes of both backends and fails the `fail_at`-th (1-based) before it
/// reaches the store.
#[derive(Debug, Default)]
struct Faults {
    writes: AtomicUsize,
    fail_at: AtomicUsize,
    fired: AtomicBool,
}

impl Faults {
    fn write(&self, what: &str) -> Result<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            self.fired.store(true, Ordering::SeqCst);
            return Err(Error::temporary(
                "faults",
                std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} stopped")),
            ));
        }
        Ok(())
    }
}

/// The faults, before both backends: messages and files writes count and may fail.
#[derive(Clone, Debug)]
struct Faulty {
    faults: Arc<Faults>,
    /// A conversation whose record reads as damaged (as one sealed with a shredded key
    /// does through the encryption wrapper).
    unreadable: Arc<std::sync::Mutex<Option<ConversationId>>>,
}

impl MessagesHook<Arc<MemoryMessages>> for Faulty {
    fn before(&self, call: &Call<'_>) -> Result<()> {
        match call.method {
            "head" if self.unreadable.lock().unwrap().as_ref() == call.conversation => {
                let id = call.conversation.map_or("", |id| id.as_str());
                Err(Error::corrupt("faults", id, "unreadable on purpose"))
            }
            "update_message" | "remove_file" | "begin_delete" | "delete" => {
                self.faults.write(call.method)
            }
            _ => Ok(()),
        }
    }
}

impl FilesHook<Arc<MemoryFiles>> for Faulty {
    fn before(&self, call: &Call<'_>) -> Result<()> {
        match call.method {
            "delete" => self.faults.write("files delete"),
            _ => Ok(()),
        }
    }
}

/// The stores, a vault over them through the faults, and the faults.
struct Rig {
    messages: Arc<MemoryMessages>,
    files: Arc<MemoryFiles>,
    vault: ChatVault,
    faults: Arc<Faults>,
    unreadable: Arc<std::sync::Mutex<Option<ConversationId>>>,
}

impl Rig {
    fn new() -> Self {
        let messages = Arc::new(MemoryMessages::new());
        let files = Arc::new(MemoryFiles::new());
        let faults = Arc::new(Faults::default());
        let unreadable = Arc::default();
        let faulty = Faulty {
            faults: Arc::clone(&faults),
            unreadable: Arc::clone(&unreadable),
        };
        let vault = ChatVault::from_arcs(
            Arc::new(Forward::new(Arc::clone(&messages), faulty.clone())),
            Arc::new(Forward::new(Arc::clone(&files), faulty)),
        );
        Rig {
            messages,
            files,
            vault,
            faults,
            unreadable,
        }
    }

    /// A vault straight over the stores: no faults.
    fn clean(&self) -> ChatVault {
        ChatVault::from_arcs(self.messages.clone(), self.files.clone())
    }

    /// From now on, the `n`-th write fails (0: none does).
    fn fail_at(&self, n: usize) {
        self.faults.writes.store(0, Ordering::SeqCst);
        self.faults.fired.store(false, Ordering::SeqCst);
        self.faults.fail_at.store(n, Ordering::SeqCst);
    }

    fn writes(&self) -> usize {
        self.faults.writes.load(Ordering::SeqCst)
    }
}

/// Three conversations of `user`, each with two messages and two attachments, the first
/// message referencing both; returns (id, storage keys) of each.
async fn stock(vault: &ChatVault, user: &UserId) -> Vec<(ConversationId, Vec<StorageKey>)> {
    let mut out = Vec::new();
    for i in 0..3 {
        let mut c = vault.create_conversation(Some(user)).await.unwrap();
        let a = c.attach_file("a.txt", "aaaa", "text/plain").await.unwrap();
        let b = c.attach_file("b.txt", "bbbb", "text/plain").await.unwrap();
        c.add(NewMessage::with_parts(
            Role::User,
            vec![
                Part::text(format!("secret {i}")),
                Part::attachment(a.id.clone(), None),
                Part::attachment(b.id.clone(), None),
            ],
        ))
        .await
        .unwrap();
        c.add_message(Role::Assistant, "noted").await.unwrap();
        out.push((c.id().clone(), vec![a.storage_key, b.storage_key]));
    }
    out
}

/// After the rerun: what `forget` removes is gone, with its bytes and its record: nothing
/// is left marked and hidden.
async fn all_gone(rig: &Rig, stocked: &[(ConversationId, Vec<StorageKey>)], what: &str) {
    let clean = rig.clean();
    for (id, keys) in stocked {
        assert!(
            clean.get_conversation(id).await.unwrap().is_none(),
            "{what}: {id} visible"
        );
        for key in keys {
            assert!(
                !rig.files.exists(key).await.unwrap(),
                "{what}: bytes of {key} left"
            );
        }
        // Not visible: a record `begin_delete` still finds was marked and not removed.
        assert!(
            rig.messages.begin_delete(id).await.unwrap().is_none(),
            "{what}: {id} left marked and hidden"
        );
    }
    let limit = chatvault_core::PageLimit::new(10).unwrap();
    assert!(
        rig.messages
            .list_deleting(None, limit)
            .await
            .unwrap()
            .is_empty(),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erase_stopped_at_any_write_is_finished_by_a_rerun() {
    let user: UserId = "erased".parse().unwrap();
    let probe = Rig::new();
    let stocked = stock(&probe.vault, &user).await;
    probe.fail_at(0);
    let options = ForgetOptions::new().concurrency(1);
    probe
        .vault
        .forget()
        .erase_owner(&user, &options)
        .await
        .unwrap();
    let writes = probe.writes();
    // Per conversation: two byte deletes, begin_delete, delete.
    assert_eq!(writes, 4 * stocked.len());
    all_gone(&probe, &stocked, "clean run").await;
    let mut finished = 0;
    for at in 1..=writes {
        let rig = Rig::new();
        let stocked = stock(&rig.vault, &user).await;
        rig.fail_at(at);
        let stopped = rig.vault.forget().erase_owner(&user, &options).await;
        assert!(stopped.is_err(), "write {at}: the fault is reported");
        assert!(
            rig.faults.fired.load(Ordering::SeqCst),
            "write {at}: the fault happened"
        );
        rig.fail_at(0);
        let rerun = rig
            .vault
            .forget()
            .erase_owner(&user, &options)
            .await
            .unwrap();
        assert_eq!(
            rerun.finished.len(),
            usize::from(at % 4 == 0),
            "write {at}: only a stop at a final delete leaves one to finish"
        );
        finished += rerun.finished.len();
        all_gone(&rig, &stocked, &format!("stopped at write {at}")).await;
    }
    // A fault at each conversation's final `delete` left it marked: each was finished.
    assert_eq!(finished, stocked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_stopped_at_any_write_is_finished_by_a_rerun() {
    let user: UserId = "expiring".parse().unwrap();
    for at in 1..=12 {
        let rig = Rig::new();
        let stocked = stock(&rig.vault, &user).await;
        let expiring = rig
            .vault
            .clone()
            .with_retention(Retention::new(Expiry::AfterCreation(TimeDelta::zero())));
        rig.fail_at(at);
        let options = ForgetOptions::new().concurrency(1);
        assert!(
            expiring.forget().purge_expired(&options).await.is_err(),
            "write {at}"
        );
        assert!(
            rig.faults.fired.load(Ordering::SeqCst),
            "write {at}: the fault happened"
        );
        rig.fail_at(0);
        let rerun = expiring.forget().purge_expired(&options).await.unwrap();
        assert_eq!(
            rerun.finished.len(),
            usize::from(at % 4 == 0),
            "write {at}: only a stop at a final delete leaves one to finish"
        );
        all_gone(&rig, &stocked, &format!("purge stopped at write {at}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redaction_stopped_at_any_write_is_finished_by_redacting_again() {
    let user: UserId = "redact".parse().unwrap();
    // Writes: the message update, then per attachment its bytes and its record.
    for at in 1..=5 {
        let rig = Rig::new();
        let stocked = stock(&rig.vault, &user).await;
        let (id, keys) = &stocked[0];
        let mut c = rig.vault.get_conversation(id).await.unwrap().unwrap();
        let secret = c.messages().await.unwrap()[0].clone();
        rig.fail_at(at);
        assert!(
            c.redact(&secret.id, "pasted a secret").await.is_err(),
            "write {at}"
        );
        assert!(
            rig.faults.fired.load(Ordering::SeqCst),
            "write {at}: the fault happened"
        );
        rig.fail_at(0);
        let again = c.redact(&secret.id, "pasted a secret").await.unwrap();
        assert!(again.message.parts.is_empty(), "write {at}");
        assert!(Redaction::of(&again.message).is_some(), "write {at}");
        let c = rig.clean().get_conversation(id).await.unwrap().unwrap();
        assert!(
            c.files().is_empty(),
            "write {at}: attachments left {:?}",
            c.files()
        );
        for key in keys {
            assert!(
                !rig.files.exists(key).await.unwrap(),
                "write {at}: bytes of {key}"
            );
        }
        let reply = &c.messages().await.unwrap()[1];
        assert_eq!(
            reply.content(),
            "noted",
            "write {at}: the reply is untouched"
        );
    }
}

/// A conversation whose record cannot be read (damaged, or sealed with a shredded key)
/// does not stop a purge or an erase: it is left, named in the report, and the others go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_conversation_is_left_and_reported_not_a_stop() {
    let user: UserId = "mixed".parse().unwrap();
    for erase in [false, true] {
        let rig = Rig::new();
        let stocked = stock(&rig.vault, &user).await;
        let (bad, bad_keys) = &stocked[1];
        *rig.unreadable.lock().unwrap() = Some(bad.clone());
        let options = ForgetOptions::new().concurrency(1);
        let report = if erase {
            rig.vault
                .forget()
                .erase_owner(&user, &options)
                .await
                .unwrap()
        } else {
            let expiring = rig
                .vault
                .clone()
                .with_retention(Retention::new(Expiry::AfterCreation(TimeDelta::zero())));
            expiring.forget().purge_expired(&options).await.unwrap()
        };
        assert_eq!(
            report.unreadable,
            std::slice::from_ref(bad),
            "erase {erase}: {report:?}"
        );
        assert_eq!(
            report.conversations.len(),
            2,
            "erase {erase}: the others went"
        );
        assert!(
            report.to_string().ends_with("; 1 unreadable left"),
            "{report}"
        );
        *rig.unreadable.lock().unwrap() = None;
        let clean = rig.clean();
        assert!(
            clean.get_conversation(bad).await.unwrap().is_some(),
            "left as it was"
        );
        for key in bad_keys {
            assert!(
                rig.files.exists(key).await.unwrap(),
                "its bytes are left too"
            );
        }
        let others = stocked.iter().filter(|(id, _)| id != bad);
        all_gone(&rig, &others.cloned().collect::<Vec<_>>(), "others").await;
    }
}
