-- One rule for messages re-found under a new UIDVALIDITY: every change
-- applies to the row consumers see. That needs a way back from a row to
-- the one that supersedes it (an index, partial: most rows supersede
-- nothing) and an event for a message that was marked expunged and is on
-- the server again (`restored`). SQLite cannot change a CHECK in place, so
-- the events table is rebuilt with its rows, ids and sequence unchanged.

CREATE INDEX messages_by_supersedes ON messages (supersedes) WHERE supersedes IS NOT NULL;

DROP VIEW message_events;

CREATE TABLE events_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL
               CHECK (kind IN ('new', 'flags', 'expunged', 'restored', 'uidvalidity')),
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    message_id INTEGER REFERENCES messages(id),
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    detail     TEXT
);
INSERT INTO events_new (seq, kind, mailbox_id, message_id, at, detail)
SELECT seq, kind, mailbox_id, message_id, at, detail FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

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
