CREATE TABLE chatvault_conversations (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT,
    title         TEXT,
    created_at    INTEGER NOT NULL,            -- µs since 1970-01-01 UTC
    last_active   INTEGER NOT NULL,            -- µs since 1970-01-01 UTC
    archived      INTEGER NOT NULL DEFAULT 0,  -- boolean
    metadata      TEXT NOT NULL DEFAULT '{}',  -- JSON object
    message_count INTEGER NOT NULL DEFAULT 0,
    file_count    INTEGER NOT NULL DEFAULT 0,
    usage         TEXT NOT NULL DEFAULT '{}',  -- JSON: token totals
    version       INTEGER NOT NULL,
    deleting      INTEGER NOT NULL DEFAULT 0   -- boolean: begin_delete was called
);
CREATE INDEX chatvault_conversations_by_user
    ON chatvault_conversations (user_id, last_active DESC, id DESC);
CREATE INDEX chatvault_conversations_by_activity
    ON chatvault_conversations (last_active DESC, id DESC);

CREATE TABLE chatvault_messages (
    row_id          INTEGER PRIMARY KEY,       -- stable rowid for the FTS index
    conversation_id TEXT NOT NULL
        REFERENCES chatvault_conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    message_id      TEXT NOT NULL,
    role            TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,          -- µs since 1970-01-01 UTC
    updated_at      INTEGER,                   -- µs since 1970-01-01 UTC
    text            TEXT NOT NULL,             -- the text view, for search
    body            TEXT NOT NULL,             -- the whole message as JSON (authoritative)
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, message_id)
);

CREATE VIRTUAL TABLE chatvault_messages_fts USING fts5 (
    text,
    content = 'chatvault_messages',
    content_rowid = 'row_id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER chatvault_messages_fts_insert AFTER INSERT ON chatvault_messages BEGIN
    INSERT INTO chatvault_messages_fts (rowid, text) VALUES (new.row_id, new.text);
END;
CREATE TRIGGER chatvault_messages_fts_delete AFTER DELETE ON chatvault_messages BEGIN
    INSERT INTO chatvault_messages_fts (chatvault_messages_fts, rowid, text)
        VALUES ('delete', old.row_id, old.text);
END;
CREATE TRIGGER chatvault_messages_fts_update AFTER UPDATE OF text ON chatvault_messages BEGIN
    INSERT INTO chatvault_messages_fts (chatvault_messages_fts, rowid, text)
        VALUES ('delete', old.row_id, old.text);
    INSERT INTO chatvault_messages_fts (rowid, text) VALUES (new.row_id, new.text);
END;

CREATE TABLE chatvault_attachments (
    conversation_id TEXT NOT NULL
        REFERENCES chatvault_conversations (id) ON DELETE CASCADE,
    file_id         TEXT NOT NULL,
    position        INTEGER NOT NULL,          -- attachment order (oldest first)
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    storage_key     TEXT NOT NULL,
    uploaded_at     INTEGER NOT NULL,          -- µs since 1970-01-01 UTC
    body            TEXT NOT NULL,             -- the whole attachment record as JSON
    PRIMARY KEY (conversation_id, file_id)
);
