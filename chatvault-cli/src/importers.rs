//! `import --from FORMAT`: another tool's export into the store.

use std::path::Path;

use chatvault_archive::Store;
use chatvault_archive::import::{Format, ImportOptions, ImportReport, import_file};
use chatvault_core::UserId;

use crate::error::{CliError, Result};
use crate::output::{bar, follow};

/// Imports the export at `path`; prints what was (or would be) added, what could not be
/// carried exactly, and each conversation that could not be imported. Conversations that
/// failed make the command fail with [`CliError::Damage`] once the others are in.
pub(crate) async fn import(
    format: Format,
    path: &Path,
    store: &Store,
    owner: UserId,
    dry_run: bool,
    quiet: bool,
) -> Result<()> {
    let bar = bar(if dry_run { "checking" } else { "importing" }, quiet);
    let options = ImportOptions::new(owner).dry_run(dry_run);
    let report = import_file(format, path, store, &options, &follow(&bar)).await?;
    bar.finish_and_clear();
    print_report(format, &report, dry_run);
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Damage(format!(
            "{} of {} conversations could not be imported (listed above); the others were{}",
            report.failed.len(),
            report.conversations,
            if dry_run { " checked" } else { "" }
        )))
    }
}

fn print_report(format: Format, r: &ImportReport, dry_run: bool) {
    let verb = if dry_run { "would add" } else { "added" };
    eprintln!(
        "{format}: {} conversations read; {verb} {} conversations ({} present already), \
         {} messages ({} present), {} attachments ({} present), {} bytes uploaded, \
         {} active leaves set",
        r.conversations,
        r.conversations_created,
        r.conversations_present,
        r.messages_added,
        r.messages_present,
        r.files_added,
        r.files_present,
        r.bytes_uploaded,
        r.leaves_set,
    );
    if !r.notes.is_empty() {
        eprintln!("not carried exactly:");
        for (what, n) in r.notes.counts() {
            eprintln!("  {what}: {n}");
        }
        if r.notes.missing_count() > 0 {
            eprintln!(
                "  attachments without bytes in the export (kept as file parts naming the \
                 source's pointer): {}",
                r.notes.missing_count()
            );
            for pointer in r.notes.missing_files() {
                eprintln!("    {pointer}");
            }
            let listed = r.notes.missing_files().len() as u64;
            if r.notes.missing_count() > listed {
                eprintln!("    ... and {} more", r.notes.missing_count() - listed);
            }
        }
    }
    for failure in &r.failed {
        eprintln!("FAILED {failure}");
    }
}
