-- mailfeed on PostgreSQL: the same tables and consumer views as SQLite's
-- migrations/0001..0006 reach, in one step. docs/consumer-contract.md
-- describes the views; the tables behind them may change.
--
-- Feed positions. A sequence hands out values at INSERT, and transactions
-- commit in another order, so a consumer following `id` could read past a
-- lower id that becomes visible later. Here a row's `position` (what the
-- views call `id` and `seq`) is NULL while its transaction runs; just
-- before COMMIT the writer locks the one `feed_positions` row, numbers its
-- rows from it and commits (src/store/postgres/publish.rs). The lock is
-- held from numbering to commit, so positions rise in commit order. Rows
-- without a position are not in any view.

CREATE TABLE feed_positions (
    one           integer PRIMARY KEY CHECK (one = 1),
    last_message  bigint NOT NULL,
    last_event    bigint NOT NULL
);
INSERT INTO feed_positions VALUES (1, 0, 0);

CREATE TABLE accounts (
    id   bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE
);

CREATE TABLE mailboxes (
    id             bigserial PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES accounts(id),
    name           text NOT NULL,
    wire_name      text NOT NULL,
    uidvalidity    bigint,
    last_uid       bigint NOT NULL DEFAULT 0,
    highest_modseq bigint,
    last_sync_at   text,
    last_error     text,
    last_error_at  text,
    UNIQUE (account_id, name)
);

CREATE FUNCTION mailfeed_now() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE TABLE messages (
    -- Internal row id (a sequence); `position` is the feed position.
    id               bigserial PRIMARY KEY,
    position         bigint UNIQUE,
    mailbox_id       bigint NOT NULL REFERENCES mailboxes(id),
    uidvalidity      bigint NOT NULL,
    uid              bigint NOT NULL,
    internal_date    text,
    size             bigint NOT NULL,
    flags            text NOT NULL DEFAULT '',
    modseq           bigint,
    sha256           bytea NOT NULL,
    truncated        integer NOT NULL DEFAULT 0,
    message_id       text,
    subject          text,
    stored_at        text NOT NULL DEFAULT mailfeed_now(),
    expunged_at      text,
    supersedes       bigint REFERENCES messages(id),
    sent_at          text,
    date_raw         text,
    in_reply_to      text,
    reference_ids    text,
    from_name        text,
    from_address     text,
    attachment_count integer NOT NULL DEFAULT 0,
    parse_error      text,
    parsed_at        text,
    UNIQUE (mailbox_id, uidvalidity, uid)
);
CREATE INDEX messages_by_hash ON messages (mailbox_id, sha256);
CREATE INDEX messages_by_supersedes ON messages (supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX messages_unpublished ON messages (id) WHERE position IS NULL;

CREATE TABLE message_raw (
    message_id bigint PRIMARY KEY REFERENCES messages(id),
    raw        bytea NOT NULL
);
-- Mail is mostly compressed already or small; storing it out of line
-- without PostgreSQL's own compression keeps writes cheap.
ALTER TABLE message_raw ALTER COLUMN raw SET STORAGE EXTERNAL;

CREATE TABLE addresses (
    message_id bigint NOT NULL REFERENCES messages(id),
    role       text NOT NULL CHECK (role IN ('from', 'sender', 'reply_to', 'to', 'cc', 'bcc')),
    position   integer NOT NULL,
    name       text,
    address    text,
    PRIMARY KEY (message_id, role, position)
);
CREATE INDEX addresses_by_address ON addresses (address);

CREATE TABLE bodies (
    message_id bigint PRIMARY KEY REFERENCES messages(id),
    text       text,
    html       text
);

CREATE TABLE attachment_blobs (
    id     bigserial PRIMARY KEY,
    sha256 text NOT NULL UNIQUE,
    size   bigint NOT NULL,
    data   bytea NOT NULL
);

CREATE TABLE attachments (
    message_id   bigint NOT NULL REFERENCES messages(id),
    position     integer NOT NULL,
    filename     text,
    content_type text NOT NULL,
    content_id   text,
    disposition  text,
    size         bigint NOT NULL,
    sha256       text NOT NULL REFERENCES attachment_blobs(sha256),
    PRIMARY KEY (message_id, position)
);
CREATE INDEX attachments_by_sha256 ON attachments (sha256);

CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    position   bigint UNIQUE,
    kind       text NOT NULL
               CHECK (kind IN ('new', 'flags', 'expunged', 'restored', 'uidvalidity')),
    mailbox_id bigint NOT NULL REFERENCES mailboxes(id),
    message_id bigint REFERENCES messages(id),
    at         text NOT NULL DEFAULT mailfeed_now(),
    detail     text
);
CREATE INDEX events_unpublished ON events (id) WHERE position IS NULL;

-- Full-text search: one document per message, written with the message
-- (simple configuration: no stemming, any language).
CREATE TABLE message_search (
    message_id bigint PRIMARY KEY REFERENCES messages(id),
    document   tsvector NOT NULL
);
CREATE INDEX message_search_gin ON message_search USING gin (document);

CREATE VIEW message_feed AS
SELECT m.position        AS id,
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
       (m.attachment_count > 0)::integer AS has_attachments,
       m.attachment_count AS attachment_count,
       m.parse_error     AS parse_error
FROM messages m
JOIN mailboxes b ON b.id = m.mailbox_id
JOIN accounts a ON a.id = b.account_id
JOIN message_raw r ON r.message_id = m.id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

CREATE VIEW message_addresses AS
SELECT m.position AS feed_id, x.role, x.position, x.name, x.address
FROM addresses x JOIN messages m ON m.id = x.message_id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

CREATE VIEW message_bodies AS
SELECT m.position AS feed_id, t.text, t.html
FROM bodies t JOIN messages m ON m.id = t.message_id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

CREATE VIEW message_attachments AS
SELECT m.position AS feed_id, f.position, f.filename, f.content_type, f.content_id,
       f.disposition, f.size, f.sha256
FROM attachments f JOIN messages m ON m.id = f.message_id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

CREATE VIEW attachment_data AS
SELECT sha256, size, data FROM attachment_blobs;

CREATE VIEW message_events AS
SELECT e.position                           AS seq,
       e.kind                               AS kind,
       coalesce(s.position, m.position)     AS feed_id,
       a.name                               AS account,
       b.name                               AS mailbox,
       m.uid                                AS uid,
       e.at                                 AS at,
       e.detail                             AS detail
FROM events e
JOIN mailboxes b ON b.id = e.mailbox_id
JOIN accounts a ON a.id = b.account_id
LEFT JOIN messages m ON m.id = e.message_id
LEFT JOIN messages s ON s.id = m.supersedes
WHERE e.position IS NOT NULL;

-- Search is written with each message, so the index never trails the feed.
CREATE VIEW search_watermark AS
SELECT last_message AS indexed_through FROM feed_positions;
