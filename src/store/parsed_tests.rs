//! Store tests for parsed messages and the consumer views, on in-memory
//! SQLite through the real writer thread.

use rusqlite::Connection;

use super::*;
use crate::imap::{Uid, UidValidity};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn new(mb: MailboxId, uv: u32, uid: u32, raw: &[u8]) -> NewMessage {
    NewMessage {
        mailbox: mb,
        uidvalidity: UidValidity(uv),
        uid: Uid(uid),
        internal_date: Some("2024-03-01T10:00:00Z".into()),
        flags: vec![],
        modseq: None,
        size: raw.len() as u64,
        raw: raw.to_vec(),
        truncated: false,
        gmail: None,
    }
}

fn with_attachment(subject: &str, body: &str, filename: &str, payload_b64: &str) -> Vec<u8> {
    format!(
        "From: Ann Example <ann@example.com>\r\nTo: bob@example.org, Carl <carl@example.net>\r\n\
         Subject: {subject}\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\n\
         Message-ID: <{subject}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--B\r\n\
         Content-Type: application/pdf; name=\"{filename}\"\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{payload_b64}\r\n--B--\r\n"
    )
    .into_bytes()
}

/// Stores `messages` in one mailbox (UIDs from 1) and runs `check` on the
/// writer's connection afterwards.
fn store_then<T: Send + 'static>(
    messages: Vec<Vec<u8>>,
    check: impl FnOnce(&Connection) -> T + Send + 'static,
) -> T {
    rt().block_on(async {
        let (h, t) = StoreHandle::start_with(open_in_memory().expect("open"), 1 << 20);
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(1)).await.expect("gen");
        for (i, raw) in messages.iter().enumerate() {
            h.save(new(mb, 1, i as u32 + 1, raw)).await.expect("save");
        }
        h.catch_up_search().await.expect("search index");
        let out = h.call(move |c| Ok(check(c))).await.expect("check");
        drop(h);
        t.join();
        out
    })
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn parsed_columns_addresses_and_bodies_are_stored() {
    let raw = with_attachment(
        "report",
        "Quarterly numbers inside",
        "q3.pdf",
        "JVBERi0xLjQK",
    );
    store_then(vec![raw], |c| {
        let (subject, sent_at, from, has, n, err): (String, String, String, bool, i64, Option<String>) = c
            .query_row(
                "SELECT subject, sent_at, from_address, has_attachments, attachment_count, parse_error
                 FROM message_feed",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .expect("feed row");
        assert_eq!(subject, "report");
        assert_eq!(sent_at, "2003-07-01T08:52:37Z");
        assert_eq!(from, "ann@example.com");
        assert!(has);
        assert_eq!(n, 1);
        assert_eq!(err, None);
        let to: Vec<(i64, Option<String>, String)> = c
            .prepare("SELECT position, name, address FROM message_addresses WHERE role = 'to' ORDER BY position")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            to,
            [
                (0, None, "bob@example.org".to_owned()),
                (1, Some("Carl".to_owned()), "carl@example.net".to_owned())
            ]
        );
        let text: String = c
            .query_row("SELECT text FROM message_bodies", [], |r| r.get(0))
            .expect("body");
        assert!(text.contains("Quarterly numbers"), "{text}");
        let (name, ctype, size, sha): (String, String, i64, String) = c
            .query_row(
                "SELECT filename, content_type, size, sha256 FROM message_attachments",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("attachment");
        assert_eq!(
            (name.as_str(), ctype.as_str(), size),
            ("q3.pdf", "application/pdf", 9)
        );
        let data = consumer::attachment_data(c, &sha)
            .expect("read")
            .expect("bytes");
        assert_eq!(data, b"%PDF-1.4\n");
    });
}

#[test]
fn identical_attachments_are_stored_once() {
    let a = with_attachment("one", "first", "same.pdf", "JVBERi0xLjQK");
    let b = with_attachment("two", "second", "copy.pdf", "JVBERi0xLjQK");
    let d = with_attachment("three", "third", "other.pdf", "JVBERi0xLjUK");
    store_then(vec![a, b, d], |c| {
        assert_eq!(count(c, "SELECT count(*) FROM message_attachments"), 3);
        assert_eq!(count(c, "SELECT count(*) FROM attachment_data"), 2);
        assert_eq!(
            count(c, "SELECT count(DISTINCT sha256) FROM message_attachments"),
            2
        );
    });
}

#[test]
fn search_finds_body_words_and_attachment_names() {
    let a = with_attachment(
        "alpha",
        "please pay the invoice soon",
        "notes.pdf",
        "JVBERi0xLjQK",
    );
    let b = with_attachment(
        "beta",
        "nothing to see",
        "Rechnung-2024.pdf",
        "JVBERi0xLjUK",
    );
    store_then(vec![a, b], |c| {
        let ids = |q: &str| -> Vec<i64> {
            c.prepare(
                "SELECT rowid FROM message_search WHERE message_search MATCH ?1 ORDER BY rowid",
            )
            .expect("prepare")
            .query_map([q], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
        };
        let feed: Vec<i64> = c
            .prepare("SELECT id FROM message_feed ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(ids("invoice"), [feed[0]]);
        assert_eq!(ids("rechnung"), [feed[1]]);
        assert_eq!(ids("attachments:notes"), [feed[0]]);
        assert_eq!(ids("sender:ann"), feed);
        assert_eq!(ids("recipients:carl"), feed);
        let hits = consumer::search(c, "invoice", 10).expect("search");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].subject.as_deref(), Some("alpha"));
        assert_eq!(hits[0].attachments, ["notes.pdf"]);
        // External content: snippets come from the source view.
        let snip: String = c
            .query_row(
                "SELECT snippet(message_search, 3, '[', ']', '…', 4) FROM message_search
                 WHERE message_search MATCH 'invoice'",
                [],
                |r| r.get(0),
            )
            .expect("snippet");
        assert!(snip.contains("[invoice]"), "{snip}");
        // The index agrees with the source view it is built from.
        c.execute_batch("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
            .expect("integrity");
    });
}

#[test]
fn unparseable_messages_are_in_the_feed_with_a_parse_error() {
    let good = b"From: a@example.com\r\nSubject: fine\r\n\r\nok\r\n".to_vec();
    let empty = b"\r\n\r\n".to_vec();
    let broken = b"From: a@example.com\r\nContent-Type: text/plain\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
        .to_vec();
    store_then(vec![good, empty, broken], |c| {
        assert_eq!(count(c, "SELECT count(*) FROM message_feed"), 3);
        assert_eq!(
            count(
                c,
                "SELECT count(*) FROM message_feed WHERE parse_error IS NOT NULL"
            ),
            count(
                c,
                "SELECT count(*) FROM messages WHERE parse_error IS NOT NULL"
            ),
        );
        assert!(
            count(
                c,
                "SELECT count(*) FROM message_feed WHERE parse_error IS NOT NULL"
            ) >= 1
        );
        let st = read::status(c).expect("status");
        assert_eq!(
            st[0].parse_errors,
            count(
                c,
                "SELECT count(*) FROM messages WHERE parse_error IS NOT NULL"
            )
        );
        assert_eq!(
            count(c, "SELECT count(*) FROM messages WHERE parsed_at IS NULL"),
            0
        );
    });
}

#[test]
fn events_view_names_the_row_consumers_know() {
    let raw = b"Message-ID: <x@y>\r\nSubject: s\r\n\r\nbody\r\n".to_vec();
    rt().block_on(async {
        let (h, t) = StoreHandle::start_with(open_in_memory().expect("open"), 1 << 20);
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(1)).await.expect("gen");
        h.save(new(mb, 1, 5, &raw)).await.expect("save");
        h.begin_generation(mb, UidValidity(2)).await.expect("gen2");
        h.save(new(mb, 2, 1, &raw)).await.expect("save again");
        h.commit().await.expect("commit");
        h.call(|c| {
            // A flag change on the re-found row, as the flag producer writes it.
            c.execute_batch(
                "INSERT INTO events (kind, mailbox_id, message_id, detail)
                 SELECT 'flags', mailbox_id, id, '{\"flags\":\"\\\\Seen\"}' FROM messages
                 WHERE uidvalidity = 2",
            )
            .expect("event");
            let rows: Vec<(String, Option<i64>, Option<i64>)> = c
                .prepare("SELECT kind, feed_id, uid FROM message_events ORDER BY seq")
                .expect("prepare")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            let first: i64 = c
                .query_row("SELECT min(id) FROM messages", [], |r| r.get(0))
                .expect("id");
            assert_eq!(
                rows,
                [
                    ("new".to_owned(), Some(first), Some(5)),
                    ("uidvalidity".to_owned(), None, None),
                    ("flags".to_owned(), Some(first), Some(1)),
                ]
            );
            // The index and its source view agree, also after a rebuild.
            c.execute_batch(
                "INSERT INTO message_search(message_search) VALUES ('rebuild');
                 INSERT INTO message_search(message_search) VALUES ('integrity-check');",
            )
            .expect("rebuild");
            // The re-found row is not searchable twice.
            assert_eq!(
                count(
                    c,
                    "SELECT count(*) FROM message_search WHERE message_search MATCH 'body'"
                ),
                1
            );
            Ok(())
        })
        .await
        .expect("check");
        drop(h);
        t.join();
    });
}

#[test]
fn tail_queries_follow_ids() {
    let msgs: Vec<Vec<u8>> = (0..15)
        .map(|i| format!("From: s{i}@example.com\r\nSubject: n{i}\r\n\r\nb\r\n").into_bytes())
        .collect();
    store_then(msgs, |c| {
        let start = consumer::id_before_last(c, 10).expect("start");
        let rows = consumer::entries_after(c, start, 100).expect("rows");
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0].subject.as_deref(), Some("n5"));
        let next = consumer::entries_after(c, rows[9].id, 100).expect("rows");
        assert!(next.is_empty());
        assert_eq!(rows[0].from.as_deref(), Some("s5@example.com"));
    });
}
