-- The full-text index is a set of segments: each commit (and every 1 MiB of
-- pending terms) writes a new one, and FTS5 merges them in the background of
-- later inserts once `automerge` (default 4) segments sit at one level. A
-- first sync of thousands of messages paid for that merging over and over:
-- it was a fifth of the writer's time. Merging only at 16 keeps queries
-- fast (a few more segments to read per term) and cut a 10,000-message
-- first sync from 13.4-15.0 s to 11.5-12.2 s (benches/README.md).
INSERT INTO message_search (message_search, rank) VALUES ('automerge', 16);
