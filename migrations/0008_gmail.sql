-- Gmail (X-GM-EXT-1): one message is in many folders (INBOX, each label,
-- [Gmail]/All Mail) under a different UID in each, with one permanent
-- X-GM-MSGID. It is stored once (one messages row, one message_feed row);
-- every folder it was seen in is a membership, and its labels are a set
-- that changes with an event of its own.

-- The Gmail ids of a stored message (the row consumers see). Ids are
-- unsigned 64-bit on the wire, kept as their decimal text to stay exact.
CREATE TABLE gmail_messages (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    gm_msgid   TEXT NOT NULL,
    gm_thrid   TEXT,
    UNIQUE (account_id, gm_msgid)
);

-- Each folder and UID a Gmail message was seen under, including the one
-- it was fetched from. A folder's cursor passes a UID only once its
-- membership (or the message itself) is queued before it.
CREATE TABLE gmail_memberships (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id),
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    seen_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (mailbox_id, uidvalidity, uid)
);
CREATE INDEX gmail_memberships_by_message ON gmail_memberships (message_id);

-- The labels Gmail last reported for a message (X-GM-LABELS, decoded from
-- modified UTF-7; system labels keep their backslash: \Inbox, \Sent).
CREATE TABLE gmail_labels (
    message_id INTEGER NOT NULL REFERENCES messages(id),
    label      TEXT NOT NULL,
    PRIMARY KEY (message_id, label)
) WITHOUT ROWID;

-- A label change is an event: the events table is rebuilt for its CHECK
-- (SQLite cannot alter one), rows, ids and sequence unchanged.
DROP VIEW message_events;

CREATE TABLE events_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL
               CHECK (kind IN ('new', 'flags', 'expunged', 'restored', 'uidvalidity', 'action', 'labels')),
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    message_id INTEGER REFERENCES messages(id),
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    detail     TEXT
);
INSERT INTO events_new (seq, kind, mailbox_id, message_id, at, detail)
SELECT seq, kind, mailbox_id, message_id, at, detail FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

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

-- The consumer views (docs/consumer-contract.md).
CREATE VIEW message_labels AS
SELECT l.message_id AS feed_id, l.label AS label
FROM gmail_labels l;

CREATE VIEW message_folders AS
SELECT g.message_id AS feed_id,
       a.name       AS account,
       b.name       AS mailbox,
       g.uidvalidity AS uidvalidity,
       g.uid        AS uid
FROM gmail_memberships g
JOIN mailboxes b ON b.id = g.mailbox_id
JOIN accounts a ON a.id = b.account_id;

CREATE VIEW message_gmail AS
SELECT message_id AS feed_id, gm_msgid, gm_thrid
FROM gmail_messages;

-- Bytes of mail downloaded per account and UTC day, written in the
-- transaction that stores the messages, for `daily_download_limit`.
CREATE TABLE download_days (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    day        TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
) WITHOUT ROWID;
