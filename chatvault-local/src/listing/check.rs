//! Checking the listing index's files against the conversations, for
//! [`LocalMessages::repair`](crate::LocalMessages::repair) (which has the index rebuilt
//! when something is wrong).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use chatvault_core::backend::Result;

use super::claim::ClaimState;
use super::{
    FlockGuard, Found, LOCK, Mem, REBUILD, SNAPSHOT, SNAPSHOT_VERSION, SnapshotHead, Source,
    journal_name, journals, open_lock,
};
use crate::error::io_error;
use crate::fsutil::is_not_found;

/// The most conversation ids a finding names.
const NAMED: usize = 5;

/// What is wrong with the files of the index in `dir`, judged against the conversations
/// `source` holds; `None` when nothing is.
///
/// Wrong: a snapshot or journal that is missing, damaged, or ends in bytes that are no
/// claim; a rebuild a writer asked for; a conversation the index has no line for, a
/// confirmed line that disagrees with its conversation, or one for a conversation that
/// does not exist. Not wrong: tentative lines (changes in progress, or cut short by a
/// crash: listings settle them), lines of damaged conversations (kept on purpose), and a
/// snapshot written before the last reboot whose lines agree (the store rebuilds it at
/// its next use anyway).
pub(super) fn problem(dir: &Path, source: &dyn Source) -> Result<Option<String>> {
    Ok(match read_files(dir)? {
        Err(why) => Some(why),
        Ok(mem) => compare(&mem, source)?,
    })
}

/// The index in `dir` as its files hold it, read under the exclusive lock (so that no
/// claim is half written); `Err(why)` when the files cannot be trusted.
fn read_files(dir: &Path) -> Result<std::result::Result<Mem, String>> {
    let lock = open_lock(dir)?;
    let _guard = FlockGuard::new(&lock, true, &dir.join(LOCK))?;
    if dir.join(REBUILD).exists() {
        return Ok(Err(
            "marked for a rebuild (a change could not be recorded in it)".into(),
        ));
    }
    let mut mem = Mem::default();
    let path = dir.join(SNAPSHOT);
    let generation = match fs::read(&path) {
        Ok(bytes) => match load_snapshot(&mut mem, &bytes) {
            Ok(generation) => generation,
            Err(why) => return Ok(Err(format!("snapshot {why}"))),
        },
        // Never built (no listing so far): the first journal holds every claim.
        Err(e) if is_not_found(&e) => match journals(dir)?.into_iter().max() {
            None => return Ok(Ok(mem)),
            Some(g) if g <= 1 => g,
            Some(g) => return Ok(Err(format!("snapshot missing (journal-{g} exists)"))),
        },
        Err(e) => return Err(io_error("read", &path, e)),
    };
    let path = dir.join(journal_name(generation));
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if is_not_found(&e) => {
            return Ok(Err(format!(
                "journal-{generation}, which the snapshot names, is missing"
            )));
        }
        Err(e) => return Err(io_error("read", &path, e)),
    };
    Ok(match mem.apply_lines(&bytes) {
        None => Err(format!("journal-{generation} has a damaged line")),
        Some(used) if used < bytes.len() => Err(format!(
            "journal-{generation} ends in {} bytes that are no claim",
            bytes.len() - used
        )),
        Some(_) => Ok(mem),
    })
}

/// Loads a snapshot's claims into `mem`; returns its journal's generation, or what is
/// wrong with it (its boot id aside).
fn load_snapshot(mem: &mut Mem, bytes: &[u8]) -> std::result::Result<u64, String> {
    let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
        return Err("damaged: no head line".into());
    };
    let Ok(head) = serde_json::from_slice::<SnapshotHead>(&bytes[..nl]) else {
        return Err("damaged: its head line does not parse".into());
    };
    if head.v != SNAPSHOT_VERSION {
        return Err(format!(
            "of layout {} (this release writes {SNAPSHOT_VERSION})",
            head.v
        ));
    }
    let body = &bytes[nl + 1..];
    let lines = body.iter().filter(|&&b| b == b'\n').count() as u64;
    if crc32fast::hash(body) != head.crc || lines != head.claims {
        return Err("damaged: its checksum or claim count does not match its lines".into());
    }
    if mem.apply_lines(body) != Some(body.len()) {
        return Err("damaged: a claim line does not check out".into());
    }
    Ok(head.journal)
}

/// How the index's lines disagree with the conversations; `None` when they agree.
fn compare(mem: &Mem, source: &dyn Source) -> Result<Option<String>> {
    let mut live = HashSet::new();
    let (mut missing, mut stale, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    for found in source.found_all()? {
        let Found::Record(record) = found else {
            continue;
        };
        let id = record.id.to_string();
        match mem.entries.get(&id) {
            None => missing.push(id.clone()),
            Some(c) if c.state == ClaimState::Confirmed && !c.agrees_with(&record) => {
                stale.push(id.clone());
            }
            Some(_) => {}
        }
        live.insert(id);
    }
    for (id, claim) in &mem.entries {
        if claim.state == ClaimState::Confirmed && !live.contains(id) && !source.exists(id)? {
            gone.push(id.clone());
        }
    }
    let mut parts = Vec::new();
    for (ids, what) in [
        (missing, "conversations have no line"),
        (stale, "lines disagree with their conversation"),
        (gone, "lines are of conversations that do not exist"),
    ] {
        if ids.is_empty() {
            continue;
        }
        let mut named: Vec<&str> = ids.iter().map(String::as_str).collect();
        named.sort_unstable();
        let more = named.len().saturating_sub(NAMED);
        named.truncate(NAMED);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        parts.push(format!("{} {what} ({}{more})", ids.len(), named.join(", ")));
    }
    Ok((!parts.is_empty()).then(|| parts.join("; ")))
}
