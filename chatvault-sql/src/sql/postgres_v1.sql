CREATE TABLE chatvault_conversations (
    id            TEXT COLLATE "C" PRIMARY KEY,
    user_id       TEXT COLLATE "C",
    title         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    last_active   TIMESTAMPTZ NOT NULL,
    archived      BOOLEAN NOT NULL DEFAULT FALSE,
    metadata      TEXT NOT NULL DEFAULT '{}',   -- JSON object, as serde_json wrote it
    message_count BIGINT NOT NULL DEFAULT 0,
    file_count    BIGINT NOT NULL DEFAULT 0,
    usage         TEXT NOT NULL DEFAULT '{}',   -- JSON: token totals
    version       BIGINT NOT NULL,
    deleting      BOOLEAN NOT NULL DEFAULT FALSE -- begin_delete was called
);
CREATE INDEX chatvault_conversations_by_user
    ON chatvault_conversations (user_id, last_active DESC, id DESC);
CREATE INDEX chatvault_conversations_by_activity
    ON chatvault_conversations (last_active DESC, id DESC);

CREATE TABLE chatvault_messages (
    conversation_id TEXT COLLATE "C" NOT NULL
        REFERENCES chatvault_conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    message_id      TEXT COLLATE "C" NOT NULL,
    role            TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ,
    text            TEXT NOT NULL,              -- the text view, for search
    body            TEXT NOT NULL,              -- the whole message as JSON (authoritative)
    search          TSVECTOR GENERATED ALWAYS AS
                        (to_tsvector('simple'::regconfig, left(text, 100000))) STORED,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, message_id)
);
-- fastupdate off: no pending list for every search to scan (searches stay ~1 ms on a
-- fresh index); each insert updates the index directly instead.
CREATE INDEX chatvault_messages_search ON chatvault_messages USING GIN (search)
    WITH (fastupdate = off);

CREATE TABLE chatvault_attachments (
    conversation_id TEXT COLLATE "C" NOT NULL
        REFERENCES chatvault_conversations (id) ON DELETE CASCADE,
    file_id         TEXT COLLATE "C" NOT NULL,
    position        BIGINT NOT NULL,            -- attachment order (oldest first)
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    storage_key     TEXT NOT NULL,
    uploaded_at     TIMESTAMPTZ NOT NULL,
    body            TEXT NOT NULL,              -- the whole attachment record as JSON
    PRIMARY KEY (conversation_id, file_id)
);
