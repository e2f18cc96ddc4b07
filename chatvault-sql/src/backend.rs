//! The one implementation of [`MessagesBackend`](chatvault_core::MessagesBackend) over SQL,
//! instantiated for each database by [`messages_backend!`].
//!
//! The statements below are plain SQL that SQLite and PostgreSQL both accept (`$N`
//! parameters, `ON CONFLICT`, row-value comparisons). What differs per database is
//! defined by the module that invokes the macro:
//!
//! - `BACKEND` (the name in errors), `Db` (the sqlx database), `DbRow`, `Ts` (how a
//!   timestamp column decodes) with `enc_ts` / `dec_ts`;
//! - `SELECT_LIVE_LOCKED` and `SELECT_ANY_LOCKED` (PostgreSQL adds `FOR UPDATE`; SQLite
//!   is already the only writer inside `BEGIN IMMEDIATE`);
//! - `stored_messages` (the stored messages with the ids of an append's messages, for
//!   `check_replay`) and `insert_messages` (PostgreSQL sends a batch in one statement);
//! - the inherent `begin_write` (a transaction in which the conversation row can be locked,
//!   plus whatever in-process guard goes with it), `begin_read` (a transaction whose reads
//!   see one snapshot), `search_impl`, `capabilities_impl`, and `begin_migration`.

/// The columns of a conversation summary, in the order `raw_at` reads them.
macro_rules! summary_columns {
    () => {
        "id, user_id, title, created_at, last_active, archived, message_count, file_count, usage"
    };
}

/// The columns of a full record: the summary's, then `metadata` and `version`.
macro_rules! record_columns {
    () => {
        concat!(summary_columns!(), ", metadata, version")
    };
}

/// The columns of a full record, qualified by the table alias `c`.
macro_rules! record_columns_c {
    () => {
        "c.id, c.user_id, c.title, c.created_at, c.last_active, c.archived, c.message_count, \
         c.file_count, c.usage, c.metadata, c.version"
    };
}

/// Implements `MessagesBackend` for `$ty` in the invoking module (see the module docs
/// for what that module defines).
macro_rules! messages_backend {
    ($ty:ty) => {
        const SELECT_LIVE: &str = concat!(
            "SELECT ",
            record_columns!(),
            " FROM chatvault_conversations WHERE id = $1 AND NOT deleting"
        );
        const SELECT_COUNT_LIVE: &str =
            "SELECT message_count FROM chatvault_conversations WHERE id = $1 AND NOT deleting";
        const INSERT_CONVERSATION: &str = "INSERT INTO chatvault_conversations \
            (id, user_id, title, created_at, last_active, archived, metadata, message_count, \
             file_count, usage, version, deleting) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE) \
            ON CONFLICT (id) DO NOTHING";
        const UPDATE_COUNTERS: &str = "UPDATE chatvault_conversations SET title = $2, \
            last_active = $3, message_count = $4, file_count = $5, usage = $6, version = $7 \
            WHERE id = $1";
        const UPDATE_PATCH: &str = "UPDATE chatvault_conversations SET title = $2, \
            archived = $3, metadata = $4, version = $5 WHERE id = $1";
        const MARK_DELETING: &str =
            "UPDATE chatvault_conversations SET deleting = TRUE WHERE id = $1";
        const DELETE_MESSAGES: &str =
            "DELETE FROM chatvault_messages WHERE conversation_id = $1";
        const DELETE_ATTACHMENTS: &str =
            "DELETE FROM chatvault_attachments WHERE conversation_id = $1";
        const DELETE_CONVERSATION: &str = "DELETE FROM chatvault_conversations WHERE id = $1";
        const SELECT_MESSAGE_BY_ID: &str = "SELECT body FROM chatvault_messages \
            WHERE conversation_id = $1 AND message_id = $2";
        const SELECT_MESSAGES: &str = "SELECT body FROM chatvault_messages \
            WHERE conversation_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq";
        const UPDATE_MESSAGE: &str = "UPDATE chatvault_messages SET role = $3, revision = $4, \
            updated_at = $5, text = $6, body = $7 WHERE conversation_id = $1 AND message_id = $2";
        const SELECT_FILES: &str = "SELECT body FROM chatvault_attachments \
            WHERE conversation_id = $1 ORDER BY position, file_id";
        const SELECT_FILE: &str = "SELECT body FROM chatvault_attachments \
            WHERE conversation_id = $1 AND file_id = $2";
        const INSERT_FILE: &str = "INSERT INTO chatvault_attachments \
            (conversation_id, file_id, position, filename, content_type, size, storage_key, \
             uploaded_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        const DELETE_FILE: &str =
            "DELETE FROM chatvault_attachments WHERE conversation_id = $1 AND file_id = $2";
        const LIST_USER: &str = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM chatvault_conversations WHERE user_id = $1 AND NOT deleting \
             AND ($2 OR NOT archived) ORDER BY last_active DESC, id DESC LIMIT $3"
        );
        const LIST_USER_AFTER: &str = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM chatvault_conversations WHERE user_id = $1 AND NOT deleting \
             AND ($2 OR NOT archived) AND (last_active, id) < ($4, $5) \
             ORDER BY last_active DESC, id DESC LIMIT $3"
        );
        const LIST_ALL: &str = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM chatvault_conversations WHERE NOT deleting \
             AND ($1 OR NOT archived) ORDER BY last_active DESC, id DESC LIMIT $2"
        );
        const LIST_ALL_AFTER: &str = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM chatvault_conversations WHERE NOT deleting \
             AND ($1 OR NOT archived) AND (last_active, id) < ($3, $4) \
             ORDER BY last_active DESC, id DESC LIMIT $2"
        );

        /// Reads column `i`; a value of the wrong type is corrupt data.
        fn col<'r, T>(row: &'r DbRow, i: usize) -> Result<T>
        where
            T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
        {
            use sqlx::Row as _;
            row.try_get(i).map_err(|e| {
                Error::corrupt(BACKEND, format!("column {i} of a stored row"), e.to_string())
            })
        }

        /// The conversation columns from `summary_columns!` (and, when `full`,
        /// `record_columns!`) starting at column `at`.
        fn raw_at(row: &DbRow, at: usize, full: bool) -> Result<RawRecord> {
            Ok(RawRecord {
                id: col(row, at)?,
                user_id: col(row, at + 1)?,
                title: col(row, at + 2)?,
                created_at: dec_ts(col::<Ts>(row, at + 3)?)?,
                last_active: dec_ts(col::<Ts>(row, at + 4)?)?,
                archived: col(row, at + 5)?,
                message_count: col(row, at + 6)?,
                file_count: col(row, at + 7)?,
                usage: col(row, at + 8)?,
                metadata: if full { Some(col(row, at + 9)?) } else { None },
                version: if full { col(row, at + 10)? } else { 0 },
            })
        }

        fn record_at(row: &DbRow, at: usize) -> Result<ConversationRecord> {
            raw_at(row, at, true)?.into_record(BACKEND)
        }

        fn message_at(row: &DbRow, at: usize, id: &ConversationId) -> Result<Message> {
            let body: String = col(row, at)?;
            parse_message(BACKEND, &format!("a message of conversation {id}"), &body)
        }

        /// Runs the invoking module's `SEARCH` with `text` as its match expression: the
        /// page of `user_id`'s hits after `offset`.
        async fn search_page(
            pool: &sqlx::Pool<Db>,
            text: String,
            user_id: &UserId,
            options: &SearchOptions,
            offset: i64,
        ) -> Result<Page<SearchHit>> {
            let limit = to_i64("limit", options.limit as u64 + 1)?;
            let rows = sqlx::query(SEARCH)
                .bind(text)
                .bind(user_id.as_str())
                .bind(options.include_archived)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await
                .map_err(|e| db_error(BACKEND, e))?;
            let more = rows.len() > options.limit;
            let mut items = Vec::with_capacity(rows.len().min(options.limit));
            for row in rows.iter().take(options.limit) {
                let conversation = record_at(row, 2)?;
                let message = message_at(row, 0, &conversation.id)?;
                let snippet: String = col(row, 1)?;
                items.push(SearchHit {
                    conversation: conversation.summary(),
                    message,
                    snippet: Some(snippet),
                });
            }
            let next_cursor = search_next_cursor(offset, items.len(), more);
            Ok(Page { items, next_cursor })
        }

        fn read_error(err: sqlx::Error) -> Error {
            db_error(BACKEND, err)
        }

        /// The conversation's record, locked against other writers until the transaction
        /// ends; [`Error::NotFound`] when it does not exist or is being deleted.
        async fn lock_live(
            tx: &mut sqlx::Transaction<'static, Db>,
            id: &ConversationId,
        ) -> Result<ConversationRecord> {
            let row = sqlx::query(SELECT_LIVE_LOCKED)
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(read_error)?;
            match row {
                Some(row) => record_at(&row, 0),
                None => Err(Error::conversation_not_found(id.as_str())),
            }
        }

        /// Writes the columns an append, a message update or a file change moves.
        async fn write_counters(
            tx: &mut sqlx::Transaction<'static, Db>,
            record: &ConversationRecord,
        ) -> Result<()> {
            sqlx::query(UPDATE_COUNTERS)
                .bind(record.id.as_str())
                .bind(record.title.as_deref())
                .bind(enc_ts(record.last_active))
                .bind(to_i64("message_count", record.message_count)?)
                .bind(to_i64("file_count", record.file_count)?)
                .bind(to_json(BACKEND, &record.usage)?)
                .bind(to_i64("version", record.version)?)
                .execute(&mut **tx)
                .await
                .map_err(read_error)?;
            Ok(())
        }

        async fn files_in(
            tx: &mut sqlx::Transaction<'static, Db>,
            id: &ConversationId,
        ) -> Result<Vec<FileAttachment>> {
            let rows = sqlx::query(SELECT_FILES)
                .bind(id.as_str())
                .fetch_all(&mut **tx)
                .await
                .map_err(read_error)?;
            let location = format!("an attachment of conversation {id}");
            rows.iter()
                .map(|row| parse_json(BACKEND, &location, &col::<String>(row, 0)?))
                .collect()
        }

        async fn commit(tx: sqlx::Transaction<'static, Db>, operation: &'static str) -> Result<()> {
            tx.commit()
                .await
                .map_err(|e| commit_error(BACKEND, operation, e))
        }

        /// Ends a transaction that wrote nothing. The answer is known already, so a failure
        /// here (a connection lost at this moment, which ends the transaction anyway) is
        /// only logged.
        async fn rollback(tx: sqlx::Transaction<'static, Db>) {
            if let Err(e) = tx.rollback().await {
                tracing::debug!(backend = BACKEND, error = %e, "rollback of a read-only transaction failed");
            }
        }

        impl $ty {
            /// Creates the schema, or brings it up to date, recording each applied
            /// migration in the `chatvault_migrations` table. Safe to run concurrently
            /// from several processes (they serialize on a lock); a schema newer than
            /// this library is refused.
            pub async fn migrate(&self) -> Result<()> {
                let mut tx = begin_migration(&self.pool).await?;
                sqlx::raw_sql(MIGRATIONS_TABLE_SQL)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM chatvault_migrations")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(read_error)?;
                let current = current.unwrap_or(0);
                let latest = MIGRATIONS.last().map_or(0, |m| m.version);
                if current > latest {
                    return Err(Error::backend(
                        BACKEND,
                        format!(
                            "the database schema is at version {current}, newer than the \
                             {latest} this chatvault-sql knows; upgrade chatvault-sql"
                        ),
                    ));
                }
                for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
                    tracing::info!(
                        backend = BACKEND,
                        version = migration.version,
                        description = migration.description,
                        "applying schema migration"
                    );
                    sqlx::raw_sql(migration.sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(read_error)?;
                    sqlx::query(
                        "INSERT INTO chatvault_migrations (version, description) VALUES ($1, $2)",
                    )
                    .bind(migration.version)
                    .bind(migration.description)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                }
                commit(tx, "migrate").await
            }

            /// The schema version recorded in `chatvault_migrations` (0 before the
            /// first migration).
            pub async fn schema_version(&self) -> Result<i64> {
                let version: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM chatvault_migrations")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_error)?;
                Ok(version.unwrap_or(0))
            }

            /// The connection pool this backend uses.
            pub fn pool(&self) -> &sqlx::Pool<Db> {
                &self.pool
            }
        }

        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl MessagesBackend for $ty {
            fn capabilities(&self) -> MessagesCapabilities {
                self.capabilities_impl()
            }

            async fn create(&self, record: &ConversationRecord) -> Result<()> {
                let (mut tx, _guard) = self.begin_write().await?;
                let done = sqlx::query(INSERT_CONVERSATION)
                    .bind(record.id.as_str())
                    .bind(record.user_id.as_ref().map(|u| u.as_str()))
                    .bind(record.title.as_deref())
                    .bind(enc_ts(record.created_at))
                    .bind(enc_ts(record.last_active))
                    .bind(record.archived)
                    .bind(to_json(BACKEND, &record.metadata)?)
                    .bind(to_i64("message_count", record.message_count)?)
                    .bind(to_i64("file_count", record.file_count)?)
                    .bind(to_json(BACKEND, &record.usage)?)
                    .bind(to_i64("version", record.version)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                if done.rows_affected() == 0 {
                    rollback(tx).await;
                    return Err(Error::AlreadyExists {
                        kind: "conversation",
                        id: record.id.to_string(),
                    });
                }
                commit(tx, "create").await
            }

            async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
                let mut tx = self.begin_read().await?;
                let row = sqlx::query(SELECT_LIVE)
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(read_error)?;
                let head = match row {
                    None => None,
                    Some(row) => Some(ConversationHead {
                        record: record_at(&row, 0)?,
                        files: files_in(&mut tx, id).await?,
                    }),
                };
                rollback(tx).await;
                Ok(head)
            }

            async fn append_messages(
                &self,
                id: &ConversationId,
                messages: Vec<NewMessage>,
            ) -> Result<Appended> {
                let (mut tx, _guard) = self.begin_write().await?;
                let mut record = lock_live(&mut tx, id).await?;
                if messages.is_empty() {
                    rollback(tx).await;
                    return Ok(Appended {
                        record,
                        messages: Vec::new(),
                    });
                }
                let stored = stored_messages(&mut tx, id, &messages).await?;
                if let Some(replayed) = check_replay(&messages, stored)? {
                    rollback(tx).await;
                    return Ok(Appended {
                        record,
                        messages: replayed,
                    });
                }
                let out = record.apply_append(messages, now());
                insert_messages(&mut tx, id, &out).await?;
                write_counters(&mut tx, &record).await?;
                commit(tx, "append_messages").await?;
                Ok(Appended {
                    record,
                    messages: out,
                })
            }

            async fn update_message(
                &self,
                id: &ConversationId,
                message_id: &MessageId,
                expected_revision: u64,
                update: &MessageUpdate,
            ) -> Result<MessageUpdated> {
                let (mut tx, _guard) = self.begin_write().await?;
                let mut record = lock_live(&mut tx, id).await?;
                let row = sqlx::query(SELECT_MESSAGE_BY_ID)
                    .bind(id.as_str())
                    .bind(message_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(read_error)?;
                let Some(row) = row else {
                    rollback(tx).await;
                    return Err(Error::message_not_found(message_id.as_str()));
                };
                let mut message = message_at(&row, 0, id)?;
                if message.revision != expected_revision {
                    rollback(tx).await;
                    return Err(revision_conflict(
                        message_id,
                        expected_revision,
                        message.revision,
                    ));
                }
                record.apply_message_update(&mut message, update, now());
                sqlx::query(UPDATE_MESSAGE)
                    .bind(id.as_str())
                    .bind(message_id.as_str())
                    .bind(role_column(&message))
                    .bind(to_i64("revision", message.revision)?)
                    .bind(message.updated_at.map(enc_ts))
                    .bind(search_text(&message))
                    .bind(to_json(BACKEND, &message)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                write_counters(&mut tx, &record).await?;
                commit(tx, "update_message").await?;
                Ok(MessageUpdated { record, message })
            }

            async fn messages(
                &self,
                id: &ConversationId,
                range: &MessageRange,
            ) -> Result<Page<Message>> {
                let count: Option<i64> = sqlx::query_scalar(SELECT_COUNT_LIVE)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_error)?;
                let Some(count) = count else {
                    return Err(Error::conversation_not_found(id.as_str()));
                };
                let count = to_u64(BACKEND, &format!("conversation {id}"), count)?;
                let Some((mut first, mut last)) = range.resolve(count) else {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    });
                };
                // A natural page: never more than MESSAGE_PAGE messages in one read.
                if last - first >= MESSAGE_PAGE {
                    match range {
                        MessageRange::After { .. } => last = first + MESSAGE_PAGE - 1,
                        MessageRange::Before { .. } => first = last - (MESSAGE_PAGE - 1),
                    }
                }
                let rows = sqlx::query(SELECT_MESSAGES)
                    .bind(id.as_str())
                    .bind(to_i64("seq", first)?)
                    .bind(to_i64("seq", last)?)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_error)?;
                let items = rows
                    .iter()
                    .map(|row| message_at(row, 0, id))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page {
                    items,
                    next_cursor: range.next_cursor(first, last, count),
                })
            }

            async fn list_conversations(
                &self,
                user_id: Option<&UserId>,
                options: &ListOptions,
            ) -> Result<Page<ConversationSummary>> {
                let cursor = options.validate()?;
                let limit = i64::try_from(options.limit + 1)
                    .map_err(|_| Error::invalid_input("limit", "too large"))?;
                let include = options.include_archived;
                let query = match (user_id, &cursor) {
                    (Some(user), None) => sqlx::query(LIST_USER)
                        .bind(user.as_str())
                        .bind(include)
                        .bind(limit),
                    (Some(user), Some(c)) => sqlx::query(LIST_USER_AFTER)
                        .bind(user.as_str())
                        .bind(include)
                        .bind(limit)
                        .bind(enc_ts(c.last_active))
                        .bind(c.id.as_str()),
                    (None, None) => sqlx::query(LIST_ALL).bind(include).bind(limit),
                    (None, Some(c)) => sqlx::query(LIST_ALL_AFTER)
                        .bind(include)
                        .bind(limit)
                        .bind(enc_ts(c.last_active))
                        .bind(c.id.as_str()),
                };
                let rows = query.fetch_all(&self.pool).await.map_err(read_error)?;
                let mut items = rows
                    .iter()
                    .map(|row| raw_at(row, 0, false)?.into_summary(BACKEND))
                    .collect::<Result<Vec<_>>>()?;
                let more = items.len() > options.limit;
                items.truncate(options.limit);
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
                let (mut tx, _guard) = self.begin_write().await?;
                let mut record = lock_live(&mut tx, id).await?;
                if !record.apply_patch(patch) {
                    rollback(tx).await;
                    return Ok(record);
                }
                sqlx::query(UPDATE_PATCH)
                    .bind(id.as_str())
                    .bind(record.title.as_deref())
                    .bind(record.archived)
                    .bind(to_json(BACKEND, &record.metadata)?)
                    .bind(to_i64("version", record.version)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                commit(tx, "update").await?;
                Ok(record)
            }

            async fn add_file(
                &self,
                id: &ConversationId,
                file: &FileAttachment,
            ) -> Result<ConversationRecord> {
                let (mut tx, _guard) = self.begin_write().await?;
                let mut record = lock_live(&mut tx, id).await?;
                let existing = sqlx::query(SELECT_FILE)
                    .bind(id.as_str())
                    .bind(file.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(read_error)?;
                let location = format!("an attachment of conversation {id}");
                let existing = existing
                    .map(|row| parse_json(BACKEND, &location, &col::<String>(&row, 0)?))
                    .transpose()?;
                if let Err(e) = apply_add_file(&mut record, existing.as_slice(), file) {
                    rollback(tx).await;
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
                    .bind(enc_ts(file.uploaded_at))
                    .bind(to_json(BACKEND, file)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                write_counters(&mut tx, &record).await?;
                commit(tx, "add_file").await?;
                Ok(record)
            }

            async fn remove_file(
                &self,
                id: &ConversationId,
                file_id: &FileId,
            ) -> Result<Option<ConversationRecord>> {
                let (mut tx, _guard) = self.begin_write().await?;
                let mut record = lock_live(&mut tx, id).await?;
                let done = sqlx::query(DELETE_FILE)
                    .bind(id.as_str())
                    .bind(file_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                if done.rows_affected() == 0 {
                    rollback(tx).await;
                    return Ok(None);
                }
                apply_remove_file(&mut record);
                write_counters(&mut tx, &record).await?;
                commit(tx, "remove_file").await?;
                Ok(Some(record))
            }

            async fn begin_delete(
                &self,
                id: &ConversationId,
            ) -> Result<Option<Vec<FileAttachment>>> {
                let (mut tx, _guard) = self.begin_write().await?;
                let done = sqlx::query(MARK_DELETING)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                if done.rows_affected() == 0 {
                    rollback(tx).await;
                    return Ok(None);
                }
                let files = files_in(&mut tx, id).await?;
                commit(tx, "begin_delete").await?;
                Ok(Some(files))
            }

            async fn delete(&self, id: &ConversationId) -> Result<bool> {
                let (mut tx, _guard) = self.begin_write().await?;
                let exists = sqlx::query(SELECT_ANY_LOCKED)
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(read_error)?
                    .is_some();
                if !exists {
                    rollback(tx).await;
                    return Ok(false);
                }
                for statement in [DELETE_MESSAGES, DELETE_ATTACHMENTS, DELETE_CONVERSATION] {
                    sqlx::query(statement)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(read_error)?;
                }
                commit(tx, "delete").await?;
                Ok(true)
            }

            async fn search(
                &self,
                user_id: &UserId,
                query: &str,
                options: &SearchOptions,
            ) -> Result<Page<SearchHit>> {
                self.search_impl(user_id, query, options).await
            }
        }
    };
}
