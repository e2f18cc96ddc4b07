//! [`LocalMessages::repair`](crate::LocalMessages::repair): every derived file checked
//! against the logs, and written again from them where it is wrong.

use std::fs;
use std::path::Path;

use chatvault_core::backend::Result;

use super::conversation::ConversationLog;
use super::conversation::lock::{Mode, lock_dir};
use super::deleting::Markers;
use super::report::{RepairItem, RepairReport};
use super::rewrite::{self, REWRITE_MARK};
use super::store::Store;
use crate::error::{io_at, io_error, is_damage};
use crate::fsutil::is_absent;

/// Checks every derived file of `store` against the logs and (unless `dry_run`) writes
/// the wrong ones again: see [`LocalMessages::repair`](crate::LocalMessages::repair).
pub(super) fn repair(store: &Store, dry_run: bool) -> Result<RepairReport> {
    let mut report = RepairReport {
        dry_run,
        ..RepairReport::default()
    };
    let entries =
        fs::read_dir(&store.conversations).map_err(io_at("list", &store.conversations))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at("list", &store.conversations))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    for dir in dirs {
        if let Some(deleting) = conversation(&dir, dry_run, &mut report)? {
            Markers::new(store).check(&dir, deleting, dry_run, &mut report)?;
        }
    }
    Markers::new(store).sweep_gone(dry_run, &mut report)?;
    if let Some(problem) = store.index.check(store, !dry_run)? {
        report.rebuilt.push(RepairItem {
            path: store.root.join("index"),
            problem: format!("listing index: {problem}"),
        });
    }
    Ok(report)
}

/// Checks (and unless `dry_run` repairs) one conversation directory. Returns whether
/// it is marked for deletion (`None` when it holds no readable conversation).
fn conversation(dir: &Path, dry_run: bool, report: &mut RepairReport) -> Result<Option<bool>> {
    let lock_path = dir.join("lock");
    let lock_len = match fs::metadata(&lock_path) {
        Ok(meta) => Some(meta.len()),
        Err(e) if is_absent(&e) => None,
        Err(e) => return Err(io_error("stat", &lock_path, e)),
    };
    let Some(lock) = lock_dir(dir, Mode::Exclusive)? else {
        return Ok(None);
    };
    if rewrite::pending(dir) {
        report.rebuilt.push(RepairItem {
            path: dir.join(REWRITE_MARK),
            problem: "the rewrite of the log after a redaction was interrupted: versions \
                      it superseded may still be on disk"
                .into(),
        });
        if !dry_run {
            let finished = ConversationLog::load(dir, None).and_then(|view| match view {
                Some(view) if !view.is_legacy() => rewrite::finish(&view),
                _ => Ok(()),
            });
            match finished {
                Ok(()) => {}
                // Reported below: nothing is written to a damaged conversation.
                Err(e) if is_damage(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let deleting = match ConversationLog::check_derived(dir, !dry_run) {
        Ok(Some((view, found))) => {
            report.conversations += 1;
            report.rebuilt.extend(
                found
                    .into_iter()
                    .map(|(path, problem)| RepairItem { path, problem }),
            );
            Some(view.deleting)
        }
        // Not a conversation (or one 0.1 wrote, upgraded when first opened).
        Ok(None) => return Ok(None),
        Err(e) if is_damage(&e) => {
            report.conversations += 1;
            report.damaged.push(RepairItem {
                path: dir.to_path_buf(),
                problem: format!("damaged log, left as it is: {e}"),
            });
            None
        }
        Err(e) => return Err(e),
    };
    match lock_len {
        None => report.rebuilt.push(RepairItem {
            path: lock_path,
            problem: "lock file missing (created again by taking the lock)".into(),
        }),
        Some(0) => {}
        Some(len) => {
            if !dry_run {
                lock.set_len(0).map_err(io_at("truncate", &lock_path))?;
            }
            report.rebuilt.push(RepairItem {
                path: lock_path,
                problem: format!("lock file holds {len} bytes; it is empty"),
            });
        }
    }
    Ok(deleting)
}
