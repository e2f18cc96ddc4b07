#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod aws;
mod error;
mod forget;
mod importers;
mod keys;
mod moving;
mod nofiles;
mod output;
mod pystore;
mod read;
mod redact;
mod repair;
mod sealed;
mod transcript;
mod url;

use std::path::PathBuf;
use std::process::ExitCode;

use chatvault_archive::import::Format;
use chatvault_archive::{ExportOptions, Scope};
use chatvault_core::{ConversationId, UserId};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use error::{
    CliError, EXIT_DAMAGE, EXIT_FAILURE, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, Result,
};
pub use forget::{EraseArgs, ExpiryArgs, PurgeArgs};
pub use keys::{OwnersArgs, RotateKeyArgs, ShredArgs};
pub use redact::RedactArgs;
pub use url::{Open, StoreUrl, open_store};

/// The `chatvault` command line.
#[derive(Debug, Parser)]
#[command(
    name = "chatvault",
    version,
    about = "Look at, export, import, copy, verify, repair, purge and redact ChatVault stores."
)]
#[command(
    after_help = "Exit codes: 0 done (verify: clean), 1 failure, 2 usage error, \
                        3 store unreachable, 4 damage found."
)]
pub struct Cli {
    /// The store: memory:, local:DIR, sqlite:FILE[?files=DIR],
    /// postgres://..[?files=DIR], dynamodb://TABLE?bucket=..&region=..
    #[arg(long, global = true, env = "CHATVAULT_STORE")]
    pub store: Option<String>,
    /// An encrypted store: where its wrapped data keys are, a store URL (best a store of
    /// their own) or `same` (the data store itself); the key-encryption key comes from
    /// CHATVAULT_MASTER_KEY. Every verb then reads and writes through the encryption.
    #[arg(
        long,
        global = true,
        env = "CHATVAULT_KEY_STORE",
        value_name = "URL|same"
    )]
    pub key_store: Option<String>,
    /// More log output on standard error (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which conversations an export or copy covers (default: all).
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Only this owner's conversations.
    #[arg(long, conflicts_with = "conversation")]
    pub owner: Option<String>,
    /// Only this conversation.
    #[arg(long)]
    pub conversation: Option<String>,
}

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A chatvault archive (see chatvault-archive's format page).
    Archive,
    /// One conversation's active path as a readable Markdown transcript.
    Markdown,
    /// One conversation's history as an OpenAI Chat Completions request's
    /// `{"messages": [...]}` (chatvault-llm's writer; attachments inlined as base64).
    Openai,
    /// One conversation's history as an Anthropic Messages request's
    /// `{"system": ..., "messages": [...]}` (chatvault-llm's writer).
    Anthropic,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Counts: conversations, messages, attachments, bytes, owners.
    Stat {
        /// Only this owner's conversations.
        #[arg(long)]
        owner: Option<String>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A page of conversations, newest activity first.
    Ls {
        /// Only this owner's (default: every owner's).
        #[arg(long)]
        owner: Option<String>,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Continue after this cursor (printed on standard error after a full page).
        #[arg(long)]
        cursor: Option<String>,
        /// Include archived conversations.
        #[arg(long)]
        archived: bool,
        /// JSON Lines: one conversation summary per line.
        #[arg(long)]
        json: bool,
    },
    /// One conversation: its record, attachments and messages.
    Show {
        /// The conversation's id.
        id: String,
        /// Only the last N messages.
        #[arg(short = 'n', long)]
        last: Option<usize>,
        /// JSON Lines: the head, then one message per line (the archive's form).
        #[arg(long)]
        json: bool,
    },
    /// Writes an archive: a directory, a .tar file, or `-` (a tar on standard output).
    Export {
        /// Which conversations.
        #[command(flatten)]
        scope: ScopeArgs,
        /// Only conversations active at or after TIME (RFC 3339, e.g.
        /// 2025-01-31T12:00:00Z, or a date, 2025-01-31, meaning its midnight UTC); each
        /// with every message.
        #[arg(long, value_name = "TIME", conflicts_with = "conversation")]
        since: Option<String>,
        /// Where: for an archive a new or empty directory, a new PATH.tar, or - (default
        /// chatvault-export-TIME); for one conversation's --format a new file, or -
        /// (the default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// What to write: an archive, or one conversation's active path (with
        /// --conversation) as a Markdown transcript or a provider's request JSON.
        #[arg(long, value_enum, default_value_t = ExportFormat::Archive)]
        format: ExportFormat,
    },
    /// Imports an archive (directory or .tar) into the store, or with --from another
    /// tool's export (zip, directory or JSON); adds only what is missing.
    Import {
        /// The archive, or the export with --from.
        #[arg(value_name = "PATH")]
        archive: PathBuf,
        /// Import another tool's export: chatgpt, claude, open-webui, librechat, or
        /// chatvault-py (the Python library's DynamoDB items with their files).
        #[arg(long, value_name = "FORMAT", requires = "owner")]
        from: Option<String>,
        /// With --from: the user who owns the imported conversations (for chatvault-py:
        /// those that name no owner).
        #[arg(long, requires = "from")]
        owner: Option<String>,
        /// Only say what would be added (with --from: and what cannot be carried exactly).
        #[arg(long)]
        dry_run: bool,
    },
    /// Copies conversations from store SRC to store DST (URLs); resumable.
    Copy {
        /// The source store's URL.
        src: String,
        /// The destination store's URL.
        dst: String,
        /// Which conversations.
        #[command(flatten)]
        scope: ScopeArgs,
        /// Only say what would be added.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rebuilds what the store derives from its data (never the data): a local store's
    /// checkpoints, seq indexes and listing index, a SQLite store's search index; exit
    /// code 4 when damaged data is left (with --dry-run: when anything is wrong).
    Repair {
        /// Only say what is wrong; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Reads everything and checks it; exit code 4 when anything is damaged.
    Verify {
        /// Also read every attachment's bytes and check their SHA-256.
        #[arg(long)]
        read_blobs: bool,
        /// Verify this archive instead of the store.
        #[arg(long)]
        archive: Option<PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Removes the conversations that have expired under a retention policy (records,
    /// messages, attachments' bytes): `purge --expired --after-activity 30d`.
    Purge(PurgeArgs),
    /// Removes every conversation, message and attachment of one owner.
    Erase(EraseArgs),
    /// Replaces one message's content by a tombstone that keeps its place (the reason
    /// and time), and deletes the attachments only it referenced.
    Redact(RedactArgs),
    /// An encrypted store: starts a new version of an owner's data key, and with
    /// --reencrypt seals their data again with it.
    RotateKey(RotateKeyArgs),
    /// An encrypted store: destroys an owner's data key, so that nothing of theirs can be
    /// read again, in the store or in any backup of it (crypto-shredding).
    Shred(ShredArgs),
}

/// Parses the command line, runs it, and returns the exit code (printing any error).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatvault: cannot start: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatvault: {e}");
            e.exit()
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHATVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    let encryption = sealed::Encryption::from_arg(cli.key_store.as_deref())?;
    let at = &Target {
        url: cli.store.as_deref(),
        encryption: encryption.as_ref(),
    };
    match cli.command {
        Command::Stat { owner, json } => {
            let owner = owner.as_deref().map(parse_user).transpose()?;
            read::stat(&at.store(Open::Existing).await?, owner, json).await
        }
        Command::Ls {
            owner,
            limit,
            cursor,
            archived,
            json,
        } => {
            let owner = owner.as_deref().map(parse_user).transpose()?;
            let store = at.store(Open::Existing).await?;
            read::ls(&store, owner.as_ref(), limit, cursor, archived, json).await
        }
        Command::Show { id, last, json } => {
            let id = parse_conversation(&id)?;
            read::show(&at.store(Open::Existing).await?, &id, last, json).await
        }
        Command::Export {
            scope,
            since,
            output,
            format,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            export(at, &scope, since, output, format, quiet).await
        }
        Command::Import {
            archive: path,
            from: Some(format),
            owner,
            dry_run,
        } => import_from(at, &format, &path, owner, dry_run, quiet).await,
        Command::Import {
            archive,
            from: None,
            dry_run,
            ..
        } => {
            // The archive first: an unreadable one leaves the store untouched (not even
            // created).
            let archive = moving::open_archive(&archive)?;
            let store = at.store(write_mode(dry_run)).await?;
            moving::import(&archive, &store, dry_run, quiet).await
        }
        Command::Copy {
            src,
            dst,
            scope,
            dry_run,
        } => copy(at, &src, &dst, &scope, dry_run, quiet).await,
        Command::Repair { dry_run, json } => {
            // What a store derives from its data is its stored form's: no key needed.
            let url = at.url.ok_or_else(no_store)?;
            repair::repair(&StoreUrl::parse(url)?, dry_run, json).await
        }
        Command::Verify {
            read_blobs,
            archive,
            json,
        } => verify(at, archive.as_deref(), read_blobs, json, quiet).await,
        Command::Purge(args) => {
            let (store, reclaim) = at.open(Open::Existing).await?;
            if at.encryption.is_none() {
                sealed::refuse_keys(&store, "purge").await?;
            }
            forget::purge(&store, &reclaim, &args, quiet).await
        }
        Command::Erase(args) => {
            // As stored, even with --key-store: an erase reads no content, removes by ids
            // and stored keys, and so also removes an owner whose key was shredded.
            let url = StoreUrl::parse(at.url.ok_or_else(no_store)?)?;
            let (store, reclaim) = sealed::open(&url, None, Open::Existing).await?;
            forget::erase(&store, &reclaim, &args, quiet).await
        }
        Command::Redact(args) => redact::redact(&at.store(Open::Existing).await?, &args).await,
        Command::RotateKey(args) => {
            let sealed = at.sealed("rotate-key", Open::Existing).await?;
            keys::rotate_key(&sealed, &args, quiet).await
        }
        Command::Shred(args) => {
            keys::shred(&at.sealed("shred", Open::Existing).await?, &args).await
        }
    }
}

/// How a verb that writes opens its store: not at all for a dry run (a missing store is
/// then unreachable, never created).
fn write_mode(dry_run: bool) -> Open {
    if dry_run {
        Open::Existing
    } else {
        Open::Create
    }
}

/// `export`: checks the arguments, then writes the archive or the transcript.
async fn export(
    at: &Target<'_>,
    scope: &ScopeArgs,
    since: Option<DateTime<Utc>>,
    output: Option<PathBuf>,
    format: ExportFormat,
    quiet: bool,
) -> Result<()> {
    let transcript = match format {
        ExportFormat::Archive => None,
        ExportFormat::Markdown => Some(transcript::Transcript::Markdown),
        ExportFormat::Openai => Some(transcript::Transcript::OpenAi),
        ExportFormat::Anthropic => Some(transcript::Transcript::Anthropic),
    };
    let scope = parse_scope(scope)?;
    if let Some(transcript) = transcript {
        let Scope::Conversation(id) = scope else {
            return Err(CliError::Usage(
                "--format markdown, openai and anthropic write one conversation: give \
                 --conversation ID"
                    .into(),
            ));
        };
        let store = at.store(Open::Existing).await?;
        return transcript::export(&store, &id, transcript, output.as_deref()).await;
    }
    let mut options = ExportOptions::default();
    if let Some(since) = since {
        options = options.since(since);
    }
    let store = at.store(Open::Existing).await?;
    let to = output.unwrap_or_else(moving::default_export_path);
    moving::export(&store, scope, &options, &to, quiet).await
}

/// `copy SRC DST`: checks the arguments, opens both stores, copies.
async fn copy(
    at: &Target<'_>,
    src: &str,
    dst: &str,
    scope: &ScopeArgs,
    dry_run: bool,
    quiet: bool,
) -> Result<()> {
    let scope = parse_scope(scope)?;
    let (src_url, dst_url) = (StoreUrl::parse(src)?, StoreUrl::parse(dst)?);
    if src_url == dst_url {
        return Err(CliError::Usage("SRC and DST are the same store".into()));
    }
    let (src, _) = sealed::open(&src_url, at.encryption, Open::Existing).await?;
    let (dst, _) = sealed::open(&dst_url, at.encryption, write_mode(dry_run)).await?;
    moving::copy(&src, &dst, scope, dry_run, quiet).await
}

/// `verify`: of an archive when one is given, else of the store.
async fn verify(
    at: &Target<'_>,
    archive: Option<&std::path::Path>,
    read_blobs: bool,
    json: bool,
    quiet: bool,
) -> Result<()> {
    match archive {
        Some(path) => {
            let archive = moving::open_archive(path)?;
            let target = moving::VerifyTarget::Archive(&archive);
            moving::verify(target, Vec::new(), read_blobs, json, quiet).await
        }
        None => {
            let url = StoreUrl::parse(at.url.ok_or_else(no_store)?)?;
            // Derived files first: reading the store repairs some of them on the way.
            let found = repair::derived_problems(&url).await?;
            let (store, _) = sealed::open(&url, at.encryption, Open::Existing).await?;
            let target = moving::VerifyTarget::Store(&store);
            moving::verify(target, found, read_blobs, json, quiet).await
        }
    }
}

/// `import --from FORMAT PATH --owner USER`: checks the arguments, then imports.
async fn import_from(
    at: &Target<'_>,
    format: &str,
    path: &std::path::Path,
    owner: Option<String>,
    dry_run: bool,
    quiet: bool,
) -> Result<()> {
    let format = format.parse().map_err(CliError::Usage)?;
    let owner = parse_user(owner.as_deref().unwrap_or_default())?;
    let live = path.to_str().filter(|p| p.starts_with("dynamodb://"));
    let table = match live {
        Some(_) if format != Format::ChatVaultPy => {
            return Err(CliError::Usage(
                "only --from chatvault-py reads a dynamodb:// table".into(),
            ));
        }
        Some(live) => Some(StoreUrl::parse(live)?),
        None if !path.exists() => {
            return Err(CliError::Usage(format!("no export at {}", path.display())));
        }
        None => None,
    };
    let store = at.store(write_mode(dry_run)).await?;
    match table {
        Some(StoreUrl::Dynamo {
            table,
            bucket,
            region,
        }) => {
            let dir = tempfile::tempdir()?;
            pystore::dump(&table, &bucket, region.as_deref(), dir.path())
                .await
                .map_err(|source| CliError::Unreachable {
                    url: format!("dynamodb://{table}?bucket={bucket}"),
                    source,
                })?;
            importers::import(format, dir.path(), &store, owner, dry_run, quiet).await
        }
        _ => importers::import(format, path, &store, owner, dry_run, quiet).await,
    }
}

/// The store the command line names (`--store`), and how to open it (`--key-store`).
struct Target<'a> {
    url: Option<&'a str>,
    encryption: Option<&'a sealed::Encryption>,
}

impl Target<'_> {
    /// The store, through the encryption when it is configured.
    async fn store(&self, mode: Open) -> Result<chatvault_archive::Store> {
        Ok(self.open(mode).await?.0)
    }

    /// The store with what gives the space its removed data leaves back (a purge's).
    async fn open(&self, mode: Open) -> Result<(chatvault_archive::Store, url::Reclaim)> {
        let url = StoreUrl::parse(self.url.ok_or_else(no_store)?)?;
        sealed::open(&url, self.encryption, mode).await
    }

    /// The store through the encryption, for a `verb` that needs it: without
    /// `--key-store`, a usage error saying so.
    async fn sealed(&self, verb: &str, mode: Open) -> Result<sealed::Sealed> {
        let Some(encryption) = self.encryption else {
            return Err(CliError::Usage(format!(
                "{verb} needs an encrypted store: give --key-store URL (or same, or set \
                 CHATVAULT_KEY_STORE) and the master key in CHATVAULT_MASTER_KEY"
            )));
        };
        let url = StoreUrl::parse(self.url.ok_or_else(no_store)?)?;
        Ok(sealed::open_sealed(&url, encryption, mode).await?.0)
    }
}

fn no_store() -> CliError {
    CliError::Usage("no store: give --store URL or set CHATVAULT_STORE".into())
}

fn parse_user(s: &str) -> Result<UserId> {
    s.parse()
        .map_err(|e| CliError::Usage(format!("bad owner {s:?}: {e}")))
}

fn parse_conversation(s: &str) -> Result<ConversationId> {
    ConversationId::parse(s).map_err(|e| CliError::Usage(format!("bad conversation id {s:?}: {e}")))
}

/// `--since`: an RFC 3339 time, or a date (`YYYY-MM-DD`, its midnight UTC).
fn parse_since(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }
    Err(CliError::Usage(format!(
        "bad --since {s:?}: give an RFC 3339 time (2025-01-31T12:00:00Z) or a date \
         (2025-01-31, its midnight UTC)"
    )))
}

fn parse_scope(args: &ScopeArgs) -> Result<Scope> {
    Ok(match (&args.owner, &args.conversation) {
        (Some(owner), _) => Scope::Owner(parse_user(owner)?),
        (None, Some(id)) => Scope::Conversation(parse_conversation(id)?),
        (None, None) => Scope::All,
    })
}
