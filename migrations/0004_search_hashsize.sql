-- FTS5 keeps the terms of recent inserts in a hash table and writes them out
-- as a new index segment whenever it holds more than `hashsize` bytes
-- (default 1 MiB) or a transaction commits. With the default, a first sync
-- wrote a small segment for every ~1 MiB of terms and then merged them
-- again and again. 16 MiB is where indexing a 10,000-message corpus was
-- fastest (4.2 s at 1 MiB, 3.1 s at 8, 2.7-2.9 s at 16, 3.4 s at 32: larger
-- tables fall out of the CPU cache); it is also about what one writer
-- transaction holds, so most commits flush once. It costs up to 16 MiB of
-- memory in the writer while a sync runs.
INSERT INTO message_search (message_search, rank) VALUES ('hashsize', 16777216);
