//! Store URLs: which backends a `--store` names, and opening them.

use std::path::{Path, PathBuf};

use chatvault_archive::Store;
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::{MemoryFiles, MemoryMessages};

use crate::error::{CliError, Result};
use crate::nofiles::NoFiles;

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory:`: an empty in-memory store that lives as long as the command (for tests).
    Memory,
    /// `local:DIR`: `LocalMessages` in `DIR/messages`, `LocalFiles` in `DIR/files`.
    Local(PathBuf),
    /// `sqlite:FILE[?files=DIR]`: `SqliteMessages` in `FILE`, attachments in `LocalFiles`
    /// in `DIR` (default `FILE.files`).
    Sqlite {
        /// The database file.
        file: PathBuf,
        /// The attachments' directory.
        files: PathBuf,
    },
    /// `postgres://..[?..&files=DIR]`: `PostgresMessages`; attachments in `LocalFiles` in
    /// `DIR` when given (without it, attachments cannot be written).
    Postgres {
        /// The connection URL, `files` removed.
        url: String,
        /// The attachments' directory, if any.
        files: Option<PathBuf>,
    },
    /// `dynamodb://TABLE?bucket=B[&region=R]`: `DynamoMessages` in table `TABLE`,
    /// `S3Files` in bucket `B`, with the standard AWS environment (credentials, endpoint).
    Dynamo {
        /// The DynamoDB table.
        table: String,
        /// The S3 bucket.
        bucket: String,
        /// The AWS region, if not from the environment.
        region: Option<String>,
    },
    /// `redis://HOST:PORT[/DB][?prefix=P&files=DIR]`: `RedisMessages` under key prefix
    /// `P` (default `chatvault`); attachments in `LocalFiles` in `DIR` when given (without
    /// it, attachments cannot be written). `rediss://` (TLS) parses the same way, but this
    /// build has no TLS: opening one fails, saying so.
    Redis {
        /// The connection URL, `prefix` and `files` removed.
        url: String,
        /// The key prefix, if not the default.
        prefix: Option<String>,
        /// The attachments' directory, if any.
        files: Option<PathBuf>,
    },
}

impl StoreUrl {
    /// Parses a store URL; a bad one is [`CliError::Usage`] saying which forms exist.
    pub fn parse(url: &str) -> Result<Self> {
        let usage = |why: &str| {
            CliError::Usage(format!(
                "bad store URL {url:?}: {why}; use memory:, local:DIR, sqlite:FILE, \
                 postgres://.., dynamodb://TABLE?bucket=..&region=.. or \
                 redis://HOST:PORT[/DB]?prefix=.."
            ))
        };
        if url == "memory:" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(dir) = url.strip_prefix("local:") {
            if dir.is_empty() {
                return Err(usage("local: needs a directory"));
            }
            return Ok(StoreUrl::Local(PathBuf::from(dir)));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (file, files) = split_files(rest);
            let file = file.as_str();
            if file.is_empty() {
                return Err(usage("sqlite: needs a file"));
            }
            let file = PathBuf::from(file);
            let files = files.unwrap_or_else(|| PathBuf::from(format!("{}.files", file.display())));
            return Ok(StoreUrl::Sqlite { file, files });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (url, files) = split_files(url);
            return Ok(StoreUrl::Postgres { url, files });
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return parse_redis(url).map_err(|why| usage(&why));
        }
        if let Some(rest) = url.strip_prefix("dynamodb://") {
            return parse_dynamo(rest).map_err(|why| usage(&why));
        }
        Err(usage("unknown scheme"))
    }

    /// The URL as shown in messages: a PostgreSQL password is hidden.
    pub fn display(&self) -> String {
        match self {
            StoreUrl::Memory => "memory:".to_owned(),
            StoreUrl::Local(dir) => format!("local:{}", dir.display()),
            StoreUrl::Sqlite { file, .. } => format!("sqlite:{}", file.display()),
            StoreUrl::Postgres { url, .. } => hide_password(url),
            StoreUrl::Dynamo { table, bucket, .. } => format!("dynamodb://{table}?bucket={bucket}"),
            StoreUrl::Redis { url, prefix, .. } => match prefix {
                Some(prefix) => format!("{} (prefix {prefix})", hide_password(url)),
                None => hide_password(url),
            },
        }
    }
}

/// Splits a `files=DIR` parameter off a URL's query; the other parameters stay.
fn split_files(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut files = None;
    let mut kept = Vec::new();
    for kv in query.split('&') {
        match kv.strip_prefix("files=") {
            Some(dir) => files = Some(PathBuf::from(dir)),
            None => kept.push(kv),
        }
    }
    if kept.is_empty() {
        (base.to_owned(), files)
    } else {
        (format!("{base}?{}", kept.join("&")), files)
    }
}

fn parse_dynamo(rest: &str) -> std::result::Result<StoreUrl, String> {
    let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
    if table.is_empty() {
        return Err("dynamodb:// needs a table name".into());
    }
    let mut bucket = None;
    let mut region = None;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("bucket", v)) if !v.is_empty() => bucket = Some(v.to_owned()),
            Some(("region", v)) if !v.is_empty() => region = Some(v.to_owned()),
            _ => return Err(format!("unknown parameter {kv:?} (bucket=, region=)")),
        }
    }
    let bucket = bucket.ok_or("dynamodb:// needs ?bucket=BUCKET for the attachments")?;
    Ok(StoreUrl::Dynamo {
        table: table.to_owned(),
        bucket,
        region,
    })
}

/// `redis://..` or `rediss://..`: the `prefix=` and `files=` parameters taken off, the
/// others left to the redis client.
fn parse_redis(url: &str) -> std::result::Result<StoreUrl, String> {
    let (url, files) = split_files(url);
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    if base.ends_with("://") {
        return Err("redis:// needs a host".into());
    }
    let mut prefix = None;
    let mut kept = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.strip_prefix("prefix=") {
            Some(p) => {
                check_prefix(p)?;
                prefix = Some(p.to_owned());
            }
            None => kept.push(kv),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(StoreUrl::Redis { url, prefix, files })
}

/// chatvault-redis's rule for a key prefix ([`chatvault_redis::check_prefix`]), checked
/// here so that a bad one is a usage error rather than an unreachable store. Built without
/// the `redis` feature, the store cannot be opened anyway: nothing is checked.
#[cfg(feature = "redis")]
fn check_prefix(prefix: &str) -> std::result::Result<(), String> {
    chatvault_redis::check_prefix(prefix).map_err(|e| format!("prefix: {e}"))
}

#[cfg(not(feature = "redis"))]
fn check_prefix(_: &str) -> std::result::Result<(), String> {
    Ok(())
}

fn hide_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if scheme < at => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Whether to create a store that does not exist yet (a destination), or to refuse
/// (a source: reading must not create anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Read an existing store; a missing one is [`CliError::Unreachable`].
    Existing,
    /// Create the store if it does not exist.
    Create,
}

/// Opens the store `url` names.
pub async fn open_store(url: &StoreUrl, mode: Open) -> Result<Store> {
    Ok(open_reclaimable(url, mode).await?.0)
}

/// What gives back to the file system the space that removed data leaves in a store: a
/// SQLite store's database file (`SqliteMessages::reclaim_space`). The other stores free
/// it themselves or with their own tools (see chatvault-core's `docs/forgetting.md`).
#[derive(Clone, Debug, Default)]
pub(crate) enum Reclaim {
    /// Nothing to give back here.
    #[default]
    Nothing,
    /// A SQLite store's database.
    #[cfg(feature = "sqlite")]
    Sqlite(chatvault_sql::SqliteMessages),
}

impl Reclaim {
    /// Gives the free space back and says how many bytes the store shrank by; `None` for
    /// a store where this does not apply.
    pub(crate) async fn run(&self) -> chatvault_core::Result<Option<u64>> {
        match self {
            Reclaim::Nothing => Ok(None),
            #[cfg(feature = "sqlite")]
            Reclaim::Sqlite(db) => db.reclaim_space().await.map(Some),
        }
    }
}

/// Opens the store `url` names, with what gives the space its removed data leaves back to
/// the file system.
pub(crate) async fn open_reclaimable(url: &StoreUrl, mode: Open) -> Result<(Store, Reclaim)> {
    let unreachable = |source| unreachable(url, source);
    let missing = |path: &Path| missing(url, path);
    match url {
        StoreUrl::Memory => {
            let store = Store::new(MemoryMessages::new(), MemoryFiles::new());
            Ok((store, Reclaim::Nothing))
        }
        StoreUrl::Local(dir) => {
            if mode == Open::Existing && !dir.join("messages").is_dir() {
                return Err(missing(dir));
            }
            let messages = LocalMessages::open(dir.join("messages")).map_err(unreachable)?;
            let files = LocalFiles::new(dir.join("files")).map_err(unreachable)?;
            Ok((Store::new(messages, files), Reclaim::Nothing))
        }
        StoreUrl::Sqlite { file, files } => {
            if mode == Open::Existing && !file.is_file() {
                return Err(missing(file));
            }
            let (messages, reclaim) = open_sqlite(file).await.map_err(unreachable)?;
            let files = local_files(files, mode).map_err(unreachable)?;
            Ok((Store { messages, files }, reclaim))
        }
        StoreUrl::Postgres { url: pg, files } => {
            let messages = open_postgres(pg).await.map_err(unreachable)?;
            let files = match files {
                Some(dir) => local_files(dir, mode).map_err(unreachable)?,
                None => std::sync::Arc::new(NoFiles),
            };
            Ok((Store { messages, files }, Reclaim::Nothing))
        }
        StoreUrl::Dynamo {
            table,
            bucket,
            region,
        } => {
            let create = mode == Open::Create;
            let store = crate::aws::open(table, bucket, region.as_deref(), create).await;
            Ok((store.map_err(unreachable)?, Reclaim::Nothing))
        }
        StoreUrl::Redis {
            url: redis,
            prefix,
            files,
        } => {
            let messages = open_redis(redis, prefix.as_deref())
                .await
                .map_err(unreachable)?;
            let files = match files {
                Some(dir) => local_files(dir, mode).map_err(unreachable)?,
                None => std::sync::Arc::new(NoFiles),
            };
            Ok((Store { messages, files }, Reclaim::Nothing))
        }
    }
}

/// Opens only the messages backend of the store `url` names (a key store): a local or
/// SQLite store gets no attachments directory.
pub(crate) async fn open_messages(url: &StoreUrl, mode: Open) -> Result<Messages> {
    match url {
        StoreUrl::Local(dir) => {
            if mode == Open::Existing && !dir.join("messages").is_dir() {
                return Err(missing(url, dir));
            }
            let messages = LocalMessages::open(dir.join("messages"));
            Ok(std::sync::Arc::new(
                messages.map_err(|e| unreachable(url, e))?,
            ))
        }
        StoreUrl::Sqlite { file, .. } => {
            if mode == Open::Existing && !file.is_file() {
                return Err(missing(url, file));
            }
            let opened = open_sqlite(file).await.map_err(|e| unreachable(url, e))?;
            Ok(opened.0)
        }
        StoreUrl::Postgres { url: pg, .. } => {
            open_postgres(pg).await.map_err(|e| unreachable(url, e))
        }
        StoreUrl::Redis {
            url: redis, prefix, ..
        } => open_redis(redis, prefix.as_deref())
            .await
            .map_err(|e| unreachable(url, e)),
        StoreUrl::Memory | StoreUrl::Dynamo { .. } => Ok(open_store(url, mode).await?.messages),
    }
}

/// The error for a store that cannot be opened.
fn unreachable(url: &StoreUrl, source: chatvault_core::Error) -> CliError {
    CliError::Unreachable {
        url: url.display(),
        source,
    }
}

/// The error for a store to read that does not exist at `path`.
fn missing(url: &StoreUrl, path: &Path) -> CliError {
    let source = chatvault_core::Error::NotFound {
        kind: "store",
        id: path.display().to_string(),
    };
    unreachable(url, source)
}

type Files = std::sync::Arc<dyn chatvault_core::FilesBackend>;

/// `LocalFiles` in `dir`; for a source whose directory does not exist, a files backend
/// that holds nothing (reading creates no directory).
fn local_files(dir: &Path, mode: Open) -> chatvault_core::Result<Files> {
    if mode == Open::Existing && !dir.is_dir() {
        return Ok(std::sync::Arc::new(NoFiles));
    }
    Ok(std::sync::Arc::new(LocalFiles::new(dir)?))
}

type Messages = std::sync::Arc<dyn chatvault_core::MessagesBackend>;

/// A SQLite store's messages, and the same database to reclaim its free pages.
#[cfg(feature = "sqlite")]
async fn open_sqlite(file: &Path) -> chatvault_core::Result<(Messages, Reclaim)> {
    let url = format!("sqlite://{}", file.display());
    let db = chatvault_sql::SqliteMessages::connect(&url).await?;
    Ok((std::sync::Arc::new(db.clone()), Reclaim::Sqlite(db)))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &Path) -> chatvault_core::Result<(Messages, Reclaim)> {
    Err(crate::error::not_built("sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> chatvault_core::Result<Messages> {
    Ok(std::sync::Arc::new(
        chatvault_sql::PostgresMessages::connect(url).await?,
    ))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str) -> chatvault_core::Result<Messages> {
    Err(crate::error::not_built("postgres"))
}

/// `RedisMessages` at `url`, under `prefix` if given (else the crate's default).
#[cfg(feature = "redis")]
async fn open_redis(url: &str, prefix: Option<&str>) -> chatvault_core::Result<Messages> {
    let mut builder = chatvault_redis::RedisMessages::builder(url);
    if let Some(prefix) = prefix {
        builder = builder.prefix(prefix);
    }
    Ok(std::sync::Arc::new(builder.build().await?))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_: &str, _: Option<&str>) -> chatvault_core::Result<Messages> {
    Err(crate::error::not_built("redis"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        assert_eq!(StoreUrl::parse("memory:").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("local:./data").unwrap(),
            StoreUrl::Local("./data".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/a.db?files=/srv/f").unwrap(),
            StoreUrl::Sqlite {
                file: "/tmp/a.db".into(),
                files: "/srv/f".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("postgres://u:secret@h/db?sslmode=require&files=/f").unwrap(),
            StoreUrl::Postgres {
                url: "postgres://u:secret@h/db?sslmode=require".into(),
                files: Some("/f".into())
            }
        );
        assert_eq!(
            StoreUrl::parse("dynamodb://Chats?bucket=b&region=eu-north-1").unwrap(),
            StoreUrl::Dynamo {
                table: "Chats".into(),
                bucket: "b".into(),
                region: Some("eu-north-1".into())
            }
        );
        assert_eq!(
            StoreUrl::parse("redis://:pw@127.0.0.1:6379/2?prefix=app.chats&files=/f").unwrap(),
            StoreUrl::Redis {
                url: "redis://:pw@127.0.0.1:6379/2".into(),
                prefix: Some("app.chats".into()),
                files: Some("/f".into())
            }
        );
        assert_eq!(
            StoreUrl::parse("rediss://cache.example:6380?protocol=resp3").unwrap(),
            StoreUrl::Redis {
                url: "rediss://cache.example:6380?protocol=resp3".into(),
                prefix: None,
                files: None
            }
        );
    }

    #[test]
    fn bad_forms_are_usage_errors_that_say_why() {
        for (url, why) in [
            ("local:", "needs a directory"),
            ("sqlite:", "needs a file"),
            ("dynamodb://T", "bucket"),
            ("dynamodb://T?bucket=b&colour=red", "unknown parameter"),
            ("mysql://x", "unknown scheme"),
            ("redis://", "needs a host"),
        ] {
            let err = StoreUrl::parse(url).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{url}");
            assert!(err.to_string().contains(why), "{url}: {err}");
        }
    }

    /// chatvault-redis's prefix rule, applied when the URL is read.
    #[cfg(feature = "redis")]
    #[test]
    fn a_bad_redis_prefix_is_a_usage_error() {
        for url in ["redis://h?prefix=a/b", "redis://h?prefix="] {
            let err = StoreUrl::parse(url).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{url}");
            assert!(err.to_string().contains("key prefix"), "{url}: {err}");
        }
    }

    #[test]
    fn a_password_is_never_shown() {
        let url = StoreUrl::parse("postgres://me:hunter2@db.example/app").unwrap();
        assert_eq!(url.display(), "postgres://me:***@db.example/app");
        let url = StoreUrl::parse("redis://:hunter2@cache/0?prefix=p").unwrap();
        assert_eq!(url.display(), "redis://:***@cache/0 (prefix p)");
    }
}
