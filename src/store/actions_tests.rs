//! The action ledger on a database file, through the real writer thread:
//! pending actions commit with their message, only covered and durably
//! committed ones are handed out, outcomes are recorded once with an event.

use super::actions::{ActionKind, Ledger, Outcome};
use super::*;
use crate::imap::{Uid, UidSet, UidValidity};

fn msg(mailbox: MailboxId, uid: u32, date: &str) -> NewMessage {
    NewMessage {
        mailbox,
        uidvalidity: UidValidity(7),
        uid: Uid(uid),
        internal_date: Some(date.into()),
        flags: vec![],
        modseq: None,
        size: 10,
        raw: format!("Message-ID: <{uid}@x>\r\nSubject: m{uid}\r\n\r\nbody\r\n").into_bytes(),
        truncated: false,
        gmail: None,
    }
}

#[test]
fn actions_follow_the_message_and_wait_for_the_cursor() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.db");
    rt.block_on(async {
        let (h, writer) =
            StoreHandle::start(&path, crate::config::Synchronous::Normal, 1 << 20).expect("start");
        let (mb, _) = h.ensure_mailbox("a", "INBOX").await.expect("mailbox");
        h.begin_generation(mb, UidValidity(7)).await.expect("gen");
        // Stored before an action was configured: never acted on.
        h.save(msg(mb, 1, "2020-01-01T00:00:00Z"))
            .await
            .expect("save");
        h.set_mailbox_action(mb, Some((ActionKind::Seen, None)))
            .await
            .expect("set");
        for uid in 2..=4 {
            h.save(msg(mb, uid, "2020-01-01T00:00:00Z"))
                .await
                .expect("save");
        }
        // The cursor covers 2 and 3 only; 4 is stored but not covered.
        h.advance_cursor(mb, UidValidity(7), 3)
            .await
            .expect("cursor");
        h.commit().await.expect("commit");
        let ledger = Ledger::open(&path).expect("ledger");
        assert_eq!(
            ledger
                .open_actions(mb, UidValidity(7), 100)
                .await
                .expect("open")
                .len(),
            0,
            "nothing runs before the durable barrier"
        );
        assert_eq!(ledger.mark_durable(mb).await.expect("barrier"), 2);
        let open = ledger
            .open_actions(mb, UidValidity(7), 100)
            .await
            .expect("open");
        assert_eq!(open.iter().map(|a| a.uid).collect::<Vec<_>>(), [2, 3]);
        ledger
            .record(
                mb,
                vec![
                    (open[0].id, Outcome::Done("flagged".into())),
                    (open[1].id, Outcome::Failed("NO gone".into())),
                ],
            )
            .await
            .expect("record");
        // Recording again changes nothing: an ended action stays ended.
        ledger
            .record(mb, vec![(open[0].id, Outcome::Failed("late".into()))])
            .await
            .expect("record again");
        h.advance_cursor(mb, UidValidity(7), 4)
            .await
            .expect("cursor");
        h.commit().await.expect("commit");
        assert_eq!(ledger.mark_durable(mb).await.expect("barrier"), 1);
        let open = ledger
            .open_actions(mb, UidValidity(7), 100)
            .await
            .expect("open");
        assert_eq!(open.iter().map(|a| a.uid).collect::<Vec<_>>(), [4]);
        // delete_after: only stored, covered, old enough messages.
        h.save(msg(mb, 5, "2030-01-01T00:00:00Z"))
            .await
            .expect("save");
        h.advance_cursor(mb, UidValidity(7), 5)
            .await
            .expect("cursor");
        h.commit().await.expect("commit");
        let queued = ledger
            .queue_expiry(
                mb,
                UidValidity(7),
                UidSet::from_ranges(vec![(1, 9)]),
                "2025-01-01T00:00:00Z".into(),
            )
            .await
            .expect("expiry");
        assert_eq!(
            queued, 4,
            "UIDs 1-4 are old and stored; 5 is new, 6-9 unknown"
        );
        // A configuration that no longer asks for `seen` ends its actions.
        let cancelled = ledger.cancel_stale(mb, None, true).await.expect("cancel");
        assert_eq!(cancelled, 2, "the seen of 4 and 5");
        drop(h);
        writer.join();
    });
    let conn = open_read_only(&path).expect("read");
    let rows: Vec<(u32, String, String, String)> = conn
        .prepare(
            "SELECT m.uid, a.kind, a.reason, a.state FROM actions a
             JOIN messages m ON m.id = a.message_id ORDER BY m.uid, a.kind",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .expect("rows");
    let t = |u: u32, k: &str, r: &str, s: &str| (u, k.to_owned(), r.to_owned(), s.to_owned());
    assert_eq!(
        rows,
        [
            t(1, "delete", "delete_after", "pending"),
            t(2, "delete", "delete_after", "pending"),
            t(2, "seen", "after_store", "done"),
            t(3, "delete", "delete_after", "pending"),
            t(3, "seen", "after_store", "failed"),
            t(4, "delete", "delete_after", "pending"),
            t(4, "seen", "after_store", "failed"),
            t(5, "seen", "after_store", "failed"),
        ]
    );
    let events: Vec<(String, Option<u32>, String)> = conn
        .prepare("SELECT kind, uid, detail FROM message_events WHERE kind = 'action' ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("events");
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0].1, Some(2));
    assert!(
        events[0].2.contains("\"state\":\"done\""),
        "{}",
        events[0].2
    );
}
