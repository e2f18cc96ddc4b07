//! Creating the table and checking its shape: functions of the client and the table's
//! name, behind [`DynamoMessages::create_table`](super::DynamoMessages::create_table).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};
use chatvault_core::backend::{Error, Result};

use super::layout::item::{
    ACTIVITY, BY_ACTIVITY_INDEX, BY_USER_INDEX, LIST_SHARD, PK, SK, SUMMARY_ATTRIBUTES, USER_ID,
};
use super::limits::BACKEND;
use crate::sdk::sdk_error;

/// How long `create_table` waits for the table and its indexes to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

/// An SDK builder's failure as a backend error.
fn build_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend(BACKEND, e)
}

/// The key schema element `name` of `kind`.
fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_error)
}

/// The definition of the string attribute `name`.
fn string_attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

/// The GSI `name`: `hash` + `activity`, projecting the summary attributes and `extra`.
fn index(name: &str, hash: &str, extra: &[&str]) -> Result<GlobalSecondaryIndex> {
    let mut projection = Projection::builder().projection_type(ProjectionType::Include);
    for attribute in extra.iter().chain(SUMMARY_ATTRIBUTES) {
        projection = projection.non_key_attributes(*attribute);
    }
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(ACTIVITY, KeyType::Range)?)
        .projection(projection.build())
        .build()
        .map_err(build_error)
}

/// Whether `schema` is `hash` (HASH) + `range` (RANGE).
fn has_keys(schema: &[KeySchemaElement], hash: &str, range: &str) -> bool {
    let find = |kind: KeyType| {
        schema
            .iter()
            .find(|k| k.key_type() == &kind)
            .map(|k| k.attribute_name())
    };
    find(KeyType::Hash) == Some(hash) && find(KeyType::Range) == Some(range)
}

/// Creates the table `name` with its two GSIs (on-demand capacity) unless it exists,
/// waits until the table and its indexes are ACTIVE, and checks its shape: the contract
/// of [`DynamoMessages::create_table`](super::DynamoMessages::create_table).
pub(super) async fn create_table(client: &Client, name: &str) -> Result<()> {
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(USER_ID)?)
        .attribute_definitions(string_attribute(LIST_SHARD)?)
        .attribute_definitions(string_attribute(ACTIVITY)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index(BY_USER_INDEX, USER_ID, &[])?)
        .global_secondary_indexes(index(BY_ACTIVITY_INDEX, LIST_SHARD, &[USER_ID])?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(sdk_error(BACKEND, e)),
    }
    let table = wait_until_active(client, name).await?;
    check_shape(name, &table)
}

/// The description of the table `name` once it and its indexes are ACTIVE, polled every
/// 500 ms; a temporary error after [`ACTIVE_TIMEOUT`].
async fn wait_until_active(client: &Client, name: &str) -> Result<TableDescription> {
    let started = Instant::now();
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        if let Some(table) = described.table {
            let table_active = table.table_status() == Some(&TableStatus::Active);
            let indexes_active = table
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status() == Some(&IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(table);
            }
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(Error::temporary(
                BACKEND,
                format!(
                    "table {name} is not ACTIVE after {} s",
                    ACTIVE_TIMEOUT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `Ok` when `table` has the key schema and the indexes the crate docs describe;
/// [`Error::InvalidInput`] naming what differs otherwise.
fn check_shape(name: &str, table: &TableDescription) -> Result<()> {
    let wrong = |what: &str| {
        Err(Error::invalid_input(
            "table",
            format!(
                "{name} exists but {what}; see the chatvault-aws docs for the table definition"
            ),
        ))
    };
    if !has_keys(table.key_schema(), PK, SK) {
        return wrong("its key schema is not pk (HASH, S) + sk (RANGE, S)");
    }
    for (index, hash) in [(BY_USER_INDEX, USER_ID), (BY_ACTIVITY_INDEX, LIST_SHARD)] {
        let found = table
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(index));
        match found {
            Some(i) if has_keys(i.key_schema(), hash, ACTIVITY) => {}
            Some(_) => return wrong(&format!("its index {index} is not {hash} + {ACTIVITY}")),
            None => return wrong(&format!("it has no index {index}")),
        }
    }
    Ok(())
}
