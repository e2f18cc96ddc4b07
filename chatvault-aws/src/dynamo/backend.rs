//! The [`MessagesBackend`] implementation.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chatvault_core::{
    Appended, ConversationHead, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, Error, FileAttachment, FileId, ListCursor, ListOptions, Message,
    MessageId, MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, MessagesCapabilities,
    NewMessage, Page, Result, SearchHit, SearchOptions, UserId, apply_add_file, apply_remove_file,
    async_trait,
};

use super::item::*;
use super::seen::Seen;
use super::writes::{Op, Written, check_size, file_changes};
use super::{BACKEND, DynamoMessages, MAX_APPEND_MESSAGES};
use crate::sdk::sdk_error;

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for DynamoMessages {
    /// Atomic appends in and across processes (conditional transactions), every user's
    /// listing (the `by_activity` index); no search; a message at most
    /// [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES) (one 400 KB item), an append at most
    /// [`MAX_APPEND_MESSAGES`] messages.
    fn capabilities(&self) -> MessagesCapabilities {
        MessagesCapabilities::full()
            .with_search(false)
            .with_max_message_bytes(Some(crate::MAX_MESSAGE_BYTES))
            .with_max_append_messages(Some(MAX_APPEND_MESSAGES))
    }

    /// A transaction of one conditional put (see the type's docs). When the SDK gives up
    /// with a temporary error, the item is read back: if it is the conversation written
    /// (same creation time and owner, at least the version written), the create
    /// committed and the answer is `Ok`; if that read fails, the error says that the
    /// outcome is unknown.
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let item = conversation_item(record, &[])?;
        let size = check_size(
            || format!("conversation {} as a DynamoDB item", record.id),
            conversation_item_size(&item),
        )?;
        // What reads back if this create commits (times at the stored precision).
        let (as_written, _) = decode_conversation(&item)?;
        let (seen, _) = Seen::from_item(&item)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        // A transaction of one, for its idempotency token (see `conditional_write`): a
        // create that the SDK retried after a timeout must not come back as AlreadyExists.
        let written = self
            .conditional_write(
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
                    Ok(match self.read_item(&record.id).await? {
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
                self.seen.remember(seen);
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

    /// One consistent `GetItem`: the attachments live in the conversation item.
    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        Ok(self
            .read_head(id)
            .await?
            .map(|(record, files)| ConversationHead { record, files }))
    }

    async fn append_messages(
        &self,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.append(id, messages).await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.update_one_message(id, message_id, expected_revision, update)
            .await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        self.read_messages(id, range).await
    }

    /// A page of summaries from a GSI: `by_user` for one user (one `Query`, more when
    /// archived conversations are filtered out), `by_activity` for everyone (one `Query`
    /// per shard, 8, merged). GSIs are eventually consistent: a change shows up in
    /// listings a moment after it is written on AWS. A conversation being deleted has no
    /// `activity`, so neither index holds it.
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let cursor = options.validate()?;
        let after = cursor.map(|c| activity(c.last_active, &c.id));
        let want = options.limit + 1;
        let mut found = match user_id {
            Some(user) => {
                self.query_index(
                    BY_USER_INDEX,
                    USER_ID,
                    user.as_str().to_owned(),
                    after.as_deref(),
                    options.include_archived,
                    want,
                )
                .await?
            }
            None => {
                let shards = (0..LIST_SHARDS).map(|shard| {
                    self.query_index(
                        BY_ACTIVITY_INDEX,
                        LIST_SHARD,
                        shard_name(shard),
                        after.as_deref(),
                        options.include_archived,
                        want,
                    )
                });
                futures_util::future::try_join_all(shards)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect()
            }
        };
        found.sort_by(|a, b| b.0.cmp(&a.0));
        let more = found.len() > options.limit;
        found.truncate(options.limit);
        let items: Vec<ConversationSummary> = found.into_iter().map(|(_, s)| s).collect();
        let next_cursor = if more {
            items.last().map(|s| ListCursor::after(s).encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn update(
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
                    if !record.apply_patch(patch) {
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
                },
            )
            .await?;
        Ok(record)
    }

    /// Marks the conversation (the tombstone of `delete`'s first step) and returns its
    /// attachments, as the tombstoned item holds them.
    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        match self.tombstone(id).await? {
            None => Ok(None),
            Some(item) => Ok(Some(decode_conversation(&item)?.1)),
        }
    }

    /// Deletes the conversation in three steps, so that no concurrent writer can keep it
    /// alive:
    ///
    /// 1. The conversation item gets a tombstone (`deleting`) and a new `version` (what
    ///    `begin_delete` does; a second time changes nothing that matters). From then on
    ///    every append and every change fails with [`Error::NotFound`], even one that read
    ///    the conversation before: its transaction is conditional on the version it read,
    ///    which is gone.
    /// 2. Every message item and id marker under the conversation's key is deleted
    ///    (`Query`, then `BatchWriteItem`s, retrying unprocessed items).
    /// 3. The conversation item is deleted, conditional on the tombstone's version.
    ///
    /// If it fails part-way, the conversation stays marked (it reads as gone) and calling
    /// `delete` again finishes the job and answers `true`. For a conversation that does not exist it answers `false`, after deleting
    /// any message items left under the id.
    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let Some(tombstoned) = self.tombstone(id).await? else {
            self.delete_message_items(id).await?;
            return Ok(false);
        };
        let mut version = get_n(&tombstoned, VERSION)?;
        for attempt in 0..self.max_write_attempts {
            self.delete_message_items(id).await?;
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(conversation_key(id)))
                .condition_expression("#version = :version AND #deleting = :true")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_names("#deleting", DELETING)
                .expression_attribute_values(":version", n(version))
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match deleted {
                Ok(_) => return Ok(true),
                Err(e) => match e.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                        match failed.item() {
                            // Gone: a concurrent delete finished first, or the SDK retried
                            // ours after losing the answer.
                            None => return Ok(true),
                            // Tombstoned again since (a concurrent delete): clean up again.
                            Some(item) if is_deleting(item) => version = get_n(item, VERSION)?,
                            Some(_) => {
                                return Err(Error::backend(
                                    BACKEND,
                                    format!(
                                        "conversation {id} was replaced while it was being deleted (by a writer that knows no tombstones); some of its message items may be gone"
                                    ),
                                ));
                            }
                        }
                    }
                    Some(DeleteItemError::TransactionConflictException(_)) => {}
                    _ => return Err(sdk_error(BACKEND, e)),
                },
            }
            Self::pause(attempt).await;
        }
        // Not a Conflict: the tombstone and some deletions are written. Another call
        // finishes the job.
        Err(Error::temporary(
            BACKEND,
            format!(
                "delete of conversation {id} is not finished: the conversation item changed or conflicted {} times in a row while its messages were deleted; call delete again",
                self.max_write_attempts
            ),
        ))
    }

    async fn add_file(
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

    async fn remove_file(
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
    async fn search(
        &self,
        _user_id: &UserId,
        _query: &str,
        _options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        Err(Error::not_supported(BACKEND, "search"))
    }
}
