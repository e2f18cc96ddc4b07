//! The schema's migrations: applying the dialect's in order under its migration lock,
//! and reading the version applied.

use chatvault_core::backend::{Error, Result};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Pool, Type};

use crate::common::{commit, read_error};
use crate::dialect::Dialect;
use crate::statements::{INSERT_MIGRATION, SELECT_SCHEMA_VERSION};

/// Creates the schema in `pool`'s database, or brings it up to date: the contract of
/// [`SqlMessages::migrate`](crate::SqlMessages::migrate).
pub(crate) async fn migrate<D>(pool: &Pool<D>) -> Result<()>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'q> Option<D::Ts>: Encode<'q, D>,
    for<'q> String: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> bool: Encode<'q, D> + Decode<'q, D> + Type<D>,
{
    let mut tx = D::begin_migration(pool).await?;
    sqlx::raw_sql(D::MIGRATIONS_TABLE_SQL)
        .execute(&mut *tx)
        .await
        .map_err(read_error::<D>)?;
    let current: Option<i64> = sqlx::query_scalar(SELECT_SCHEMA_VERSION)
        .fetch_one(&mut *tx)
        .await
        .map_err(read_error::<D>)?;
    let current = current.unwrap_or(0);
    let latest = D::MIGRATIONS.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(Error::backend(
            D::BACKEND,
            format!(
                "the database schema is at version {current}, newer than the \
                 {latest} this chatvault-sql knows; upgrade chatvault-sql"
            ),
        ));
    }
    for migration in D::MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(
            backend = D::BACKEND,
            version = migration.version,
            description = migration.description,
            "applying schema migration"
        );
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        sqlx::query(INSERT_MIGRATION)
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
    }
    commit(tx, "migrate").await
}

/// The schema version recorded in `chatvault_migrations` of `pool`'s database (0 before
/// the first migration).
pub(crate) async fn schema_version<D>(pool: &Pool<D>) -> Result<i64>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'q> Option<D::Ts>: Encode<'q, D>,
    for<'q> String: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> bool: Encode<'q, D> + Decode<'q, D> + Type<D>,
{
    let version: Option<i64> = sqlx::query_scalar(SELECT_SCHEMA_VERSION)
        .fetch_one(pool)
        .await
        .map_err(read_error::<D>)?;
    Ok(version.unwrap_or(0))
}
