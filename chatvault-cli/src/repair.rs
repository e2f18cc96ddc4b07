//! `repair [--dry-run]`: what a store derives from its data, checked and rebuilt; and
//! the same check as part of `verify`.

use std::path::Path;

use chatvault_archive::Problem;
use chatvault_local::{LocalMessages, RepairReport};
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::output::json_line;
use crate::url::StoreUrl;

/// What `repair` found: the derived files that were wrong (rebuilt, or with `--dry-run`
/// to be rebuilt) and the damaged user data it leaves alone.
#[derive(Debug, Default, Serialize)]
struct Found {
    /// The store, as shown in messages.
    store: String,
    dry_run: bool,
    /// Conversations checked (local stores).
    #[serde(skip_serializing_if = "Option::is_none")]
    conversations: Option<u64>,
    /// Derived files that were wrong, `path: problem`.
    rebuilt: Vec<String>,
    /// Damaged user data, `path: problem`: not repaired.
    damaged: Vec<String>,
    /// Why there was nothing to check, for a backend that derives nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    nothing_derived: Option<&'static str>,
}

/// What each backend that derives nothing says.
fn nothing_derived(url: &StoreUrl) -> &'static str {
    match url {
        StoreUrl::Memory => "an in-memory store derives nothing",
        StoreUrl::Postgres { .. } => {
            "PostgreSQL maintains the search column and every index itself: chatvault \
             derives nothing there (REINDEX is the database's own tool)"
        }
        StoreUrl::Redis { .. } => {
            "Redis writes each conversation's listing entries in the script that writes \
             it, and a listing removes the entries of conversations that are gone: \
             chatvault derives nothing there to rebuild"
        }
        _ => {
            "DynamoDB maintains the listing index (a global secondary index) itself: \
             chatvault derives nothing there"
        }
    }
}

/// `repair`: checks what `url`'s store derives and, unless `dry_run`, rebuilds what is
/// wrong. Damage found is [`CliError::Damage`]: with `dry_run` anything wrong; without,
/// damaged user data (which repair never changes).
pub(crate) async fn repair(url: &StoreUrl, dry_run: bool, json: bool) -> Result<()> {
    let found = check(url, dry_run).await?;
    print(&found, json)?;
    let damaged = found.damaged.len();
    if dry_run && found.rebuilt.len() + damaged > 0 {
        return Err(CliError::Damage(format!(
            "{} problem(s) found; run repair without --dry-run to rebuild the derived files",
            found.rebuilt.len() + damaged
        )));
    }
    if damaged > 0 {
        return Err(CliError::Damage(format!(
            "{damaged} conversation(s) with damaged data, left as they are: repair \
             rebuilds derived files only"
        )));
    }
    Ok(())
}

/// The derived files of `url`'s store that are wrong, as `verify` problems (checked, never
/// rebuilt); nothing for a backend that derives nothing.
pub(crate) async fn derived_problems(url: &StoreUrl) -> Result<Vec<Problem>> {
    let found = check(url, true).await?;
    let rebuilt = found.rebuilt.into_iter().map(|p| Problem {
        place: "derived file".to_owned(),
        what: format!("{p} (chatvault repair rebuilds it)"),
    });
    let damaged = found.damaged.into_iter().map(|p| Problem {
        place: "conversation".to_owned(),
        what: p,
    });
    Ok(rebuilt.chain(damaged).collect())
}

async fn check(url: &StoreUrl, dry_run: bool) -> Result<Found> {
    let mut found = Found {
        store: url.display(),
        dry_run,
        ..Found::default()
    };
    match url {
        StoreUrl::Local(dir) => {
            let report = local(url, dir).await?.repair(dry_run).await?;
            add_local(&mut found, report);
        }
        StoreUrl::Sqlite { file, .. } => sqlite(url, file, dry_run, &mut found).await?,
        other => found.nothing_derived = Some(nothing_derived(other)),
    }
    Ok(found)
}

/// Opens the `LocalMessages` of a `local:DIR` store that exists.
async fn local(url: &StoreUrl, dir: &Path) -> Result<LocalMessages> {
    let messages = dir.join("messages");
    let unreachable = |source| CliError::Unreachable {
        url: url.display(),
        source,
    };
    if !messages.is_dir() {
        return Err(unreachable(chatvault_core::Error::NotFound {
            kind: "store",
            id: dir.display().to_string(),
        }));
    }
    LocalMessages::open(messages).map_err(unreachable)
}

fn add_local(found: &mut Found, report: RepairReport) {
    found.conversations = Some(report.conversations);
    found.rebuilt = report.rebuilt.iter().map(ToString::to_string).collect();
    found.damaged = report.damaged.iter().map(ToString::to_string).collect();
}

#[cfg(feature = "sqlite")]
async fn sqlite(url: &StoreUrl, file: &Path, dry_run: bool, found: &mut Found) -> Result<()> {
    let unreachable = |source| CliError::Unreachable {
        url: url.display(),
        source,
    };
    if !file.is_file() {
        return Err(unreachable(chatvault_core::Error::NotFound {
            kind: "store",
            id: file.display().to_string(),
        }));
    }
    let db = chatvault_sql::SqliteMessages::connect(&format!("sqlite://{}", file.display()))
        .await
        .map_err(unreachable)?;
    let report = db.repair_search_index(dry_run).await?;
    if !report.consistent {
        found.rebuilt.push(format!(
            "{}: the full-text search index does not match the messages",
            file.display()
        ));
    }
    Ok(())
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(url: &StoreUrl, _: &Path, _: bool, _: &mut Found) -> Result<()> {
    Err(CliError::Unreachable {
        url: url.display(),
        source: crate::error::not_built("sqlite"),
    })
}

fn print(found: &Found, json: bool) -> Result<()> {
    if json {
        return json_line(found);
    }
    if let Some(why) = found.nothing_derived {
        println!("nothing to repair: {why}");
        return Ok(());
    }
    let verb = if found.dry_run {
        "WOULD REBUILD"
    } else {
        "REBUILT"
    };
    for p in &found.rebuilt {
        println!("{verb} {p}");
    }
    for p in &found.damaged {
        println!("DAMAGED {p}");
    }
    let checked = found
        .conversations
        .map(|n| format!("{n} conversations checked: "))
        .unwrap_or_default();
    let (rebuilt, damaged) = (found.rebuilt.len(), found.damaged.len());
    if rebuilt + damaged == 0 {
        println!("{checked}nothing to repair, every derived file matches the data");
        return Ok(());
    }
    let done = if found.dry_run {
        "to rebuild"
    } else {
        "rebuilt"
    };
    println!(
        "{checked}{rebuilt} derived file(s) {done}, {damaged} with damaged data left as they \
         are"
    );
    Ok(())
}
