//! What every write is made of: the conditional update of the conversation item
//! ([`ConvUpdate`], sent by [`Table`](crate::dynamo::table::Table)), and the sizes and
//! errors writes check.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{
    ConversationId, ConversationRecord, Error, FileAttachment, MessageId, Result,
};

use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;

/// What a transaction is, for its error messages: the operation (as
/// [`Error::OutcomeUnknown`] names it) and on what.
#[derive(Clone, Copy)]
pub(crate) struct Op<'a> {
    pub(crate) operation: &'static str,
    pub(crate) id: &'a ConversationId,
}

impl fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on conversation {}", self.operation, self.id)
    }
}

/// What a write does to the conversation item's tail.
#[derive(Debug)]
pub(crate) enum TailChange {
    /// Replaces it; with no entries, removes it.
    Replace(Vec<AttributeValue>),
    /// Replaces entry `.0`.
    Entry(usize, AttributeValue),
}

/// An update of the conversation item: `SET`s `set`, `REMOVE`s `remove` (and changes the
/// tail) if `version` is still `expected` and each attribute of `unchanged` still has its
/// value.
#[derive(Debug)]
pub(crate) struct ConvUpdate {
    pub(crate) expected: u64,
    pub(crate) unchanged: Vec<(&'static str, AttributeValue)>,
    pub(crate) set: Vec<(&'static str, AttributeValue)>,
    pub(crate) remove: Vec<&'static str>,
    pub(crate) tail: Option<TailChange>,
}

/// The expressions of a [`ConvUpdate`].
pub(crate) struct Expressions {
    pub(crate) update: String,
    pub(crate) condition: String,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: HashMap<String, AttributeValue>,
}

impl ConvUpdate {
    /// The update that writes `record` (the record as the write leaves it): `set`, and
    /// the attributes of its branches ([`branch_attributes`]: every write of the
    /// conversation item stores the branch table its rule computed), conditional on
    /// `version` being `expected` and on `unchanged`.
    pub(crate) fn writing(
        record: &ConversationRecord,
        expected: u64,
        unchanged: Vec<(&'static str, AttributeValue)>,
        mut set: Vec<(&'static str, AttributeValue)>,
        tail: Option<TailChange>,
    ) -> Result<Self> {
        let (branches, remove) = branch_attributes(record)?;
        set.retain(|(name, _)| branches.iter().all(|(b, _)| b != name));
        set.extend(branches);
        Ok(ConvUpdate {
            expected,
            unchanged,
            set,
            remove: remove.into_iter().collect(),
            tail,
        })
    }

    /// The update's expressions, with their names and values.
    pub(crate) fn expressions(self) -> Expressions {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let condition = condition(self.expected, self.unchanged, &mut names, &mut values);
        let mut assignments = Vec::with_capacity(self.set.len() + 1);
        for (i, (name, value)) in self.set.into_iter().enumerate() {
            if name == VERSION {
                assignments.push("#version = :new_version".to_owned());
                values.insert(":new_version".to_owned(), value);
            } else {
                assignments.push(format!("#a{i} = :v{i}"));
                names.insert(format!("#a{i}"), name.to_owned());
                values.insert(format!(":v{i}"), value);
            }
        }
        let mut removes = Vec::new();
        for (i, name) in self.remove.into_iter().enumerate() {
            removes.push(format!("#r{i}"));
            names.insert(format!("#r{i}"), name.to_owned());
        }
        if let Some(change) = self.tail {
            names.insert("#tail".to_owned(), TAIL.to_owned());
            match change {
                TailChange::Replace(entries) if entries.is_empty() => {
                    removes.push("#tail".to_owned());
                }
                TailChange::Replace(entries) => {
                    assignments.push("#tail = :tail".into());
                    values.insert(":tail".to_owned(), AttributeValue::L(entries));
                }
                TailChange::Entry(index, entry) => {
                    assignments.push(format!("#tail[{index}] = :tail"));
                    values.insert(":tail".to_owned(), entry);
                }
            }
        }
        let mut update = format!("SET {}", assignments.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Expressions {
            update,
            condition,
            names,
            values,
        }
    }
}

/// The condition that the conversation item's `version` is still `expected` and each
/// attribute of `unchanged` still has its value (names and values added to the maps).
pub(crate) fn condition(
    expected: u64,
    unchanged: Vec<(&'static str, AttributeValue)>,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.insert("#version".to_owned(), VERSION.to_owned());
    values.insert(":expected".to_owned(), n(expected));
    let mut conditions = vec!["#version = :expected".to_owned()];
    for (i, (name, value)) in unchanged.into_iter().enumerate() {
        conditions.push(format!("#c{i} = :c{i}"));
        names.insert(format!("#c{i}"), name.to_owned());
        values.insert(format!(":c{i}"), value);
    }
    conditions.join(" AND ")
}

/// What a write of messages is conditional on besides the version: the count (as stored:
/// the active path's) and the creation time, so that a conversation deleted and created
/// again under the same id cannot pass for the one remembered.
pub(crate) fn unchanged(record: &ConversationRecord) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (MESSAGE_COUNT, n(record.path_len())),
        (CREATED_AT, s(format_time(record.created_at))),
    ]
}

/// The conversation item of `record` without `files` and `tail`.
pub(crate) fn base_item(
    record: &ConversationRecord,
    sealed_max: Option<&MessageId>,
) -> Result<Item> {
    let mut item = conversation_item(record, &[])?;
    item.remove(FILES);
    if let Some(max) = sealed_max {
        item.insert(SEALED_MAX_ID.into(), s(max.as_str()));
    }
    Ok(item)
}

/// The bytes of [`base_item`].
pub(crate) fn base_size(
    record: &ConversationRecord,
    sealed_max: Option<&MessageId>,
) -> Result<u64> {
    Ok(item_size(&base_item(record, sealed_max)?))
}

pub(crate) fn too_large_conversation(id: &ConversationId, size: u64) -> Error {
    Error::TooLarge {
        what: format!("conversation {id} as a DynamoDB item"),
        size,
        limit: MAX_ITEM_SIZE,
    }
}

/// A chunk item already under the key a seal or a split writes: the conversation's items
/// disagree with its record.
pub(crate) fn chunk_exists(id: &ConversationId) -> Error {
    Error::corrupt(
        BACKEND,
        format!("conversation {id}"),
        "a chunk item exists beyond the conversation's sealed messages",
    )
}

/// `size` if it is within DynamoDB's item limit, else [`Error::TooLarge`] for `what`.
pub(crate) fn check_size(what: impl FnOnce() -> String, size: u64) -> Result<u64> {
    if size > MAX_ITEM_SIZE {
        return Err(Error::TooLarge {
            what: what(),
            size,
            limit: MAX_ITEM_SIZE,
        });
    }
    Ok(size)
}

/// The attributes an attachment change sets.
pub(crate) fn file_changes(
    record: &ConversationRecord,
    files: &[FileAttachment],
) -> Result<Vec<(&'static str, AttributeValue)>> {
    Ok(vec![
        (VERSION, n(record.version)),
        (FILES, s(json(files)?)),
        (FILE_COUNT, n(record.file_count)),
        (LAST_ACTIVE, s(format_time(record.last_active))),
        (ACTIVITY, s(activity(record.last_active, &record.id))),
    ])
}
