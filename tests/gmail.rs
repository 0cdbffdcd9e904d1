//! Gmail (X-GM-EXT-1) against the scripted double of `tests/support/gmail.rs`
//! (no Gmail is reachable here): a message in several folders is one feed
//! row whose body is fetched once, with its labels as a view; label changes
//! are events; a label change while the message is fetched ends correct; a
//! kill mid-sync and a rerun leave no duplicate and no gap; the 15
//! connection limit holds. Each case about the stored messages is written
//! once and run on both store backends (`…_on_sqlite`, `…_on_postgres`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::feed_db::{Backend, P, on_both};
use support::gmail::{ALL_MAIL, Gmail, mailbox};
use support::mailfeed::{Account, Mode, Setup};

const LABELS: [&str; 3] = ["Work", "Travel", "Receipts"];

/// Spread: every message in All Mail; most in INBOX; many in one or more
/// labels, some in none but All Mail.
fn pick(i: u64) -> Vec<&'static str> {
    let mut l = Vec::new();
    if i % 4 != 3 {
        l.push("\\Inbox");
    }
    if i.is_multiple_of(3) {
        l.push("Work");
    }
    if i.is_multiple_of(5) {
        l.push("Travel");
    }
    if i.is_multiple_of(7) {
        l.push("Receipts");
    }
    if i.is_multiple_of(11) {
        l.push("\\Important");
    }
    l
}

fn setup(g: &Gmail, store: &Backend) -> Setup {
    let mut s = setup_with(g, "", "batch_size = 16");
    store.attach(&mut s);
    s
}

fn setup_with(g: &Gmail, extra: &str, sync: &str) -> Setup {
    let folders = [ALL_MAIL, "INBOX", "Work", "Travel", "Receipts"];
    Setup::new(
        &[Account {
            name: "gmail",
            port: g.port(),
            mode: Mode::Plain,
            ca_file: None,
            user: "user@example.com",
            password: "app-password",
            folders: &folders,
            extra,
        }],
        sync,
    )
}

/// X-GM-MSGID → labels, from the consumer views.
fn stored_labels(s: &Setup) -> BTreeMap<u64, BTreeSet<String>> {
    let mut out: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let rows: Vec<(String, Option<String>)> = s.feed_db().rows(
        "SELECT g.gm_msgid, l.label FROM message_feed f
         JOIN message_gmail g ON g.feed_id = f.id
         LEFT JOIN message_labels l ON l.feed_id = f.id",
        &[],
    );
    for (id, label) in rows {
        let e = out.entry(id.parse().expect("decimal id")).or_default();
        if let Some(l) = label {
            e.insert(l);
        }
    }
    out
}

fn feed_rows(s: &Setup) -> i64 {
    s.feed_db().count("SELECT count(*) FROM message_feed", &[])
}

on_both!(
    one_row_per_message_each_body_fetched_once_with_its_labels,
    one_row_per_message_each_body_fetched_once_with_its_labels_on_sqlite,
    one_row_per_message_each_body_fetched_once_with_its_labels_on_postgres
);
fn one_row_per_message_each_body_fetched_once_with_its_labels(store: Backend) {
    let g = Gmail::start(mailbox(200, pick), &LABELS);
    let s = setup(&g, &store);
    s.sync_ok();
    assert_eq!(feed_rows(&s), 200, "one feed row per Gmail message");
    let fetched = g.body_fetches();
    assert_eq!(fetched.len(), 200, "every body fetched");
    assert!(
        fetched.values().all(|n| *n == 1),
        "a body fetched more than once: {:?}",
        fetched.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(
        stored_labels(&s),
        g.labels(),
        "labels as Gmail reports them"
    );
    // Every folder a message is in is a membership; sizes per folder match.
    let db = s.feed_db();
    for (folder, want) in [
        (ALL_MAIL, 200),
        ("INBOX", (0..200).filter(|i| i % 4 != 3).count()),
        (
            "Work",
            (0..200).filter(|i: &u64| i.is_multiple_of(3)).count(),
        ),
        (
            "Travel",
            (0..200).filter(|i: &u64| i.is_multiple_of(5)).count(),
        ),
        (
            "Receipts",
            (0..200).filter(|i: &u64| i.is_multiple_of(7)).count(),
        ),
    ] {
        let n = db.count(
            "SELECT count(DISTINCT feed_id) FROM message_folders WHERE mailbox = $1",
            &[P::T(folder)],
        );
        assert_eq!(
            n as usize,
            want,
            "memberships of {folder} on {}",
            store.name()
        );
    }
    // A second pass fetches nothing and adds nothing.
    s.sync_ok();
    assert_eq!(g.total_body_fetches(), 200);
    assert_eq!(feed_rows(&s), 200);
    let (max, refused) = g.connection_counts();
    assert!(
        max <= 15 && refused == 0,
        "{max} connections, {refused} refused"
    );
}

on_both!(
    a_label_change_arrives_as_an_event,
    a_label_change_arrives_as_an_event_on_sqlite,
    a_label_change_arrives_as_an_event_on_postgres
);
fn a_label_change_arrives_as_an_event(store: Backend) {
    let g = Gmail::start(mailbox(30, pick), &LABELS);
    let s = setup(&g, &store);
    s.sync_ok();
    let target = mailbox(30, pick)[1].msgid; // in INBOX only
    g.add_label(target, "Travel");
    s.sync_ok();
    assert_eq!(stored_labels(&s), g.labels());
    let db = s.feed_db();
    let events: Vec<(String, String, String)> = db.rows(
        "SELECT e.kind, e.detail, g.gm_msgid FROM message_events e
         JOIN message_gmail g ON g.feed_id = e.feed_id
         WHERE e.kind = 'labels'",
        &[],
    );
    assert_eq!(events.len(), 1, "exactly one labels event: {events:?}");
    let (_, detail, msgid) = &events[0];
    assert_eq!(msgid, &target.to_string());
    assert_eq!(detail, "Travel\n\\Inbox");
    assert_eq!(feed_rows(&s), 30);
    assert_eq!(g.total_body_fetches(), 30, "a label change fetches no body");
    // And the new membership is there.
    let n = db.count(
        "SELECT count(*) FROM message_folders f JOIN message_gmail g ON g.feed_id = f.feed_id
         WHERE f.mailbox = 'Travel' AND g.gm_msgid = $1",
        &[P::T(&target.to_string())],
    );
    assert_eq!(n, 1);
}

on_both!(
    labels_changed_while_the_message_is_fetched_end_correct,
    labels_changed_while_the_message_is_fetched_end_correct_on_sqlite,
    labels_changed_while_the_message_is_fetched_end_correct_on_postgres
);
fn labels_changed_while_the_message_is_fetched_end_correct(store: Backend) {
    let msgs = mailbox(40, pick);
    let target = msgs[19].msgid; // in no folder but All Mail
    let g = Gmail::start(msgs, &LABELS);
    g.relabel_during_fetch(target, "Receipts");
    let s = setup(&g, &store);
    s.sync_ok();
    s.sync_ok();
    assert_eq!(stored_labels(&s), g.labels());
    assert!(g.labels()[&target].contains("Receipts"));
    assert_eq!(feed_rows(&s), 40);
    assert!(g.body_fetches().values().all(|n| *n == 1));
}

on_both!(
    sigkill_during_a_gmail_sync_then_a_rerun_leaves_no_duplicate_and_no_gap,
    sigkill_during_a_gmail_sync_then_a_rerun_leaves_no_duplicate_and_no_gap_on_sqlite,
    sigkill_during_a_gmail_sync_then_a_rerun_leaves_no_duplicate_and_no_gap_on_postgres
);
fn sigkill_during_a_gmail_sync_then_a_rerun_leaves_no_duplicate_and_no_gap(store: Backend) {
    let g = Gmail::start(mailbox(200, pick), &LABELS);
    g.set_per_message_delay(Duration::from_millis(5));
    let s = setup(&g, &store);
    let mut child = s.command(&["sync"]).spawn().expect("spawn sync");
    let t0 = Instant::now();
    while g.total_body_fetches() < 60 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "sync made no progress"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("sync ended before the kill: {st}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = g.total_body_fetches();
    assert!(before < 200, "the kill landed mid-sync ({before} bodies)");
    g.set_per_message_delay(Duration::ZERO);
    s.sync_ok();
    assert_eq!(feed_rows(&s), 200, "no gap, no duplicate");
    assert_eq!(stored_labels(&s), g.labels());
    let dup = s.feed_db().count(
        "SELECT count(*) FROM (SELECT gm_msgid FROM message_gmail GROUP BY gm_msgid HAVING count(*) > 1) d",
        &[],
    );
    assert_eq!(dup, 0);
    // Every UID of every folder is a membership of exactly one message.
    let memberships = s
        .feed_db()
        .count("SELECT count(*) FROM message_folders", &[]);
    let listed: usize = [ALL_MAIL, "INBOX", "Work", "Travel", "Receipts"]
        .iter()
        .map(|f| g.folder_len(f))
        .sum();
    assert_eq!(
        memberships as usize, listed,
        "one membership per folder UID"
    );
    s.feed_db()
        .assert_intact(&format!("after the kill and rerun on {}", store.name()));
}

/// The double holds Gmail's limit: a 16th simultaneous connection is
/// refused with `[UNAVAILABLE]`.
#[test]
fn the_double_refuses_a_sixteenth_connection() {
    use std::io::{BufRead, BufReader};
    let g = Gmail::start(mailbox(1, pick), &LABELS);
    let mut open = Vec::new();
    for _ in 0..15 {
        let c = std::net::TcpStream::connect(("127.0.0.1", g.port())).expect("connect");
        let mut r = BufReader::new(c.try_clone().expect("clone"));
        let mut l = String::new();
        r.read_line(&mut l).expect("greeting");
        assert!(l.starts_with("* OK"), "{l}");
        open.push(c);
    }
    let c = std::net::TcpStream::connect(("127.0.0.1", g.port())).expect("connect");
    let mut l = String::new();
    BufReader::new(c).read_line(&mut l).expect("bye");
    assert!(l.starts_with("* BYE [UNAVAILABLE]"), "{l}");
    assert_eq!(g.connection_counts(), (15, 1));
}

/// Today's count becomes yesterday's: for the store, the next day began.
const NEXT_DAY: &str = "UPDATE download_days SET day = date('now', '-' || (1 + (SELECT count(*) FROM download_days)) || ' days') WHERE day = date('now')";

/// A tiny `daily_download_limit`: each day's sync stops at a range boundary
/// once the limit is reached, `status` says the account is paused until the
/// next UTC midnight, and the next day (the recorded day moved back) it
/// resumes where it stopped: in the end every message once, no body
/// fetched twice, no gap.
#[test]
fn the_daily_download_limit_pauses_and_resumes_without_a_gap() {
    let g = Gmail::start(mailbox(40, pick), &LABELS);
    let s = setup_with(&g, "daily_download_limit = \"1KB\"\n", "batch_size = 2");
    let out = s.run(&["sync"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a pause is not a failure: {text}");
    assert!(text.contains("PAUSED gmail/"), "{text}");
    let first = feed_rows(&s);
    assert!(first > 0 && first < 40, "stopped partway: {first} stored");
    let downloaded: i64 = s
        .db()
        .query_row("SELECT sum(bytes) FROM download_days", [], |r| r.get(0))
        .expect("bytes");
    assert!(downloaded >= 1000, "the limit was reached: {downloaded}");
    let status = s.run(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("daily_download_limit") && status.contains("pauses until"),
        "{status}"
    );
    // The same day, nothing more is fetched.
    let before = g.total_body_fetches();
    s.run(&["sync"]);
    assert_eq!(
        g.total_body_fetches(),
        before,
        "paused for the rest of the day"
    );
    // Day after day, it resumes where it stopped.
    let mut days = 0;
    while feed_rows(&s) < 40 {
        days += 1;
        assert!(days < 20, "no progress: {} stored", feed_rows(&s));
        s.db().execute(NEXT_DAY, []).expect("the next day");
        let before = feed_rows(&s);
        s.run(&["sync"]);
        assert!(feed_rows(&s) > before, "day {days} fetched nothing");
    }
    assert!(days >= 2, "the limit took several days: {days}");
    assert_eq!(feed_rows(&s), 40);
    assert!(
        g.body_fetches().values().all(|n| *n == 1),
        "no body fetched twice"
    );
    s.db().execute(NEXT_DAY, []).expect("the next day");
    s.sync_ok();
    assert_eq!(stored_labels(&s), g.labels(), "memberships complete too");
}
