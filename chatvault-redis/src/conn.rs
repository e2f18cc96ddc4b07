//! The connection to Redis (one server or a cluster) and how its errors become ChatVault's.

use std::fmt;
use std::time::Duration;

use chatvault_core::backend::Error;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

/// The backend's name in errors.
pub(crate) const BACKEND: &str = "redis";

/// Where the connections come from: one server's client, or a cluster's.
#[derive(Clone)]
pub(crate) enum Source {
    /// One server (or a proxy in front of several).
    Single(Client),
    /// A Redis Cluster.
    Cluster(Box<ClusterClient>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The clients' connection info may hold a password: never printed.
        f.write_str(match self {
            Source::Single(_) => "Source::Single",
            Source::Cluster(_) => "Source::Cluster",
        })
    }
}

impl Source {
    /// A new connection (multiplexed: cheap to clone, shared by every call), whose
    /// replies may take up to `response_timeout`.
    pub(crate) async fn connect(&self, response_timeout: Duration) -> Result<Conn, Error> {
        match self {
            Source::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(response_timeout));
                let manager = client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(read_error)?;
                Ok(Conn::Single(manager))
            }
            Source::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_response_timeout(response_timeout)
                    .set_connection_timeout(response_timeout);
                let conn = client
                    .get_async_connection_with_config(config)
                    .await
                    .map_err(read_error)?;
                Ok(Conn::Cluster(conn))
            }
        }
    }
}

/// A connection to one server or to a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, reconnecting by itself after a failure.
    Single(ConnectionManager),
    /// A cluster, routing each command by its keys' slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl Conn {
    /// Whether keys of different slots may be touched by one script (one server only).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether the request may have reached the server before the failure: its answer was
/// lost, not refused.
fn answer_lost(e: &RedisError) -> bool {
    !e.is_connection_refusal() && (e.is_timeout() || e.is_connection_dropped() || e.is_io_error())
}

/// The error of a read (or of a write that changed nothing): a lost connection or a
/// timeout is temporary, anything else permanent.
pub(crate) fn read_error(e: RedisError) -> Error {
    if e.is_connection_refusal() || answer_lost(&e) {
        Error::temporary(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// The error of a write `operation`: when its answer was lost, it may have been applied
/// ([`Error::OutcomeUnknown`]); otherwise as [`read_error`].
pub(crate) fn write_error(operation: &'static str) -> impl Fn(RedisError) -> Error {
    move |e| {
        if answer_lost(&e) {
            Error::outcome_unknown(BACKEND, operation, e)
        } else {
            read_error(e)
        }
    }
}
