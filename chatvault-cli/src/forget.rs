//! The verbs that forget: `purge --expired` (what a retention policy has expired) and
//! `erase --owner` (everything one owner has), over `chatvault_core::Forgetting`.

use chatvault_archive::Store;
use chatvault_core::{ChatVault, ConversationId, Expiry, ForgetOptions, ForgetReport};
use chatvault_core::{Retention, UserId};
use chrono::TimeDelta;
use clap::Args;
use serde::Serialize;

use crate::error::Result;
use crate::output::{bar, json_line};
use crate::url::Reclaim;

/// `purge`'s arguments: which conversations have expired, and how to report.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Purge the conversations that have expired (required: it names what is purged).
    #[arg(long, required = true)]
    pub expired: bool,
    /// When a conversation expires (exactly one of the two).
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Keep this owner's conversations whatever their age (repeat for more owners).
    #[arg(long, value_name = "USER")]
    pub owner_keep: Vec<UserId>,
    /// Only say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The retention policy `purge` applies: exactly one of the two spans.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ExpiryArgs {
    /// A conversation expires DURATION after its last message or attachment (30d, 12h,
    /// 90m, 45s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub after_activity: Option<TimeDelta>,
    /// A conversation expires DURATION after it was created, whatever happened since.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub after_creation: Option<TimeDelta>,
}

impl ExpiryArgs {
    /// The expiry these arguments give ([`Expiry::Never`] only if clap let neither
    /// through, which its group forbids).
    fn expiry(&self) -> Expiry {
        match (self.after_activity, self.after_creation) {
            (Some(span), _) => Expiry::AfterLastActivity(span),
            (None, Some(span)) => Expiry::AfterCreation(span),
            (None, None) => Expiry::Never,
        }
    }
}

/// `erase`'s arguments: whose conversations, and how to report.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The owner whose every conversation, message and attachment is removed.
    #[arg(long, value_name = "USER")]
    pub owner: UserId,
    /// Only say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Parses a `DURATION`: a whole number and a unit, `s`, `m`, `h` or `d` (`30d`, `12h`,
/// `90m`, `45s`, `0s`). Anything else is an error saying what is accepted.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<TimeDelta, String> {
    let bad = |why: &str| {
        format!("{why}: give a whole number and a unit, s, m, h or d (30d, 12h, 90m, 45s)")
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(bad("no number"));
    }
    let n: i64 = digits.parse().map_err(|_| bad("too large"))?;
    let span = match unit {
        "s" => TimeDelta::try_seconds(n),
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        "" => return Err(bad("no unit")),
        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
    };
    span.ok_or_else(|| bad("too large"))
}

/// The report as `--json` prints it.
#[derive(Debug, Serialize)]
struct Json<'a> {
    /// How many conversations.
    conversations: usize,
    /// Their ids, in the order they were removed.
    ids: &'a [ConversationId],
    messages: u64,
    files: u64,
    bytes: u64,
    dry_run: bool,
    /// Conversations whose record could not be read, left as they are.
    unreadable: &'a [ConversationId],
    /// How many bytes the store's file shrank by afterwards (a SQLite store); `null`
    /// elsewhere and in a dry run.
    reclaimed_bytes: Option<u64>,
}

/// `purge --expired`: removes every conversation `args`' policy has expired (those of
/// the `--owner-keep` owners never expire), then gives the freed space back (`reclaim`).
pub(crate) async fn purge(
    store: &Store,
    reclaim: &Reclaim,
    args: &PurgeArgs,
    quiet: bool,
) -> Result<()> {
    let retention = args
        .owner_keep
        .iter()
        .fold(Retention::new(args.expiry.expiry()), |policy, user| {
            policy.owner(user.clone(), Expiry::Never)
        });
    let vault = vault(store).with_retention(retention);
    let bar = bar(if args.dry_run { "checking" } else { "purging" }, quiet);
    let options = options(&bar, args.dry_run);
    let report = vault.forget().purge_expired(&options).await;
    bar.finish_and_clear();
    finish(&report?, reclaim, args.json).await
}

/// `erase --owner`: removes every conversation the owner has, then gives the freed space
/// back (`reclaim`).
pub(crate) async fn erase(
    store: &Store,
    reclaim: &Reclaim,
    args: &EraseArgs,
    quiet: bool,
) -> Result<()> {
    let vault = vault(store);
    let bar = bar(if args.dry_run { "checking" } else { "erasing" }, quiet);
    let options = options(&bar, args.dry_run);
    let report = vault.forget().erase_owner(&args.owner, &options).await;
    bar.finish_and_clear();
    finish(&report?, reclaim, args.json).await
}

/// After a removal (not a dry run): gives the freed space back, then prints the report.
/// When that fails the report is printed all the same (what was removed is gone), and the
/// error follows.
async fn finish(report: &ForgetReport, reclaim: &Reclaim, json: bool) -> Result<()> {
    let reclaimed = if report.dry_run {
        Ok(None)
    } else {
        reclaim.run().await
    };
    let bytes = reclaimed.as_ref().ok().copied().flatten();
    print(report, bytes, json)?;
    reclaimed?;
    Ok(())
}

fn vault(store: &Store) -> ChatVault {
    ChatVault::from_arcs(store.messages.clone(), store.files.clone())
}

/// The options of a purge or an erase that move `bar` after each conversation.
fn options(bar: &indicatif::ProgressBar, dry_run: bool) -> ForgetOptions {
    let bar = bar.clone();
    ForgetOptions::new()
        .dry_run(dry_run)
        .progress(move |report: &ForgetReport| {
            bar.set_position(report.conversations.len() as u64);
            bar.set_message(format!(
                "{} messages, {} attachments, {} bytes",
                report.messages, report.files, report.bytes
            ));
        })
}

/// The report on standard output: its line (and one for the space reclaimed, if any), or
/// one JSON object.
fn print(report: &ForgetReport, reclaimed: Option<u64>, json: bool) -> Result<()> {
    if json {
        return json_line(&Json {
            conversations: report.conversations.len(),
            ids: &report.conversations,
            messages: report.messages,
            files: report.files,
            bytes: report.bytes,
            dry_run: report.dry_run,
            unreadable: &report.unreadable,
            reclaimed_bytes: reclaimed,
        });
    }
    println!("{report}");
    if let Some(bytes) = reclaimed {
        println!("reclaimed {bytes} bytes: the database file shrank by that much");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use chatvault_core::backend::{SimpleAdapter, SimpleBackend, StoredConversation, async_trait};
    use chatvault_core::{ErrorKind, Role};
    use chatvault_memory::MemoryFiles;

    use super::*;
    use crate::error::{CliError, EXIT_FAILURE};

    #[test]
    fn durations_parse_in_each_unit() {
        assert_eq!(parse_duration("30d"), Ok(TimeDelta::days(30)));
        assert_eq!(parse_duration("12h"), Ok(TimeDelta::hours(12)));
        assert_eq!(parse_duration("90m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_duration("45s"), Ok(TimeDelta::seconds(45)));
        assert_eq!(parse_duration("0s"), Ok(TimeDelta::zero()));
    }

    #[test]
    fn bad_durations_say_why() {
        for (s, why) in [
            ("", "no number"),
            ("d", "no number"),
            ("-3d", "no number"),
            ("30", "no unit"),
            ("30x", "unknown unit \"x\""),
            ("3 d", "unknown unit \" d\""),
            ("1.5h", "unknown unit \".5h\""),
            ("1d12h", "unknown unit \"d12h\""),
            ("99999999999999999999s", "too large"),
            ("999999999999999d", "too large"),
        ] {
            let err = parse_duration(s).unwrap_err();
            assert!(err.starts_with(why), "{s:?}: {err}");
            assert!(err.contains("30d, 12h, 90m, 45s"), "{s:?}: {err}");
        }
    }

    /// Conversations in a map: a backend that cannot list every user's.
    #[derive(Debug, Default)]
    struct MapStore(Mutex<HashMap<ConversationId, StoredConversation>>);

    #[async_trait]
    impl SimpleBackend for MapStore {
        async fn save(&self, c: &StoredConversation) -> chatvault_core::Result<()> {
            self.0
                .lock()
                .unwrap()
                .insert(c.record.id.clone(), c.clone());
            Ok(())
        }
        async fn get(
            &self,
            id: &ConversationId,
        ) -> chatvault_core::Result<Option<StoredConversation>> {
            Ok(self.0.lock().unwrap().get(id).cloned())
        }
        async fn get_by_user(
            &self,
            user: &UserId,
        ) -> chatvault_core::Result<Vec<StoredConversation>> {
            let map = self.0.lock().unwrap();
            let owned = map
                .values()
                .filter(|c| c.record.user_id.as_ref() == Some(user));
            Ok(owned.cloned().collect())
        }
        async fn delete(&self, id: &ConversationId) -> chatvault_core::Result<bool> {
            Ok(self.0.lock().unwrap().remove(id).is_some())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_purge_where_not_every_user_can_be_listed_fails_and_removes_nothing() {
        let store = Store::new(SimpleAdapter::new(MapStore::default()), MemoryFiles::new());
        let user: UserId = "alice".parse().unwrap();
        let mut c = vault(&store)
            .create_conversation(Some(&user))
            .await
            .unwrap();
        c.add_message(Role::User, "hello").await.unwrap();
        let args = PurgeArgs {
            expired: true,
            expiry: ExpiryArgs {
                after_activity: None,
                after_creation: Some(TimeDelta::zero()),
            },
            owner_keep: Vec::new(),
            dry_run: false,
            json: false,
        };
        let err = purge(&store, &Reclaim::Nothing, &args, true)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Store(e) if e.kind() == ErrorKind::NotSupported),
            "{err:?}"
        );
        assert_eq!(err.exit_code(), EXIT_FAILURE);
        assert!(
            err.to_string()
                .contains("listing every user's conversations"),
            "{err}"
        );
        // The conversation is still there (read without a retention policy).
        assert!(store.messages.head(c.id()).await.unwrap().is_some());
        // An erase lists one owner's only, which this backend can.
        let args = EraseArgs {
            owner: user,
            dry_run: false,
            json: false,
        };
        erase(&store, &Reclaim::Nothing, &args, true).await.unwrap();
        assert!(store.messages.head(c.id()).await.unwrap().is_none());
    }
}
