-- The backfill window each mailbox was last synced under (as SQLite's
-- mailbox_windows): a widened window is compared with what is stored.
CREATE TABLE mailbox_windows (
    mailbox_id bigint PRIMARY KEY REFERENCES mailboxes(id),
    "window"   text NOT NULL
);
