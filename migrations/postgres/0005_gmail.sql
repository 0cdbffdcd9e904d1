-- Gmail (X-GM-EXT-1) on PostgreSQL, as migrations/0008_gmail.sql on SQLite:
-- one message is in many folders (INBOX, each label, [Gmail]/All Mail)
-- under a different UID in each, with one permanent X-GM-MSGID. It is
-- stored once (one messages row, one message_feed row); every folder it
-- was seen in is a membership, and its labels are a set that changes with
-- an event of its own. The views show the feed position as `feed_id`, as
-- every other view here does.

-- The Gmail ids of a stored message. Ids are unsigned 64-bit on the wire,
-- kept as their decimal text to stay exact.
CREATE TABLE gmail_messages (
    message_id bigint PRIMARY KEY REFERENCES messages(id),
    account_id bigint NOT NULL REFERENCES accounts(id),
    gm_msgid   text NOT NULL,
    gm_thrid   text,
    UNIQUE (account_id, gm_msgid)
);

-- Each folder and UID a Gmail message was seen under, including the one
-- it was fetched from. A folder's cursor passes a UID only once its
-- membership (or the message itself) is written before it, in the same
-- transaction or an earlier one.
CREATE TABLE gmail_memberships (
    mailbox_id  bigint NOT NULL REFERENCES mailboxes(id),
    uidvalidity bigint NOT NULL,
    uid         bigint NOT NULL,
    message_id  bigint NOT NULL REFERENCES messages(id),
    seen_at     text NOT NULL DEFAULT mailfeed_now(),
    PRIMARY KEY (mailbox_id, uidvalidity, uid)
);
CREATE INDEX gmail_memberships_by_message ON gmail_memberships (message_id);

-- The labels Gmail last reported for a message (X-GM-LABELS, decoded from
-- modified UTF-7; system labels keep their backslash: \Inbox, \Sent).
CREATE TABLE gmail_labels (
    message_id bigint NOT NULL REFERENCES messages(id),
    label      text NOT NULL,
    PRIMARY KEY (message_id, label)
);

-- A label change is an event of kind 'labels'. The kinds are the
-- writer's to choose (the views pass any); the CHECK goes rather than
-- being rebuilt with each new kind.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_kind_check;

-- The consumer views (docs/consumer-contract.md). A message's row is in
-- them once its transaction has committed and numbered it.
CREATE VIEW message_labels AS
SELECT m.position AS feed_id, l.label AS label
FROM gmail_labels l JOIN messages m ON m.id = l.message_id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

CREATE VIEW message_folders AS
SELECT m.position    AS feed_id,
       a.name        AS account,
       b.name        AS mailbox,
       g.uidvalidity AS uidvalidity,
       g.uid         AS uid
FROM gmail_memberships g
JOIN messages m ON m.id = g.message_id
JOIN mailboxes b ON b.id = g.mailbox_id
JOIN accounts a ON a.id = b.account_id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

CREATE VIEW message_gmail AS
SELECT m.position AS feed_id, g.gm_msgid, g.gm_thrid
FROM gmail_messages g JOIN messages m ON m.id = g.message_id
WHERE m.supersedes IS NULL AND m.position IS NOT NULL;

-- Blobs are read a piece at a time (`substring`) by the HTTP API: stored
-- without compression, a piece costs the pages that hold it, not a
-- decompression from the start. Rows written from now on; raw messages
-- are stored so since 0001.
ALTER TABLE attachment_blobs ALTER COLUMN data SET STORAGE EXTERNAL;
