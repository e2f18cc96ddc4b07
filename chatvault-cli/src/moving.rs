//! The verbs that move or check data: `export`, `import`, `copy`, `verify`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use chatvault_archive::{
    ArchiveReader, ArchiveWriter, ExportOptions, ImportOptions, ImportReport, MAX_LISTED_PROBLEMS,
    Problem, Scope, Store, VerifyReport,
};
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::output::{bar, follow, json_line};

/// `export`: to a directory, a `.tar` (by its extension), or standard output (`-`, as a
/// tar; refused when standard output is a terminal).
pub(crate) async fn export(
    store: &Store,
    scope: Scope,
    options: &ExportOptions,
    to: &Path,
    quiet: bool,
) -> Result<()> {
    let writer = if to == Path::new("-") {
        if std::io::stdout().is_terminal() {
            return Err(CliError::Usage(
                "refusing to write a tar archive to a terminal: redirect standard output or \
                 give --output PATH"
                    .into(),
            ));
        }
        ArchiveWriter::tar_to(Box::new(std::io::stdout()), Path::new("standard output"))?
    } else if to.extension().is_some_and(|e| e == "tar") {
        ArchiveWriter::create_tar(to)?
    } else {
        ArchiveWriter::create_dir(to)?
    };
    let bar = bar("exporting", quiet);
    let manifest =
        chatvault_archive::export_with(store, scope, options, writer, &follow(&bar)).await?;
    bar.finish_and_clear();
    let c = &manifest.counts;
    eprintln!(
        "exported {} conversations, {} messages, {} attachments ({} blobs, {} bytes) to {}",
        c.conversations,
        c.messages,
        c.attachments,
        c.blobs,
        c.blob_bytes,
        if to == Path::new("-") {
            "standard output".to_owned()
        } else {
            to.display().to_string()
        }
    );
    Ok(())
}

/// Opens an archive; a missing path is a usage error, anything unreadable is damage.
pub(crate) fn open_archive(path: &Path) -> Result<ArchiveReader> {
    if !path.exists() {
        return Err(CliError::Usage(format!("no archive at {}", path.display())));
    }
    Ok(ArchiveReader::open(path)?)
}

/// `import`: the archive into the store.
pub(crate) async fn import(
    archive: &ArchiveReader,
    store: &Store,
    dry_run: bool,
    quiet: bool,
) -> Result<()> {
    let bar = bar(if dry_run { "checking" } else { "importing" }, quiet);
    let options = ImportOptions::default().dry_run(dry_run);
    let report = chatvault_archive::import(archive, store, &options, &follow(&bar)).await?;
    bar.finish_and_clear();
    print_report(&report, dry_run);
    Ok(())
}

/// `copy`: every conversation of `scope` from `src` to `dst`.
pub(crate) async fn copy(
    src: &Store,
    dst: &Store,
    scope: Scope,
    dry_run: bool,
    quiet: bool,
) -> Result<()> {
    let bar = bar("copying", quiet);
    let options = ImportOptions::default().dry_run(dry_run);
    let report = chatvault_archive::copy(src, dst, scope, &options, &follow(&bar)).await?;
    bar.finish_and_clear();
    print_report(&report, dry_run);
    Ok(())
}

fn print_report(r: &ImportReport, dry_run: bool) {
    let verb = if dry_run { "would add" } else { "added" };
    if r.added_nothing() {
        eprintln!(
            "nothing to add: the destination already holds all {} conversations, {} messages \
             and {} attachments",
            r.conversations_present, r.messages_present, r.files_present
        );
        return;
    }
    eprintln!(
        "{verb} {} conversations ({} present already, completed where short), {} messages \
         ({} present), {} attachments ({} present), {} bytes uploaded",
        r.conversations_created,
        r.conversations_present,
        r.messages_added,
        r.messages_present,
        r.files_added,
        r.files_present,
        r.bytes_uploaded
    );
}

/// The JSON form of a verify report.
#[derive(Serialize)]
struct VerifyJson {
    clean: bool,
    conversations: u64,
    messages: u64,
    attachments: u64,
    bytes_read: u64,
    problem_count: u64,
    problems: Vec<String>,
}

/// `verify`: of the store, or of an archive; damage found is [`CliError::Damage`].
/// `found` holds what was found before (a store's derived files), reported first.
pub(crate) async fn verify(
    target: VerifyTarget<'_>,
    found: Vec<Problem>,
    read_blobs: bool,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let bar = bar("verifying", quiet);
    let mut report = match target {
        VerifyTarget::Store(store) => {
            chatvault_archive::verify_store(store, Scope::All, read_blobs, &follow(&bar)).await?
        }
        VerifyTarget::Archive(archive) => chatvault_archive::verify_archive(archive, &follow(&bar)),
    };
    bar.finish_and_clear();
    if !found.is_empty() {
        let counted = report.problem_count + found.len() as u64;
        let mut listed = found;
        listed.append(&mut report.problems);
        listed.truncate(MAX_LISTED_PROBLEMS);
        report.problems = listed;
        report.problem_count = counted;
    }
    print_verify(&report, json)?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Damage(format!(
            "{} problem(s) found",
            report.problem_count
        )))
    }
}

/// What `verify` checks.
#[derive(Debug)]
pub(crate) enum VerifyTarget<'a> {
    /// A store.
    Store(&'a Store),
    /// An archive.
    Archive(&'a ArchiveReader),
}

fn print_verify(r: &VerifyReport, json: bool) -> Result<()> {
    if json {
        return json_line(&VerifyJson {
            clean: r.is_clean(),
            conversations: r.conversations,
            messages: r.messages,
            attachments: r.attachments,
            bytes_read: r.bytes_read,
            problem_count: r.problem_count,
            problems: r.problems.iter().map(ToString::to_string).collect(),
        });
    }
    for p in &r.problems {
        println!("DAMAGE {p}");
    }
    if r.problem_count > r.problems.len() as u64 {
        println!("... and {} more", r.problem_count - r.problems.len() as u64);
    }
    println!(
        "{}: {} conversations, {} messages, {} attachments, {} bytes read",
        if r.is_clean() { "clean" } else { "DAMAGED" },
        r.conversations,
        r.messages,
        r.attachments,
        r.bytes_read
    );
    Ok(())
}

/// The default export path: `chatvault-export-TIME` in the working directory.
pub(crate) fn default_export_path() -> PathBuf {
    PathBuf::from(format!(
        "chatvault-export-{}",
        chatvault_core::backend::now().format("%Y%m%dT%H%M%S")
    ))
}
