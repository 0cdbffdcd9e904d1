//! The full-text index (`message_search`, FTS5) filled behind the feed. A
//! message commits with its raw row, parsed form and cursor; its index entry
//! comes later, in large batches, from the same tables (the
//! `message_search_source` view, exactly what FTS5's `rebuild` reads). The
//! watermark `search_progress.indexed_through` moves in the same transaction
//! as the entries it covers, so after a crash anywhere the next batch starts
//! right above the last committed one: nothing is indexed twice or skipped.
//! The writer thread runs the batches between feed work (see `writer.rs`);
//! this file holds only their SQL and the lag readers ask for.

use rusqlite::{Connection, params};

use super::{Context, StoreError};

/// How far the search index trails the feed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SearchLag {
    /// Every feed message with `id <= indexed_through` is in the index.
    pub indexed_through: i64,
    /// Feed messages not yet in the index.
    pub messages: i64,
    /// Seconds since the oldest of them was stored (0 when none).
    pub seconds: f64,
}

impl SearchLag {
    /// Whether search sees every message of the feed.
    pub fn caught_up(&self) -> bool {
        self.messages == 0
    }
}

/// The watermark.
pub(crate) fn indexed_through(c: &Connection) -> Result<i64, StoreError> {
    c.prepare_cached("SELECT indexed_through FROM search_progress")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .doing("reading the search watermark")
}

/// Indexes the next messages above the watermark, at most `limit`, and moves
/// the watermark past them, inside the caller's transaction. Returns how
/// many message rows it covered (0: the index has caught up).
pub(crate) fn index_next(c: &Connection, limit: u32) -> Result<u32, StoreError> {
    let from = indexed_through(c)?;
    let (n, upto): (u32, Option<i64>) = c
        .prepare_cached(
            "SELECT count(*), max(id) FROM
               (SELECT id FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2)",
        )
        .and_then(|mut s| s.query_row(params![from, limit], |r| Ok((r.get(0)?, r.get(1)?))))
        .doing("finding messages to index")?;
    let Some(upto) = upto else { return Ok(0) };
    // Superseded rows are not in the source view, so not in the index; the
    // watermark passes them all the same.
    c.prepare_cached(
        "INSERT INTO message_search (rowid, subject, sender, recipients, body, attachments)
         SELECT id, subject, sender, recipients, body, attachments
         FROM message_search_source WHERE id > ?1 AND id <= ?2",
    )
    .and_then(|mut s| s.execute(params![from, upto]))
    .doing("indexing messages for search")?;
    c.prepare_cached("UPDATE search_progress SET indexed_through = ?1")
        .and_then(|mut s| s.execute(params![upto]))
        .doing("moving the search watermark")?;
    Ok(n)
}

/// How far the index trails the feed, as a reader sees it.
pub(crate) fn lag(c: &Connection) -> Result<SearchLag, StoreError> {
    let through = indexed_through(c)?;
    let (messages, seconds): (i64, Option<f64>) = c
        .prepare_cached(
            "SELECT count(*),
                    (julianday('now') - julianday(min(stored_at))) * 86400.0
             FROM messages WHERE id > ?1 AND supersedes IS NULL",
        )
        .and_then(|mut s| s.query_row(params![through], |r| Ok((r.get(0)?, r.get(1)?))))
        .doing("measuring the search lag")?;
    Ok(SearchLag {
        indexed_through: through,
        messages,
        seconds: seconds.unwrap_or(0.0).max(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::{Uid, UidValidity};
    use crate::store::messages::{Derived, Generations, NewMessage, insert};
    use crate::store::{MailboxId, mailboxes, open_in_memory};

    fn store(c: &Connection, mb: MailboxId, uv: u32, uid: u32, text: &str) {
        let raw = format!("Message-ID: <{text}@t>\r\nSubject: {text}\r\n\r\n{text} body\r\n");
        let m = NewMessage {
            mailbox: mb,
            uidvalidity: UidValidity(uv),
            uid: Uid(uid),
            internal_date: None,
            flags: vec![],
            modseq: None,
            size: raw.len() as u64,
            raw: raw.clone().into_bytes(),
            truncated: false,
            gmail: None,
        };
        insert(
            c,
            &m,
            &Derived::of(raw.as_bytes()),
            &mut Generations::default(),
        )
        .expect("insert");
    }

    fn hits(c: &Connection, word: &str) -> i64 {
        c.query_row(
            "SELECT count(*) FROM message_search WHERE message_search MATCH ?1",
            [word],
            |r| r.get(0),
        )
        .expect("match")
    }

    /// The index trails the feed until a batch covers it; a batch covers
    /// each message once, moves the watermark past superseded rows without
    /// indexing them, and equals what FTS5 rebuilds from the source view.
    #[test]
    fn batches_index_each_feed_message_once_up_to_the_watermark() {
        let c = open_in_memory().expect("open");
        let (mb, _) = mailboxes::ensure(&c, "acct", "INBOX").expect("mailbox");
        mailboxes::begin_generation(&c, mb, UidValidity(1)).expect("gen");
        for uid in 1..=5 {
            store(&c, mb, 1, uid, &format!("word{uid}"));
        }
        // The same message again under a new UIDVALIDITY: linked, not in the feed.
        mailboxes::begin_generation(&c, mb, UidValidity(2)).expect("gen 2");
        store(&c, mb, 2, 1, "word1");
        let l = lag(&c).expect("lag");
        assert_eq!((l.indexed_through, l.messages), (0, 5));
        assert!(!l.caught_up());
        assert_eq!(hits(&c, "word1"), 0, "not indexed yet");

        assert_eq!(index_next(&c, 2).expect("batch"), 2);
        assert_eq!(indexed_through(&c).expect("w"), 2);
        assert_eq!(lag(&c).expect("lag").messages, 3);
        assert_eq!((hits(&c, "word2"), hits(&c, "word3")), (1, 0));

        assert_eq!(index_next(&c, 100).expect("batch"), 4, "3 to 6");
        assert_eq!(index_next(&c, 100).expect("batch"), 0, "caught up");
        let l = lag(&c).expect("lag");
        assert_eq!((l.indexed_through, l.messages, l.seconds), (6, 0, 0.0));
        assert_eq!(hits(&c, "word1"), 1, "the superseded copy is not indexed");
        assert_eq!(hits(&c, "body"), 5);
        c.execute_batch(
            "INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)",
        )
        .expect("index equals its source");
    }
}
