//! [`RedisMessages`]: the constructor and its settings, and the parts it builds once
//! and shares with its clones (reader, writer, appender, deleter, listings, markers),
//! which the [`MessagesBackend`](chatvault_core::MessagesBackend) implementation calls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chatvault_core::Retention;
use chatvault_core::backend::{Error, Result};
use redis::Client;
use redis::cluster::ClusterClient;

use crate::batch::Appender;
use crate::commit::Committer;
use crate::conn::{Conn, Source};
use crate::delete::Deleter;
use crate::expiry::KeyExpiry;
use crate::layout::Keys;
use crate::listing::Listings;
use crate::markers::Markers;
use crate::read::Reader;
use crate::state::Slots;
use crate::write::Writer;

/// Conversations in Redis or Valkey, one server or a cluster.
///
/// Every conversation is a few keys that share its hash slot (its record and attachments
/// in a hash, its messages in a hash by `seq`, its message ids in a hash to `seq`), and
/// every write to it is one Lua script that checks the state it was decided from, so
/// writers in any number of processes never lose, duplicate or reorder a message. Each
/// owner's conversations are listed from a sorted set by last activity. See the
/// [crate docs](crate) for the layout, the costs and what a crash can lose.
///
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisMessages {
    inner: Arc<Inner>,
}

/// What clones share: the connection, its source and settings, and the parts that do the
/// work, built once by [`RedisMessagesBuilder::build`].
#[derive(Debug)]
struct Inner {
    conn: Conn,
    source: Source,
    keys: Keys,
    listings: Listings,
    markers: Markers,
    reader: Reader,
    writer: Writer,
    appender: Appender,
    deleter: Deleter,
    response_timeout: Duration,
    expiry: Option<KeyExpiry>,
}

impl fmt::Debug for RedisMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisMessages")
            .field("cluster", &self.inner.conn.is_cluster())
            .field("prefix", &self.inner.keys.prefix())
            .field("list_all", &self.inner.listings.lists_all())
            .field("expiry", &self.inner.expiry)
            .finish_non_exhaustive()
    }
}

impl RedisMessages {
    /// Connects to one server with the default settings: `redis://[user:password@]host[:port][/db]`
    /// (`rediss://` for TLS needs one of the `redis` crate's TLS features in your app).
    ///
    /// [`Error::InvalidInput`] for a URL that is not one; a server that cannot be reached
    /// is a temporary [`Error::Backend`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// Settings for one server at `url` (see [`connect`](Self::connect)).
    pub fn builder(url: &str) -> RedisMessagesBuilder {
        RedisMessagesBuilder::new(Client::open(url).map(Source::Single))
    }

    /// Settings for a Redis Cluster, reached through any of `nodes` (URLs as for
    /// [`connect`](Self::connect)).
    pub fn cluster_builder<S: AsRef<str>>(nodes: &[S]) -> RedisMessagesBuilder {
        let nodes: Vec<&str> = nodes.iter().map(AsRef::as_ref).collect();
        RedisMessagesBuilder::new(ClusterClient::new(nodes).map(|c| Source::Cluster(Box::new(c))))
    }

    /// The prefix of every key this backend writes.
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// Reads conversations' heads and messages.
    pub(crate) fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// Creates conversations and changes their records, messages and attachments.
    pub(crate) fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// Appends messages, written together with those waiting for the same turn.
    pub(crate) fn appender(&self) -> &Appender {
        &self.inner.appender
    }

    /// Marks and deletes conversations.
    pub(crate) fn deleter(&self) -> &Deleter {
        &self.inner.deleter
    }

    /// The listing indexes: pages of conversations, whether every user's are kept.
    pub(crate) fn listings(&self) -> &Listings {
        &self.inner.listings
    }

    /// The marker sets of conversations being deleted.
    pub(crate) fn markers(&self) -> &Markers {
        &self.inner.markers
    }

    /// The connection every call shares (a live reply's writes go on it).
    pub(crate) fn conn(&self) -> &Conn {
        &self.inner.conn
    }

    /// The key layout under this backend's prefix.
    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// A new connection of its own to the same server or cluster, whose replies may take
    /// `extra` longer than this backend's response timeout (for blocking reads, which
    /// would hold the shared connection's other requests up). Errors as
    /// [`connect`](Self::connect)'s.
    pub(crate) async fn connect_another(&self, extra: Duration) -> Result<Conn> {
        self.inner
            .source
            .connect(self.inner.response_timeout + extra)
            .await
    }
}

/// Settings of a [`RedisMessages`]; [`build`](Self::build) connects.
#[must_use]
pub struct RedisMessagesBuilder {
    source: std::result::Result<Source, redis::RedisError>,
    prefix: String,
    list_all: bool,
    cached_conversations: usize,
    response_timeout: Duration,
    expiry: Option<KeyExpiry>,
}

impl fmt::Debug for RedisMessagesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisMessagesBuilder")
            .field("prefix", &self.prefix)
            .field("list_all", &self.list_all)
            .field("cached_conversations", &self.cached_conversations)
            .field("response_timeout", &self.response_timeout)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl RedisMessagesBuilder {
    /// The default settings for `source` (an error here is reported by
    /// [`build`](Self::build)).
    fn new(source: std::result::Result<Source, redis::RedisError>) -> Self {
        RedisMessagesBuilder {
            source,
            prefix: "chatvault".into(),
            list_all: true,
            cached_conversations: 10_000,
            response_timeout: Duration::from_secs(10),
            expiry: None,
        }
    }

    /// The prefix of every key (default `chatvault`): 1 to 64 ASCII letters, digits, `-`
    /// `_` `.` `:`. Two backends with different prefixes share a server without seeing
    /// each other.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether to keep the index of every conversation that
    /// `list_conversations(None, ..)` reads (default `true`). It is one sorted set, so in a
    /// cluster every write of last activity goes to the one node that holds it: turn it
    /// off when no one lists every user's conversations, and the capability says so.
    pub fn list_all(mut self, yes: bool) -> Self {
        self.list_all = yes;
        self
    }

    /// How many conversations' last written state this process keeps (default 10,000),
    /// so that its next append to one of them goes out without a read first. 0 keeps
    /// none: every write reads first.
    pub fn cached_conversations(mut self, count: usize) -> Self {
        self.cached_conversations = count;
        self
    }

    /// How long one request may wait for its answer (default 10 s). A write whose answer
    /// does not come in time is [`Error::OutcomeUnknown`].
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Maps `retention` to key expiry (default: none, keys stay until deleted). Every write
    /// that stores a conversation's record (create, append, message update, patch, add or
    /// remove a file) sets, in the same script, the deadline of the conversation's keys
    /// (record, messages, message ids) to its expiry under `retention` plus `grace`, with
    /// `PEXPIREAT`; a conversation that never expires gets none (`PERSIST`). A live
    /// reply's stream expires no later than its conversation's keys; listings remove the
    /// entries of conversations whose keys expired.
    ///
    /// Give the vault the same policy ([`ChatVault::with_retention`]) and run
    /// [`purge_expired`] more often than `grace`: the purge deletes the attachments' bytes
    /// in the files backend, and Redis, which cannot, removes the keys of a conversation
    /// no purge reached, leaving its attachments' bytes behind. Never give this a shorter
    /// policy than the vault's: Redis would remove conversations the vault still shows.
    /// A conversation written to after it expired (its keys had no deadline yet, or a
    /// longer one) gets `grace` from that write. Keys written before this was set get
    /// their deadline at their conversation's next write. Every process writing under
    /// one prefix should use the same setting: a write without it makes the keys
    /// persistent. See the crate docs, "Expiry".
    ///
    /// [`ChatVault::with_retention`]: chatvault_core::ChatVault::with_retention
    /// [`purge_expired`]: chatvault_core::Forgetting::purge_expired
    pub fn expire_keys(mut self, retention: Retention, grace: Duration) -> Self {
        self.expiry = Some(KeyExpiry::new(retention, grace));
        self
    }

    /// Connects. [`Error::InvalidInput`] for a bad URL or prefix; a server that cannot
    /// be reached is a temporary [`Error::Backend`].
    pub async fn build(self) -> Result<RedisMessages> {
        let keys = Keys::new(&self.prefix)?;
        let source = self
            .source
            .map_err(|e| Error::invalid_input("redis url", e.to_string()))?;
        let conn = source.connect(self.response_timeout).await?;
        let listings = Listings::new(conn.clone(), keys.clone(), self.list_all);
        let markers = Markers::new(conn.clone(), keys.clone());
        let reader = Reader::new(conn.clone(), keys.clone());
        let slots = Arc::new(Slots::new(self.cached_conversations));
        let committer = Committer::new(
            conn.clone(),
            keys.clone(),
            Arc::clone(&slots),
            self.expiry.clone(),
            listings.clone(),
        );
        let writer = Writer::new(
            conn.clone(),
            keys.clone(),
            self.expiry.clone(),
            listings.clone(),
            committer.clone(),
        );
        let appender = Appender::new(Arc::clone(&slots), committer, keys.clone());
        let deleter = Deleter::new(
            conn.clone(),
            keys.clone(),
            slots,
            listings.clone(),
            markers.clone(),
        );
        Ok(RedisMessages {
            inner: Arc::new(Inner {
                conn,
                source,
                keys,
                listings,
                markers,
                reader,
                writer,
                appender,
                deleter,
                response_timeout: self.response_timeout,
                expiry: self.expiry,
            }),
        })
    }
}
