//! [`Records`]: writes of the conversation record: `create`, and the read-modify-write
//! loop of `update`, `add_file` and `remove_file`.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chatvault_core::backend::{
    ConversationId, ConversationPatch, ConversationRecord, Error, FileAttachment, FileId, Result,
    apply_add_file, apply_remove_file,
};

use super::actions::{Op, base_size, check_size, file_changes};
use super::outcome::{Written, conditional_write};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::read::head::Heads;
use crate::dynamo::seen::Seen;
use crate::dynamo::table::Table;

/// Writes conversation records and their attachment lists.
#[derive(Clone)]
pub(crate) struct Records {
    table: Table,
    heads: Heads,
}

impl Records {
    /// Record writes in `table`, remembered through `heads`.
    pub(crate) fn new(table: Table, heads: Heads) -> Self {
        Records { table, heads }
    }

    /// A transaction of one conditional put (see the crate docs' costs). When the SDK
    /// gives up with a temporary error, the item is read back: if it is the conversation
    /// written (same creation time and owner, at least the version written), the
    /// create committed and the answer is `Ok`; if that read fails, the error says that
    /// the outcome is unknown.
    pub(crate) async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let item = conversation_item(record, &[])?;
        let size = check_size(
            || format!("conversation {} as a DynamoDB item", record.id),
            conversation_item_size(&item),
        )?;
        // What reads back if this create commits (times at the stored precision).
        let (as_written, _) = decode_conversation(&item)?;
        let (seen, _) = Seen::from_item(&item)?;
        let put = Put::builder()
            .table_name(&self.table.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        // A transaction of one, for its idempotency token (see `conditional_write`): a
        // create that the SDK retried after a timeout must not come back as AlreadyExists.
        let written = conditional_write(
            &self.table,
            Op {
                operation: "create",
                id: &record.id,
            },
            vec![TransactWriteItem::builder().put(put).build()],
            || Error::TooLarge {
                what: format!("conversation {} as a DynamoDB item", record.id),
                size,
                limit: MAX_ITEM_SIZE,
            },
            // The answer may have been lost after the put committed: is the item
            // there, as written?
            || async {
                Ok(match self.table.read_item(&record.id).await? {
                    Some(item) => {
                        let (now, _) = decode_conversation(&item)?;
                        now.created_at == as_written.created_at
                            && now.user_id == as_written.user_id
                            && now.version >= as_written.version
                    }
                    None => false,
                })
            },
        )
        .await?;
        match written {
            Written::Done => {
                self.heads.remember(seen);
                Ok(())
            }
            Written::Moved(_) | Written::Other => Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            }),
            Written::Conflicted => Err(Error::Conflict {
                message: format!("conversation {} is being created concurrently", record.id),
            }),
        }
    }

    pub(crate) async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let (record, _) = self
            .modify(
                Op {
                    operation: "update",
                    id,
                },
                |record, _files| {
                    if !record.apply_patch(patch)? {
                        return Ok(None);
                    }
                    let mut set = vec![
                        (VERSION, n(record.version)),
                        (ARCHIVED, AttributeValue::Bool(record.archived)),
                        (METADATA, s(json(&record.metadata)?)),
                    ];
                    if let Some(title) = &record.title {
                        set.push((TITLE, s(title)));
                    }
                    Ok(Some((set, ())))
                },
                |record, _files| {
                    patch
                        .title
                        .as_ref()
                        .is_none_or(|t| record.title.as_ref() == Some(t))
                        && patch.archived.is_none_or(|a| record.archived == a)
                        && patch
                            .metadata
                            .as_ref()
                            .is_none_or(|m| &record.metadata == m)
                        && patch
                            .active
                            .is_none_or(|a| record.tree().is_on_path(a.seq(), record.active_leaf()))
                },
            )
            .await?;
        Ok(record)
    }

    pub(crate) async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let (record, _) = self
            .modify(
                Op {
                    operation: "add_file",
                    id,
                },
                |record, files| {
                    apply_add_file(record, files, file)?;
                    files.push(file.clone());
                    Ok(Some((file_changes(record, files)?, ())))
                },
                |_record, files| files.iter().any(|f| f.id == file.id),
            )
            .await?;
        Ok(record)
    }

    pub(crate) async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let (record, removed) = self
            .modify(
                Op {
                    operation: "remove_file",
                    id,
                },
                |record, files| {
                    let Some(pos) = files.iter().position(|f| &f.id == file_id) else {
                        return Ok(None);
                    };
                    files.remove(pos);
                    apply_remove_file(record);
                    Ok(Some((file_changes(record, files)?, ())))
                },
                |_record, files| files.iter().all(|f| &f.id != file_id),
            )
            .await?;
        Ok(removed.map(|()| record))
    }

    /// The read-modify-write loop of `update`, `add_file` and `remove_file`:
    /// `change` computes the attributes to set from the current record and files
    /// (`Ok(None)`: nothing to write), and the write is retried while other writers win.
    ///
    /// When the write's answer was lost, the conversation is read again: if its version
    /// is at least the one written and `holds` says it carries the change, the write
    /// committed.
    async fn modify<T>(
        &self,
        op: Op<'_>,
        mut change: impl FnMut(
            &mut ConversationRecord,
            &mut Vec<FileAttachment>,
        ) -> Result<Option<(Vec<(&'static str, AttributeValue)>, T)>>,
        holds: impl Fn(&ConversationRecord, &[FileAttachment]) -> bool,
    ) -> Result<(ConversationRecord, Option<T>)> {
        let id = op.id;
        let mut current = self.table.read_item(id).await?;
        for attempt in 0..self.table.max_write_attempts {
            let (seen, mut files) = self.heads.seen_with_files(id, current)?;
            let mut record = seen.record.clone();
            let expected = record.version;
            let Some((set, out)) = change(&mut record, &mut files)? else {
                return Ok((record, None));
            };
            let too_large = |size| Error::TooLarge {
                what: format!(
                    "conversation {id} as a DynamoDB item after {}",
                    op.operation
                ),
                size,
                limit: MAX_ITEM_SIZE,
            };
            let after = Seen {
                base_size: base_size(&record, seen.sealed_max.as_ref())?,
                files_json: json(&files)?,
                record: record.clone(),
                ..seen
            };
            let size = after.item_size();
            if size > MAX_ITEM_SIZE {
                return Err(too_large(size));
            }
            let update = self.table.conditional_update(&record, expected, &[], set)?;
            let written = conditional_write(
                &self.table,
                op,
                vec![update],
                || too_large(size),
                || async {
                    Ok(match self.table.read_item(id).await? {
                        Some(item) => {
                            let (now, now_files) = decode_conversation(&item)?;
                            now.version >= record.version && holds(&now, &now_files)
                        }
                        None => false,
                    })
                },
            )
            .await?;
            current = match written {
                Written::Done => {
                    self.heads.remember(after);
                    return Ok((record, Some(out)));
                }
                Written::Moved(Some(item)) => Some(item),
                Written::Moved(None) | Written::Other | Written::Conflicted => None,
            };
            // As in `append`: the item returned with the failure is fresh, retry at once;
            // after a conflict, back off and read.
            if current.is_none() {
                Table::pause(attempt).await;
                current = self.table.read_item(id).await?;
            }
        }
        Err(self.table.conflict(id, op.operation))
    }
}
