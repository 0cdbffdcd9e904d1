//! The backfill window against a real Dovecot: `since` limits the first
//! sync by INTERNALDATE, widening it later fetches the older mail once (no
//! duplicates), narrowing it fetches and deletes nothing, and `search` with
//! non-ASCII text (CHARSET UTF-8, a literal) filters by subject.

mod support;

use support::dovecot::Dovecot;
use support::mailfeed::{Account, Setup};

const USER: &str = "wendy";
const PASS: &str = "wendy-pw-3k";

fn mail(n: u32, subject: &str) -> Vec<u8> {
    format!(
        "Message-ID: <w{n}@example.org>\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn set_window(s: &Setup, lines: &str) {
    let text = std::fs::read_to_string(&s.config).expect("config");
    let mut out = String::new();
    for l in text.lines() {
        if !(l.starts_with("since =") || l.starts_with("search =")) {
            out.push_str(l);
            out.push('\n');
        }
        if l.starts_with("folders =") {
            out.push_str(lines);
        }
    }
    std::fs::write(&s.config, out).expect("config");
}

fn stored_uids(s: &Setup) -> Vec<u32> {
    s.stored("test", "INBOX")
        .into_iter()
        .map(|(_, u, _)| u)
        .collect()
}

#[test]
fn since_then_widening_fetches_older_mail_once_and_narrowing_keeps_it() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let mut c = dc.login(USER).expect("login");
    let dates = [
        "01-Jun-2019 10:00:00 +0000",
        "01-Jun-2021 10:00:00 +0000",
        "01-Jun-2023 10:00:00 +0000",
        "01-Jun-2025 10:00:00 +0000",
    ];
    let mut uids = Vec::new();
    for (i, d) in dates.iter().enumerate() {
        let subject = if i == 1 {
            "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin"
        } else {
            "plain"
        };
        uids.push(
            c.append_dated("INBOX", d, &mail(i as u32, subject))
                .expect("append")
                .expect("uid"),
        );
    }
    let recent = c
        .append("INBOX", &[], &mail(9, "today"))
        .expect("append")
        .expect("uid");
    c.logout().expect("logout");
    let mut a = Account::plain(&dc, USER, PASS, &["INBOX"]);
    a.extra = "since = \"2024-01-01\"\n";
    let s = Setup::new(&[a], "");

    let out = s.run(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("fetches only mail since 2024-01-01"),
        "{said}"
    );
    let out = s
        .command(&["sync"])
        .env("RUST_LOG", "mailfeed=trace")
        .output()
        .expect("sync");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stored_uids(&s), [uids[3], recent], "{log}");
    // New mail still arrives.
    let later = dc.append(USER, "INBOX", &mail(10, "new")).expect("append");
    s.sync_ok();
    assert_eq!(stored_uids(&s), [uids[3], recent, later]);

    // Widening: the older mail is fetched once.
    set_window(&s, "since = \"2020-06-01\"\n");
    let out = s.sync_ok();
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 new message(s)"));
    assert_eq!(stored_uids(&s), [uids[1], uids[2], uids[3], recent, later]);
    let out = s.sync_ok();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 new message(s)"));

    // Narrowing keeps everything and fetches nothing.
    set_window(&s, "since = \"2025-01-01\"\n");
    let out = s.sync_ok();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 new message(s)"));
    assert_eq!(s.message_rows(), 5);

    // No window: the rest, once; the archive never holds a duplicate.
    set_window(&s, "");
    s.sync_ok();
    s.sync_ok();
    assert_eq!(
        stored_uids(&s),
        [uids[0], uids[1], uids[2], uids[3], recent, later]
    );
    assert_eq!(s.message_rows(), 6);
    let new_events: i64 = s
        .db()
        .query_row(
            "SELECT count(*) FROM message_events WHERE kind = 'new'",
            [],
            |r| r.get(0),
        )
        .expect("events");
    assert_eq!(new_events, 6);
}

#[test]
fn search_with_non_ascii_text_uses_charset_and_a_literal() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let grusse = dc
        .append(
            USER,
            "INBOX",
            &mail(1, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin"),
        )
        .expect("append");
    dc.append(USER, "INBOX", &mail(2, "Greetings"))
        .expect("append");
    let mut a = Account::plain(&dc, USER, PASS, &["INBOX"]);
    a.extra = "search = 'SUBJECT \"Grüße\"'\n";
    let s = Setup::new(&[a], "");
    let out = s
        .command(&["sync"])
        .env("RUST_LOG", "mailfeed=trace")
        .output()
        .expect("sync");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("UID SEARCH RETURN (ALL) CHARSET UTF-8 UID 1:* SUBJECT {7+} <7 bytes>"),
        "{log}"
    );
    assert_eq!(stored_uids(&s), [grusse]);
    // Widening to everything fetches the other one once.
    set_window(&s, "");
    s.sync_ok();
    s.sync_ok();
    assert_eq!(s.message_rows(), 2);
}
