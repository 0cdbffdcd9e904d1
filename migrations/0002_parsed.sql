-- Parsed messages and the read interface for consumers: decoded header
-- columns on `messages`, addresses, bodies, attachments (bytes stored once
-- per distinct SHA-256), full-text search, and the consumer views.
-- docs/consumer-contract.md describes every view and column; the views are
-- the supported interface, the tables behind them may change.

ALTER TABLE messages ADD COLUMN sent_at TEXT;
ALTER TABLE messages ADD COLUMN date_raw TEXT;
ALTER TABLE messages ADD COLUMN in_reply_to TEXT;
ALTER TABLE messages ADD COLUMN reference_ids TEXT;
ALTER TABLE messages ADD COLUMN from_name TEXT;
ALTER TABLE messages ADD COLUMN from_address TEXT;
ALTER TABLE messages ADD COLUMN attachment_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN parse_error TEXT;
-- NULL for rows stored before this migration (never parsed).
ALTER TABLE messages ADD COLUMN parsed_at TEXT;

CREATE TABLE addresses (
    message_id INTEGER NOT NULL REFERENCES messages(id),
    role       TEXT NOT NULL CHECK (role IN ('from', 'sender', 'reply_to', 'to', 'cc', 'bcc')),
    position   INTEGER NOT NULL,
    name       TEXT,
    address    TEXT,
    PRIMARY KEY (message_id, role, position)
) WITHOUT ROWID;
CREATE INDEX addresses_by_address ON addresses (address);

CREATE TABLE bodies (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    text       TEXT,
    html       TEXT
);

-- One row per distinct attachment content.
CREATE TABLE attachment_blobs (
    id     INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL
);

CREATE TABLE attachments (
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    position     INTEGER NOT NULL,
    filename     TEXT,
    content_type TEXT NOT NULL,
    content_id   TEXT,
    disposition  TEXT,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL REFERENCES attachment_blobs(sha256),
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
CREATE INDEX attachments_by_sha256 ON attachments (sha256);

-- What the full-text index covers, one row per feed message (re-found rows of
-- a new UIDVALIDITY are left out, as in message_feed); the index keeps only
-- the tokens (external content), snippet() and highlight() read from here,
-- and `rebuild` gives back what the writer inserted.
CREATE VIEW message_search_source AS
SELECT m.id AS id,
       m.subject AS subject,
       (SELECT group_concat(coalesce(x.name, '') || ' ' || coalesce(x.address, ''), char(10))
          FROM addresses x WHERE x.message_id = m.id AND x.role IN ('from', 'sender')) AS sender,
       (SELECT group_concat(coalesce(x.name, '') || ' ' || coalesce(x.address, ''), char(10))
          FROM addresses x WHERE x.message_id = m.id AND x.role IN ('to', 'cc', 'bcc')) AS recipients,
       (SELECT t.text FROM bodies t WHERE t.message_id = m.id) AS body,
       (SELECT group_concat(f.filename, char(10))
          FROM attachments f WHERE f.message_id = m.id AND f.filename IS NOT NULL) AS attachments
FROM messages m
WHERE m.supersedes IS NULL;

CREATE VIRTUAL TABLE message_search USING fts5(
    subject, sender, recipients, body, attachments,
    content = 'message_search_source', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

DROP VIEW message_feed;
CREATE VIEW message_feed AS
SELECT m.id              AS id,
       a.name            AS account,
       b.name            AS mailbox,
       m.uidvalidity     AS uidvalidity,
       m.uid             AS uid,
       m.internal_date   AS internal_date,
       m.size            AS size,
       m.flags           AS flags,
       m.message_id      AS message_id,
       m.subject         AS subject,
       r.raw             AS raw,
       m.truncated       AS truncated,
       m.stored_at       AS stored_at,
       m.expunged_at     AS expunged_at,
       m.sent_at         AS sent_at,
       m.date_raw        AS date_raw,
       m.from_name       AS from_name,
       m.from_address    AS from_address,
       m.in_reply_to     AS in_reply_to,
       m.reference_ids   AS reference_ids,
       m.attachment_count > 0 AS has_attachments,
       m.attachment_count AS attachment_count,
       m.parse_error     AS parse_error
FROM messages m
JOIN mailboxes b ON b.id = m.mailbox_id
JOIN accounts a ON a.id = b.account_id
JOIN message_raw r ON r.message_id = m.id
WHERE m.supersedes IS NULL;

CREATE VIEW message_addresses AS
SELECT x.message_id AS feed_id, x.role, x.position, x.name, x.address
FROM addresses x JOIN messages m ON m.id = x.message_id
WHERE m.supersedes IS NULL;

CREATE VIEW message_bodies AS
SELECT t.message_id AS feed_id, t.text, t.html
FROM bodies t JOIN messages m ON m.id = t.message_id
WHERE m.supersedes IS NULL;

CREATE VIEW message_attachments AS
SELECT f.message_id AS feed_id, f.position, f.filename, f.content_type, f.content_id,
       f.disposition, f.size, f.sha256
FROM attachments f JOIN messages m ON m.id = f.message_id
WHERE m.supersedes IS NULL;

CREATE VIEW attachment_data AS
SELECT sha256, size, data FROM attachment_blobs;

-- One cursor for everything that happens to the feed. Events about a row
-- that re-appeared under a new UIDVALIDITY name the row consumers know.
CREATE VIEW message_events AS
SELECT e.seq                          AS seq,
       e.kind                         AS kind,
       coalesce(m.supersedes, m.id)   AS feed_id,
       a.name                         AS account,
       b.name                         AS mailbox,
       m.uid                          AS uid,
       e.at                           AS at,
       e.detail                       AS detail
FROM events e
JOIN mailboxes b ON b.id = e.mailbox_id
JOIN accounts a ON a.id = b.account_id
LEFT JOIN messages m ON m.id = e.message_id;
