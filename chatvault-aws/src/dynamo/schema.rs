//! Creating the table and checking its shape.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};
use chatvault_core::backend::{Error, Result};

use super::DynamoMessages;
use super::layout::item::{
    ACTIVITY, BY_ACTIVITY_INDEX, BY_USER_INDEX, LIST_SHARD, PK, SK, SUMMARY_ATTRIBUTES, USER_ID,
};
use super::limits::BACKEND;
use crate::sdk::sdk_error;

/// How long `create_table` waits for the table and its indexes to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

fn build_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend(BACKEND, e)
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_error)
}

fn string_attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

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

fn has_keys(schema: &[KeySchemaElement], hash: &str, range: &str) -> bool {
    let find = |kind: KeyType| {
        schema
            .iter()
            .find(|k| k.key_type() == &kind)
            .map(|k| k.attribute_name())
    };
    find(KeyType::Hash) == Some(hash) && find(KeyType::Range) == Some(range)
}

impl DynamoMessages {
    /// Creates the table with its two GSIs (on-demand capacity) unless it exists, and
    /// waits until the table and its indexes are ACTIVE.
    ///
    /// Idempotent: an existing table is accepted if its key schema and indexes are the
    /// ones described in the crate docs; one of another shape is refused with
    /// [`Error::InvalidInput`]. Meant for tests, examples and first runs; production
    /// tables are usually provisioned with infrastructure code from the same definition.
    pub async fn create_table(&self) -> Result<()> {
        let created = self
            .table
            .client
            .create_table()
            .table_name(&self.table.name)
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
        let table = self.wait_until_active().await?;
        check_shape(&self.table.name, &table)
    }

    async fn wait_until_active(&self) -> Result<TableDescription> {
        let started = Instant::now();
        loop {
            let described = self
                .table
                .client
                .describe_table()
                .table_name(&self.table.name)
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
                        "table {} is not ACTIVE after {} s",
                        self.table.name,
                        ACTIVE_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

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
