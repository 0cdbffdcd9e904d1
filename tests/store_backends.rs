//! The store's contract, written once and run on both backends: SQLite in a
//! temp file and a private PostgreSQL (tests/support/postgres.rs), each case
//! in a fresh database, through the public boundary only (`StoreHandle`
//! writes, `Reader` reads). PostgreSQL alone: feed positions stay in commit
//! order while several writer connections race a reader that follows `id`;
//! a schema newer than the binary is refused; a wrong password is one clear
//! line without the password.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use mailfeed::config::{PostgresStore, StoreConfig, Synchronous};
use mailfeed::imap::{Uid, UidSet, UidValidity};
use mailfeed::secret::Secret;
use mailfeed::store::{
    ExportFilter, GmailIds, LeaseKeeper, MailboxId, NewMessage, Reader, Sighting, StoreHandle,
};
use sha2::{Digest, Sha256};
use support::postgres::Postgres;

type Case = fn(StoreConfig) -> Pin<Box<dyn Future<Output = ()>>>;

/// Every case of the shared suite, by name.
const CASES: &[(&str, Case)] = &[
    ("messages_and_cursor_commit_together", |c| {
        Box::pin(messages_and_cursor_commit_together(c))
    }),
    ("uidvalidity_change_links_identical_messages", |c| {
        Box::pin(uidvalidity_change_links_identical_messages(c))
    }),
    ("flags_and_expunges_reach_the_feed", |c| {
        Box::pin(flags_and_expunges_reach_the_feed(c))
    }),
    ("search_export_and_attachments", |c| {
        Box::pin(search_export_and_attachments(c))
    }),
    ("action_ledger_journal", |c| {
        Box::pin(action_ledger_journal(c))
    }),
];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn sqlite(path: PathBuf) -> StoreConfig {
    StoreConfig {
        path,
        synchronous: Synchronous::Normal,
        postgres: None,
    }
}

fn postgres(url: String) -> StoreConfig {
    StoreConfig {
        path: PathBuf::new(),
        synchronous: Synchronous::Normal,
        postgres: Some(PostgresStore {
            url: Secret::new(url),
            password_file: None,
            ca_file: None,
            lease_period: mailfeed::config::DEFAULT_LEASE_PERIOD,
        }),
    }
}

#[test]
fn store_suite_on_sqlite() {
    for (name, case) in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        eprintln!("sqlite: {name}");
        rt().block_on(case(sqlite(dir.path().join("feed.db"))));
    }
}

#[test]
fn store_suite_on_postgres() {
    let pg = Postgres::start().expect("starting a private PostgreSQL");
    for (name, case) in CASES {
        let url = pg.create_database().expect("database");
        eprintln!("postgres: {name}");
        rt().block_on(case(postgres(url)));
    }
}

fn msg(mailbox: MailboxId, uv: u32, uid: u32, raw: Vec<u8>) -> NewMessage {
    NewMessage {
        mailbox,
        uidvalidity: UidValidity(uv),
        uid: Uid(uid),
        internal_date: Some("2024-01-01T00:00:00Z".into()),
        flags: vec!["\\Seen".into()],
        modseq: None,
        size: raw.len() as u64,
        raw,
        truncated: false,
        gmail: None,
    }
}

/// A small message whose bytes are not all text: a NUL, bytes above 0x7f
/// that are not UTF-8, a bare LF.
fn mail(tag: &str) -> Vec<u8> {
    let mut raw =
        format!("Message-ID: <{tag}@x>\r\nSubject: {tag}\r\n\r\nbody {tag}\r\n").into_bytes();
    raw.extend_from_slice(b"\x00\xff\xfe\x80 raw\n\r\n");
    raw
}

fn open(c: &StoreConfig) -> (StoreHandle, mailfeed::store::WriterThread) {
    StoreHandle::open(c, 1 << 20).expect("opening the store")
}

async fn messages_and_cursor_commit_together(c: StoreConfig) {
    let (h, w) = open(&c);
    let (mb, cursor) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
    assert_eq!(cursor.uidvalidity, None);
    h.begin_generation(mb, UidValidity(7)).await.expect("gen");
    for uid in 1..=3 {
        h.save(msg(mb, 7, uid, mail(&format!("m{uid}"))))
            .await
            .expect("save");
    }
    h.advance_cursor(mb, UidValidity(7), 3)
        .await
        .expect("cursor");
    h.commit().await.expect("commit");
    let cur = h.cursor(mb).await.expect("cursor");
    assert_eq!((cur.uidvalidity, cur.last_uid), (Some(UidValidity(7)), 3));
    // The bytes counted for `daily_download_limit`, in the same commit.
    let bytes: u64 = (1..=3).map(|u| mail(&format!("m{u}")).len() as u64).sum();
    assert_eq!(h.downloaded_today("acct").await.expect("today"), bytes);
    assert_eq!(h.downloaded_today("other").await.expect("today"), 0);

    let r = Reader::open_store(&c).expect("reader");
    let feed = r.feed_of("acct", "INBOX").expect("feed");
    assert_eq!(feed.len(), 3);
    for (i, m) in feed.iter().enumerate() {
        assert_eq!(m.uid, i as u32 + 1);
        assert_eq!(m.uidvalidity, 7);
        assert_eq!(m.raw, mail(&format!("m{}", i + 1)), "raw bytes exact");
    }
    let ids: Vec<i64> = r
        .entries_after(0, 100)
        .expect("entries")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(r.id_before_last(2).expect("before last"), ids[0]);
    assert!(r.entries_after(ids[2], 100).expect("after").is_empty());

    // Saving a stored message again (a pass cut before its cursor moved)
    // adds nothing and takes the new flags.
    let mut again = msg(mb, 7, 2, mail("m2"));
    again.flags = vec!["\\Flagged".into()];
    h.save(again).await.expect("save again");
    h.commit().await.expect("commit");
    let st = r.status().expect("status");
    assert_eq!(st.len(), 1);
    assert_eq!(
        (st[0].stored, st[0].last_uid, st[0].uidvalidity),
        (3, 3, Some(7))
    );
    drop(h);
    w.join();

    // A new writer reads the committed cursor back.
    let (h, w) = open(&c);
    let (mb2, cur) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
    assert_eq!(mb2, mb);
    assert_eq!((cur.uidvalidity, cur.last_uid), (Some(UidValidity(7)), 3));
    drop(h);
    w.join();
}

async fn uidvalidity_change_links_identical_messages(c: StoreConfig) {
    let (h, w) = open(&c);
    let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
    h.begin_generation(mb, UidValidity(1)).await.expect("gen 1");
    h.save(msg(mb, 1, 1, mail("a"))).await.expect("a");
    h.save(msg(mb, 1, 2, mail("b"))).await.expect("b");
    h.advance_cursor(mb, UidValidity(1), 2)
        .await
        .expect("cursor");
    h.commit().await.expect("commit");

    h.begin_generation(mb, UidValidity(2)).await.expect("gen 2");
    let cur = h.cursor(mb).await.expect("cursor");
    assert_eq!((cur.uidvalidity, cur.last_uid), (Some(UidValidity(2)), 0));
    // `a` again under a new UID: linked, not new; `c` is new; `b` is gone.
    let mut a = msg(mb, 2, 10, mail("a"));
    a.flags = vec!["\\Answered".into(), "\\Seen".into()];
    h.save(a).await.expect("a again");
    h.save(msg(mb, 2, 11, mail("c"))).await.expect("c");
    h.advance_cursor(mb, UidValidity(2), 11)
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
    // A flag change reported by the new generation reaches the row
    // consumers see (the one of generation 1).
    assert_eq!(
        h.apply_flags(mb, UidValidity(2), vec![(10, vec!["\\Flagged".into()])])
            .await
            .expect("flags"),
        1
    );
    h.commit().await.expect("commit");

    let r = Reader::open_store(&c).expect("reader");
    let feed = r.feed_of("acct", "INBOX").expect("feed");
    let seen: Vec<(u32, u32)> = feed.iter().map(|m| (m.uidvalidity, m.uid)).collect();
    assert_eq!(
        seen,
        [(1, 1), (1, 2), (2, 11)],
        "a is shown once, as first stored"
    );
    let st = &r.status().expect("status")[0];
    assert_eq!((st.stored, st.expunged, st.uidvalidity_changes), (3, 1, 1));
    drop(h);
    w.join();
}

async fn flags_and_expunges_reach_the_feed(c: StoreConfig) {
    let (h, w) = open(&c);
    let (mb, _) = h.ensure_mailbox("acct", "Archive").await.expect("mailbox");
    let uv = UidValidity(5);
    h.begin_generation(mb, uv).await.expect("gen");
    for uid in 1..=6 {
        h.save(msg(mb, 5, uid, mail(&format!("x{uid}"))))
            .await
            .expect("save");
    }
    h.advance_cursor(mb, uv, 6).await.expect("cursor");
    let same = vec![(1, vec!["\\Seen".into()])];
    assert_eq!(h.apply_flags(mb, uv, same).await.expect("same"), 0);
    let changed = vec![(1, vec!["\\Seen".into(), "\\Recent".into(), "$Work".into()])];
    assert_eq!(h.apply_flags(mb, uv, changed).await.expect("changed"), 1);
    assert_eq!(
        h.mark_expunged(mb, uv, UidSet::from_uids([2, 3, 99]))
            .await
            .expect("expunge"),
        2
    );
    assert_eq!(
        h.mark_expunged(mb, uv, UidSet::from_uids([2]))
            .await
            .expect("again"),
        0
    );
    // The server still has 1, 4 and 6 of (0, 6]: 5 is gone.
    assert_eq!(
        h.reconcile_existing(mb, uv, (0, 6), UidSet::from_uids([1, 4, 6]))
            .await
            .expect("reconcile"),
        1
    );
    assert_eq!(h.live_count(mb, uv).await.expect("live"), 3);
    h.set_highest_modseq(mb, uv, Some(4242))
        .await
        .expect("modseq");
    h.record_outcome(mb, Some("it broke".into()))
        .await
        .expect("outcome");
    h.commit().await.expect("commit");
    assert_eq!(
        h.cursor(mb).await.expect("cursor").highest_modseq,
        Some(4242)
    );

    let r = Reader::open_store(&c).expect("reader");
    let st = &r.status().expect("status")[0];
    assert_eq!((st.stored, st.expunged), (6, 3));
    assert_eq!(st.last_error.as_deref(), Some("it broke"));
    let mut flags = Vec::new();
    r.for_each_export(&ExportFilter::default(), |m| {
        flags.push(m.flags);
        Ok::<(), ()>(())
    })
    .expect("export")
    .expect("each");
    assert_eq!(flags[0], "$Work \\Seen", "canonical: sorted, no \\Recent");
    drop(h);
    w.join();
}

fn with_attachment(word: &str, filename: &str, payload: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(
        "From: Marker <marker@example.com>\r\nTo: alice@example.org\r\n\
         Subject: marked {word}\r\nDate: Mon, 3 Jun 2024 09:00:00 +0000\r\n\
         Message-ID: <{word}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=MB\r\n\r\n--MB\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nThe word is {word}.\r\n--MB\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--MB--\r\n"
    )
    .into_bytes()
}

async fn search_export_and_attachments(c: StoreConfig) {
    let (h, w) = open(&c);
    let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
    h.begin_generation(mb, UidValidity(3)).await.expect("gen");
    let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let zebra = with_attachment("zebra", "stripes.bin", &payload);
    h.save(msg(mb, 3, 1, zebra.clone())).await.expect("zebra");
    h.save(msg(
        mb,
        3,
        2,
        with_attachment("okapi", "spots.bin", b"other"),
    ))
    .await
    .expect("okapi");
    h.advance_cursor(mb, UidValidity(3), 2)
        .await
        .expect("cursor");
    h.catch_up_search().await.expect("search");

    let r = Reader::open_store(&c).expect("reader");
    let hits = r.search("zebra", 10).expect("search");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].uid, 1);
    assert_eq!(hits[0].attachments, ["stripes.bin"]);
    assert_eq!(hits[0].from.as_deref(), Some("marker@example.com"));
    assert!(r.search("giraffe", 10).expect("search").is_empty());
    assert_eq!(r.search_lag().expect("lag").messages, 0);

    let sha = hex(&Sha256::digest(&payload));
    assert_eq!(r.attachment_data(&sha).expect("data"), Some(payload));
    assert_eq!(r.attachment_data(&"0".repeat(64)).expect("none"), None);

    let mut exported = Vec::new();
    let filter = ExportFilter {
        account: Some("acct".into()),
        ..ExportFilter::default()
    };
    r.for_each_export(&filter, |m| {
        exported.push(m.raw);
        Ok::<(), ()>(())
    })
    .expect("export")
    .expect("each");
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0], zebra);
    // A consumer that stops early stops the export.
    let stopped = r
        .for_each_export(&filter, |_| Err("enough"))
        .expect("export");
    assert_eq!(stopped, Err("enough"));
    drop(h);
    w.join();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Several writers (each a connection of its own, as several instances
/// are) commit small transactions as fast as they can while a reader
/// follows `id` like a consumer: it must see every message exactly once,
/// in increasing order, although the writers commit in an order of their
/// own. With ids taken from a sequence at INSERT, a reader polling this
/// fast skips rows whose transaction committed after a later id was read.
#[test]
fn postgres_feed_positions_follow_commit_order_under_racing_writers() {
    const WRITERS: u32 = 4;
    const PER_WRITER: u32 = 150;
    let pg = Postgres::start().expect("starting a private PostgreSQL");
    let c = postgres(pg.create_database().expect("database"));
    // Schema first, so the writers do not wait for each other's migration.
    drop(Reader::open_store(&c).expect("schema"));
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let c = c.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let r = Reader::open_store(&c).expect("reader");
            let (mut last, mut seen) = (0i64, Vec::new());
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = r.entries_after(last, 50).expect("follow");
                for e in &batch {
                    assert!(e.id > last, "ids go back: {} after {last}", e.id);
                    last = e.id;
                    seen.push((e.account.clone(), e.uid));
                }
                if finished && batch.is_empty() {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let c = c.clone();
            std::thread::spawn(move || {
                rt().block_on(async move {
                    let (h, t) = open(&c);
                    let account = format!("acct{w}");
                    let (mb, _) = h.ensure_mailbox(&account, "INBOX").await.expect("mailbox");
                    h.begin_generation(mb, UidValidity(1)).await.expect("gen");
                    for uid in 1..=PER_WRITER {
                        h.save(msg(mb, 1, uid, mail(&format!("{w}-{uid}"))))
                            .await
                            .expect("save");
                        h.advance_cursor(mb, UidValidity(1), uid)
                            .await
                            .expect("cursor");
                        // Uneven transaction sizes make commit order differ
                        // from insert order across writers.
                        if uid % (1 + w) == 0 {
                            h.commit().await.expect("commit");
                        }
                    }
                    h.commit().await.expect("commit");
                    drop(h);
                    t.join();
                })
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(Instant::now() < deadline);
    done.store(true, Ordering::SeqCst);
    let seen = follower.join().expect("follower");
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a row was seen twice");
    let expected: BTreeSet<_> = (0..WRITERS)
        .flat_map(|w| (1..=PER_WRITER).map(move |u| (format!("acct{w}"), u)))
        .collect();
    let missed: Vec<_> = expected.difference(&unique).take(10).collect();
    assert!(
        missed.is_empty(),
        "the follower missed rows, e.g. {missed:?}"
    );
    assert_eq!(unique, expected);
}

/// Leases and their fences: an instance whose lease ran out and was
/// claimed by another can no longer commit for that account (its whole
/// transaction is refused, cursor and messages), while the new holder
/// commits; balancing gives each of two instances half of the accounts.
#[test]
fn postgres_lease_fence_refuses_a_commit_after_the_lease_was_taken() {
    let pg = Postgres::start().expect("starting a private PostgreSQL");
    let mut c = postgres(pg.create_database().expect("database"));
    let period = Duration::from_secs(3);
    if let Some(p) = c.postgres.as_mut() {
        p.lease_period = period;
    }
    let pc = c.postgres.clone().expect("pg");
    let accounts = vec!["acct".to_owned(), "other".to_owned()];
    let mut a = LeaseKeeper::open(&pc, "instance-a".into(), accounts.clone()).expect("keeper a");
    let tick = a.tick().expect("tick a");
    assert_eq!(tick.held, accounts, "alone, A holds every account");
    assert_eq!(tick.live_instances, 1);
    let (ha, wa) = StoreHandle::open_leased(&c, 1 << 20, a.book()).expect("writer a");
    let mb = rt().block_on(async {
        let (mb, _) = ha.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        ha.begin_generation(mb, UidValidity(7)).await.expect("gen");
        ha.save(msg(mb, 7, 1, mail("a1"))).await.expect("save");
        ha.advance_cursor(mb, UidValidity(7), 1)
            .await
            .expect("cursor");
        ha.commit()
            .await
            .expect("A commits while it holds the lease");
        mb
    });

    // B joins: the share is one account each; A names its surplus and
    // hands it back, B claims it at its next tick.
    let mut b = LeaseKeeper::open(&pc, "instance-b".into(), accounts.clone()).expect("keeper b");
    assert!(
        b.tick().expect("tick b").held.is_empty(),
        "nothing is free yet"
    );
    let t = a.tick().expect("tick a");
    assert_eq!(
        (t.live_instances, t.surplus.clone()),
        (2, vec!["other".to_owned()])
    );
    assert_eq!(t.held, vec!["acct".to_owned()]);
    a.release(&t.surplus).expect("release");
    assert_eq!(b.tick().expect("tick b").held, vec!["other".to_owned()]);

    // A stops renewing (a long pause): once its lease ran out, B takes
    // `acct` too, with a new fence.
    let t0 = Instant::now();
    let took = loop {
        let t = b.tick().expect("tick b");
        if t.held.contains(&"acct".to_owned()) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "B never took the lease"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        took <= period + Duration::from_secs(2),
        "taken after {took:?}"
    );
    let fence_b = b.book().fence("acct").expect("B's fence");
    assert!(fence_b > 1, "a claim moves the fence: {fence_b}");

    // A, unaware, writes a message and the cursor and commits: refused.
    let err = rt().block_on(async {
        ha.save(msg(mb, 7, 2, mail("a2"))).await.expect("queued");
        ha.advance_cursor(mb, UidValidity(7), 2).await.ok();
        ha.commit()
            .await
            .expect_err("A must not commit after losing the lease")
    });
    let text = err.to_string();
    assert!(
        text.contains("lease of account acct") && text.contains("instance-b"),
        "{text}"
    );
    drop(ha);
    wa.join();
    let r = Reader::open_store(&c).expect("reader");
    let feed = r.feed_of("acct", "INBOX").expect("feed");
    assert_eq!(feed.len(), 1, "nothing of A's refused transaction is kept");
    assert_eq!(
        r.status().expect("status")[0].last_uid,
        1,
        "cursor unchanged"
    );
    // A's next tick says it lost the lease.
    assert_eq!(a.tick().expect("tick a").lost, vec!["acct".to_owned()]);

    // B, the holder, commits the same work.
    let (hb, wb) = StoreHandle::open_leased(&c, 1 << 20, b.book()).expect("writer b");
    rt().block_on(async {
        let (mb, cur) = hb.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
        assert_eq!(cur.last_uid, 1);
        hb.save(msg(mb, 7, 2, mail("a2"))).await.expect("save");
        hb.advance_cursor(mb, UidValidity(7), 2)
            .await
            .expect("cursor");
        hb.commit().await.expect("B commits");
    });
    drop(hb);
    wb.join();
    assert_eq!(r.feed_of("acct", "INBOX").expect("feed").len(), 2);
    let leases = r.leases().expect("leases");
    assert!(
        leases
            .iter()
            .all(|l| l.owner.as_deref() == Some("instance-b") && l.expires_in > 0.0),
        "{leases:?}"
    );
    // A clean stop hands everything back at once.
    b.leave().expect("leave");
    assert!(
        r.leases()
            .expect("leases")
            .iter()
            .all(|l| l.owner.is_none())
    );
}

/// The fence covers Gmail's writes too: after its lease was taken, an
/// instance can commit neither a folder membership with the cursor behind
/// it (`link_gmail`) nor a label change (`apply_labels`); nothing of either
/// is kept.
#[test]
fn postgres_lease_fence_covers_gmail_memberships_and_labels() {
    let pg = Postgres::start().expect("starting a private PostgreSQL");
    let url = pg.create_database().expect("database");
    let mut c = postgres(url.clone());
    let period = Duration::from_secs(3);
    if let Some(p) = c.postgres.as_mut() {
        p.lease_period = period;
    }
    let pc = c.postgres.clone().expect("pg");
    let accounts = vec!["gm".to_owned()];
    let mut a = LeaseKeeper::open(&pc, "instance-a".into(), accounts.clone()).expect("keeper a");
    assert_eq!(a.tick().expect("tick a").held, accounts);
    let (ha, wa) = StoreHandle::open_leased(&c, 1 << 20, a.book()).expect("writer a");
    let labels = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let (all, inbox) = rt().block_on(async {
        let (all, _) = ha
            .ensure_mailbox("gm", "[Gmail]/All Mail")
            .await
            .expect("mailbox");
        let (inbox, _) = ha.ensure_mailbox("gm", "INBOX").await.expect("mailbox");
        let mut m = msg(all, 7, 1, mail("g1"));
        m.gmail = Some(GmailIds {
            msgid: 42,
            thrid: Some(9),
            labels: labels(&["\\Inbox"]),
        });
        ha.save(m).await.expect("save");
        ha.advance_cursor(all, UidValidity(7), 1)
            .await
            .expect("cursor");
        ha.commit()
            .await
            .expect("A commits while it holds the lease");
        (all, inbox)
    });

    // B takes the account once A's lease ran out (A stopped renewing).
    let mut b = LeaseKeeper::open(&pc, "instance-b".into(), accounts.clone()).expect("keeper b");
    let t0 = Instant::now();
    while !b.tick().expect("tick b").held.contains(&"gm".to_owned()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "B never took it");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A, unaware: the INBOX listing links UID 5 to the stored message and
    // moves INBOX's cursor past it. Refused.
    let err = rt().block_on(async {
        let unstored = ha
            .link_gmail(
                inbox,
                UidValidity(8),
                vec![Sighting {
                    uid: 5,
                    msgid: 42,
                    labels: labels(&["\\Inbox", "Work"]),
                }],
            )
            .await
            .expect("linked");
        assert!(unstored.is_empty(), "the message is stored: {unstored:?}");
        ha.advance_cursor(inbox, UidValidity(8), 5).await.ok();
        ha.commit()
            .await
            .expect_err("a membership after losing the lease")
    });
    assert!(err.to_string().contains("lease of account gm"), "{err}");
    drop(ha);
    wa.join();
    // A label report alone, on a new writer with A's stale book: refused.
    let (ha, wa) = StoreHandle::open_leased(&c, 1 << 20, a.book()).expect("writer a");
    let err = rt().block_on(async {
        ha.apply_labels(all, vec![(42, vec!["Travel".to_owned()])])
            .await
            .expect("applied");
        ha.commit()
            .await
            .expect_err("a label change after losing the lease")
    });
    assert!(err.to_string().contains("lease of account gm"), "{err}");
    drop(ha);
    wa.join();

    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let count = |db: &mut postgres::Client, sql: &str| -> i64 {
        db.query_one(sql, &[]).expect("count").get(0)
    };
    assert_eq!(count(&mut db, "SELECT count(*) FROM message_feed"), 1);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM message_folders"),
        1,
        "only the membership A committed while holding the lease"
    );
    let kept: Vec<String> = db
        .query("SELECT label FROM message_labels ORDER BY label", &[])
        .expect("labels")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, vec!["\\Inbox".to_owned()], "labels unchanged");
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM message_events WHERE kind = 'labels'"
        ),
        0
    );
    let inbox_cursor: i64 = db
        .query_one("SELECT last_uid FROM mailboxes WHERE name = 'INBOX'", &[])
        .expect("cursor")
        .get(0);
    assert_eq!(inbox_cursor, 0, "INBOX's cursor did not move");
}

/// A database migrated by a newer mailfeed is refused with both versions
/// named; a wrong password is one line naming the server, never the
/// password.
#[test]
fn postgres_refuses_newer_schema_and_keeps_the_password_out_of_errors() {
    let pg = Postgres::start().expect("starting a private PostgreSQL");
    let url = pg.create_database().expect("database");
    let c = postgres(url.clone());
    drop(Reader::open_store(&c).expect("schema"));

    let wrong = url.replace(support::postgres::PASSWORD, "not-the-password-31");
    let e = StoreHandle::open(&postgres(wrong), 1 << 20)
        .err()
        .expect("wrong password refused")
        .to_string();
    assert!(e.contains("127.0.0.1"), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("not-the-password-31"), "{e}");

    // Nothing listens on the port: one line naming the server, no password.
    let (free, _lock) = support::dovecot::reserve_port().expect("port");
    let down = url.replace(&format!(":{}/", pg.port()), &format!(":{free}/"));
    let e = StoreHandle::open(&postgres(down), 1 << 20)
        .err()
        .expect("no server refused")
        .to_string();
    assert!(
        e.contains(&format!(
            "connecting to postgresql://mailfeed@127.0.0.1:{free}/"
        )),
        "{e}"
    );
    assert!(
        !e.contains(support::postgres::PASSWORD) && !e.contains('\n'),
        "{e}"
    );

    let db = url.rsplit('/').next().expect("name").to_owned();
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &pg.port().to_string()])
        .args(["-U", support::postgres::USER, "-d", &db, "-c"])
        .arg("INSERT INTO mailfeed_schema (version, name) VALUES (99, 'future')")
        .env("PGPASSWORD", support::postgres::PASSWORD)
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = StoreHandle::open(&c, 1 << 20)
        .err()
        .expect("newer schema refused")
        .to_string();
    assert!(
        e.contains("version 99") && e.contains("newer than this mailfeed ("),
        "{e}"
    );
}

/// The action ledger: a pending action commits with its message (none for
/// a message stored before the action was configured), only actions whose
/// message the cursor covers are marked durable and handed out, ended ones
/// are not handed out again, `delete_after` queues only stored, covered,
/// old messages, and a configuration that no longer asks ends them.
async fn action_ledger_journal(c: StoreConfig) {
    use mailfeed::store::actions::{ActionKind, Outcome};
    let (h, w) = open(&c);
    let (mb, _) = h.ensure_mailbox("acct", "INBOX").await.expect("mailbox");
    h.begin_generation(mb, UidValidity(7)).await.expect("gen");
    let dated = |uid: u32, date: &str| {
        let mut m = msg(mb, 7, uid, mail(&format!("a{uid}")));
        m.internal_date = Some(date.into());
        m
    };
    h.save(dated(1, "2020-01-01T00:00:00Z"))
        .await
        .expect("save");
    h.set_mailbox_action(mb, Some((ActionKind::Seen, None)))
        .await
        .expect("action");
    for uid in 2..=4 {
        h.save(dated(uid, "2020-01-01T00:00:00Z"))
            .await
            .expect("save");
    }
    // The cursor covers 2 and 3 only; 4 is stored but not covered.
    h.advance_cursor(mb, UidValidity(7), 3)
        .await
        .expect("cursor");
    h.commit().await.expect("commit");
    let ledger = h.ledger().await.expect("ledger").expect("a ledger");
    let open = |l: mailfeed::store::actions::Ledger| async move {
        l.open_actions(mb, UidValidity(7), 100)
            .await
            .expect("open")
            .into_iter()
            .map(|a| (a.uid, a.kind.as_str(), a.id))
            .collect::<Vec<_>>()
    };
    assert!(
        open(ledger.clone()).await.is_empty(),
        "nothing runs before the durable barrier"
    );
    assert_eq!(ledger.mark_durable(mb).await.expect("barrier"), 2);
    ledger.confirm(mb).await.expect("no lease in the way");
    let first = open(ledger.clone()).await;
    assert_eq!(
        first.iter().map(|(u, k, _)| (*u, *k)).collect::<Vec<_>>(),
        [(2, "seen"), (3, "seen")]
    );
    ledger
        .record(
            mb,
            vec![
                (first[0].2, Outcome::Done("flagged".into())),
                (first[1].2, Outcome::Failed("NO gone".into())),
            ],
        )
        .await
        .expect("record");
    // An ended action stays ended.
    ledger
        .record(mb, vec![(first[0].2, Outcome::Copying)])
        .await
        .expect("record again");
    assert!(open(ledger.clone()).await.is_empty());
    h.advance_cursor(mb, UidValidity(7), 4)
        .await
        .expect("cursor");
    h.commit().await.expect("commit");
    assert_eq!(ledger.mark_durable(mb).await.expect("barrier"), 1);
    let uids = |v: Vec<(u32, &'static str, i64)>| {
        v.into_iter().map(|(u, k, _)| (u, k)).collect::<Vec<_>>()
    };
    assert_eq!(uids(open(ledger.clone()).await), [(4, "seen")]);
    // delete_after: only stored, covered, old enough messages.
    h.save(dated(5, "2030-01-01T00:00:00Z"))
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
    assert_eq!(ledger.mark_durable(mb).await.expect("barrier"), 5);
    assert_eq!(
        uids(open(ledger.clone()).await),
        [
            (1, "delete"),
            (2, "delete"),
            (3, "delete"),
            (4, "seen"),
            (4, "delete"),
            (5, "seen")
        ]
    );
    // A configuration that no longer asks for `seen` ends its actions;
    // one without `delete_after` ends the deletions.
    assert_eq!(
        ledger.cancel_stale(mb, None, true).await.expect("cancel"),
        2
    );
    assert_eq!(
        uids(open(ledger.clone()).await),
        [(1, "delete"), (2, "delete"), (3, "delete"), (4, "delete")]
    );
    assert_eq!(
        ledger.cancel_stale(mb, None, false).await.expect("cancel"),
        4
    );
    assert!(open(ledger.clone()).await.is_empty());
    drop(ledger);
    drop(h);
    w.join();
}
