//! The [`MessagesBackend`] implementation.

use std::collections::HashSet;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chatvault_core::{
    Appended, ConversationPatch, ConversationRecord, ConversationSummary, Error, FileAttachment,
    ListCursor, ListOptions, Message, MessageRange, MessagesBackend, NewMessage, Page, Result,
    StoredConversation, apply_add_file, apply_remove_file, async_trait, keys,
};
use futures_util::{StreamExt, TryStreamExt};

use super::item::*;
use super::seen::Seen;
use super::writes::{Written, check_item_size, check_size, file_changes, size_or_sdk_error};
use super::{BACKEND, DynamoMessages, GET_CONCURRENCY};
use crate::sdk::sdk_error;

#[async_trait]
impl MessagesBackend for DynamoMessages {
    /// Rewrites the whole conversation: the conversation item, every message item, and
    /// deletes message items the new version no longer has.
    ///
    /// Not atomic (a reader may see a mix while it runs; a failure leaves a mix that
    /// another `save` repairs): it is meant for imports and migrations; the vault itself
    /// never calls it. Messages must have distinct, increasing `seq` values
    /// (1..=`message_count` as appends make them).
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let record = &conversation.record;
        record.validate()?;
        let id = &record.id;
        let mut previous = 0;
        let mut items = Vec::with_capacity(conversation.messages.len());
        for m in &conversation.messages {
            keys::validate_id("message id", &m.id)?;
            if m.seq <= previous {
                return Err(Error::invalid_input(
                    "messages",
                    format!(
                        "seq values must increase from 1: {} follows {previous}",
                        m.seq
                    ),
                ));
            }
            previous = m.seq;
            let item = message_item(id, m)?;
            check_item_size(|| format!("message {} as a DynamoDB item", m.id), &item)?;
            items.push(item);
        }
        let conversation_item = conversation_item(record, &conversation.files)?;
        check_size(
            || format!("conversation {id} as a DynamoDB item"),
            conversation_item_size(&conversation_item),
        )?;
        let keep: HashSet<String> = conversation
            .messages
            .iter()
            .map(|m| message_sk(m.seq))
            .collect();
        let stale: Vec<Item> = self
            .all_keys(id)
            .await?
            .into_iter()
            .filter(|k| match k.get(SK) {
                Some(AttributeValue::S(sk)) => sk != CONVERSATION_SK && !keep.contains(sk),
                _ => false,
            })
            .collect();
        self.seen.forget(id);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(conversation_item))
            .send()
            .await
            .map_err(|e| size_or_sdk_error(e, format!("conversation {id}"), 0))?;
        let puts = items
            .into_iter()
            .map(Self::put_request)
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(puts).await?;
        let deletes = stale
            .into_iter()
            .map(Self::delete_request)
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(deletes).await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        let Some((record, files)) = self.read_conversation(id).await? else {
            return Ok(None);
        };
        let messages = self.all_messages(id).await?;
        Ok(Some(StoredConversation {
            record,
            messages,
            files,
        }))
    }

    /// Lists the user's conversations on the `by_user` GSI (eventually consistent), then
    /// reads each.
    async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>> {
        if keys::validate_user_id(user_id).is_err() {
            return Ok(Vec::new());
        }
        let listed = self
            .query_index(
                BY_USER_INDEX,
                USER_ID,
                user_id.to_owned(),
                None,
                true,
                usize::MAX,
            )
            .await?;
        let conversations: Vec<Option<StoredConversation>> =
            futures_util::stream::iter(listed.into_iter().map(|(_, s)| s.id))
                .map(|id| async move { self.get(&id).await })
                .buffered(GET_CONCURRENCY)
                .try_collect()
                .await?;
        Ok(conversations
            .into_iter()
            .flatten()
            .filter(|c| c.record.user_id.as_deref() == Some(user_id))
            .collect())
    }

    /// Deletes the conversation in three steps, so that no concurrent writer can keep it
    /// alive:
    ///
    /// 1. The conversation item gets a tombstone (`deleting`) and a new `version`. From then
    ///    on every append and every change fails with [`Error::NotFound`], even one that
    ///    read the conversation before: its transaction is conditional on the version it
    ///    read, which is gone.
    /// 2. Every message item under the conversation's key is deleted (`Query`, then
    ///    `BatchWriteItem`s, retrying unprocessed items).
    /// 3. The conversation item is deleted, conditional on the tombstone's version.
    ///
    /// If it fails part-way, the conversation is still there (readers see it until
    /// step 3, writers do not) and calling `delete` again finishes the job and answers
    /// `true`. For a conversation that does not exist it answers `false`, after deleting
    /// any message items left under the id.
    async fn delete(&self, id: &str) -> Result<bool> {
        if keys::validate_id("conversation id", id).is_err() {
            return Ok(false);
        }
        self.seen.forget(id);
        let Some(mut version) = self.tombstone(id).await? else {
            self.delete_message_items(id).await?;
            return Ok(false);
        };
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
                            // Written since the tombstone (by a chatvault-aws that knows no
                            // tombstones): clean up again.
                            Some(item) if is_deleting(item) => version = get_n(item, VERSION)?,
                            Some(_) => {
                                return Err(Error::backend(
                                    BACKEND,
                                    format!(
                                        "conversation {id} was replaced (save) while it was being deleted; some of its message items may be gone"
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

    /// A transaction of one conditional put (see the type's docs). When the SDK gives up
    /// with a temporary error, the item is read back: if it is the conversation written
    /// (same creation time and owner, at least the version written), the create
    /// committed and the answer is `Ok`; if that read fails, the error says that the
    /// outcome is unknown.
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        record.validate()?;
        let item = conversation_item(record, &[])?;
        let size = check_size(
            || format!("conversation {} as a DynamoDB item", record.id),
            conversation_item_size(&item),
        )?;
        // What reads back if this create commits (times at the stored precision).
        let (as_written, _) = decode_conversation(&item)?;
        let files_size = attribute_size(&item, FILES);
        let seen = Seen {
            record: as_written.clone(),
            files_size,
            base_size: item_size(&item).saturating_sub(files_size),
        };
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
                vec![TransactWriteItem::builder().put(put).build()],
                || format!("create of conversation {}", record.id),
                || Error::TooLarge {
                    what: format!("conversation {} as a DynamoDB item", record.id),
                    size,
                    limit: MAX_ITEM_SIZE,
                },
                |index| Error::backend(BACKEND, format!("create: condition {index} failed")),
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
            Written::Moved(_) => Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.clone(),
            }),
            Written::Conflicted => Err(Error::Conflict {
                message: format!("conversation {} is being created concurrently", record.id),
            }),
        }
    }

    async fn get_record(&self, id: &str) -> Result<Option<ConversationRecord>> {
        Ok(self.read_conversation(id).await?.map(|(record, _)| record))
    }

    async fn get_record_with_files(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        // One GetItem: the attachments live in the conversation item.
        self.read_conversation(id).await
    }

    async fn append_messages(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        self.append(id, messages).await
    }

    async fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let page = self.query_range(id, range).await?;
        if page.items.is_empty() && self.read_item(id).await?.is_none() {
            return Err(Error::conversation_not_found(id));
        }
        Ok(page)
    }

    /// A page of summaries from a GSI: `by_user` for one user (one `Query`, more when
    /// archived conversations are filtered out), `by_activity` for everyone (one `Query`
    /// per shard, 8, merged). GSIs are eventually consistent: a change shows up in
    /// listings a moment after it is written on AWS.
    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let cursor = options.validate()?;
        if user_id.is_some_and(|u| keys::validate_user_id(u).is_err()) {
            // No conversation can belong to it (create validates user ids), and DynamoDB
            // refuses an empty key value.
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let after = cursor.map(|c| activity(c.last_active, &c.id));
        let want = options.limit + 1;
        let mut found = match user_id {
            Some(user) => {
                self.query_index(
                    BY_USER_INDEX,
                    USER_ID,
                    user.to_owned(),
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

    async fn update(&self, id: &str, patch: &ConversationPatch) -> Result<ConversationRecord> {
        patch.validate()?;
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let (record, _) = self
            .modify(
                id,
                "update",
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

    async fn files(&self, id: &str) -> Result<Vec<FileAttachment>> {
        Ok(self.require_conversation(id).await?.1)
    }

    async fn add_file(&self, id: &str, file: FileAttachment) -> Result<ConversationRecord> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let (record, _) = self
            .modify(
                id,
                "add_file",
                |record, files| {
                    apply_add_file(record, files, &file)?;
                    files.push(file.clone());
                    Ok(Some((file_changes(record, files)?, ())))
                },
                |_record, files| files.iter().any(|f| f.id == file.id),
            )
            .await?;
        Ok(record)
    }

    async fn remove_file(&self, id: &str, file_id: &str) -> Result<Option<ConversationRecord>> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let (record, removed) = self
            .modify(
                id,
                "remove_file",
                |record, files| {
                    let Some(pos) = files.iter().position(|f| f.id == file_id) else {
                        return Ok(None);
                    };
                    files.remove(pos);
                    apply_remove_file(record);
                    Ok(Some((file_changes(record, files)?, ())))
                },
                |_record, files| files.iter().all(|f| f.id != file_id),
            )
            .await?;
        Ok(removed.map(|()| record))
    }
}
