//! Store tests on in-memory SQLite through the real writer thread.

use super::*;
use crate::imap::{Uid, UidValidity};

fn msg(mailbox: MailboxId, uv: u32, uid: u32, body: &str) -> NewMessage {
    NewMessage {
        mailbox,
        uidvalidity: UidValidity(uv),
        uid: Uid(uid),
        internal_date: Some("2024-01-01T00:00:00Z".into()),
        flags: vec!["\\Seen".into()],
        modseq: None,
        size: body.len() as u64,
        raw: format!("Message-ID: <{body}@x>\r\nSubject: {body}\r\n\r\nbody {body}\r\n")
            .into_bytes(),
        truncated: false,
        gmail: None,
    }
}

/// Saves messages 1..=`last` of generation `uv` (bodies `m1`, `m2`, ...) and
/// moves the cursor over them.
async fn save_through(h: &StoreHandle, mb: MailboxId, uv: u32, last: u32) {
    for uid in 1..=last {
        h.save(msg(mb, uv, uid, &format!("m{uid}")))
            .await
            .expect("save");
    }
    h.advance_cursor(mb, UidValidity(uv), last)
        .await
        .expect("cursor");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn migrations_apply_once_and_record_version() {
    let conn = open_in_memory().expect("open");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("v");
    assert!(v >= 1);
    // Applying again is a no-op.
    migrate::apply(&conn).expect("again");
    // The search index merges its segments only at 16 per level (0003).
    let automerge: i64 = conn
        .query_row(
            "SELECT v FROM message_search_config WHERE k = 'automerge'",
            [],
            |r| r.get(0),
        )
        .expect("automerge");
    assert_eq!(automerge, 16);
    // ... and flushes its pending terms every 8 MiB, not every 1 MiB (0004).
    let hashsize: i64 = conn
        .query_row(
            "SELECT v FROM message_search_config WHERE k = 'hashsize'",
            [],
            |r| r.get(0),
        )
        .expect("hashsize");
    assert_eq!(hashsize, 8 << 20);
}

/// Messages go through the parse stage and then the writer; a shutdown
/// while a handle is still held commits what was saved before it, refuses
/// what comes after, and ends both threads without waiting for the handle.
#[test]
fn shutdown_commits_what_was_saved_and_ends_both_stages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    rt().block_on(async {
        let (h, t) = StoreHandle::start(&path, Synchronous::Normal, 1 << 20).expect("start");
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(7)).await.expect("gen");
        save_through(&h, mb, 7, 50).await;
        h.shutdown();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !t.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "writer did not stop while a handle was held"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(h.save(msg(mb, 7, 51, "late")).await.is_err());
        assert!(h.has_failed() || h.commit().await.is_err());
        t.join();
    });
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let (n, last): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM messages), (SELECT last_uid FROM mailboxes)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((n, last), (50, 50));
    // Every message got its parsed form from the parse stage.
    let parsed: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE parsed_at IS NOT NULL AND subject LIKE 'm%'",
            [],
            |r| r.get(0),
        )
        .expect("parsed");
    assert_eq!(parsed, 50);
}

#[test]
fn messages_and_cursor_commit_and_repeat_is_noop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    rt().block_on(async {
        let (h, t) = StoreHandle::start(&path, Synchronous::Normal, 1 << 20).expect("start");
        let (mb, cur) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        assert_eq!(cur, MailboxCursor::default());
        h.begin_generation(mb, UidValidity(7)).await.expect("gen");
        save_through(&h, mb, 7, 3).await;
        // The same messages again (a re-fetch after a crash) change nothing.
        for uid in 1..=3 {
            h.save(msg(mb, 7, uid, &format!("m{uid}")))
                .await
                .expect("save");
        }
        h.commit().await.expect("commit");
        let c = h.cursor(mb).await.expect("cursor");
        assert_eq!(c.last_uid, 3);
        assert_eq!(c.uidvalidity, Some(UidValidity(7)));
        drop(h);
        t.join();
    });
    let conn = open_read_only(&path).expect("ro");
    let feed = read::feed_of(&conn, "acct", "INBOX").expect("feed");
    assert_eq!(
        feed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events WHERE kind = 'new'", [], |r| {
            r.get(0)
        })
        .expect("events");
    assert_eq!(events, 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn uidvalidity_change_keeps_old_rows_and_links_identical_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    rt().block_on(async {
        let (h, t) = StoreHandle::start(&path, Synchronous::Normal, 1 << 20).expect("start");
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(1)).await.expect("gen");
        h.save(msg(mb, 1, 1, "a")).await.expect("save");
        h.save(msg(mb, 1, 2, "b")).await.expect("save");
        h.advance_cursor(mb, UidValidity(1), 2)
            .await
            .expect("cursor");
        h.begin_generation(mb, UidValidity(2)).await.expect("gen2");
        let c = h.cursor(mb).await.expect("cursor");
        assert_eq!((c.uidvalidity, c.last_uid), (Some(UidValidity(2)), 0));
        // Same message `a` under the new generation, plus a new one `c`.
        h.save(msg(mb, 2, 1, "a")).await.expect("save");
        h.save(msg(mb, 2, 2, "c")).await.expect("save");
        h.commit().await.expect("commit");
        drop(h);
        t.join();
    });
    let conn = open_read_only(&path).expect("ro");
    let feed = read::feed_of(&conn, "acct", "INBOX").expect("feed");
    let seen: Vec<(u32, u32)> = feed.iter().map(|m| (m.uidvalidity, m.uid)).collect();
    assert_eq!(
        seen,
        vec![(1, 1), (1, 2), (2, 2)],
        "the relinked copy is not shown again"
    );
    let all: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .expect("n");
    assert_eq!(all, 4, "old rows stay");
    let st = read::status(&conn).expect("status");
    assert_eq!(st[0].uidvalidity_changes, 1);
}

#[test]
fn writer_failure_stops_everything_after_it() {
    rt().block_on(async {
        let conn = open_in_memory().expect("open");
        let (h, t) = StoreHandle::start_with(conn, 1 << 20);
        // A mailbox id that does not exist violates the foreign key.
        let bad = msg(MailboxId(999), 1, 1, "x");
        let _ = h.save(bad).await;
        assert!(h.commit().await.is_err());
        assert!(h.has_failed());
        assert!(h.ensure_mailbox("a", "INBOX").await.is_err());
        drop(h);
        t.join();
    });
}

#[test]
fn refetch_updates_flags_and_expunges_work_by_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    rt().block_on(async {
        let (h, t) = StoreHandle::start(&path, Synchronous::Normal, 1 << 20).expect("start");
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(7)).await.expect("gen");
        for uid in [1, 2, 3, 10] {
            h.save(msg(mb, 7, uid, &format!("m{uid}")))
                .await
                .expect("save");
        }
        // A pass cut off before its cursor moved; the next one fetches UID 2
        // again, and meanwhile it was flagged on the server.
        let mut again = msg(mb, 7, 2, "m2");
        again.flags = vec!["\\Flagged".into(), "\\Seen".into()];
        h.save(again).await.expect("save again");
        // The same flags once more change nothing.
        let mut same = msg(mb, 7, 2, "m2");
        same.flags = vec!["\\Flagged".into(), "\\Seen".into()];
        h.save(same).await.expect("save same");
        // A VANISHED range far wider than what is stored.
        let gone = h
            .mark_expunged(
                mb,
                UidValidity(7),
                crate::imap::UidSet::from_ranges(vec![(3, 4_000_000)]),
            )
            .await
            .expect("expunge");
        assert_eq!(gone, 2, "UIDs 3 and 10 are stored in that range");
        let again = h
            .mark_expunged(mb, UidValidity(7), crate::imap::UidSet::from_uids([3, 10]))
            .await
            .expect("expunge again");
        assert_eq!(again, 0, "already marked");
        // Stored above the cursor and no longer listed: expunged meanwhile.
        let listed = crate::imap::UidSet::from_uids([1, 2]);
        let n = h
            .reconcile_existing(mb, UidValidity(7), (0, u32::MAX), listed)
            .await
            .expect("reconcile");
        assert_eq!(n, 0, "1 and 2 are listed; 3 and 10 already marked");
        h.commit().await.expect("commit");
        drop(h);
        t.join();
    });
    let conn = open_read_only(&path).expect("ro");
    let flags: String = conn
        .query_row("SELECT flags FROM messages WHERE uid = 2", [], |r| r.get(0))
        .expect("flags");
    assert_eq!(flags, "\\Flagged \\Seen");
    let kinds: Vec<(String, Option<i64>)> = conn
        .prepare("SELECT kind, json_extract(detail, '$.uid') FROM events WHERE kind <> 'new' ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("events");
    assert_eq!(
        kinds,
        vec![
            ("flags".to_owned(), Some(2)),
            ("expunged".to_owned(), Some(3)),
            ("expunged".to_owned(), Some(10)),
        ]
    );
}

/// The visible row of a message follows the server whatever generation
/// reports a change: re-finding reconciles flags and presence (one event
/// per difference), later flag changes and expunges reach it, rows not
/// found again are expunged, a third generation links to the same row, and
/// the pass counts are what consumers see.
#[test]
fn changes_reach_the_visible_row_across_generations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let flagged = |m: &mut NewMessage| m.flags = vec!["\\Flagged".into(), "\\Seen".into()];
    rt().block_on(async {
        let (h, t) = StoreHandle::start(&path, Synchronous::Normal, 1 << 20).expect("start");
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(1)).await.expect("gen");
        save_through(&h, mb, 1, 5).await;
        // Before the change: m2 flagged, m3 expunged.
        h.apply_flags(mb, UidValidity(1), vec![(2, vec!["\\Flagged".into()])])
            .await
            .expect("flags");
        h.mark_expunged(mb, UidValidity(1), crate::imap::UidSet::from_uids([3]))
            .await
            .expect("expunge");
        let marks = h.marks().await.expect("marks");
        h.begin_generation(mb, UidValidity(2)).await.expect("gen2");
        // Generation 2 holds m1 (now flagged), m2 (flag gone), m3 (back on
        // the server), m4 unchanged, a new m6; m5 is not found again.
        let mut m1 = msg(mb, 2, 11, "m1");
        flagged(&mut m1);
        h.save(m1).await.expect("save");
        h.save(msg(mb, 2, 12, "m2")).await.expect("save");
        h.save(msg(mb, 2, 13, "m3")).await.expect("save");
        h.save(msg(mb, 2, 14, "m4")).await.expect("save");
        h.save(msg(mb, 2, 16, "m6")).await.expect("save");
        h.advance_cursor(mb, UidValidity(2), 16)
            .await
            .expect("cursor");
        assert_eq!(
            h.retire_unfound(mb, UidValidity(2)).await.expect("retire"),
            1
        );
        assert_eq!(
            h.retire_unfound(mb, UidValidity(2)).await.expect("again"),
            0
        );
        let added = h.added_since(mb, marks).await.expect("added");
        assert_eq!(added, changes::Added { new: 1, refound: 4 });
        // After it, changes reported under generation 2 reach the old rows.
        let n = h
            .apply_flags(mb, UidValidity(2), vec![(14, vec!["\\Answered".into()])])
            .await
            .expect("flags");
        assert_eq!(n, 1);
        let n = h
            .mark_expunged(mb, UidValidity(2), crate::imap::UidSet::from_uids([12]))
            .await
            .expect("expunge");
        assert_eq!(n, 1);
        // A third generation links m1 to the same visible row again.
        let marks = h.marks().await.expect("marks");
        h.begin_generation(mb, UidValidity(3)).await.expect("gen3");
        h.save(msg(mb, 3, 1, "m1")).await.expect("save");
        h.advance_cursor(mb, UidValidity(3), 1)
            .await
            .expect("cursor");
        h.retire_unfound(mb, UidValidity(3)).await.expect("retire");
        let added = h.added_since(mb, marks).await.expect("added");
        assert_eq!(added, changes::Added { new: 0, refound: 1 });
        h.commit().await.expect("commit");
        drop(h);
        t.join();
    });
    let conn = open_read_only(&path).expect("ro");
    let rows: Vec<(u32, u32, String, bool)> = conn
        .prepare(
            "SELECT uidvalidity, uid, flags, expunged_at IS NOT NULL FROM message_feed
             ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("feed");
    assert_eq!(
        rows,
        vec![
            (1, 1, "\\Seen".into(), false),
            (1, 2, "\\Seen".into(), true),
            (1, 3, "\\Seen".into(), true),
            (1, 4, "\\Answered".into(), true),
            (1, 5, "\\Seen".into(), true),
            (2, 16, "\\Seen".into(), true),
        ],
        "m1 is back to \\Seen in generation 3; m2..m6 are not in it"
    );
    let events: Vec<(String, i64, Option<i64>)> = conn
        .prepare(
            "SELECT e.kind, e.feed_id, e.uid FROM message_events e
             WHERE e.kind <> 'uidvalidity' AND NOT (e.kind = 'new' AND e.feed_id <= 5)
             ORDER BY e.seq",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("events");
    let want: Vec<(String, i64, Option<i64>)> = [
        ("flags", 2, Some(2)),
        ("expunged", 3, Some(3)),
        ("flags", 1, Some(11)),
        ("flags", 2, Some(12)),
        ("restored", 3, Some(13)),
        ("new", 10, Some(16)),
        ("expunged", 5, Some(5)),
        ("flags", 4, Some(14)),
        ("expunged", 2, Some(12)),
        ("flags", 1, Some(1)),
        ("expunged", 3, Some(3)),
        ("expunged", 4, Some(4)),
        ("expunged", 10, Some(16)),
    ]
    .into_iter()
    .map(|(k, f, u)| (k.to_owned(), f, u))
    .collect();
    assert_eq!(events, want, "exactly one event per difference");
    let st = read::status(&conn).expect("status");
    assert_eq!((st[0].stored, st[0].expunged), (6, 5), "counts of the feed");
}

/// Flags applied in a dense run (a rescan's chunk, read with one range
/// query) and a sparse one (one query per UID) change exactly the stored
/// messages whose flags differ, whatever UIDs the server names that are not
/// stored.
#[test]
fn flags_apply_in_dense_and_sparse_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    rt().block_on(async {
        let (h, t) = StoreHandle::start(&path, Synchronous::Normal, 1 << 20).expect("start");
        let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(1)).await.expect("gen");
        save_through(&h, mb, 1, 300).await;
        let seen = || vec!["\\Seen".to_string()];
        let flagged = || vec!["\\Flagged".to_string(), "\\Seen".to_string()];
        // Dense: 1..=300 and 301..=310 (not stored); every 7th flagged.
        let dense: Vec<(u32, Vec<String>)> = (1..=310)
            .map(|u| (u, if u % 7 == 0 { flagged() } else { seen() }))
            .collect();
        let n = h
            .apply_flags(mb, UidValidity(1), dense)
            .await
            .expect("dense");
        assert_eq!(n, 42);
        // Sparse: far apart, one not stored.
        let sparse = vec![(1, flagged()), (299, flagged()), (1_000_000, flagged())];
        let n = h
            .apply_flags(mb, UidValidity(1), sparse)
            .await
            .expect("sparse");
        assert_eq!(n, 2);
        h.commit().await.expect("commit");
        drop(h);
        t.join();
    });
    let conn = open_read_only(&path).expect("ro");
    let flagged: Vec<u32> = conn
        .prepare("SELECT uid FROM message_feed WHERE flags LIKE '%Flagged%' ORDER BY uid")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("query");
    let mut want: Vec<u32> = (1..=300).filter(|u| u % 7 == 0).collect();
    want.extend([1, 299]);
    want.sort();
    assert_eq!(flagged, want);
    let events: i64 = conn
        .query_row(
            "SELECT count(*) FROM message_events WHERE kind = 'flags'",
            [],
            |r| r.get(0),
        )
        .expect("events");
    assert_eq!(events, 44);
}
