-- FTS5 keeps the terms of recent inserts in a hash table and writes them out
-- as a new index segment whenever it holds more than `hashsize` bytes
-- (default 1 MiB) or a transaction commits. With the default, a first sync
-- wrote a small segment for every ~1 MiB of terms and merged them again and
-- again. Indexing the benchmark's 10,000 messages (106 MB of text) on one
-- core (`examples/index_cost`): 5.6-6.0 s at 1 MiB, 4.6 at 4, 3.9-4.0 at 8,
-- 4.0-4.6 at 16, 4.7 at 32 (larger tables fall out of the CPU cache). 8 MiB
-- is also the memory it may take in the writer while a sync runs.
INSERT INTO message_search (message_search, rank) VALUES ('hashsize', 8388608);
