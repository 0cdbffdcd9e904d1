-- Actions on the server after a message is durably stored: `after_store`
-- (seen, move, delete) and `delete_after`, as SQLite's migration 0007.
-- See src/actions/ and src/store/postgres/actions.rs. Numbered 0006:
-- 0005 is the Gmail migration.

-- The `after_store` action configured for a mailbox, written from the
-- configuration at the start of every pass (no row: none). The trigger
-- below reads it, so a message's pending action commits in the same
-- transaction as the message row: a crash loses both or neither.
CREATE TABLE mailbox_actions (
    mailbox_id bigint PRIMARY KEY REFERENCES mailboxes(id),
    kind       text NOT NULL CHECK (kind IN ('seen', 'move', 'delete')),
    -- move: the destination folder's wire name.
    target     text
);

CREATE TABLE actions (
    id         bigserial PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages(id),
    kind       text NOT NULL CHECK (kind IN ('seen', 'move', 'delete')),
    target     text,
    -- Why: the folder's `after_store`, or its `delete_after` retention.
    reason     text NOT NULL DEFAULT 'after_store'
               CHECK (reason IN ('after_store', 'delete_after')),
    -- pending -> done | failed; a move without MOVE passes through
    -- `copying` (recorded before UID COPY is sent) and `copied` (the copy
    -- exists, the original is not yet expunged), as on SQLite.
    state      text NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'copying', 'copied', 'done', 'failed')),
    created_at text NOT NULL DEFAULT mailfeed_now(),
    -- Set by a commit with synchronous_commit = on that also holds (or
    -- follows) the message row and the cursor covering it: only then may
    -- the action run.
    durable_at text,
    done_at    text,
    -- The outcome in words (the server's text for a failure).
    result     text,
    UNIQUE (message_id, kind)
);
-- Open actions are found by state (done and failed ones pile up).
CREATE INDEX actions_by_state ON actions (state, message_id);

CREATE FUNCTION mailfeed_actions_after_store() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO actions (message_id, kind, target)
    SELECT NEW.id, x.kind, x.target FROM mailbox_actions x
    WHERE x.mailbox_id = NEW.mailbox_id
    ON CONFLICT (message_id, kind) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER actions_after_store AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION mailfeed_actions_after_store();

-- A new event kind, `action`. The CHECK naming the kinds is replaced in
-- place (no table rebuild); it names every kind SQLite's events know.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_kind_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check
    CHECK (kind IN ('new', 'flags', 'expunged', 'restored', 'uidvalidity', 'action', 'labels'));
