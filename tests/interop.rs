//! mailfeed against the two other IMAP servers in Debian, Cyrus 3.6 (with
//! CONDSTORE/QRESYNC, IDLE through idled, COMPRESS) and Courier 5 (neither
//! CONDSTORE nor QRESYNC, so the rescan fallback; polled IDLE; `INBOX.`
//! folders), each over STARTTLS and implicit TLS: the first sync stores exactly what the server
//! serves as BODY[], a second adds nothing, new mail adds exactly the new
//! rows, flag changes and expunges become events, `check` passes, and
//! `mailfeed run` delivers new mail through IDLE.
//!
//! The servers come from `scripts/install-deps-interop`; without them these
//! tests fail, naming the script.

mod support;

use std::time::Duration;

use support::corpus;
use support::courier::{self, Courier};
use support::cyrus::{Cyrus, cyrus_safe};
use support::mailfeed::{Account, Mode, Setup, assert_mirror};
use support::run::{Running, wait_for};
use support::server::TestServer;

const USER: &str = "carol";
const PASS: &str = "carol-pw-5x";

/// Where the scenario puts mail and how mailfeed connects.
struct Plan<'a> {
    archive: &'a str,
    inbox: Vec<Vec<u8>>,
    archive_mail: Vec<Vec<u8>>,
    new_mail: Vec<Vec<u8>>,
    mode: Mode,
    port: u16,
    sync_extra: &'a str,
}

fn events(setup: &Setup, kind: &str, mailbox: &str) -> Vec<u32> {
    let conn = setup.db();
    let mut st = conn
        .prepare(
            "SELECT uid FROM message_events WHERE kind = ?1 AND mailbox = ?2 ORDER BY uid, seq",
        )
        .expect("prepare");
    st.query_map([kind, mailbox], |r| r.get(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

fn flags_of(setup: &Setup, mailbox: &str, uid: u32) -> String {
    setup
        .db()
        .query_row(
            "SELECT flags FROM message_feed WHERE mailbox = ?1 AND uid = ?2",
            rusqlite::params![mailbox, uid],
            |r| r.get(0),
        )
        .expect("flags")
}

/// The stored flags, size and INTERNALDATE of a folder's live rows match
/// what the server reports to the test's own client.
fn assert_metadata<S: TestServer>(setup: &Setup, srv: &S, folder: &str) {
    let kind = srv.kind();
    let mut c = srv.login(USER).expect("login");
    c.examine(folder).expect("examine");
    let flags = c.fetch_flags().expect("flags");
    let sizes: Vec<(u32, u64, bool)> = c
        .run("UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE)")
        .expect("fetch")
        .untagged
        .iter()
        .filter_map(|l| {
            Some((
                l.number_after("UID")? as u32,
                l.number_after("RFC822.SIZE")?,
                l.text_lossy().contains("INTERNALDATE \""),
            ))
        })
        .collect();
    c.logout().expect("logout");
    let conn = setup.db();
    let mut st = conn
        .prepare(
            "SELECT uid, flags, size, internal_date FROM message_feed
             WHERE mailbox = ?1 AND expunged_at IS NULL ORDER BY uid",
        )
        .expect("prepare");
    let rows: Vec<(u32, String, i64, Option<String>)> = st
        .query_map([folder], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), flags.len(), "{kind} {folder}");
    for (row, (uid, want)) in rows.iter().zip(&flags) {
        assert_eq!(row.0, *uid, "{kind} {folder}");
        assert_eq!(row.1, want.join(" "), "{kind} {folder} UID {uid}: flags");
        let (_, size, has_date) = sizes
            .iter()
            .find(|(u, _, _)| u == uid)
            .expect("RFC822.SIZE");
        assert_eq!(
            row.2 as u64, *size,
            "{kind} {folder} UID {uid}: RFC822.SIZE"
        );
        assert!(
            *has_date && row.3.is_some(),
            "{kind} {folder} UID {uid}: INTERNALDATE"
        );
    }
}

/// Asserts that a mailfeed run printed `what` on stdout; shows it if not.
fn assert_says(out: &std::process::Output, what: &str, kind: &str) {
    let text = stdout(out);
    assert!(text.contains(what), "{kind}: {text}");
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The whole story against one server; returns the setup for more checks.
fn scenario<S: TestServer>(srv: &S, plan: Plan<'_>) -> Setup {
    let kind = srv.kind();
    srv.create_folder(USER, plan.archive).expect("create");
    let inbox_uids = srv
        .append_many(USER, "INBOX", &plan.inbox)
        .expect("append to INBOX");
    srv.append_many(USER, plan.archive, &plan.archive_mail)
        .expect("append to the archive");
    let cert = srv.cert_path();
    let account = Account {
        name: "test",
        port: plan.port,
        mode: plan.mode,
        ca_file: Some(&cert),
        user: USER,
        password: PASS,
        folders: &["INBOX", plan.archive],
        extra: "",
    };
    let setup = Setup::new(&[account], plan.sync_extra);

    // The first sync stores exactly what the server serves.
    let out = setup.sync_ok();
    assert_says(&out, "synced 2 folder(s)", kind);
    assert_mirror(&setup, srv, USER, "test", "INBOX");
    assert_mirror(&setup, srv, USER, "test", plan.archive);
    assert_metadata(&setup, srv, "INBOX");
    assert_metadata(&setup, srv, plan.archive);
    let rows = setup.message_rows();
    assert_eq!(
        rows as usize,
        plan.inbox.len() + plan.archive_mail.len(),
        "{kind}"
    );

    // A second pass adds nothing.
    let out = setup.sync_ok();
    assert_says(&out, "0 new message(s)", kind);
    assert_eq!(setup.message_rows(), rows, "{kind}");

    // New mail adds exactly the new rows, with ids above the old ones.
    let max_before: i64 = setup
        .db()
        .query_row("SELECT max(id) FROM message_feed", [], |r| r.get(0))
        .expect("max");
    srv.append_many(USER, "INBOX", &plan.new_mail)
        .expect("append");
    setup.sync_ok();
    let added = plan.new_mail.len() as i64;
    assert_eq!(setup.message_rows(), rows + added, "{kind}");
    let new_ids: i64 = setup
        .db()
        .query_row(
            "SELECT count(*) FROM message_feed WHERE id > ?1",
            [max_before],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(new_ids, added, "{kind}");
    assert_mirror(&setup, srv, USER, "test", "INBOX");
    assert!(events(&setup, "flags", "INBOX").is_empty(), "{kind}");

    // Flag changes and expunges made by another client become events.
    let u = |i: usize| inbox_uids[i];
    let mut c = srv.login(USER).expect("login");
    c.select("INBOX").expect("select");
    c.add_flags(&[u(1), u(2)], &["\\Flagged"]).expect("flag");
    c.add_flags(&[u(5)], &["$Label1"]).expect("keyword");
    c.add_flags(&[u(6)], &["\\Seen", "\\Answered"])
        .expect("seen");
    c.delete_uids(&[u(3), u(4)]).expect("expunge");
    c.logout().expect("logout");
    setup.sync_ok();
    let mut flagged = vec![u(1), u(2), u(5), u(6)];
    flagged.sort_unstable();
    assert_eq!(events(&setup, "flags", "INBOX"), flagged, "{kind}");
    assert_eq!(
        events(&setup, "expunged", "INBOX"),
        vec![u(3), u(4)],
        "{kind}"
    );
    assert!(
        flags_of(&setup, "INBOX", u(1)).contains("\\Flagged"),
        "{kind}"
    );
    assert!(
        flags_of(&setup, "INBOX", u(5)).contains("$Label1"),
        "{kind}"
    );
    let f6 = flags_of(&setup, "INBOX", u(6));
    assert!(
        f6.contains("\\Seen") && f6.contains("\\Answered"),
        "{kind}: {f6}"
    );
    let marked: i64 = setup
        .db()
        .query_row(
            "SELECT count(*) FROM message_feed WHERE mailbox = 'INBOX' AND expunged_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(marked, 2, "{kind}: expunged rows stay, marked");
    assert_eq!(
        setup.message_rows(),
        rows + added,
        "{kind}: nothing deleted"
    );

    // Nothing changed: nothing recorded.
    setup.sync_ok();
    assert_eq!(events(&setup, "flags", "INBOX").len(), 4, "{kind}");
    assert_eq!(events(&setup, "expunged", "INBOX").len(), 2, "{kind}");

    // Removing a flag is a change too; expunging the newest message must not
    // make the folder look new forever.
    let newest = *srv
        .fetch_all(USER, "INBOX")
        .expect("truth")
        .last()
        .map(|(uid, _)| uid)
        .expect("a message");
    let mut c = srv.login(USER).expect("login");
    c.select("INBOX").expect("select");
    c.remove_flags(&[u(1)], &["\\Flagged"]).expect("unflag");
    c.delete_uids(&[newest]).expect("expunge newest");
    c.logout().expect("logout");
    setup.sync_ok();
    assert!(
        !flags_of(&setup, "INBOX", u(1)).contains("\\Flagged"),
        "{kind}"
    );
    assert_eq!(events(&setup, "flags", "INBOX").len(), 5, "{kind}");
    assert_eq!(
        events(&setup, "expunged", "INBOX"),
        vec![u(3), u(4), newest],
        "{kind}"
    );
    let out = setup.sync_ok();
    assert_says(&out, "0 new message(s)", kind);
    assert_eq!(events(&setup, "expunged", "INBOX").len(), 3, "{kind}");

    // `check` passes and shows the conversation, without the password.
    let out = setup.run(&["check"]);
    let text = stdout(&out);
    eprintln!("{text}");
    assert!(out.status.success(), "{kind}: check failed:\n{text}");
    assert!(
        text.contains(&format!("-- connected to 127.0.0.1:{}", plan.port)),
        "{kind}: {text}"
    );
    assert!(text.contains("certificate verified"), "{kind}: {text}");
    assert!(text.contains("C: a001 "), "{kind}: {text}");
    assert!(text.contains("S: * OK"), "{kind}: {text}");
    assert!(text.contains("OK, logged in"), "{kind}: {text}");
    assert!(text.contains("ok      INBOX: "), "{kind}: {text}");
    assert!(
        text.contains(&format!("ok      {}: ", plan.archive)),
        "{kind}: {text}"
    );
    assert!(
        !text.contains(PASS),
        "{kind}: the password must never be shown"
    );
    let status = stdout(&setup.run(&["status"]));
    assert!(status.contains(plan.archive), "{kind}: {status}");
    setup
}

/// `mailfeed run` picks up mail APPENDed while it idles within `limit`.
fn idle_delivers<S: TestServer>(srv: &S, setup: &Setup, limit: Duration) {
    let run = Running::start(setup, "trace");
    let log = run.1.clone();
    let before = setup.feed_count("INBOX");
    // Wait until the watcher is in IDLE, so the APPEND is seen through it.
    wait_for("mailfeed to enter IDLE", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| {
            l.lines().any(|line| {
                line.split("C: ")
                    .nth(1)
                    .is_some_and(|rest| rest.split_whitespace().nth(1) == Some("IDLE"))
            })
        })
    });
    let mut c = srv.login(USER).expect("login");
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        let msg = format!(
            "From: idle@example.org\r\nSubject: idle {i}\r\nMessage-ID: <idle{i}@interop>\r\n\r\nhello\r\n"
        );
        c.append("INBOX", &[], msg.as_bytes()).expect("append");
        let took = wait_for(
            &format!("{} to deliver message {i} through IDLE", srv.kind()),
            limit,
            || setup.feed_count("INBOX") == before + i + 1,
        );
        eprintln!("{}: IDLE delivery {i} took {took:?}", srv.kind());
    }
    // A flag change and an expunge while mailfeed idles become events.
    let flags_before = events(setup, "flags", "INBOX").len();
    let expunged_before = events(setup, "expunged", "INBOX").len();
    let uids = {
        c.select("INBOX").expect("select");
        c.uids().expect("uids")
    };
    let (flag, gone) = (uids[uids.len() - 1], uids[uids.len() - 2]);
    c.add_flags(&[flag], &["\\Flagged"]).expect("flag");
    c.delete_uids(&[gone]).expect("expunge");
    c.logout().expect("logout");
    let took = wait_for(
        &format!("{}: the change and the expunge as events", srv.kind()),
        limit,
        // The STORE of \Deleted before the expunge may be seen as a flag
        // change of its own: only the changes that must be there are asked.
        || {
            let flags = events(setup, "flags", "INBOX");
            let expunged = events(setup, "expunged", "INBOX");
            flags.len() > flags_before
                && flags.contains(&flag)
                && expunged.len() == expunged_before + 1
                && expunged.contains(&gone)
        },
    );
    eprintln!("{}: changes seen after {took:?}", srv.kind());
    assert!(flags_of(setup, "INBOX", flag).contains("\\Flagged"));
    assert_mirror(setup, srv, USER, "test", "INBOX");
}

/// Messages over `max_message_size` are stored headers-only, and the rest
/// of the stream is still read correctly.
fn truncation<S: TestServer>(srv: &S, folder_mail: Vec<Vec<u8>>, mode: Mode, port: u16) {
    let kind = srv.kind();
    let limit = 20_000;
    let big = folder_mail.iter().filter(|m| m.len() > limit).count();
    assert!(big > 0 && big < folder_mail.len(), "{kind}: a mix of sizes");
    srv.append_many(USER, "INBOX", &folder_mail)
        .expect("append");
    let cert = srv.cert_path();
    let setup = Setup::new(
        &[Account {
            name: "test",
            port,
            mode,
            ca_file: Some(&cert),
            user: USER,
            password: PASS,
            folders: &["INBOX"],
            extra: "",
        }],
        &format!("max_message_size = \"{limit}B\"\nbatch_size = 4"),
    );
    setup.sync_ok();
    let truth = srv.fetch_all(USER, "INBOX").expect("truth");
    let stored = setup.stored("test", "INBOX");
    assert_eq!(stored.len(), truth.len(), "{kind}");
    let truncated: i64 = setup
        .db()
        .query_row(
            "SELECT count(*) FROM message_feed WHERE truncated = 1",
            [],
            |r| r.get(0),
        )
        .expect("count");
    let mut over = 0;
    for ((_, uid, raw), (tuid, body)) in stored.iter().zip(&truth) {
        assert_eq!(uid, tuid, "{kind}");
        if body.len() > limit {
            over += 1;
            let head_end = body
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4)
                .expect("a header block");
            assert_eq!(
                raw.as_slice(),
                &body[..head_end],
                "{kind} UID {uid}: the headers only"
            );
        } else {
            assert!(raw == body, "{kind} UID {uid}: stored bytes differ");
        }
    }
    assert_eq!(truncated, over, "{kind}");
}

#[test]
fn cyrus_sync_changes_check_and_idle() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    let caps = cy.login(USER).expect("login").capabilities().expect("caps");
    for cap in ["CONDSTORE", "QRESYNC", "IDLE"] {
        assert!(
            caps.iter().any(|c| c == cap),
            "Cyrus offers {cap}: {caps:?}"
        );
    }
    let real: Vec<Vec<u8>> = corpus::mail_parser_samples()
        .into_iter()
        .take(20)
        .map(|(_, b)| cyrus_safe(&b))
        .collect();
    assert!(
        !real.is_empty(),
        "mail-parser's sample messages (cargo fetch)"
    );
    let plan = Plan {
        archive: "Archive",
        inbox: corpus::varied(40, 21)
            .iter()
            .map(|m| cyrus_safe(m))
            .collect(),
        archive_mail: real,
        new_mail: corpus::varied(6, 22)
            .iter()
            .map(|m| cyrus_safe(m))
            .collect(),
        mode: Mode::StartTls,
        port: cy.plain_port(),
        sync_extra: "batch_size = 9",
    };
    let setup = scenario(&cy, plan);
    // The QRESYNC path was taken: the cursor carries a HIGHESTMODSEQ.
    let modseq = inbox_highest_modseq(&setup);
    assert!(modseq.is_some());

    idle_delivers(&cy, &setup, Duration::from_secs(5));

    // Implicit TLS with COMPRESS=DEFLATE, idling too.
    let cert = cy.cert_path();
    let tls = Setup::new(
        &[Account {
            name: "test",
            port: cy.tls_port(),
            mode: Mode::Tls,
            ca_file: Some(&cert),
            user: USER,
            password: PASS,
            folders: &["INBOX"],
            extra: "compress = true",
        }],
        "",
    );
    tls.sync_ok();
    assert_mirror(&tls, &cy, USER, "test", "INBOX");
    let check = stdout(&tls.run(&["check"]));
    assert!(check.contains("COMPRESS=DEFLATE active"), "{check}");
    idle_delivers(&cy, &tls, Duration::from_secs(5));
}

#[test]
fn courier_sync_changes_check_and_idle() {
    let co = Courier::start_with(courier::Options {
        users: vec![(USER.into(), PASS.into())],
        // Courier's IDLE looks at the folder this often.
        idle_timeout_secs: 1,
    })
    .expect("start Courier");
    let caps = co.login(USER).expect("login").capabilities().expect("caps");
    assert!(
        !caps.iter().any(|c| c == "CONDSTORE" || c == "QRESYNC"),
        "{caps:?}"
    );
    // Courier takes anything: bare LF, NUL bytes, 8-bit headers, and the
    // real-world samples as they are.
    let mut real: Vec<Vec<u8>> = corpus::mail_parser_samples()
        .into_iter()
        .skip(20)
        .take(20)
        .map(|(_, b)| b)
        .collect();
    assert!(
        !real.is_empty(),
        "mail-parser's sample messages (cargo fetch)"
    );
    real.push(b"From: nul@example.org\r\nSubject: a NUL\r\n\r\nbefore\0after\r\n".to_vec());
    real.push(
        b"From: cr@example.org\r\nSubject: bare CR\r\n\r\none\rtwo\r\nno final newline".to_vec(),
    );
    let plan = Plan {
        archive: "INBOX.Archive",
        inbox: corpus::varied(40, 31),
        archive_mail: real,
        new_mail: corpus::varied(6, 32),
        mode: Mode::Tls,
        port: co.tls_port(),
        sync_extra: "batch_size = 9\nrescan_every = 1",
    };
    let setup = scenario(&co, plan);
    let modseq = inbox_highest_modseq(&setup);
    assert_eq!(modseq, None, "no CONDSTORE: no HIGHESTMODSEQ");

    idle_delivers(&co, &setup, Duration::from_secs(5));
}

/// Folder patterns and non-ASCII folder names, with each server's own
/// separator and namespace.
fn patterns_and_names<S: TestServer>(
    srv: &S,
    prefix: &str,
    sep: char,
    (mode, port): (Mode, u16),
    extra: &str,
) {
    let kind = srv.kind();
    let names: Vec<String> = [
        "Lists",
        "Lists{sep}rust",
        "Lists{sep}Entwürfe",
        "Other",
        "Ünïcødé 日本",
    ]
    .iter()
    .map(|n| format!("{prefix}{}", n.replace("{sep}", &sep.to_string())))
    .collect();
    for (i, name) in names.iter().enumerate() {
        srv.create_folder(USER, name).expect("create");
        let mail: Vec<Vec<u8>> = corpus::varied(3, 40 + i as u64)
            .iter()
            .map(|m| cyrus_safe(m))
            .collect();
        srv.append_many(USER, name, &mail).expect("append");
    }
    let cert = srv.cert_path();
    let pattern = format!("{prefix}Lists{sep}*");
    let folders = [pattern.as_str(), names[4].as_str()];
    let setup = Setup::new(
        &[Account {
            name: "test",
            port,
            mode,
            ca_file: Some(&cert),
            user: USER,
            password: PASS,
            folders: &folders,
            extra,
        }],
        "",
    );
    let out = setup.sync_ok();
    assert_says(&out, "synced 3 folder(s)", kind);
    for name in [&names[1], &names[2], &names[4]] {
        assert_mirror(&setup, srv, USER, "test", name);
    }
    for name in [&names[0], &names[3]] {
        assert!(
            setup.stored("test", name).is_empty(),
            "{kind}: {name} not configured"
        );
    }
    let out = setup.run(&["check"]);
    assert!(out.status.success(), "{kind}: {}", stdout(&out));
    assert_says(&out, "certificate verified", kind);
    if mode == Mode::StartTls {
        assert_says(&out, "C: a001 STARTTLS", kind);
    }
    if extra.contains("compress") {
        assert_says(&out, "COMPRESS=DEFLATE active", kind);
    }
}

#[test]
fn cyrus_patterns_unicode_names_and_compress() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    patterns_and_names(&cy, "", '/', (Mode::Tls, cy.tls_port()), "compress = true");
}

#[test]
fn courier_patterns_unicode_names_and_starttls() {
    let co = Courier::start_with_users(&[(USER, PASS)]).expect("start Courier");
    patterns_and_names(&co, "INBOX.", '.', (Mode::StartTls, co.plain_port()), "");
}

#[test]
fn cyrus_truncates_large_messages() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    let mail = corpus::sized(12, 51, 2_000, 60_000);
    truncation(&cy, mail, Mode::Plain, cy.plain_port());
}

#[test]
fn courier_truncates_large_messages() {
    let co = Courier::start_with_users(&[(USER, PASS)]).expect("start Courier");
    let mail = corpus::sized(12, 52, 2_000, 60_000);
    truncation(&co, mail, Mode::Plain, co.plain_port());
}

/// A folder deleted and created again (a new UIDVALIDITY) keeps the old
/// generation; the messages put back unchanged are not shown twice.
fn uidvalidity_change<S: TestServer>(srv: &S, folder: &str) {
    let kind = srv.kind();
    srv.create_folder(USER, folder).expect("create");
    let msgs: Vec<Vec<u8>> = corpus::varied(10, 61)
        .iter()
        .map(|m| cyrus_safe(m))
        .collect();
    srv.append_many(USER, folder, &msgs).expect("append");
    let setup = Setup::new(
        &[Account {
            name: "test",
            port: srv.plain_port(),
            mode: Mode::Plain,
            ca_file: None,
            user: USER,
            password: PASS,
            folders: &[folder],
            extra: "",
        }],
        "rescan_every = 1",
    );
    setup.sync_ok();
    let uv1 = srv.uid_validity(USER, folder).expect("uidvalidity");
    srv.delete_folder(USER, folder).expect("delete");
    std::thread::sleep(Duration::from_millis(1100));
    srv.create_folder(USER, folder).expect("create again");
    srv.append_many(USER, folder, &msgs).expect("append");
    let fresh: Vec<Vec<u8>> = corpus::varied(2, 62)
        .iter()
        .map(|m| cyrus_safe(m))
        .collect();
    srv.append_many(USER, folder, &fresh).expect("append");
    let uv2 = srv.uid_validity(USER, folder).expect("uidvalidity");
    assert_ne!(uv1, uv2, "{kind}: a new UIDVALIDITY");
    setup.sync_ok();
    assert_eq!(
        setup.message_rows(),
        22,
        "{kind}: both generations are kept"
    );
    let feed = setup.stored("test", folder);
    assert_eq!(
        feed.iter().filter(|(v, _, _)| *v == uv1).count(),
        10,
        "{kind}"
    );
    assert_eq!(
        feed.iter().filter(|(v, _, _)| *v == uv2).count(),
        2,
        "{kind}"
    );
    let status = stdout(&setup.run(&["status"]));
    assert!(
        status.contains("UIDVALIDITY changed 1x"),
        "{kind}: {status}"
    );
    // And the next pass is quiet.
    let out = setup.sync_ok();
    assert_says(&out, "0 new message(s)", kind);
}

#[test]
fn cyrus_uidvalidity_change() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    uidvalidity_change(&cy, "Box");
}

#[test]
fn courier_uidvalidity_change() {
    let co = Courier::start_with_users(&[(USER, PASS)]).expect("start Courier");
    uidvalidity_change(&co, "INBOX.Box");
}

/// Without CONDSTORE and with no rescan ever, a flag change made by a
/// second client while `mailfeed run` idles reaches the database only as
/// the server's unsolicited `FETCH (FLAGS ...)` in IDLE: each change is one
/// event within the IDLE latency.
#[test]
fn courier_flag_change_while_idling_is_an_event_without_condstore() {
    // Courier's IDLE re-reads the folder every IMAP_IDLE_TIMEOUT seconds:
    // 1 s here, so the latency is that of the server, not of the test.
    let co = Courier::start_with(courier::Options {
        users: vec![(USER.into(), PASS.into())],
        idle_timeout_secs: 1,
    })
    .expect("start Courier");
    co.append_many(USER, "INBOX", &corpus::varied(5, 71))
        .expect("append");
    let setup = Setup::new(
        &[Account {
            name: "test",
            port: co.plain_port(),
            mode: Mode::Plain,
            ca_file: None,
            user: USER,
            password: PASS,
            folders: &["INBOX"],
            extra: "",
        }],
        "rescan_every = 0",
    );
    setup.sync_ok();
    let run = Running::start(&setup, "trace");
    let log = run.1.clone();
    wait_for("mailfeed to enter IDLE", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| {
            l.lines().any(|line| {
                line.split("C: ")
                    .nth(1)
                    .is_some_and(|rest| rest.split_whitespace().nth(1) == Some("IDLE"))
            })
        })
    });
    let mut c = co.login(USER).expect("login");
    c.select("INBOX").expect("select");
    let uids = c.uids().expect("uids");
    let before = events(&setup, "flags", "INBOX");
    assert!(before.is_empty(), "{before:?}");
    c.add_flags(&[uids[1]], &["\\Flagged"]).expect("flag");
    let took = wait_for(
        "the flag change as an event",
        Duration::from_secs(10),
        || events(&setup, "flags", "INBOX") == vec![uids[1]],
    );
    eprintln!("courier: flag change in IDLE recorded after {took:?}");
    assert_eq!(flags_of(&setup, "INBOX", uids[1]), "\\Flagged");
    c.remove_flags(&[uids[1]], &["\\Flagged"]).expect("unflag");
    c.add_flags(&[uids[3]], &["\\Answered"]).expect("answer");
    c.logout().expect("logout");
    let took = wait_for("both changes as events", Duration::from_secs(10), || {
        events(&setup, "flags", "INBOX") == vec![uids[1], uids[1], uids[3]]
    });
    eprintln!("courier: two more changes recorded after {took:?}");
    assert_eq!(flags_of(&setup, "INBOX", uids[1]), "");
    assert_eq!(flags_of(&setup, "INBOX", uids[3]), "\\Answered");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log_text.contains("UID FETCH 1:"),
        "no rescan was needed:\n{log_text}"
    );
}

/// The UIDVALIDITY story of `support::generations` on a server.
fn uidvalidity_story<S: TestServer>(srv: &S, folder: &str) {
    let msgs: Vec<Vec<u8>> = corpus::varied(10, 91)
        .iter()
        .map(|m| cyrus_safe(m))
        .collect();
    let fresh: Vec<Vec<u8>> = corpus::varied(2, 92)
        .iter()
        .map(|m| cyrus_safe(m))
        .collect();
    let setup = Setup::new(
        &[Account {
            name: "test",
            port: srv.plain_port(),
            mode: Mode::Plain,
            ca_file: None,
            user: USER,
            password: PASS,
            folders: &[folder],
            extra: "",
        }],
        "rescan_every = 1",
    );
    support::generations::uidvalidity_story(srv, USER, &setup, folder, &msgs, &fresh);
}

#[test]
fn cyrus_uidvalidity_change_keeps_the_visible_rows_true() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    uidvalidity_story(&cy, "Story");
}

#[test]
fn courier_uidvalidity_change_keeps_the_visible_rows_true() {
    let co = Courier::start_with_users(&[(USER, PASS)]).expect("start Courier");
    uidvalidity_story(&co, "INBOX.Story");
}

/// An empty folder syncs (no UIDNEXT from Courier: mailfeed asks for
/// `UID FETCH 1:*` on nothing), and so does one emptied by expunges.
fn empty_folders<S: TestServer>(srv: &S, empty: &str, emptied: &str) {
    let kind = srv.kind();
    srv.create_folder(USER, empty).expect("create");
    srv.create_folder(USER, emptied).expect("create");
    let uids = srv
        .append_many(USER, emptied, &corpus::sized(3, 71, 500, 900))
        .expect("append");
    let setup = Setup::new(
        &[Account {
            name: "test",
            port: srv.plain_port(),
            mode: Mode::Plain,
            ca_file: None,
            user: USER,
            password: PASS,
            folders: &[empty, emptied],
            extra: "",
        }],
        "rescan_every = 1",
    );
    setup.sync_ok();
    assert_eq!(setup.message_rows(), 3, "{kind}");
    let mut c = srv.login(USER).expect("login");
    c.select(emptied).expect("select");
    c.delete_uids(&uids).expect("expunge");
    c.logout().expect("logout");
    setup.sync_ok();
    assert_eq!(events(&setup, "expunged", emptied), uids, "{kind}");
    let out = setup.sync_ok();
    assert_says(&out, "0 new message(s)", kind);
    srv.append_many(USER, empty, &corpus::sized(2, 72, 500, 900))
        .expect("append");
    setup.sync_ok();
    assert_mirror(&setup, srv, USER, "test", empty);
    assert_eq!(setup.message_rows(), 5, "{kind}");
    let out = setup.run(&["check"]);
    assert!(out.status.success(), "{kind}: {}", stdout(&out));
}

#[test]
fn cyrus_empty_folders() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    empty_folders(&cy, "Empty", "Emptied");
}

#[test]
fn courier_empty_folders() {
    let co = Courier::start_with_users(&[(USER, PASS)]).expect("start Courier");
    empty_folders(&co, "INBOX.Empty", "INBOX.Emptied");
}

/// The HIGHESTMODSEQ stored with INBOX's cursor (set only on the CONDSTORE
/// path).
fn inbox_highest_modseq(setup: &Setup) -> Option<i64> {
    setup
        .db()
        .query_row(
            "SELECT highest_modseq FROM mailboxes WHERE name = 'INBOX'",
            [],
            |r| r.get(0),
        )
        .expect("modseq")
}
