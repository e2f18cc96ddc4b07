//! The one implementation of [`MessagesBackend`] over SQL, for every [`Dialect`].

use chatvault_core::backend::{
    Appended, ConversationHead, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, Error, FileAttachment, FileId, ListOptions, Message, MessageId,
    MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, MessagesCapabilities, NewMessage,
    Page, PageLimit, Result, SearchHit, SearchOptions, SearchQuery, UserId, apply_add_file,
    apply_remove_file, async_trait, check_owner, check_replay, now,
};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

use crate::common::{
    parse_json, parse_message, read_error, role_column, search_text, to_i64, to_json, tree_column,
};
use crate::dialect::Dialect;
use crate::messages::SqlMessages;
use crate::ranges::range_page;
use crate::rows::{col, message_at, raw_at, record_at};
use crate::search::search_page;
use crate::statements::{
    DELETE_ATTACHMENTS, DELETE_CONVERSATION, DELETE_FILE, DELETE_MESSAGES, HEAD_FILE_COLUMN,
    INSERT_CONVERSATION, INSERT_FILE, LIST_ALL, LIST_ALL_AFTER, LIST_DELETING,
    LIST_DELETING_OF_USER, LIST_USER, LIST_USER_AFTER, MARK_DELETING, SELECT_FILE, SELECT_HEAD,
    SELECT_LIVE_MESSAGE, SELECT_MESSAGE_BY_ID, UPDATE_MESSAGE, UPDATE_PATCH,
};
use crate::steps::{files_in, lock_live, write_counters};

/// Every write is one transaction that first locks the conversation's row (see
/// [`Dialect::SELECT_LIVE_LOCKED`]); see the [crate docs](crate) for what each operation
/// costs. The bounds are those of [`SqlMessages`]' statement-running methods.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<D: Dialect> MessagesBackend for SqlMessages<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'q> Option<D::Ts>: Encode<'q, D>,
    for<'q> String: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> bool: Encode<'q, D> + Decode<'q, D> + Type<D>,
{
    fn capabilities(&self) -> MessagesCapabilities {
        D::capabilities(&self.local)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let tree = tree_column(D::BACKEND, record)?;
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let done = sqlx::query(INSERT_CONVERSATION)
            .bind(record.id.as_str())
            .bind(record.user_id.as_ref().map(|u| u.as_str()))
            .bind(record.title.as_deref())
            .bind(D::enc_ts(record.created_at))
            .bind(D::enc_ts(record.last_active))
            .bind(record.archived)
            .bind(to_json(D::BACKEND, &record.metadata)?)
            .bind(to_i64("message_count", record.message_count)?)
            .bind(to_i64("file_count", record.file_count)?)
            .bind(to_json(D::BACKEND, &record.usage)?)
            .bind(to_i64("version", record.version)?)
            .bind(tree.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        if D::rows_affected(&done) == 0 {
            D::rollback(tx).await;
            return Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            });
        }
        D::commit(tx, "create").await
    }

    /// One statement: the record joined with its attachments.
    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        let rows = sqlx::query(SELECT_HEAD)
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(read_error::<D>)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let location = format!("an attachment of conversation {id}");
        let mut files = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(body) = col::<D, Option<String>>(row, HEAD_FILE_COLUMN)? {
                files.push(parse_json(D::BACKEND, &location, &body)?);
            }
        }
        Ok(Some(ConversationHead::new(
            record_at::<D>(first, 0)?,
            files,
        )))
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let mut record = lock_live::<D>(&mut tx, id).await?;
        if let Err(e) = check_owner(&record, owner) {
            D::rollback(tx).await;
            return Err(e);
        }
        if messages.is_empty() {
            D::rollback(tx).await;
            return Ok(Appended::new(record, Vec::new()));
        }
        let stored = D::stored_messages(&mut tx, id, &messages).await?;
        if let Some(replayed) = check_replay(&messages, stored)? {
            D::rollback(tx).await;
            return Ok(Appended::new(record, replayed));
        }
        let out = match record.apply_append(messages, now()) {
            Ok(out) => out,
            Err(e) => {
                D::rollback(tx).await;
                return Err(e);
            }
        };
        D::insert_messages(&mut tx, id, &out).await?;
        write_counters::<D>(&mut tx, &record).await?;
        D::commit(tx, "append_messages").await?;
        Ok(Appended::new(record, out))
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let mut record = lock_live::<D>(&mut tx, id).await?;
        let row = sqlx::query(SELECT_MESSAGE_BY_ID)
            .bind(id.as_str())
            .bind(message_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        let Some(row) = row else {
            D::rollback(tx).await;
            return Err(Error::message_not_found(message_id.as_str()));
        };
        let mut message = message_at::<D>(&row, 0, id)?;
        if let Err(e) = message.expect_revision(expected_revision) {
            D::rollback(tx).await;
            return Err(e);
        }
        record.apply_message_update(&mut message, update, now());
        sqlx::query(UPDATE_MESSAGE)
            .bind(id.as_str())
            .bind(message_id.as_str())
            .bind(role_column(&message))
            .bind(to_i64("revision", message.revision)?)
            .bind(message.updated_at.map(D::enc_ts))
            .bind(search_text(&message))
            .bind(to_json(D::BACKEND, &message)?)
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        write_counters::<D>(&mut tx, &record).await?;
        D::commit(tx, "update_message").await?;
        let redacts = update.metadata.as_ref();
        if redacts.is_some_and(|m| m.contains_key(chatvault_core::REDACTION_KEY)) {
            D::scrub_after_redaction(&self.pool, &self.local).await?;
        }
        Ok(MessageUpdated::new(record, message))
    }

    /// One statement: the live conversation's row joined with the message's (both by
    /// unique index); no row means no such conversation.
    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let row = sqlx::query(SELECT_LIVE_MESSAGE)
            .bind(id.as_str())
            .bind(message_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error::<D>)?;
        let Some(row) = row else {
            return Err(Error::conversation_not_found(id.as_str()));
        };
        match col::<D, Option<String>>(&row, 0)? {
            Some(body) => parse_message(
                D::BACKEND,
                &format!("a message of conversation {id}"),
                &body,
            )
            .map(Some),
            None => Ok(None),
        }
    }

    /// One statement when the range alone says which rows it needs (see `ranges.rs`).
    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        range_page(&self.pool, id, range).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let limit = to_i64("limit", options.limit.get() as u64 + 1)?;
        let include = options.include_archived;
        let query = match (user_id, &options.cursor) {
            (Some(user), None) => sqlx::query(LIST_USER)
                .bind(user.as_str())
                .bind(include)
                .bind(limit),
            (Some(user), Some(c)) => sqlx::query(LIST_USER_AFTER)
                .bind(user.as_str())
                .bind(include)
                .bind(limit)
                .bind(D::enc_ts(c.last_active))
                .bind(c.id.as_str()),
            (None, None) => sqlx::query(LIST_ALL).bind(include).bind(limit),
            (None, Some(c)) => sqlx::query(LIST_ALL_AFTER)
                .bind(include)
                .bind(limit)
                .bind(D::enc_ts(c.last_active))
                .bind(c.id.as_str()),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(read_error::<D>)?;
        let items = rows
            .iter()
            .map(|row| raw_at::<D>(row, 0, false)?.into_summary(D::BACKEND))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::of_listing(items, options.limit))
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let mut record = lock_live::<D>(&mut tx, id).await?;
        match record.apply_patch(patch) {
            Ok(true) => {}
            Ok(false) => {
                D::rollback(tx).await;
                return Ok(record);
            }
            Err(e) => {
                D::rollback(tx).await;
                return Err(e);
            }
        }
        let tree = tree_column(D::BACKEND, &record)?;
        sqlx::query(UPDATE_PATCH)
            .bind(id.as_str())
            .bind(record.title.as_deref())
            .bind(record.archived)
            .bind(to_json(D::BACKEND, &record.metadata)?)
            .bind(to_i64("version", record.version)?)
            .bind(tree.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        D::commit(tx, "update").await?;
        Ok(record)
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let mut record = lock_live::<D>(&mut tx, id).await?;
        let existing = sqlx::query(SELECT_FILE)
            .bind(id.as_str())
            .bind(file.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        let location = format!("an attachment of conversation {id}");
        let existing = existing
            .map(|row| parse_json(D::BACKEND, &location, &col::<D, String>(&row, 0)?))
            .transpose()?;
        if let Err(e) = apply_add_file(&mut record, existing.as_slice(), file) {
            D::rollback(tx).await;
            return Err(e);
        }
        sqlx::query(INSERT_FILE)
            .bind(id.as_str())
            .bind(file.id.as_str())
            .bind(to_i64("version", record.version)?)
            .bind(file.filename.as_str())
            .bind(file.content_type.as_str())
            .bind(to_i64("size", file.size)?)
            .bind(file.storage_key.as_str())
            .bind(D::enc_ts(file.uploaded_at))
            .bind(to_json(D::BACKEND, file)?)
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        write_counters::<D>(&mut tx, &record).await?;
        D::commit(tx, "add_file").await?;
        Ok(record)
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let mut record = lock_live::<D>(&mut tx, id).await?;
        let done = sqlx::query(DELETE_FILE)
            .bind(id.as_str())
            .bind(file_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        if D::rows_affected(&done) == 0 {
            D::rollback(tx).await;
            return Ok(None);
        }
        apply_remove_file(&mut record);
        write_counters::<D>(&mut tx, &record).await?;
        D::commit(tx, "remove_file").await?;
        Ok(Some(record))
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let done = sqlx::query(MARK_DELETING)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        if D::rows_affected(&done) == 0 {
            D::rollback(tx).await;
            return Ok(None);
        }
        let files = files_in::<D>(&mut tx, id).await?;
        D::commit(tx, "begin_delete").await?;
        Ok(Some(files))
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let mut tx = D::begin_write(&self.pool, &self.local).await?;
        let exists = sqlx::query(D::SELECT_ANY_LOCKED)
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(read_error::<D>)?
            .is_some();
        if !exists {
            D::rollback(tx).await;
            return Ok(false);
        }
        for statement in [DELETE_MESSAGES, DELETE_ATTACHMENTS, DELETE_CONVERSATION] {
            sqlx::query(statement)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(read_error::<D>)?;
        }
        D::commit(tx, "delete").await?;
        Ok(true)
    }

    /// One query: the user's listing index then the flag, or (every user's) a scan of
    /// the conversations table.
    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let limit = to_i64("limit", limit.get() as u64)?;
        let query = match user_id {
            Some(user) => sqlx::query(LIST_DELETING_OF_USER)
                .bind(user.as_str())
                .bind(limit),
            None => sqlx::query(LIST_DELETING).bind(limit),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(read_error::<D>)?;
        rows.iter()
            .map(|row| {
                let id = col::<D, String>(row, 0)?;
                ConversationId::parse(&id).map_err(|e| {
                    Error::corrupt(D::BACKEND, format!("conversation {id:?}"), e.to_string())
                })
            })
            .collect()
    }

    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        let query = SearchQuery::parse(query)?;
        search_page(&self.pool, D::match_expression(&query), user_id, options).await
    }
}
