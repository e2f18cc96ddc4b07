//! The listing index of [`LocalMessages`](crate::LocalMessages): every conversation's
//! `(user, last_active, id, archived)`, ordered for listings, so that a page costs
//! O(page size) reads whatever the number of conversations.
//!
//! # On disk (`index/` in the store)
//!
//! ```text
//! index/lock          flock: shared while a claim is written, exclusive while rewriting
//! index/snapshot      {"v":2,"boot":..,"journal":g,"claims":n,"crc":..}, then n claim lines
//! index/journal-<g>   claims written since the snapshot, one line each (O_APPEND)
//! index/rebuild       present when a writer could not record a claim: rebuild
//! ```
//!
//! A claim line is `<CRC-32 hex> <JSON>\n`. Writers record a *tentative* claim (the state a
//! change will have) before the change's commit point and a *confirmed* one after it, both
//! while holding the conversation's lock; a delete records its claim after its commit. None
//! of these writes is flushed: the index is derived state. It is trusted only while it can
//! be shown complete:
//!
//! - a listing first resolves every tentative claim (a change in progress, or one cut short
//!   by a crash) by reading that conversation;
//! - every conversation a page returns is read (its summary comes from its own files), and
//!   an entry that disagrees is corrected and the page recomputed;
//! - when a process loads the index from its files, every conversation directory without
//!   an entry is read and entered (a journal cut at a line boundary looks complete: its
//!   lost claims cost reads, never a conversation's place in listings); the snapshot
//!   carries its claim count and checksum, so a cut or altered snapshot is rebuilt;
//! - the snapshot records the boot id of the machine it was written under: after a reboot
//!   (where unflushed writes may have been lost) the index is rebuilt from the
//!   conversations, as it is when a file is missing, a line is damaged, or a writer left
//!   `index/rebuild`.
//!
//! A process kill loses nothing written (it is in the page cache), so between reboots the
//! index stays complete; a tentative claim is always at least as recent as the truth, so a
//! conversation never sorts later in the index than it really is.

mod check;
mod claim;

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chatvault_core::backend::{ConversationSummary, Error, ListCursor, ListOptions, Page, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{BACKEND, io_at, io_error};
use crate::fsutil::{create_dir_all_durable, is_not_found, write_replace_unsynced};
use claim::ClaimState;
pub(crate) use claim::{Claim, Found, Source};

/// Journal bytes past which the index is compacted into a new snapshot (and at least
/// twice the snapshot's size).
const COMPACT_BYTES: u64 = 4 << 20;
/// Recomputations of one page after corrections before giving up with `Conflict`.
const MAX_RESTARTS: usize = 32;

const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
const LOCK: &str = "lock";
const REBUILD: &str = "rebuild";

fn journal_name(generation: u64) -> String {
    format!("journal-{generation}")
}

/// Listing order key: newest activity first, then id descending.
type Key = (Reverse<DateTime<Utc>>, Reverse<String>);

fn key(last_active: DateTime<Utc>, id: &str) -> Key {
    (Reverse(last_active), Reverse(id.to_owned()))
}

/// The version of the snapshot's layout written by this release. Version 1 (0.2's
/// development builds) had no claim count or checksum: it is rebuilt, never trusted.
const SNAPSHOT_VERSION: u32 = 2;

/// The first line of the snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHead {
    v: u32,
    boot: Option<String>,
    journal: u64,
    /// How many claim lines follow.
    #[serde(default)]
    claims: u64,
    /// The CRC-32 of everything after this line: a snapshot cut at a line boundary, or
    /// with a line changed into another valid one, is not trusted.
    #[serde(default)]
    crc: u32,
}

/// The boot id of the running system (Linux), which changes with every reboot.
fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The ordered index, as this process knows it.
#[derive(Debug, Default)]
struct Mem {
    entries: HashMap<String, Claim>,
    all: BTreeSet<Key>,
    by_user: HashMap<String, BTreeSet<Key>>,
    /// Conversations whose newest claim is tentative.
    suspects: HashSet<String>,
    /// The journal generation read, its handle, and how far it was read.
    generation: u64,
    journal: Option<File>,
    offset: u64,
    snapshot_bytes: u64,
    loaded: bool,
}

impl Mem {
    fn remove(&mut self, id: &str) {
        if let Some(old) = self.entries.remove(id) {
            let k = key(old.last_active, &old.id);
            self.all.remove(&k);
            if let Some(user) = &old.user
                && let Some(set) = self.by_user.get_mut(user)
            {
                set.remove(&k);
                if set.is_empty() {
                    self.by_user.remove(user);
                }
            }
        }
        self.suspects.remove(id);
    }

    fn apply(&mut self, claim: Claim) {
        self.remove(&claim.id);
        match claim.state {
            ClaimState::Deleted => {}
            state => {
                let k = key(claim.last_active, &claim.id);
                self.all.insert(k.clone());
                if let Some(user) = &claim.user {
                    self.by_user.entry(user.clone()).or_default().insert(k);
                }
                if state == ClaimState::Tentative {
                    self.suspects.insert(claim.id.clone());
                }
                self.entries.insert(claim.id.clone(), claim);
            }
        }
    }

    /// Applies the complete lines of `buf`; returns the bytes consumed, or `None` when a
    /// complete line is damaged.
    fn apply_lines(&mut self, buf: &[u8]) -> Option<usize> {
        let mut used = 0;
        while let Some(nl) = buf[used..].iter().position(|&b| b == b'\n') {
            let line = &buf[used..used + nl];
            self.apply(Claim::parse(line)?);
            used += nl + 1;
        }
        Some(used)
    }
}

/// The handle claims are appended through.
#[derive(Debug, Default)]
struct Writer {
    lock: Option<File>,
    journal: Option<(u64, File)>,
}

/// The listing index of one store.
#[derive(Debug)]
pub(crate) struct Listing {
    dir: PathBuf,
    mem: Mutex<Mem>,
    writer: Mutex<Writer>,
}

fn open_lock(dir: &Path) -> Result<File> {
    create_dir_all_durable(dir)?;
    let path = dir.join(LOCK);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_at("open", &path))
}

/// Whether an open file is still linked at its name (not replaced by a compaction).
fn still_linked(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        let _ = path;
        use std::os::unix::fs::MetadataExt;
        file.metadata().is_ok_and(|m| m.nlink() > 0)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

fn poisoned() -> Error {
    Error::backend(
        BACKEND,
        io::Error::other("a thread panicked in the listing index"),
    )
}

/// The generations of the journals in index directory `dir`.
fn journals(dir: &Path) -> Result<Vec<u64>> {
    let entries = fs::read_dir(dir).map_err(io_at("list", dir))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if let Some(g) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("journal-"))
            .and_then(|g| g.parse().ok())
        {
            out.push(g);
        }
    }
    Ok(out)
}

/// Locks `file` exclusively (or shared) until the guard drops.
struct FlockGuard<'a>(&'a File);

impl<'a> FlockGuard<'a> {
    fn new(file: &'a File, exclusive: bool, path: &Path) -> Result<Self> {
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(io_at("lock", path))?;
        Ok(FlockGuard(file))
    }
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Listing {
    /// The index in `dir` (created if missing). Loading it is deferred to the first use.
    pub(crate) fn new(dir: PathBuf) -> Result<Self> {
        create_dir_all_durable(&dir)?;
        Ok(Listing {
            dir,
            mem: Mutex::new(Mem::default()),
            writer: Mutex::new(Writer::default()),
        })
    }

    /// The journal generation writers append to: the snapshot's, else the newest journal,
    /// else 0 (none yet).
    fn current_generation(&self) -> Result<u64> {
        if let Some(head) = self.read_snapshot_head()? {
            return Ok(head.journal);
        }
        Ok(journals(&self.dir)?.into_iter().max().unwrap_or(0))
    }

    fn read_snapshot_head(&self) -> Result<Option<SnapshotHead>> {
        let path = self.dir.join(SNAPSHOT);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = file.read(&mut buf).map_err(io_at("read", &path))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(nl) = head.iter().position(|&b| b == b'\n') {
                head.truncate(nl);
                return Ok(serde_json::from_slice(&head).ok());
            }
        }
        Ok(None)
    }

    /// Records `claim` in the journal. On failure the index is marked for a rebuild; the
    /// error is returned only if even that fails.
    pub(crate) fn record(&self, claim: &Claim) -> Result<()> {
        match self.try_record(claim) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "could not record a listing claim; the index will be rebuilt");
                let marker = self.dir.join(REBUILD);
                File::create(&marker).map(drop).map_err(|_| e)
            }
        }
    }

    /// Records a claim after a commit: a failure only costs a verification later.
    pub(crate) fn record_after_commit(&self, claim: &Claim) {
        if let Err(e) = self.record(claim) {
            tracing::warn!(error = %e, conversation = claim.id, "listing claim not recorded");
        }
    }

    fn try_record(&self, claim: &Claim) -> Result<()> {
        let line = claim.line()?;
        let mut writer = self.writer.lock().map_err(|_| poisoned())?;
        let writer = &mut *writer;
        if writer.lock.is_none() {
            writer.lock = Some(open_lock(&self.dir)?);
        }
        let Some(lock) = writer.lock.as_ref() else {
            return Err(poisoned());
        };
        let lock_path = self.dir.join(LOCK);
        let mut guard = FlockGuard::new(lock, false, &lock_path)?;
        let live = still_linked(lock, &lock_path)
            && writer
                .journal
                .as_ref()
                .is_some_and(|(g, f)| still_linked(f, &self.dir.join(journal_name(*g))));
        if !live {
            // Compacted, or deleted (the directory too): start again from the files.
            drop(guard);
            writer.journal = None;
            create_dir_all_durable(&self.dir)?;
            writer.lock = Some(open_lock(&self.dir)?);
            let Some(lock) = writer.lock.as_ref() else {
                return Err(poisoned());
            };
            guard = FlockGuard::new(lock, false, &lock_path)?;
            let mut generation = self.current_generation()?;
            let fresh = generation == 0;
            if fresh {
                generation = 1;
            }
            let path = self.dir.join(journal_name(generation));
            // Only the very first journal is created by a writer: a journal named by a
            // snapshot that is missing means lost claims, which a rebuild must repair.
            let file = OpenOptions::new()
                .append(true)
                .create(fresh)
                .open(&path)
                .map_err(io_at("open", &path))?;
            writer.journal = Some((generation, file));
        }
        let Some((generation, journal)) = writer.journal.as_mut() else {
            return Err(poisoned());
        };
        let path = self.dir.join(journal_name(*generation));
        let written = journal.write_all(&line).map_err(io_at("write", &path));
        drop(guard);
        written
    }

    /// Loads the index from its files, or rebuilds it; then reads the journal's new lines.
    ///
    /// When the index is loaded from its files (a process's first use, or after another
    /// process compacted it), every conversation directory it has no entry for is made a
    /// suspect, read by the next [`settle`](Self::settle): claims lost to damage of the
    /// index's files (a journal cut at a line boundary looks complete) cost a read of the
    /// conversations they were about, never their place in listings. That costs one
    /// directory listing of the store per load, no file reads when nothing is missing.
    fn refresh(&self, mem: &mut Mem, source: &dyn Source) -> Result<()> {
        if self.dir.join(REBUILD).exists() {
            return self.rebuild(mem, source);
        }
        let live = mem.loaded
            && mem
                .journal
                .as_ref()
                .is_some_and(|f| still_linked(f, &self.dir.join(journal_name(mem.generation))));
        if !live && !self.load(mem)? {
            return self.rebuild(mem, source);
        }
        if !self.catch_up(mem)? {
            return self.rebuild(mem, source);
        }
        if !live {
            for id in source.ids()? {
                if !mem.entries.contains_key(&id) {
                    mem.suspects.insert(id);
                }
            }
        }
        if mem.offset > COMPACT_BYTES.max(2 * mem.snapshot_bytes) {
            self.compact(mem)?;
        }
        Ok(())
    }

    /// Loads the snapshot and opens its journal; `false` when they cannot be trusted.
    fn load(&self, mem: &mut Mem) -> Result<bool> {
        let path = self.dir.join(SNAPSHOT);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
            return Ok(false);
        };
        let Ok(head) = serde_json::from_slice::<SnapshotHead>(&bytes[..nl]) else {
            return Ok(false);
        };
        let boot = boot_id();
        if head.v != SNAPSHOT_VERSION || boot.is_none() || head.boot != boot {
            return Ok(false);
        }
        let body = &bytes[nl + 1..];
        let lines = body.iter().filter(|&&b| b == b'\n').count() as u64;
        if crc32fast::hash(body) != head.crc || lines != head.claims {
            return Ok(false);
        }
        let journal_path = self.dir.join(journal_name(head.journal));
        let journal = match File::open(&journal_path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(io_error("open", &journal_path, e)),
        };
        let mut fresh = Mem::default();
        if fresh.apply_lines(body) != Some(body.len()) {
            return Ok(false);
        }
        fresh.generation = head.journal;
        fresh.journal = Some(journal);
        fresh.snapshot_bytes = bytes.len() as u64;
        fresh.loaded = true;
        *mem = fresh;
        Ok(true)
    }

    /// Applies the journal's lines written since the last read; `false` if one is damaged.
    fn catch_up(&self, mem: &mut Mem) -> Result<bool> {
        let path = self.dir.join(journal_name(mem.generation));
        let Some(journal) = mem.journal.as_mut() else {
            return Ok(false);
        };
        // A journal shorter than what was read of it was cut: claims are lost.
        let len = journal.metadata().map_err(io_at("stat", &path))?.len();
        if len < mem.offset {
            return Ok(false);
        }
        let mut buf = Vec::new();
        journal
            .seek(SeekFrom::Start(mem.offset))
            .and_then(|_| journal.read_to_end(&mut buf))
            .map_err(io_at("read", &path))?;
        match mem.apply_lines(&buf) {
            Some(used) => {
                mem.offset += used as u64;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Writes `mem` as the snapshot of generation `generation + 1` and retires journal
    /// `generation`. Called under the exclusive lock.
    fn write_snapshot(&self, mem: &mut Mem, generation: u64) -> Result<()> {
        let next = generation + 1;
        let journal_path = self.dir.join(journal_name(next));
        let journal = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&journal_path)
            .map_err(io_at("create", &journal_path))?;
        let mut body = Vec::new();
        for claim in mem.entries.values() {
            body.extend_from_slice(&claim.line()?);
        }
        let head = SnapshotHead {
            v: SNAPSHOT_VERSION,
            boot: boot_id(),
            journal: next,
            claims: mem.entries.len() as u64,
            crc: crc32fast::hash(&body),
        };
        let mut bytes = serde_json::to_vec(&head).map_err(|e| Error::backend(BACKEND, e))?;
        bytes.push(b'\n');
        bytes.extend_from_slice(&body);
        write_replace_unsynced(
            &self.dir.join(SNAPSHOT),
            &self.dir.join(SNAPSHOT_TMP),
            &bytes,
        )?;
        for g in journals(&self.dir)? {
            if g != next {
                let _ = fs::remove_file(self.dir.join(journal_name(g)));
            }
        }
        mem.generation = next;
        mem.journal = Some(journal);
        mem.offset = 0;
        mem.snapshot_bytes = bytes.len() as u64;
        mem.loaded = true;
        Ok(())
    }

    fn compact(&self, mem: &mut Mem) -> Result<()> {
        let lock = open_lock(&self.dir)?;
        let _guard = FlockGuard::new(&lock, true, &self.dir.join(LOCK))?;
        let path = self.dir.join(journal_name(mem.generation));
        let live = mem.journal.as_ref().is_some_and(|f| still_linked(f, &path));
        if !live {
            // Another process compacted first: its snapshot is read by the next refresh.
            mem.loaded = false;
            return Ok(());
        }
        if !self.catch_up(mem)? {
            mem.loaded = false;
            return Ok(());
        }
        let generation = mem.generation;
        self.write_snapshot(mem, generation)
    }

    /// Rebuilds the index from the conversations themselves.
    fn rebuild(&self, mem: &mut Mem, source: &dyn Source) -> Result<()> {
        tracing::info!(index = %self.dir.display(), "rebuilding the listing index");
        let lock = open_lock(&self.dir)?;
        let lock_path = self.dir.join(LOCK);
        // Claims written from here on land in journal `generation` after `start`, and are
        // applied over the scan below.
        let (generation, start) = {
            let _guard = FlockGuard::new(&lock, true, &lock_path)?;
            let _ = fs::remove_file(self.dir.join(REBUILD));
            let mut generation = self.current_generation()?;
            if generation == 0 {
                generation = 1;
            }
            let path = self.dir.join(journal_name(generation));
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(io_at("open", &path))?;
            let len = file.metadata().map_err(io_at("stat", &path))?.len();
            (generation, len)
        };
        let found = source.found_all()?;
        let _guard = FlockGuard::new(&lock, true, &lock_path)?;
        let path = self.dir.join(journal_name(generation));
        let mut journal = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => {
                // Another process rebuilt or compacted meanwhile: use its result.
                mem.loaded = false;
                drop(_guard);
                return if self.load(mem)? && self.catch_up(mem)? {
                    Ok(())
                } else {
                    Err(Error::Conflict {
                        message: "the listing index kept being rewritten".into(),
                    })
                };
            }
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let mut fresh = Mem::default();
        for f in found {
            if let Found::Record(record) = f {
                fresh.apply(Claim::confirmed(&record));
            }
        }
        let mut buf = Vec::new();
        journal
            .seek(SeekFrom::Start(start))
            .and_then(|_| journal.read_to_end(&mut buf))
            .map_err(io_at("read", &path))?;
        let mut used = 0;
        while let Some(nl) = buf[used..].iter().position(|&b| b == b'\n') {
            // A damaged line here is skipped: the scan is newer than anything before it.
            if let Some(claim) = Claim::parse(&buf[used..used + nl]) {
                fresh.apply(claim);
            }
            used += nl + 1;
        }
        self.write_snapshot(&mut fresh, generation)?;
        *mem = fresh;
        Ok(())
    }

    /// Reads every tentative claim's conversation and settles its entry.
    fn settle(&self, mem: &mut Mem, source: &dyn Source) -> Result<()> {
        let suspects: Vec<String> = mem.suspects.iter().cloned().collect();
        for id in suspects {
            self.verify(mem, &id, source.found(&id)?);
        }
        Ok(())
    }

    /// Corrects `id`'s entry with what was found; returns whether it needed correcting.
    fn verify(&self, mem: &mut Mem, id: &str, found: Found) -> bool {
        let entry = mem.entries.get(id);
        let claim = match &found {
            Found::Record(r) => {
                if entry.is_some_and(|e| e.state == ClaimState::Confirmed && e.agrees_with(r)) {
                    return false;
                }
                Claim::confirmed(r)
            }
            // Nothing to correct: a directory that is no conversation (a suspect only
            // because it had no entry).
            Found::Missing if entry.is_none() => {
                mem.suspects.remove(id);
                return false;
            }
            Found::Missing => Claim::deleted(id),
            // Left in place (and out of pages): its files may be repaired.
            Found::Damaged => {
                mem.suspects.remove(id);
                return false;
            }
        };
        // Tell the other processes, so that they need not read it again.
        self.record_after_commit(&claim);
        mem.apply(claim);
        true
    }

    /// A page of `user`'s conversations (everyone's for `None`).
    pub(crate) fn page(
        &self,
        user: Option<&str>,
        options: &ListOptions,
        source: &dyn Source,
    ) -> Result<Page<ConversationSummary>> {
        let limit = options.limit.get();
        let mut mem = self.mem.lock().map_err(|_| poisoned())?;
        let mem = &mut *mem;
        self.refresh(mem, source)?;
        self.settle(mem, source)?;
        let after = options
            .cursor
            .as_ref()
            .map(|c: &ListCursor| key(c.last_active, c.id.as_str()));
        'restart: for _ in 0..MAX_RESTARTS {
            let set = match user {
                Some(u) => match mem.by_user.get(u) {
                    Some(set) => set,
                    None => {
                        return Ok(Page {
                            items: Vec::new(),
                            next_cursor: None,
                        });
                    }
                },
                None => &mem.all,
            };
            let range = match &after {
                Some(k) => set.range((Bound::Excluded(k.clone()), Bound::Unbounded)),
                None => set.range::<Key, _>(..),
            };
            let mut candidates = Vec::with_capacity(limit + 1);
            for (_, Reverse(id)) in range {
                let Some(entry) = mem.entries.get(id) else {
                    continue;
                };
                if !options.include_archived && entry.archived {
                    continue;
                }
                candidates.push(id.clone());
                if candidates.len() > limit {
                    break;
                }
            }
            // The entry after the page only says whether there is a next page: its
            // conversation directory must exist, which is checked without reading it.
            let probe = (candidates.len() > limit).then(|| candidates.pop());
            if let Some(Some(id)) = &probe
                && !source.exists(id)?
            {
                self.verify(mem, id, Found::Missing);
                continue 'restart;
            }
            let mut items = Vec::with_capacity(candidates.len() + 1);
            for id in candidates {
                match source.found(&id)? {
                    Found::Record(record) => {
                        let agrees = mem.entries.get(&id).is_some_and(|e| e.agrees_with(&record));
                        if !agrees {
                            self.verify(mem, &id, Found::Record(record));
                            continue 'restart;
                        }
                        items.push(record.summary());
                    }
                    Found::Missing => {
                        self.verify(mem, &id, Found::Missing);
                        continue 'restart;
                    }
                    Found::Damaged => {
                        tracing::warn!(
                            conversation = id,
                            "leaving a damaged conversation out of a listing"
                        );
                    }
                }
            }
            let more = probe.is_some();
            let next_cursor = if more {
                items.last().map(|s| ListCursor::after(s).encode())
            } else {
                None
            };
            return Ok(Page { items, next_cursor });
        }
        Err(Error::Conflict {
            message: "conversations kept changing while a listing page was read".into(),
        })
    }

    /// The ids of every conversation of `user`, newest activity first.
    pub(crate) fn ids_of(&self, user: &str, source: &dyn Source) -> Result<Vec<String>> {
        let mut mem = self.mem.lock().map_err(|_| poisoned())?;
        let mem = &mut *mem;
        self.refresh(mem, source)?;
        self.settle(mem, source)?;
        Ok(mem
            .by_user
            .get(user)
            .map(|set| set.iter().map(|(_, Reverse(id))| id.clone()).collect())
            .unwrap_or_default())
    }

    /// What is wrong with the index's files, judged against the conversations `source`
    /// holds (`None`: nothing; see [`check::problem`]); with `fix`, rebuilds the index from
    /// the conversations when something is.
    pub(crate) fn check(&self, source: &dyn Source, fix: bool) -> Result<Option<String>> {
        let problem = check::problem(&self.dir, source)?;
        if fix && problem.is_some() {
            let mut mem = self.mem.lock().map_err(|_| poisoned())?;
            self.rebuild(&mut mem, source)?;
        }
        Ok(problem)
    }

    /// Forces a rebuild from the conversations at the next use (after a bulk import).
    pub(crate) fn invalidate(&self) -> Result<()> {
        let marker = self.dir.join(REBUILD);
        File::create(&marker)
            .map(drop)
            .map_err(io_at("create", &marker))
    }
}
