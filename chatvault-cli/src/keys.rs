//! The verbs of an encrypted store's keys: `rotate-key` (a new version of an owner's data
//! key, and with `--reencrypt` their data sealed again with it) and `shred` (an owner's
//! data key destroyed: crypto-shredding), over chatvault-crypt's `Keyring`.

use std::collections::BTreeMap;

use chatvault_core::{ListOptions, MessagesBackend, UserId};
use chatvault_crypt::{ReencryptReport, reencrypt};
use clap::Args;
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::output::{bar, json_line};
use crate::sealed::Sealed;

/// `rotate-key`'s arguments: whose keys, what else, how to report.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// Whose data keys (exactly one of the two).
    #[command(flatten)]
    pub owners: OwnersArgs,
    /// Then seal the owner's data again with the new version (titles, messages,
    /// attachments' bytes), so that the old version protects nothing any more.
    #[arg(long)]
    pub reencrypt: bool,
    /// Only say what would be done (each owner's key version and conversations); write
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Whose data keys `rotate-key` rotates: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct OwnersArgs {
    /// This owner's data key.
    #[arg(long, value_name = "USER")]
    pub owner: Option<UserId>,
    /// The key of every owner that has a conversation (and the vault-wide key when some
    /// conversations have no owner).
    #[arg(long)]
    pub all_owners: bool,
}

/// `shred`'s arguments: whose key, and how to report.
#[derive(Debug, Args)]
pub struct ShredArgs {
    /// The owner whose data key is destroyed, and with it every copy of their data.
    #[arg(long, value_name = "USER")]
    pub owner: UserId,
    /// Only say what would be destroyed; destroy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `rotate-key` did (or would do) for one owner.
#[derive(Debug, Serialize)]
struct Rotated {
    /// The owner (`null`: the conversations without one).
    owner: Option<UserId>,
    /// The newest key version before; `null` when the owner has none (nothing done).
    version: Option<u32>,
    /// The version rotated to; `null` in a dry run, or without a key.
    new_version: Option<u32>,
    /// How many conversations the owner has.
    conversations: u64,
    /// What re-encryption did; `null` without `--reencrypt`, in a dry run, or without a
    /// key.
    reencrypted: Option<Reencrypted>,
}

/// The counts of a [`ReencryptReport`].
#[derive(Debug, Serialize)]
struct Reencrypted {
    conversations: u64,
    messages: u64,
    titles: u64,
    files: u64,
    conflicts: u64,
    records_kept: u64,
}

impl From<ReencryptReport> for Reencrypted {
    fn from(r: ReencryptReport) -> Self {
        Reencrypted {
            conversations: r.conversations,
            messages: r.messages,
            titles: r.titles,
            files: r.files,
            conflicts: r.conflicts,
            records_kept: r.records_kept,
        }
    }
}

/// `rotate-key`: for each owner asked for, a new version of their data key, then with
/// `--reencrypt` their data sealed again with it; each owner's line as it is done. An
/// owner named by `--owner` without a data key is an error (exit code 1); with
/// `--all-owners` such an owner (shredded) is reported and skipped.
pub(crate) async fn rotate_key(sealed: &Sealed, args: &RotateKeyArgs, quiet: bool) -> Result<()> {
    let owners = owners(sealed.messages.as_ref(), args.owners.owner.as_ref()).await?;
    let bar = bar(if args.dry_run { "checking" } else { "rotating" }, quiet);
    let mut done = Vec::with_capacity(owners.len());
    for (owner, conversations) in owners {
        bar.set_message(label(owner.as_ref()).to_owned());
        let rotated = rotate_one(sealed, owner, conversations, args).await;
        let rotated = match rotated {
            Ok(r) => r,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        bar.inc(conversations);
        if !args.json {
            bar.suspend(|| say(&rotated, args));
        }
        done.push(rotated);
    }
    bar.finish_and_clear();
    if args.json {
        return json_line(&serde_json::json!({
            "dry_run": args.dry_run,
            "reencrypt": args.reencrypt,
            "owners": done,
        }));
    }
    Ok(())
}

/// Rotates one owner's key (and re-encrypts their data) unless this is a dry run.
async fn rotate_one(
    sealed: &Sealed,
    owner: Option<UserId>,
    conversations: u64,
    args: &RotateKeyArgs,
) -> Result<Rotated> {
    let keyring = sealed.keyring();
    let version = keyring.current_version(owner.as_ref()).await?;
    if version.is_none()
        && let Some(owner) = &args.owners.owner
    {
        return Err(no_key(owner));
    }
    let mut rotated = Rotated {
        owner,
        version,
        new_version: None,
        conversations,
        reencrypted: None,
    };
    if version.is_none() || args.dry_run {
        return Ok(rotated);
    }
    let owner = rotated.owner.as_ref();
    rotated.new_version = Some(keyring.rotate(owner).await?);
    if args.reencrypt {
        let report = reencrypt(&sealed.messages, &sealed.files, owner).await?;
        rotated.reencrypted = Some(report.into());
    }
    Ok(rotated)
}

/// The error for an owner named on the command line who has no data key.
fn no_key(owner: &UserId) -> CliError {
    CliError::Store(chatvault_core::Error::NotFound {
        kind: "data key",
        id: format!(
            "{owner} has none (nothing was written for them, or their key was shredded): \
             nothing to rotate"
        ),
    })
}

/// Prints one owner's lines of `rotate-key`.
fn say(r: &Rotated, args: &RotateKeyArgs) {
    let who = label(r.owner.as_ref());
    let Some(version) = r.version else {
        println!("{who}: no data key (shredded): skipped");
        return;
    };
    let n = r.conversations;
    let Some(new) = r.new_version else {
        let then = if args.reencrypt {
            ", then re-encrypt them"
        } else {
            ""
        };
        println!(
            "{who}: would rotate the data key from version {version} ({n} conversations){then}"
        );
        return;
    };
    println!("{who}: rotated the data key from version {version} to {new} ({n} conversations)");
    let Some(re) = &r.reencrypted else { return };
    println!(
        "{who}: re-encrypted {} conversations: {} messages, {} titles, {} attachments' bytes",
        re.conversations, re.messages, re.titles, re.files
    );
    if re.conflicts > 0 {
        println!(
            "{who}: {} messages changed meanwhile and keep an older version: run again",
            re.conflicts
        );
    }
    if re.records_kept > 0 {
        println!(
            "{who}: {} attachment records keep an older version (their bytes are done)",
            re.records_kept
        );
    }
}

/// How an owner is named in the report.
fn label(owner: Option<&UserId>) -> &str {
    owner.map_or("(no owner)", UserId::as_str)
}

/// The owners asked for, each with how many conversations they have (archived ones
/// included): `owner`, or every owner that has a conversation (`None` among them when
/// some conversations have none).
async fn owners(
    messages: &dyn MessagesBackend,
    owner: Option<&UserId>,
) -> Result<BTreeMap<Option<UserId>, u64>> {
    let mut owners = BTreeMap::new();
    if let Some(owner) = owner {
        owners.insert(Some(owner.clone()), 0);
    }
    let mut options = ListOptions::default().include_archived(true);
    loop {
        let page = messages.list_conversations(owner, &options).await?;
        for summary in page.items {
            *owners.entry(summary.user_id).or_default() += 1;
        }
        match page.next_cursor {
            Some(cursor) => options = options.cursor(&cursor)?,
            None => return Ok(owners),
        }
    }
}

/// `shred --owner`: destroys the owner's data key (every version) in the key store.
/// Without a key (never written, or shredded already) there is nothing to do, which is
/// not an error.
pub(crate) async fn shred(sealed: &Sealed, args: &ShredArgs) -> Result<()> {
    let owner = Some(&args.owner);
    let conversations = owners(sealed.messages.as_ref(), owner).await?;
    let conversations = conversations.values().sum::<u64>();
    let version = sealed.keyring().current_version(owner).await?;
    let shredded = match (version, args.dry_run) {
        (Some(_), false) => sealed.keyring().shred(owner).await?,
        _ => false,
    };
    if args.json {
        return json_line(&serde_json::json!({
            "owner": args.owner,
            "version": version,
            "conversations": conversations,
            "dry_run": args.dry_run,
            "shredded": shredded,
        }));
    }
    let who = args.owner.as_str();
    match version {
        None => println!("{who}: no data key (never written, or shredded): nothing to shred"),
        Some(v) if args.dry_run => println!(
            "{who}: would destroy the data key (versions up to {v}): {conversations} \
             conversations could never be read again"
        ),
        Some(v) => println!(
            "{who}: destroyed the data key (versions up to {v}): {conversations} \
             conversations can never be read again (erase --owner {who} removes them)"
        ),
    }
    Ok(())
}
