//! The outcome of a conditional write: one helper ([`conditional_write`]) sends a
//! `TransactWriteItems` and maps every way it can fail onto what the caller does next;
//! single writes (`PutItem`, `UpdateItem`, [`single_write`]) map the same way, and a
//! write whose answer was lost is read back before it is answered.

use std::fmt;
use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chatvault_core::backend::{Error, Result};

use super::actions::Op;
use crate::dynamo::layout::item::Item;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::table::Table;
use crate::sdk::{self, sdk_error};

/// Why a transaction failed.
enum TxError {
    /// The condition of action `index` failed; `item` is that item as it is now, when
    /// DynamoDB returned it.
    Condition { index: usize, item: Option<Item> },
    /// A concurrent transaction touched the same item (DynamoDB, not DynamoDB Local).
    Conflict,
    /// An item would exceed 400 KB.
    TooLarge,
    /// DynamoDB cancelled the transaction for throttling: nothing was written, and a
    /// later retry may succeed.
    Throttled(Box<SdkError<TransactWriteItemsError, HttpResponse>>),
    /// Anything else.
    Sdk(Box<SdkError<TransactWriteItemsError, HttpResponse>>),
}

/// Why the outcome of a write is unknown: its answer was lost (the SDK gave up on a
/// timeout or a 5xx) and reading whether it committed failed too.
#[derive(Debug)]
struct LostAnswer {
    /// What was being written: `"add_file on conversation c1"`.
    what: String,
    /// The error of the read that was to tell whether the write committed.
    check: Error,
    /// The write's own error.
    write: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the write's answer was lost ({}) and reading whether it committed failed ({}); retry with the same message ids, or read the conversation first",
            self.what,
            aws_sdk_dynamodb::error::DisplayErrorContext(&*self.write),
            self.check
        )
    }
}

impl std::error::Error for LostAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.write)
    }
}

fn is_size_message(message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    message.contains("size") && message.contains("exceed")
}

/// The service errors of a single conditional write (`UpdateItem`, `PutItem`) that say
/// what became of it.
pub(crate) trait SingleWriteError:
    ProvideErrorMetadata + std::error::Error + Send + Sync + 'static
{
    /// A failed condition ([`Written::Moved`], with the item as it is) or a conflict with
    /// a transaction; `None` for any other error.
    fn written(&self) -> Option<Written>;
}

/// The same for each error enum: the SDK gives every operation its own.
macro_rules! single_write_errors {
    ($($error:ident),+) => {$(
        impl SingleWriteError for $error {
            fn written(&self) -> Option<Written> {
                match self {
                    $error::ConditionalCheckFailedException(failed) => {
                        Some(Written::Moved(failed.item().cloned()))
                    }
                    $error::TransactionConflictException(_) => Some(Written::Conflicted),
                    _ => None,
                }
            }
        }
    )+};
}

single_write_errors!(UpdateItemError, PutItemError);

/// What became of a [`conditional_write`] that did not fail.
pub(crate) enum Written {
    /// It committed.
    Done,
    /// The condition on the first action's item failed: another writer moved it on (or,
    /// for a create, it exists). Holds that item as it is now when DynamoDB returned it.
    Moved(Option<Item>),
    /// The condition of another action (not the first) failed.
    Other,
    /// A concurrent transaction touched the same items; nothing was written.
    Conflicted,
}

/// Sends one `TransactWriteItems` and sorts out why it failed.
///
/// Conditional writes of the record go through a transaction, even a single one, for
/// its idempotency token: the SDK sends the same token when it retries after a timeout
/// or a 5xx, and DynamoDB answers such a retry of a transaction that did commit with
/// success, where a retried `UpdateItem` would fail its condition (and look like a
/// lost race). Appends to the tail (`PutItem`) and updates of a message in it
/// (`UpdateItem`), which recognise their own change, are single writes instead (see
/// `single_write`).
async fn transact(
    table: &Table,
    actions: Vec<TransactWriteItem>,
) -> std::result::Result<(), TxError> {
    let err = match table
        .client
        .transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
    {
        Ok(_) => return Ok(()),
        Err(err) => err,
    };
    let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
        err.as_service_error()
    else {
        if err.code() == Some("ValidationException") && is_size_message(err.message()) {
            return Err(TxError::TooLarge);
        }
        return Err(TxError::Sdk(Box::new(err)));
    };
    let reasons = canceled.cancellation_reasons();
    if let Some((index, reason)) = reasons
        .iter()
        .enumerate()
        .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
    {
        return Err(TxError::Condition {
            index,
            item: reason.item().cloned(),
        });
    }
    if reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
    {
        return Err(TxError::Conflict);
    }
    if reasons.iter().any(|r| {
        matches!(
            r.code(),
            Some("ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded")
        )
    }) {
        return Err(TxError::Throttled(Box::new(err)));
    }
    if reasons.iter().any(|r| is_size_message(r.message())) {
        return Err(TxError::TooLarge);
    }
    Err(TxError::Sdk(Box::new(err)))
}

/// The one conditional write of the backend: sends `actions` as one
/// `TransactWriteItems` and maps its failures, the same way for every caller:
///
/// - committed: [`Written::Done`];
/// - the condition of action 0 (the conversation item, or the item being created)
///   failed: [`Written::Moved`], with that item as it is now when DynamoDB returned it;
/// - the condition of another action failed: [`Written::Other`];
/// - a concurrent transaction on the same items (DynamoDB, not DynamoDB Local):
///   [`Written::Conflicted`]; nothing was written;
/// - an item over 400 KB, or the transaction over 4 MB: `too_large()`;
/// - cancelled for throttling: a temporary error; nothing was written;
/// - the SDK gave up with a temporary error (timeouts, 5xx: the answer may have been
///   lost after the write committed): `committed()` reads whether it did, and the
///   answer is [`Written::Done`] when it did, the SDK's (temporary) error when it did
///   not, and [`Error::OutcomeUnknown`] when that read fails too;
/// - anything else: the SDK's error.
pub(crate) async fn conditional_write<Check>(
    table: &Table,
    op: Op<'_>,
    actions: Vec<TransactWriteItem>,
    too_large: impl FnOnce() -> Error,
    committed: impl FnOnce() -> Check,
) -> Result<Written>
where
    Check: Future<Output = Result<bool>>,
{
    match transact(table, actions).await {
        Ok(()) => Ok(Written::Done),
        Err(TxError::Condition { index: 0, item }) => Ok(Written::Moved(item)),
        Err(TxError::Condition { .. }) => Ok(Written::Other),
        Err(TxError::Conflict) => Ok(Written::Conflicted),
        Err(TxError::TooLarge) => Err(too_large()),
        Err(TxError::Throttled(e)) => Err(Error::temporary(BACKEND, *e)),
        Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => recover(op, *e, committed).await,
        Err(TxError::Sdk(e)) => Err(sdk_error(BACKEND, *e)),
    }
}

/// The answer to a write the SDK gave up on with a temporary error (its answer may
/// have been lost after it committed): `committed()` reads whether it did.
async fn recover<E, Check>(
    op: Op<'_>,
    err: SdkError<E, HttpResponse>,
    committed: impl FnOnce() -> Check,
) -> Result<Written>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    Check: Future<Output = Result<bool>>,
{
    match committed().await {
        Ok(true) => Ok(Written::Done),
        Ok(false) => Err(sdk_error(BACKEND, err)),
        Err(check) => Err(Error::outcome_unknown(
            BACKEND,
            op.operation,
            LostAnswer {
                what: op.to_string(),
                check,
                write: Box::new(err),
            },
        )),
    }
}

/// [`conditional_write`] of one conversation item write that
/// is not a transaction: an `UpdateItem` (a message of the tail updated, or a 0.1
/// conversation indexed), which costs half a transaction's write units and on
/// DynamoDB Local half its time; or a `PutItem` of the whole item (an append to the
/// tail: on DynamoDB Local about a fifth quicker than the same change as an
/// `UpdateItem`; the same write units, which DynamoDB counts on the whole item for
/// both). `sent` is the request's outcome.
///
/// Such a write has no idempotency token: a retry the SDK sends after a lost answer of
/// a write that committed fails its condition, and comes back as [`Written::Moved`]
/// with the item as it is, which shows the change; the callers recognise their own
/// change there. Failures map as in `conditional_write`.
pub(crate) async fn single_write<O, E, Check>(
    op: Op<'_>,
    sent: std::result::Result<O, SdkError<E, HttpResponse>>,
    too_large: impl FnOnce() -> Error,
    committed: impl FnOnce() -> Check,
) -> Result<Written>
where
    E: SingleWriteError,
    Check: Future<Output = Result<bool>>,
{
    let err = match sent {
        Ok(_) => return Ok(Written::Done),
        Err(err) => err,
    };
    if let Some(written) = err.as_service_error().and_then(SingleWriteError::written) {
        return Ok(written);
    }
    if err.code() == Some("ValidationException") && is_size_message(err.message()) {
        return Err(too_large());
    }
    if sdk::is_temporary(&err) {
        return recover(op, err, committed).await;
    }
    Err(sdk_error(BACKEND, err))
}
