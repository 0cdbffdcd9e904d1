-- Actions on the server after a message is durably stored: `after_store`
-- (seen, move, delete) and `delete_after`. See src/actions/. Numbered to
-- follow 0005_visible_rows and 0006_search_watermark: its events rebuild
-- keeps their `restored` kind and their message_events view.

-- The `after_store` action configured for a mailbox, written from the
-- configuration at the start of every pass (no row: none). The trigger below
-- reads it, so a message's pending action commits in the same transaction
-- as the message row: a crash can lose both, never one without the other.
CREATE TABLE mailbox_actions (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
    kind       TEXT NOT NULL CHECK (kind IN ('seen', 'move', 'delete')),
    -- move: the destination folder's wire name.
    target     TEXT
);

CREATE TABLE actions (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    kind       TEXT NOT NULL CHECK (kind IN ('seen', 'move', 'delete')),
    target     TEXT,
    -- Why: the folder's `after_store`, or its `delete_after` retention.
    reason     TEXT NOT NULL DEFAULT 'after_store'
               CHECK (reason IN ('after_store', 'delete_after')),
    -- pending -> done | failed. A move without MOVE passes through
    -- `copying` (recorded before UID COPY is sent) and `copied` (the copy
    -- exists, the original is not yet expunged): after a restart a `copied`
    -- one is only expunged, and for a `copying` one the destination is
    -- searched for the message first, so it is not copied twice.
    state      TEXT NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'copying', 'copied', 'done', 'failed')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Set by a synchronous=FULL commit once the message row and the cursor
    -- covering it were committed: only then may the action run.
    durable_at TEXT,
    done_at    TEXT,
    -- The outcome in words (the server's text for a failure).
    result     TEXT,
    UNIQUE (message_id, kind)
);
-- Open actions are found by state (done and failed ones pile up).
CREATE INDEX actions_by_state ON actions (state, message_id);

CREATE TRIGGER actions_after_store AFTER INSERT ON messages
BEGIN
    INSERT OR IGNORE INTO actions (message_id, kind, target)
    SELECT NEW.id, kind, target FROM mailbox_actions WHERE mailbox_id = NEW.mailbox_id;
END;

-- A new event kind, `action`: events is rebuilt because its CHECK names
-- the kinds. message_events reads it, so it is dropped and made again as it was.
DROP VIEW message_events;
CREATE TABLE events_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL
               CHECK (kind IN ('new', 'flags', 'expunged', 'restored', 'uidvalidity', 'action')),
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    message_id INTEGER REFERENCES messages(id),
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    detail     TEXT
);
INSERT INTO events_new (seq, kind, mailbox_id, message_id, at, detail)
SELECT seq, kind, mailbox_id, message_id, at, detail FROM events;
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

-- The backfill window (`since`/`max_age`, `search`) a mailbox was last
-- synced under, as its configuration key; no row: everything. When the
-- configuration changes it, the UIDs below the cursor are searched again
-- and the matches not stored are fetched (see src/window/).
CREATE TABLE mailbox_windows (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
    window     TEXT NOT NULL
);
