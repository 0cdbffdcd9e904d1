//! End to end against a real, private Dovecot: `mailfeed sync` stores every
//! message byte-identical to BODY[], a second pass adds nothing, new mail adds
//! exactly the new rows, UIDVALIDITY changes keep the archive.

mod support;

use support::corpus;
use support::dovecot::Dovecot;
use support::mailfeed::{Account, Mode, Setup, assert_mirror};

const USER: &str = "alice";
const PASS: &str = "alice-pw-Q7";

fn dovecot() -> Dovecot {
    Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot")
}

#[test]
fn first_sync_second_sync_and_new_mail() {
    let dc = dovecot();
    dc.create_folder(USER, "Archive").expect("create");
    let inbox = corpus::varied(120, 1);
    dc.append_many(USER, "INBOX", &inbox).expect("append");
    let real: Vec<Vec<u8>> = corpus::mail_parser_samples()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    dc.append_many(USER, "Archive", &real).expect("append real");
    let cert = dc.cert_path();
    let setup = Setup::new(
        &[Account::tls(&dc, &cert, USER, PASS, &["INBOX", "Archive"])],
        "batch_size = 25",
    );

    let out = setup.sync_ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("synced 2 folder(s)"), "{stdout}");
    assert_mirror(&setup, &dc, USER, "test", "INBOX");
    assert_mirror(&setup, &dc, USER, "test", "Archive");
    let rows = setup.message_rows();
    assert_eq!(rows as usize, inbox.len() + real.len());

    // A second pass adds nothing.
    let out = setup.sync_ok();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 new message(s)"));
    assert_eq!(setup.message_rows(), rows);

    // New mail adds exactly the new rows, with ids above the old ones.
    let max_before: i64 = setup
        .db()
        .query_row("SELECT max(id) FROM message_feed", [], |r| r.get(0))
        .expect("max");
    dc.append_many(USER, "INBOX", &corpus::varied(7, 2))
        .expect("append");
    setup.sync_ok();
    assert_eq!(setup.message_rows(), rows + 7);
    let new_ids: i64 = setup
        .db()
        .query_row(
            "SELECT count(*) FROM message_feed WHERE id > ?1",
            [max_before],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(new_ids, 7);
    assert_mirror(&setup, &dc, USER, "test", "INBOX");

    let status = setup.run(&["status"]);
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("INBOX") && text.contains("Archive"), "{text}");
}

#[test]
fn starttls_and_plain_modes_and_patterns() {
    let dc = dovecot();
    for f in ["Lists/rust", "Lists/sqlite", "Other"] {
        dc.create_folder(USER, f).expect("create");
        dc.append_many(USER, f, &corpus::varied(5, f.len() as u64))
            .expect("append");
    }
    let cert = dc.cert_path();
    let mut acc = Account::tls(&dc, &cert, USER, PASS, &["Lists/*"]);
    acc.port = dc.plain_port();
    acc.mode = Mode::StartTls;
    let setup = Setup::new(&[acc], "");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "test", "Lists/rust");
    assert_mirror(&setup, &dc, USER, "test", "Lists/sqlite");
    assert!(
        setup.stored("test", "Other").is_empty(),
        "pattern must not match Other"
    );

    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["Other"])], "");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "test", "Other");
}

#[test]
fn uidvalidity_change_keeps_archive_and_refetches() {
    let dc = dovecot();
    dc.create_folder(USER, "Box").expect("create");
    let msgs = corpus::varied(10, 3);
    dc.append_many(USER, "Box", &msgs).expect("append");
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["Box"])], "");
    setup.sync_ok();
    let uv1 = dc.uid_validity(USER, "Box").expect("uv");
    // Delete and recreate: new UIDVALIDITY; put back 10 identical messages
    // plus 2 new ones.
    dc.delete_folder(USER, "Box").expect("delete");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    dc.create_folder(USER, "Box").expect("create");
    dc.append_many(USER, "Box", &msgs).expect("append");
    dc.append_many(USER, "Box", &corpus::varied(2, 4))
        .expect("append");
    let uv2 = dc.uid_validity(USER, "Box").expect("uv");
    assert_ne!(uv1, uv2);
    setup.sync_ok();
    // All 12 rows of the old and new generation are stored...
    assert_eq!(setup.message_rows(), 22);
    // ...but consumers see the 10 re-appended ones once (old ids), plus 2 new.
    let feed = setup.stored("test", "Box");
    assert_eq!(feed.iter().filter(|(v, _, _)| *v == uv1).count(), 10);
    assert_eq!(feed.iter().filter(|(v, _, _)| *v == uv2).count(), 2);
    let status = String::from_utf8_lossy(&setup.run(&["status"]).stdout).into_owned();
    assert!(status.contains("UIDVALIDITY changed 1x"), "{status}");
}

#[test]
fn bad_password_missing_folder_and_refused_port_fail_clearly() {
    let dc = dovecot();
    let setup = Setup::new(
        &[Account::plain(&dc, USER, "wrong-password", &["INBOX"])],
        "",
    );
    let out = setup.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED test/") && text.contains("login failed"),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-password"));

    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX", "Nope"])], "");
    let out = setup.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED test/Nope"), "{text}");
    assert!(
        text.contains("synced 1 folder(s)"),
        "INBOX still synced: {text}"
    );

    // A port nobody listens on.
    let mut acc = Account::plain(&dc, USER, PASS, &["INBOX"]);
    acc.port = 1;
    let setup = Setup::new(&[acc], "");
    let out = setup.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot connect"));
}

#[test]
fn check_shows_the_redacted_annotated_conversation() {
    let dc = dovecot();
    dc.append_many(USER, "INBOX", &corpus::varied(3, 5))
        .expect("append");
    let cert = dc.cert_path();
    let setup = Setup::new(
        &[Account::tls(&dc, &cert, USER, PASS, &["INBOX", "Missing"])],
        "",
    );
    let out = setup.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing folder fails the check"
    );
    assert!(
        text.contains("TLS established, certificate verified"),
        "{text}"
    );
    assert!(
        text.contains("C: a001 AUTHENTICATE PLAIN ***") || text.contains("LOGIN alice ***"),
        "{text}"
    );
    assert!(
        text.contains("tagged reply to a001 AUTHENTICATE: OK, logged in")
            || text.contains("LOGIN: OK, logged in"),
        "{text}"
    );
    assert!(text.contains("untagged: 3 messages exist"), "{text}");
    assert!(text.contains("ok      INBOX: 3 messages"), "{text}");
    assert!(
        text.contains("FAILED  Missing") && text.contains("hint:"),
        "{text}"
    );
    assert!(!text.contains(PASS), "the password must never be shown");

    // Wrong password: a verdict and a hint, exit 1, no secret.
    let setup = Setup::new(
        &[Account::tls(&dc, &cert, USER, "not-the-Pw-991", &["INBOX"])],
        "",
    );
    let out = setup.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("cannot log in") && text.contains("hint: check `username`"),
        "{text}"
    );
    assert!(!text.contains("not-the-Pw-991"));

    // Untrusted certificate (no ca_file): refused with a hint.
    let mut acc = Account::tls(&dc, &cert, USER, PASS, &["INBOX"]);
    acc.ca_file = None;
    let setup = Setup::new(&[acc], "");
    let out = setup.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("certificate is not trusted"), "{text}");
}

#[test]
fn config_mistakes_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[store]\npath = \"x.db\"\n[[accounts]]\nname = \"a\"\nhots = \"h\"\nusername = \"u\"\npassword = \"p\"\nfolders = [\"INBOX\"]\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailfeed"))
        .arg("-c")
        .arg(&path)
        .arg("sync")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hots"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn compress_deflate_when_offered_and_configured() {
    let dc = support::dovecot::Dovecot::start_with(support::dovecot::Options {
        users: vec![(USER.into(), PASS.into())],
        extra_config: "mail_plugins = $mail_plugins zlib\nprotocol imap {\n  mail_plugins = $mail_plugins zlib imap_zlib\n}\n".into(),
    })
    .expect("dovecot");
    let caps = dc.login(USER).expect("login").capabilities().expect("caps");
    assert!(caps.iter().any(|c| c == "COMPRESS=DEFLATE"), "{caps:?}");
    dc.append_many(USER, "INBOX", &corpus::varied(60, 8))
        .expect("append");
    let cert = dc.cert_path();
    for tls in [true, false] {
        let mut acc = if tls {
            Account::tls(&dc, &cert, USER, PASS, &["INBOX"])
        } else {
            Account::plain(&dc, USER, PASS, &["INBOX"])
        };
        acc.extra = "compress = true";
        let setup = Setup::new(&[acc], "batch_size = 7");
        let out = setup.run(&["check"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("COMPRESS=DEFLATE active"),
            "{text}"
        );
        setup.sync_ok();
        assert_mirror(&setup, &dc, USER, "test", "INBOX");
    }
}

/// A UIDVALIDITY change with flags changed and messages expunged around
/// it: the visible rows end equal to the server, one event per difference,
/// and `sync` and `status` count what consumers see.
#[test]
fn uidvalidity_change_keeps_the_visible_rows_true() {
    let dc = dovecot();
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["Story"])], "");
    support::generations::uidvalidity_story(
        &dc,
        USER,
        &setup,
        "Story",
        &corpus::varied(10, 81),
        &corpus::varied(2, 82),
    );
}
