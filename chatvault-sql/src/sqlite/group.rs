//! Group commit: this process's concurrent writers to one SQLite database share a write
//! transaction, each operation in a savepoint of its own, so that one commit (one WAL
//! flush under `synchronous = FULL`) carries all of them. See `docs/how-it-works.md`,
//! "Group commit".

use std::borrow::Borrow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatvault_core::backend::{Error, Result};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::common::commit_error;
use crate::common::read_error;
use crate::dialect::Dialect;

/// The most operations one shared transaction carries; the writer that would add one
/// more commits it first.
pub(crate) const MAX_SHARED: usize = 64;

/// Every operation's savepoint.
const SAVEPOINT: &str = "SAVEPOINT chatvault_write";
const RELEASE: &str = "RELEASE chatvault_write";
const UNDO: &str = "ROLLBACK TO chatvault_write; RELEASE chatvault_write";

/// This process's writers to one database (shared by a backend value and its clones):
/// the open transaction, if any, and how many writers wait for their turn.
#[derive(Debug, Clone)]
pub(crate) struct Writers {
    slot: Arc<Mutex<Slot>>,
    /// Writers waiting for the slot: a writer done with its operation leaves the
    /// transaction open for them only when there are some.
    waiting: Arc<AtomicUsize>,
}

/// The open transaction, between operations, and the count of those begun and committed.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    open: Option<Open>,
    /// Transactions begun: the next one's number, so that a committer ends only its own.
    begun: u64,
    /// Transactions committed with at least one operation in them.
    commits: u64,
}

/// A write transaction shared by the operations done in it so far.
struct Open {
    id: u64,
    tx: Transaction<'static, Sqlite>,
    /// Operations done in it, each waiting for its commit.
    members: usize,
    /// Where they learn how it ended.
    outcome: watch::Sender<Option<Outcome>>,
    /// An operation stopped halfway (an early return or a cancelled future): its
    /// savepoint is rolled back before anything else runs in the transaction.
    abandoned: bool,
    /// A task that will end the transaction exists.
    committer: bool,
}

impl fmt::Debug for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Open")
            .field("id", &self.id)
            .field("members", &self.members)
            .field("abandoned", &self.abandoned)
            .finish_non_exhaustive()
    }
}

/// How a shared transaction ended, as its members learn it.
#[derive(Debug, Clone)]
enum Outcome {
    Committed,
    Failed(SharedError),
}

/// The driver error that ended a shared transaction, reported by each of its members.
#[derive(Debug, Clone)]
struct SharedError(Arc<sqlx::Error>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the write transaction this operation shared failed: {}",
            self.0
        )
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl Borrow<sqlx::Error> for SharedError {
    fn borrow(&self) -> &sqlx::Error {
        &self.0
    }
}

impl SharedError {
    /// The error `operation` reports ([`commit_error`]'s rules).
    fn to_error(&self, operation: &'static str) -> Error {
        commit_error(Sqlite::BACKEND, operation, self.clone())
    }
}

/// Counts a writer as waiting until it holds the slot or gives up (a dropped future).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writers {
    pub(crate) fn new() -> Self {
        Writers {
            slot: Arc::new(Mutex::new(Slot::default())),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Transactions committed with at least one operation in them, so far.
    #[cfg(test)]
    pub(crate) async fn commits(&self) -> u64 {
        self.slot.lock().await.commits
    }

    /// Writers waiting for their turn now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The slot, in turn with this process's other writers.
    async fn lock(&self) -> OwnedMutexGuard<Slot> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(Arc::clone(&self.waiting));
        let guard = Arc::clone(&self.slot).lock_owned().await;
        drop(waiting);
        guard
    }

    /// Starts an operation: joins the open transaction in a savepoint of its own, or
    /// begins one (taking SQLite's write lock with `BEGIN IMMEDIATE`), whose first
    /// operation needs no savepoint: undoing it undoes the whole transaction.
    pub(crate) async fn begin(&self, pool: &SqlitePool) -> Result<SqliteWrite> {
        let mut slot = self.lock().await;
        slot.settle().await;
        if slot.open.as_ref().is_some_and(|o| o.members >= MAX_SHARED) {
            slot.end().await;
        }
        let savepoint = slot.open.is_some();
        if savepoint {
            if let Err(e) = slot.run(SAVEPOINT).await {
                return Err(slot.fail(e).await.to_error("begin"));
            }
        } else {
            let tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(read_error::<Sqlite>)?;
            let (outcome, _) = watch::channel(None);
            slot.begun += 1;
            slot.open = Some(Open {
                id: slot.begun,
                tx,
                members: 0,
                outcome,
                abandoned: false,
                committer: false,
            });
        }
        Ok(SqliteWrite {
            slot: Some(slot),
            writers: self.clone(),
            savepoint,
        })
    }

    /// The slot with no transaction open (the open one committed first): for work that
    /// needs SQLite's write lock outside a shared transaction.
    pub(crate) async fn exclusive(&self) -> OwnedMutexGuard<Slot> {
        let mut slot = self.lock().await;
        slot.settle().await;
        slot.end().await;
        slot
    }
}

impl Slot {
    /// Runs one statement (or several, `;`-separated) in the open transaction.
    async fn run(&mut self, sql: &'static str) -> std::result::Result<(), sqlx::Error> {
        match &mut self.open {
            Some(open) => sqlx::raw_sql(sql).execute(&mut *open.tx).await.map(drop),
            None => Err(sqlx::Error::Protocol("no write transaction is open".into())),
        }
    }

    /// Rolls back what an abandoned operation left in the open transaction.
    async fn settle(&mut self) {
        if !self.open.as_ref().is_some_and(|o| o.abandoned) {
            return;
        }
        match self.run(UNDO).await {
            Ok(()) => {
                if let Some(open) = &mut self.open {
                    open.abandoned = false;
                }
            }
            Err(e) => {
                self.fail(e).await;
            }
        }
    }

    /// Ends the open transaction, if any: commits it when operations were done in it
    /// (rolls it back when none were), and tells them how it ended.
    async fn end(&mut self) -> Option<Outcome> {
        self.settle().await;
        let open = self.open.take()?;
        let outcome = if open.members == 0 {
            if let Err(e) = open.tx.rollback().await {
                tracing::debug!(error = %e, "rollback of an empty write transaction failed");
            }
            Outcome::Committed
        } else {
            match open.tx.commit().await {
                Ok(()) => {
                    self.commits += 1;
                    Outcome::Committed
                }
                Err(e) => Outcome::Failed(SharedError(Arc::new(e))),
            }
        };
        open.outcome.send_replace(Some(outcome.clone()));
        Some(outcome)
    }

    /// Gives up the open transaction after `err` (SQLite may have rolled it back
    /// already): its operations learn that they failed, and so does the caller.
    async fn fail(&mut self, err: sqlx::Error) -> SharedError {
        let shared = SharedError(Arc::new(err));
        if let Some(open) = self.open.take() {
            if let Err(e) = open.tx.rollback().await {
                tracing::debug!(error = %e, "rollback of a failed write transaction failed");
            }
            open.outcome
                .send_replace(Some(Outcome::Failed(shared.clone())));
        }
        shared
    }
}

/// One operation's turn in a shared write transaction: its statements run on the
/// connection it derefs to; [`commit`](Self::commit) or [`rollback`](Self::rollback) ends
/// it. Dropped without either, its statements are rolled back.
#[derive(Debug)]
pub struct SqliteWrite {
    slot: Option<OwnedMutexGuard<Slot>>,
    writers: Writers,
    /// It joined a transaction that holds other operations' work: its own is in a
    /// savepoint. (Otherwise it began the transaction, and is alone in it until it ends.)
    savepoint: bool,
}

impl SqliteWrite {
    fn open(&mut self) -> &mut Open {
        self.slot
            .as_mut()
            .and_then(|s| s.open.as_mut())
            .expect("a write holds the slot and its open transaction until it ends")
    }

    /// Keeps `operation`'s work: it is committed with the other operations of the
    /// transaction, and this answers once that commit did (or failed).
    pub(crate) async fn commit(self, operation: &'static str) -> Result<()> {
        match self.share().await {
            Outcome::Committed => Ok(()),
            Outcome::Failed(e) => Err(e.to_error(operation)),
        }
    }

    /// [`commit`](Self::commit)'s work: how the transaction carrying it ended.
    async fn share(mut self) -> Outcome {
        let Some(mut slot) = self.slot.take() else {
            return Outcome::Committed;
        };
        if self.savepoint
            && let Err(e) = slot.run(RELEASE).await
        {
            return Outcome::Failed(slot.fail(e).await);
        }
        let Some(open) = slot.open.as_mut() else {
            return Outcome::Committed;
        };
        open.members += 1;
        let alone = self.writers.waiting.load(Ordering::SeqCst) == 0;
        if alone || open.members >= MAX_SHARED {
            return slot.end().await.unwrap_or(Outcome::Committed);
        }
        // Others wait for the slot: leave the transaction open for them, and have a task
        // (which a dropped caller cannot stop) commit it after their operations.
        let mut told = open.outcome.subscribe();
        if !open.committer {
            open.committer = true;
            let writers = self.writers.clone();
            let id = open.id;
            tokio::spawn(async move {
                let mut slot = writers.lock().await;
                if slot.open.as_ref().is_some_and(|o| o.id == id) {
                    slot.end().await;
                }
            });
        }
        drop(slot);
        match told.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Outcome::Committed),
            Err(_) => Outcome::Failed(SharedError(Arc::new(sqlx::Error::Protocol(
                "the write transaction ended without a commit".into(),
            )))),
        }
    }

    /// Undoes the operation's work; the transaction's other operations keep theirs.
    pub(crate) async fn rollback(mut self) {
        let Some(mut slot) = self.slot.take() else {
            return;
        };
        if !self.savepoint {
            // Alone in its transaction: ending it (with no operation done) rolls it back.
            slot.end().await;
            return;
        }
        if let Err(e) = slot.run(UNDO).await {
            slot.fail(e).await;
        }
    }
}

impl Drop for SqliteWrite {
    fn drop(&mut self) {
        let Some(mut slot) = self.slot.take() else {
            return;
        };
        let Some(open) = slot.open.as_mut() else {
            return;
        };
        if !self.savepoint {
            // Alone in the transaction: dropping it rolls it back (sqlx queues the
            // rollback on the connection).
            slot.open = None;
        } else {
            // Its committer rolls this operation's savepoint back first.
            open.abandoned = true;
        }
    }
}

impl Deref for SqliteWrite {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.slot
            .as_ref()
            .and_then(|s| s.open.as_ref())
            .map(|o| &*o.tx)
            .expect("a write holds the slot and its open transaction until it ends")
    }
}

impl DerefMut for SqliteWrite {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.open().tx
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use std::time::Duration;

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    async fn rows(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    /// Until `n` writers wait for their turn.
    async fn until_waiting(writers: &Writers, n: usize) {
        for _ in 0..1000 {
            if writers.waiting() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{} writers wait, not {n}", writers.waiting());
    }

    /// What a queued writer does with its turn.
    #[derive(Clone, Copy)]
    enum End {
        Commit,
        Rollback,
        Drop,
    }

    /// Queues one writer per entry, in order, while the slot is held; then lets them go
    /// and returns what each commit answered.
    async fn queued(writers: &Writers, pool: &SqlitePool, ends: &[End]) -> Vec<Option<bool>> {
        let held = writers.lock().await;
        let mut tasks = Vec::new();
        for (i, end) in ends.iter().copied().enumerate() {
            let (mine, pool) = (writers.clone(), pool.clone());
            tasks.push(tokio::spawn(async move {
                let mut w = mine.begin(&pool).await.unwrap();
                sqlx::query("INSERT INTO t (x) VALUES ($1)")
                    .bind(i as i64 + 1)
                    .execute(&mut *w)
                    .await
                    .unwrap();
                match end {
                    End::Commit => Some(w.commit("test").await.is_ok()),
                    End::Rollback => {
                        w.rollback().await;
                        None
                    }
                    End::Drop => None,
                }
            }));
            until_waiting(writers, i + 1).await;
        }
        drop(held);
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn a_lone_writer_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writers = Writers::new();
        let answers = queued(&writers, &pool, &[End::Commit]).await;
        assert_eq!(answers, [Some(true)]);
        assert_eq!(writers.commits().await, 1);
        assert_eq!(rows(&pool).await, [1]);
    }

    /// Eight writers queued at once: one commit carries all of them.
    #[tokio::test]
    async fn queued_writers_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writers = Writers::new();
        let answers = queued(&writers, &pool, &[End::Commit; 8]).await;
        assert_eq!(answers, [Some(true); 8]);
        assert_eq!(writers.commits().await, 1, "one transaction for the eight");
        assert_eq!(rows(&pool).await, (1..=8).collect::<Vec<_>>());
    }

    /// A writer that undoes its work, and one dropped halfway, leave the others' work in
    /// the transaction they shared.
    #[tokio::test]
    async fn an_undone_or_abandoned_operation_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writers = Writers::new();
        let ends = [End::Commit, End::Rollback, End::Drop, End::Commit];
        let answers = queued(&writers, &pool, &ends).await;
        assert_eq!(answers, [Some(true), None, None, Some(true)]);
        assert_eq!(writers.commits().await, 1);
        assert_eq!(rows(&pool).await, [1, 4]);
        // The abandoned one was rolled back by the next writer, before its own work.
        let answers = queued(&writers, &pool, &[End::Drop]).await;
        assert_eq!(answers, [None]);
        assert_eq!(rows(&pool).await, [1, 4]);
        assert!(
            writers.slot.lock().await.open.is_none(),
            "nothing left open"
        );
    }

    /// More writers than one transaction carries: the one past the bound commits the
    /// full transaction first.
    #[tokio::test]
    async fn a_transaction_carries_at_most_max_shared_operations() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writers = Writers::new();
        let answers = queued(&writers, &pool, &[End::Commit; MAX_SHARED + 1]).await;
        assert!(answers.iter().all(|a| *a == Some(true)));
        assert_eq!(writers.commits().await, 2);
        assert_eq!(rows(&pool).await.len(), MAX_SHARED + 1);
    }

    /// Work that needs the write lock alone commits the open transaction first.
    #[tokio::test]
    async fn exclusive_ends_the_open_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writers = Writers::new();
        let mut w = writers.begin(&pool).await.unwrap();
        sqlx::query("INSERT INTO t (x) VALUES (7)")
            .execute(&mut *w)
            .await
            .unwrap();
        // Leave it open as a writer waiting would make it: one operation done in it.
        let mut slot = w.slot.take().unwrap();
        slot.open.as_mut().unwrap().members = 1;
        drop(slot);
        let slot = writers.exclusive().await;
        assert!(slot.open.is_none());
        assert_eq!(slot.commits, 1);
        assert_eq!(rows(&pool).await, [7]);
    }
}
