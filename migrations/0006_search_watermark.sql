-- The full-text index is filled behind the feed, in batches, by its own
-- stage (src/store/search.rs): a message commits with its parsed form and
-- cursor, and enters `message_search` later. `indexed_through` is the
-- watermark: every `message_search_source` row with id <= it is in the index,
-- none above it is. It moves in the same transaction as the index rows it
-- covers, so a crash never leaves a message indexed twice or skipped.
CREATE TABLE search_progress (
    only            INTEGER PRIMARY KEY CHECK (only = 1),
    indexed_through INTEGER NOT NULL
);
-- Until now every message was indexed in the transaction that stored it.
INSERT INTO search_progress (only, indexed_through)
SELECT 1, coalesce(max(id), 0) FROM messages;

-- For consumers: how far `message_search` has caught up with `message_feed`.
CREATE VIEW search_watermark AS
SELECT indexed_through FROM search_progress;
