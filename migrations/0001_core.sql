-- mailfeed core schema: accounts, mailboxes with their sync cursor, messages
-- with their raw bytes, and the events log consumers follow.

CREATE TABLE accounts (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    -- Readable name (modified UTF-7 decoded); `wire_name` is what the server uses.
    name           TEXT NOT NULL,
    wire_name      TEXT NOT NULL,
    -- The generation the cursor belongs to; NULL until first examined.
    uidvalidity    INTEGER,
    -- Every message with UID <= last_uid under `uidvalidity` is stored.
    last_uid       INTEGER NOT NULL DEFAULT 0,
    highest_modseq INTEGER,
    last_sync_at   TEXT,
    last_error     TEXT,
    last_error_at  TEXT,
    UNIQUE (account_id, name)
);

CREATE TABLE messages (
    -- AUTOINCREMENT: ids are never reused, and rise in commit order because
    -- one writer holds the write lock from first insert to commit.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    internal_date TEXT,
    size          INTEGER NOT NULL,
    flags         TEXT NOT NULL DEFAULT '',
    modseq        INTEGER,
    sha256        BLOB NOT NULL,
    -- 1 when the message exceeded max_message_size and only its headers are kept.
    truncated     INTEGER NOT NULL DEFAULT 0,
    message_id    TEXT,
    subject       TEXT,
    stored_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expunged_at   TEXT,
    -- Set when this row is the same message as an earlier row of another
    -- UIDVALIDITY generation of the mailbox (same Message-ID and bytes).
    supersedes    INTEGER REFERENCES messages(id),
    UNIQUE (mailbox_id, uidvalidity, uid)
);
CREATE INDEX messages_by_hash ON messages (mailbox_id, sha256);

CREATE TABLE message_raw (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    raw        BLOB NOT NULL
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('new', 'flags', 'expunged', 'uidvalidity')),
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    message_id INTEGER REFERENCES messages(id),
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    detail     TEXT
);

CREATE VIEW message_feed AS
SELECT m.id            AS id,
       a.name          AS account,
       b.name          AS mailbox,
       m.uidvalidity   AS uidvalidity,
       m.uid           AS uid,
       m.internal_date AS internal_date,
       m.size          AS size,
       m.flags         AS flags,
       m.message_id    AS message_id,
       m.subject       AS subject,
       r.raw           AS raw,
       m.truncated     AS truncated,
       m.stored_at     AS stored_at,
       m.expunged_at   AS expunged_at
FROM messages m
JOIN mailboxes b ON b.id = m.mailbox_id
JOIN accounts a ON a.id = b.account_id
JOIN message_raw r ON r.message_id = m.id
WHERE m.supersedes IS NULL;
