//! What the Redis tests share: the server's URL, the cluster's, and backends under a fresh key
//! prefix.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use chatvault_core::Retention;
use chatvault_redis::RedisMessages;

/// `CHATVAULT_REDIS_URL`; panics saying what is missing.
pub fn server_url() -> String {
    match std::env::var("CHATVAULT_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "CHATVAULT_REDIS_URL is not set: start a server with scripts/redis.sh start, then eval \"$(scripts/redis.sh env)\""
        ),
    }
}

/// A key prefix no other test uses, so tests share the server without seeing each other.
pub fn fresh_prefix() -> String {
    format!("cvtest-{}", uuid::Uuid::now_v7().simple())
}

/// A backend under a fresh prefix.
pub async fn fresh() -> RedisMessages {
    RedisMessages::builder(&server_url())
        .prefix(fresh_prefix())
        .build()
        .await
        .expect("connect to CHATVAULT_REDIS_URL")
}

/// A backend under a fresh prefix whose keys expire `grace` after `retention` says.
pub async fn fresh_expiring(retention: Retention, grace: Duration) -> RedisMessages {
    RedisMessages::builder(&server_url())
        .prefix(fresh_prefix())
        .expire_keys(retention, grace)
        .build()
        .await
        .expect("connect to CHATVAULT_REDIS_URL")
}

/// A second backend value (another process, as far as the backend can tell: its own
/// connection and its own recalled state) over the same keys as `of`.
pub async fn another(of: &RedisMessages) -> RedisMessages {
    RedisMessages::builder(&server_url())
        .prefix(of.prefix())
        .build()
        .await
        .expect("connect to CHATVAULT_REDIS_URL")
}

/// A raw connection, to look at and damage keys.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(server_url())
        .expect("CHATVAULT_REDIS_URL is a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to CHATVAULT_REDIS_URL")
}

/// `CHATVAULT_REDIS_CLUSTER_URL`, the cluster's seed nodes (comma-separated URLs); panics
/// saying what is missing.
pub fn cluster_urls() -> Vec<String> {
    let urls: Vec<String> = std::env::var("CHATVAULT_REDIS_CLUSTER_URL")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        !urls.is_empty(),
        "CHATVAULT_REDIS_CLUSTER_URL is not set: start a cluster with scripts/redis.sh start, then eval \"$(scripts/redis.sh env)\""
    );
    urls
}

/// A backend on the cluster under a fresh prefix.
pub async fn fresh_cluster() -> RedisMessages {
    RedisMessages::cluster_builder(&cluster_urls())
        .prefix(fresh_prefix())
        .build()
        .await
        .expect("connect to CHATVAULT_REDIS_CLUSTER_URL")
}

/// A backend on the cluster under a fresh prefix whose keys expire `grace` after
/// `retention` says.
pub async fn fresh_cluster_expiring(retention: Retention, grace: Duration) -> RedisMessages {
    RedisMessages::cluster_builder(&cluster_urls())
        .prefix(fresh_prefix())
        .expire_keys(retention, grace)
        .build()
        .await
        .expect("connect to CHATVAULT_REDIS_CLUSTER_URL")
}

/// A raw connection to the cluster, routing each command by its keys' slot.
pub async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster_urls())
        .expect("CHATVAULT_REDIS_CLUSTER_URL holds Redis URLs")
        .get_async_connection()
        .await
        .expect("connect to CHATVAULT_REDIS_CLUSTER_URL")
}
