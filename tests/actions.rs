//! Actions on the server after the commit, against a real, private Dovecot:
//! `seen`, `move:Processed` and `delete` act on exactly the stored messages
//! (a message another client marked `\Deleted` survives: never a bare
//! EXPUNGE); a missing destination fails clearly and nothing is lost; a
//! SIGKILL loop between commit and action ends with every stored message
//! moved exactly once and none moved before it was stored; `delete_after`
//! removes only old, stored messages; a second process on the same
//! database refuses.
//!
//! Each body but the lock's and the other servers' runs twice, on SQLite
//! and on a private PostgreSQL (`<body>::sqlite`, `<body>::postgres`):
//! the same journal, the same outcome. The PostgreSQL kill loops and fault
//! seeds run fewer rounds by default (`MAILFEED_PG_KILLS`,
//! `MAILFEED_PG_FAULT_SEEDS`).

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::corpus;
use support::courier::Courier;
use support::cyrus::Cyrus;
use support::dovecot::Dovecot;
use support::feed_db::{Backend, FeedDb, P, on_both_backends};
use support::mailfeed::{Account, Mode, Setup};
use support::run::{Running, wait_for};
use support::server::TestServer;

const USER: &str = "quinn";
const PASS: &str = "quinn-pw-A5";

on_both_backends!(
    seen_move_and_delete_act_on_exactly_the_stored_messages,
    delete_after_removes_only_old_stored_messages,
    sigkill_between_commit_and_action_moves_each_message_exactly_once,
    sigkill_during_copy_store_expunge_moves_each_message_exactly_once,
    without_move_a_move_is_copy_store_and_uid_expunge,
    without_uidplus_delete_and_move_are_refused_and_the_folder_is_only_read,
    a_cut_connection_during_the_actions_recovers,
    a_copy_cut_off_before_its_answer_is_not_made_twice,
    a_missing_destination_is_created_when_asked,
);

fn dovecot() -> Dovecot {
    Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot")
}

fn setup(dc: &Dovecot, folders: &[&str], extra: &str, sync_extra: &str) -> Setup {
    let mut a = Account::plain(dc, USER, PASS, folders);
    a.extra = extra;
    Setup::new(&[a], sync_extra)
}

/// Every message of a folder: (UID, flags, BODY[]).
fn server(dc: &impl TestServer, folder: &str) -> Vec<(u32, Vec<String>, Vec<u8>)> {
    let mut c = dc.login(USER).expect("login");
    c.examine(folder).expect("examine");
    let bodies = c.fetch_all().expect("bodies");
    let flags = c.fetch_flags().expect("flags");
    c.logout().expect("logout");
    bodies
        .into_iter()
        .map(|(uid, body)| {
            let f = flags
                .iter()
                .find(|(u, _)| *u == uid)
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            (uid, f, body)
        })
        .collect()
}

fn stored_bodies(db: &FeedDb, mailbox: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = db
        .feed("test", mailbox)
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    v.sort();
    v
}

/// (uid, kind, state) of every action of a mailbox.
fn actions(db: &FeedDb, mailbox: &str) -> Vec<(u32, String, String)> {
    db.rows(
        "SELECT m.uid, a.kind, a.state FROM actions a JOIN messages m ON m.id = a.message_id
         JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = $1 ORDER BY m.uid, a.kind",
        &[P::T(mailbox)],
    )
}

fn events(db: &FeedDb, kind: &str, mailbox: &str) -> i64 {
    db.count(
        "SELECT count(*) FROM message_events WHERE kind = $1 AND mailbox = $2",
        &[P::T(kind), P::T(mailbox)],
    )
}

/// How many kills or seeds a loop runs: `var` (with `_PG` after
/// `MAILFEED` on PostgreSQL), else the default. PostgreSQL runs fewer by
/// default: the same code paths, a second time, in a bounded suite time.
fn rounds(backend: &Backend, var: &str, sqlite: u64, postgres: u64) -> u64 {
    let (var, default) = match backend {
        Backend::Sqlite => (var.to_owned(), sqlite),
        Backend::Postgres(_) => (var.replacen("MAILFEED_", "MAILFEED_PG_", 1), postgres),
    };
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const OVERRIDES: &str = r#"
[[accounts.folder]]
name = "INBOX"
after_store = "move:Processed"

[[accounts.folder]]
name = "Seen"
after_store = "seen"

[[accounts.folder]]
name = "Deletes"
after_store = "delete"
"#;

fn seen_move_and_delete_act_on_exactly_the_stored_messages(backend: Backend) {
    let dc = dovecot();
    for f in ["Seen", "Deletes"] {
        dc.create_folder(USER, f).expect("create");
    }
    // Stored while no action is configured, then marked \Deleted by another
    // client: mailfeed never acts on it, and no bare EXPUNGE removes it.
    let bystander = dc
        .append(USER, "Deletes", &corpus::varied(1, 99)[0])
        .expect("append");
    let folders = ["INBOX", "Seen", "Deletes"];
    let mut s = setup(&dc, &folders, "", "");
    let db = backend.attach(&mut s);
    s.sync_ok();
    let mut c = dc.login(USER).expect("login");
    c.select("Deletes").expect("select");
    c.add_flags(&[bystander], &["\\Deleted"]).expect("flag");
    c.logout().expect("logout");

    // Now with actions.
    let config = std::fs::read_to_string(&s.config).expect("config") + OVERRIDES;
    std::fs::write(&s.config, config).expect("write config");
    let s2 = &s;
    let inbox = corpus::varied(6, 1);
    let seen = corpus::varied(5, 2);
    let dels = corpus::varied(4, 3);
    dc.append_many(USER, "INBOX", &inbox).expect("append");
    dc.append_many(USER, "Seen", &seen).expect("append");
    dc.append_many(USER, "Deletes", &dels).expect("append");

    // `check` says which folders change and how.
    let out = s2.run(&["check"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("changes INBOX: SELECT: moves each stored message to `Processed`"),
        "{said}"
    );
    assert!(
        said.contains("changes Seen: SELECT: marks each stored message \\Seen"),
        "{said}"
    );
    assert!(
        said.contains("changes Deletes: SELECT: deletes each stored message"),
        "{said}"
    );

    // Processed does not exist and create_destination is off: the move
    // fails clearly, the other folders are acted on, nothing is lost.
    let out = s2.run(&["sync"]);
    let said = text(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("FAILED test/INBOX")
            && said.contains("`Processed`")
            && said.contains("create_destination"),
        "{said}"
    );
    let on_server = server(&dc, "INBOX");
    assert_eq!(on_server.len(), 6, "nothing moved");
    let status = text(&s.run(&["status"]).stdout);
    assert!(
        status.contains("create_destination"),
        "status shows the error: {status}"
    );
    assert!(
        actions(&db, "INBOX")
            .iter()
            .all(|(_, k, st)| k == "move" && st == "pending")
    );

    let seen_now = server(&dc, "Seen");
    assert_eq!(seen_now.len(), 5);
    assert!(
        seen_now
            .iter()
            .all(|(_, f, _)| f.iter().any(|f| f == "\\Seen")),
        "{seen_now:?}"
    );
    let left = server(&dc, "Deletes");
    assert_eq!(
        left.iter().map(|(u, _, _)| *u).collect::<Vec<_>>(),
        [bystander],
        "exactly the stored messages were deleted; the bystander stays"
    );
    assert!(left[0].1.iter().any(|f| f == "\\Deleted"));

    // With the destination there, the pending moves run.
    dc.create_folder(USER, "Processed").expect("create");
    s.sync_ok();
    assert!(server(&dc, "INBOX").is_empty());
    let mut moved: Vec<Vec<u8>> = server(&dc, "Processed")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        stored_bodies(&db, "INBOX"),
        "exactly the stored messages, once each"
    );

    // New mail that is not stored yet is untouched ...
    let more = corpus::varied(3, 4);
    dc.append_many(USER, "Seen", &more).expect("append");
    assert!(
        server(&dc, "Seen")
            .iter()
            .filter(|(_, f, _)| f.iter().any(|f| f == "\\Seen"))
            .count()
            == 5
    );
    // ... until it is.
    s.sync_ok();
    assert_eq!(server(&dc, "Seen").len(), 8);
    assert!(
        server(&dc, "Seen")
            .iter()
            .all(|(_, f, _)| f.iter().any(|f| f == "\\Seen"))
    );

    // Every stored message has exactly one action, done; none for the
    // bystander, stored before actions were configured.
    for (folder, n, kind) in [
        ("INBOX", 6, "move"),
        ("Seen", 8, "seen"),
        ("Deletes", 4, "delete"),
    ] {
        let a = actions(&db, folder);
        assert_eq!(a.len(), n, "{folder}: {a:?}");
        assert!(
            a.iter().all(|(_, k, st)| k == kind && st == "done"),
            "{folder}: {a:?}"
        );
        assert_eq!(events(&db, "action", folder), n as i64, "{folder}");
    }
    // The `action` event's detail, as docs/consumer-contract.md gives it,
    // the same on both backends.
    let details: Vec<(String,)> = db.rows(
        "SELECT detail FROM message_events WHERE kind = 'action' AND mailbox = 'INBOX'",
        &[],
    );
    assert_eq!(details.len(), 6);
    for (d,) in &details {
        assert!(
            d.starts_with(
                r#"{"action":"move","target":"Processed","reason":"after_store","state":"done","result":""#
            ) && d.ends_with(r#""}"#),
            "{d}"
        );
    }
    // The archive keeps everything; the server's expunges are ordinary
    // `expunged` events, the bystander's row is not among them.
    assert_eq!(db.message_rows(), 1 + 6 + 8 + 4);
    assert_eq!(events(&db, "expunged", "INBOX"), 6);
    assert_eq!(events(&db, "expunged", "Deletes"), 4);
    let bystander_gone = db.count(
        "SELECT count(*) FROM message_feed WHERE mailbox = 'Deletes' AND uid = $1 AND expunged_at IS NULL",
        &[P::I(i64::from(bystander))],
    );
    assert_eq!(bystander_gone, 1);
}

fn delete_after_removes_only_old_stored_messages(backend: Backend) {
    let dc = dovecot();
    let mails = corpus::varied(6, 7);
    let mut c = dc.login(USER).expect("login");
    let mut old = Vec::new();
    for m in &mails[..3] {
        old.push(
            c.append_dated("INBOX", "01-Jan-2020 10:00:00 +0000", m)
                .expect("append")
                .expect("uid"),
        );
    }
    let recent = c
        .append("INBOX", &[], &mails[3])
        .expect("append")
        .expect("uid");
    // Another client's \Deleted mark on a recent message: it stays.
    let marked = c
        .append("INBOX", &["\\Deleted"], &mails[4])
        .expect("append")
        .expect("uid");
    c.logout().expect("logout");
    let mut s = setup(&dc, &["INBOX"], "delete_after = \"30d\"", "");
    let db = backend.attach(&mut s);
    let out = s.run(&["check"]);
    assert!(
        text(&out.stdout).contains("deletes stored messages older than 30 days"),
        "{}",
        text(&out.stdout)
    );
    s.sync_ok();
    let left: Vec<u32> = server(&dc, "INBOX")
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(left, [recent, marked]);
    // An old message that arrives now is not stored before this pass's
    // search... it is stored by the pass, then deleted in the same pass:
    // deletion follows storing, never precedes it.
    let mut c = dc.login(USER).expect("login");
    let late = c
        .append_dated("INBOX", "02-Jan-2020 10:00:00 +0000", &mails[5])
        .expect("append")
        .expect("uid");
    c.logout().expect("logout");
    s.sync_ok();
    let left: Vec<u32> = server(&dc, "INBOX")
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(left, [recent, marked]);
    let a = actions(&db, "INBOX");
    let mut expected: Vec<(u32, String, String)> = old
        .iter()
        .chain([&late])
        .map(|u| (*u, "delete".to_owned(), "done".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(a, expected);
    assert_eq!(db.message_rows(), 6, "the archive keeps every message");
}

#[test]
fn a_second_process_on_the_same_database_refuses() {
    let dc = dovecot();
    dc.append_many(USER, "INBOX", &corpus::varied(2, 5))
        .expect("append");
    let s = setup(&dc, &["INBOX"], "after_store = \"seen\"", "");
    let mut run = Running::spawn(&s, s.command(&["run"]));
    // Wait until `run` has stored the mail (so it holds the lock).
    wait_for("run to act", Duration::from_secs(60), || {
        s.db.exists()
            && s.db()
                .query_row(
                    "SELECT count(*) FROM actions WHERE state = 'done'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                == 2
    });
    let out = s.run(&["sync"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("another mailfeed") && err.contains("mail.db.lock"),
        "{err}"
    );
    // Read-only commands still work while `run` holds the lock.
    let status = s.run(&["status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let _ = run.0.kill();
    let _ = run.0.wait();
    // The start-up log says which folders mailfeed changes, and how.
    let log = run.log();
    assert!(
        log.contains("SELECT: marks each stored message \\Seen"),
        "{log}"
    );
    // The lock goes with the process.
    s.sync_ok();
}

/// SIGKILL at random moments of `sync` runs that store and move mail; new
/// mail arrives between runs. At the end every stored message is in
/// Processed exactly once, nothing is left in INBOX, and Processed holds
/// nothing that was not stored first.
fn sigkill_between_commit_and_action_moves_each_message_exactly_once(backend: Backend) {
    kill_loop(&dovecot(), 0xAC71_0000_0000_0015, &backend);
}

/// The same without MOVE: UID COPY, STORE and UID EXPUNGE, with the
/// `copying` record and the look in the destination after a kill.
fn sigkill_during_copy_store_expunge_moves_each_message_exactly_once(backend: Backend) {
    kill_loop(&dovecot_with(NO_MOVE), 0xAC71_0000_0000_0016, &backend);
}

fn kill_loop(dc: &Dovecot, seed: u64, backend: &Backend) {
    dc.create_folder(USER, "Processed").expect("create");
    let mut s = setup(
        dc,
        &["INBOX"],
        "after_store = \"move:Processed\"",
        "batch_size = 5",
    );
    let db = backend.attach(&mut s);
    let kills = rounds(backend, "MAILFEED_KILLS", 30, 12);
    let mut rng = support::rng::Rng::from_state(seed);
    let mut seed = 100;
    let mut window_us: u64 = 400_000;
    let (mut landed, mut spawned, mut between, mut mid_copy) = (0, 0, 0, 0);
    // At least `kills` kills, and more (up to four times as many) until one
    // has fallen between a commit and its action: on a loaded machine the
    // window moves, and a loop that never hit it would prove nothing.
    while landed < kills || (between == 0 && landed < kills * 4) {
        seed += 1;
        dc.append_many(USER, "INBOX", &corpus::varied(4, seed))
            .expect("append");
        spawned += 1;
        assert!(spawned < kills * 32, "kills keep missing running syncs");
        let before = db.feed_count("INBOX");
        let mut child = s
            .command(&["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let at = Duration::from_micros(rng.below_u64(window_us));
        std::thread::sleep(at);
        let finished = child.try_wait().expect("try_wait").is_some();
        if finished {
            window_us = (window_us * 3 / 4).max(5_000);
        } else {
            landed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // A kill before the run stored anything came too early (a slower
        // start, e.g. connecting to a database server): aim later.
        if !finished && db.feed_count("INBOX") == before {
            window_us = (window_us * 5 / 4).min(5_000_000);
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        db.assert_intact(&format!("kill {spawned}, at {at:?}"));
        // A kill that left stored messages with their move still open
        // fell between the commit and the action.
        if db.feed_count("INBOX") > 0 {
            let (open, copying) = db
                .try_rows::<(i64, i64)>(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'copying') FROM actions
                     WHERE state IN ('pending', 'copying', 'copied')",
                    &[],
                )
                .and_then(|r| r.first().copied())
                .unwrap_or((0, 0));
            if open > 0 {
                between += 1;
            } else if !finished && db.feed_count("INBOX") > before {
                // Stored and acted on before the kill came: aim earlier.
                window_us = (window_us * 7 / 8).max(5_000);
            }
            if copying > 0 {
                mid_copy += 1;
            }
        }
        // Nothing in Processed was moved before it was stored (a kill
        // before the schema was made leaves no tables, and nothing moved).
        let mut stored: Vec<Vec<u8>> = db
            .try_rows::<(Vec<u8>,)>(
                "SELECT raw FROM message_feed WHERE account = 'test' AND mailbox = 'INBOX'",
                &[],
            )
            .unwrap_or_default()
            .into_iter()
            .map(|(raw,)| raw)
            .collect();
        stored.sort();
        for (uid, _, body) in server(dc, "Processed") {
            assert!(
                stored.binary_search(&body).is_ok(),
                "Processed UID {uid} was never stored"
            );
        }
    }
    s.sync_ok();
    assert!(
        server(dc, "INBOX").is_empty(),
        "everything stored was moved"
    );
    let mut moved: Vec<Vec<u8>> = server(dc, "Processed")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    let stored = stored_bodies(&db, "INBOX");
    assert_eq!(
        moved.len(),
        stored.len(),
        "each stored message moved exactly once"
    );
    assert_eq!(moved, stored);
    let a = actions(&db, "INBOX");
    assert_eq!(a.len(), stored.len());
    assert!(
        a.iter().all(|(_, k, st)| k == "move" && st == "done"),
        "{a:?}"
    );
    eprintln!(
        "{landed} kills landed in {spawned} runs, {between} between a commit and its action ({mid_copy} during a copy); {} messages moved",
        stored.len()
    );
    assert!(between > 0, "no kill fell between a commit and its action");
}

/// Post-login capabilities of Dovecot 2.3 without MOVE (and, for
/// `NO_UIDPLUS`, without UIDPLUS too).
const NO_MOVE: &str = "imap_capability = IMAP4rev1 SASL-IR ID ENABLE IDLE LITERAL+ UIDPLUS CONDSTORE QRESYNC ESEARCH\n";
const NO_UIDPLUS: &str =
    "imap_capability = IMAP4rev1 SASL-IR ID ENABLE IDLE LITERAL+ CONDSTORE QRESYNC ESEARCH\n";

fn dovecot_with(extra: &str) -> Dovecot {
    Dovecot::start_with(support::dovecot::Options {
        users: vec![(USER.into(), PASS.into())],
        extra_config: extra.into(),
    })
    .expect("start dovecot")
}

fn without_move_a_move_is_copy_store_and_uid_expunge(backend: Backend) {
    let dc = dovecot_with(NO_MOVE);
    dc.create_folder(USER, "Processed").expect("create");
    // Stored before the action is configured, then marked \Deleted by
    // another client: the UID EXPUNGE of the moved messages leaves it.
    let mut c = dc.login(USER).expect("login");
    let bystander = c
        .append("INBOX", &["\\Deleted"], b"Subject: keep\r\n\r\nmine\r\n")
        .expect("append")
        .expect("uid");
    c.logout().expect("logout");
    let mut s = setup(&dc, &["INBOX"], "", "");
    let db = backend.attach(&mut s);
    s.sync_ok();
    let config = std::fs::read_to_string(&s.config).expect("config")
        + "\n[[accounts.folder]]\nname = \"INBOX\"\nafter_store = \"move:Processed\"\n";
    std::fs::write(&s.config, config).expect("config");
    let mails = corpus::varied(5, 11);
    dc.append_many(USER, "INBOX", &mails).expect("append");
    let out = s
        .command(&["sync"])
        .env("RUST_LOG", "mailfeed=trace")
        .output()
        .expect("sync");
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("UID COPY 2:6 Processed")
            && log.contains("UID STORE 2:6 +FLAGS.SILENT (\\Deleted)")
            && log.contains("UID EXPUNGE 2:6"),
        "{log}"
    );
    assert!(!log.contains("UID MOVE"), "MOVE was not offered");
    assert!(
        !log.lines().any(|l| l.trim_end().ends_with(" EXPUNGE")),
        "a bare EXPUNGE was sent"
    );
    let left: Vec<u32> = server(&dc, "INBOX")
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(left, [bystander]);
    let mut moved: Vec<Vec<u8>> = server(&dc, "Processed")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    let mut want: Vec<Vec<u8>> = db
        .feed("test", "INBOX")
        .into_iter()
        .filter(|(_, uid, _)| *uid != bystander)
        .map(|(_, _, b)| b)
        .collect();
    want.sort();
    assert_eq!(moved, want, "exactly the stored messages");
    assert_eq!(moved.len(), 5);
    assert_eq!(
        actions(&db, "INBOX")
            .iter()
            .map(|(u, k, st)| (*u, k.as_str(), st.as_str()))
            .collect::<Vec<_>>(),
        (2..=6).map(|u| (u, "move", "done")).collect::<Vec<_>>()
    );
}

fn without_uidplus_delete_and_move_are_refused_and_the_folder_is_only_read(backend: Backend) {
    let dc = dovecot_with(NO_UIDPLUS);
    dc.create_folder(USER, "Seen").expect("create");
    dc.append_many(USER, "INBOX", &corpus::varied(3, 12))
        .expect("append");
    dc.append_many(USER, "Seen", &corpus::varied(2, 13))
        .expect("append");
    let mut s = setup(
        &dc,
        &["INBOX", "Seen"],
        "after_store = \"delete\"\n\n[[accounts.folder]]\nname = \"Seen\"\nafter_store = \"seen\"\n",
        "",
    );
    let db = backend.attach(&mut s);
    let out = s.run(&["check"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("REFUSED INBOX: `delete` refused: the server does not offer UIDPLUS"),
        "{said}"
    );
    assert!(
        said.contains("changes Seen: SELECT: marks each stored message \\Seen"),
        "{said}"
    );
    let out = s.sync_ok();
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("UIDPLUS").count(),
        1,
        "one clear line for the refusal: {err}"
    );
    assert_eq!(server(&dc, "INBOX").len(), 3, "nothing deleted");
    assert!(actions(&db, "INBOX").is_empty(), "nothing queued for later");
    assert!(
        server(&dc, "Seen")
            .iter()
            .all(|(_, f, _)| f.iter().any(|f| f == "\\Seen"))
    );
}

/// Cuts at seeded points of the conversation (through the fault proxy)
/// while `move`, `seen` and `delete` run: every run that fails says so,
/// the next ones finish the work, and each stored message is acted on
/// exactly once.
fn a_cut_connection_during_the_actions_recovers(backend: Backend) {
    use support::fault_proxy::{Fault, FaultProxy};
    let dc = dovecot();
    for f in ["Processed", "Seen", "Deletes"] {
        dc.create_folder(USER, f).expect("create");
    }
    let extra = "after_store = \"move:Processed\"\n\n[[accounts.folder]]\nname = \"Seen\"\nafter_store = \"seen\"\n\n[[accounts.folder]]\nname = \"Deletes\"\nafter_store = \"delete\"\n";
    let load = |seed: u64| {
        dc.append_many(USER, "INBOX", &corpus::varied(4, seed * 3))
            .expect("append");
        dc.append_many(USER, "Seen", &corpus::varied(3, seed * 3 + 1))
            .expect("append");
        dc.append_many(USER, "Deletes", &corpus::varied(3, seed * 3 + 2))
            .expect("append");
    };
    let seeds = rounds(&backend, "MAILFEED_FAULT_SEEDS", 20, 8);
    // One database throughout; each round brings new mail.
    let proxy = FaultProxy::start(dc.plain_port(), |_| Fault::None);
    let mut s = setup_through(&dc, proxy.port(), extra);
    let db = backend.attach(&mut s);
    load(1000);
    s.sync_ok();
    let span = proxy.down_bytes().into_iter().max().unwrap_or(1);
    drop(proxy);
    let mut failed = 0;
    for seed in 0..seeds {
        load(seed);
        let proxy = FaultProxy::seeded(dc.plain_port(), seed, span);
        repoint(&mut s, proxy.port());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let out = s.run(&["sync"]);
            if out.status.success() {
                break;
            }
            failed += 1;
            let all = text(&out.stdout) + &text(&out.stderr);
            assert!(!all.contains("panicked"), "seed {seed}: {all}");
            assert!(all.contains("FAILED test/"), "seed {seed}: {all}");
            assert!(
                attempts < 12,
                "seed {seed}: still failing: {all}\n{:?}",
                proxy.log()
            );
        }
    }
    // One clean pass records the last expunges.
    let proxy = FaultProxy::start(dc.plain_port(), |_| Fault::None);
    repoint(&mut s, proxy.port());
    s.sync_ok();
    assert!(server(&dc, "INBOX").is_empty());
    assert!(server(&dc, "Deletes").is_empty());
    assert!(
        server(&dc, "Seen")
            .iter()
            .all(|(_, f, _)| f.iter().any(|f| f == "\\Seen"))
    );
    let mut moved: Vec<Vec<u8>> = server(&dc, "Processed")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    assert_eq!(moved, stored_bodies(&db, "INBOX"), "moved once each");
    let n = (seeds as usize + 1) * 4;
    assert_eq!(moved.len(), n);
    for (folder, kind, n) in [
        ("INBOX", "move", n),
        ("Seen", "seen", (seeds as usize + 1) * 3),
        ("Deletes", "delete", (seeds as usize + 1) * 3),
    ] {
        let a = actions(&db, folder);
        assert_eq!(a.len(), n, "{folder}");
        assert!(
            a.iter().all(|(_, k, st)| k == kind && st == "done"),
            "{folder}: {a:?}"
        );
    }
    eprintln!("{seeds} seeds, {failed} runs cut");
}

fn setup_through(dc: &Dovecot, port: u16, extra: &str) -> Setup {
    let mut a = Account::plain(dc, USER, PASS, &["INBOX", "Seen", "Deletes"]);
    a.port = port;
    a.extra = extra;
    Setup::new(&[a], "timeout = \"1s\"")
}

/// Points the setup's account at another port (a new proxy).
fn repoint(s: &mut Setup, port: u16) {
    let text = std::fs::read_to_string(&s.config).expect("config");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("port = ") {
                format!("port = {port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&s.config, text).expect("config");
}

/// The same on Cyrus and Courier: `seen`, `move` and `delete` act on
/// exactly the stored messages, a `\Deleted` bystander survives, the
/// archive keeps every row.
fn on_other_server<S: TestServer>(srv: &S, prefix: &str) {
    let kind = srv.kind();
    let (seen_f, dels_f, dest) = (
        format!("{prefix}Seen"),
        format!("{prefix}Deletes"),
        format!("{prefix}Processed"),
    );
    for f in [&seen_f, &dels_f, &dest] {
        srv.create_folder(USER, f).expect("create");
    }
    let bystander = srv
        .append_many(USER, &dels_f, &corpus::varied(1, 40))
        .expect("append")[0];
    let folders = ["INBOX", seen_f.as_str(), dels_f.as_str()];
    let account = Account {
        name: "test",
        port: srv.plain_port(),
        mode: Mode::Plain,
        ca_file: None,
        user: USER,
        password: PASS,
        folders: &folders,
        extra: "",
    };
    let mut s = Setup::new(&[account], "rescan_every = 1");
    let db = Backend::Sqlite.attach(&mut s);
    s.sync_ok();
    let mut c = srv.login(USER).expect("login");
    c.select(&dels_f).expect("select");
    c.add_flags(&[bystander], &["\\Deleted"]).expect("flag");
    c.logout().expect("logout");
    let config = std::fs::read_to_string(&s.config).expect("config")
        + &format!(
            "\n[[accounts.folder]]\nname = \"INBOX\"\nafter_store = \"move:{dest}\"\n\n[[accounts.folder]]\nname = \"{seen_f}\"\nafter_store = \"seen\"\n\n[[accounts.folder]]\nname = \"{dels_f}\"\nafter_store = \"delete\"\n"
        );
    std::fs::write(&s.config, config).expect("config");
    srv.append_many(USER, "INBOX", &corpus::varied(4, 41))
        .expect("append");
    srv.append_many(USER, &seen_f, &corpus::varied(3, 42))
        .expect("append");
    srv.append_many(USER, &dels_f, &corpus::varied(3, 43))
        .expect("append");
    let out = s.run(&["check"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("changes INBOX: SELECT: moves"),
        "{kind}: {said}"
    );
    s.sync_ok();
    s.sync_ok();
    assert!(server(srv, "INBOX").is_empty(), "{kind}");
    let mut moved: Vec<Vec<u8>> = server(srv, &dest).into_iter().map(|(_, _, b)| b).collect();
    moved.sort();
    assert_eq!(moved, stored_bodies(&db, "INBOX"), "{kind}");
    assert_eq!(moved.len(), 4, "{kind}");
    assert!(
        server(srv, &seen_f)
            .iter()
            .all(|(_, f, _)| f.iter().any(|f| f == "\\Seen")),
        "{kind}"
    );
    let left: Vec<u32> = server(srv, &dels_f)
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(left, [bystander], "{kind}");
    for (folder, n) in [("INBOX", 4), (seen_f.as_str(), 3), (dels_f.as_str(), 3)] {
        let a = actions(&db, folder);
        assert_eq!(a.len(), n, "{kind} {folder}: {a:?}");
        assert!(
            a.iter().all(|(_, _, st)| st == "done"),
            "{kind} {folder}: {a:?}"
        );
    }
    assert_eq!(db.message_rows(), 1 + 4 + 3 + 3, "{kind}");
    assert_eq!(events(&db, "expunged", "INBOX"), 4, "{kind}");
    assert_eq!(events(&db, "expunged", &dels_f), 3, "{kind}");
}

#[test]
fn cyrus_seen_move_delete() {
    let cy = Cyrus::start_with_users(&[(USER, PASS)]).expect("start Cyrus");
    on_other_server(&cy, "");
}

#[test]
fn courier_seen_move_delete() {
    let co = Courier::start_with_users(&[(USER, PASS)]).expect("start Courier");
    on_other_server(&co, "INBOX.");
}

/// A run killed after recording `copying` and sending UID COPY, before the
/// answer: for message 1 the server made the copy, for message 2 it did
/// not. The next run looks in the destination by Message-ID, copies only
/// message 2, and expunges both: Processed ends with each message once.
fn a_copy_cut_off_before_its_answer_is_not_made_twice(backend: Backend) {
    let dc = dovecot_with(NO_MOVE);
    let mails = corpus::varied(3, 21);
    let uids = dc.append_many(USER, "INBOX", &mails).expect("append");
    let mut s = setup(&dc, &["INBOX"], "after_store = \"move:Processed\"", "");
    let db = backend.attach(&mut s);
    // Processed is missing: the moves stay pending, durably marked.
    assert!(!s.run(&["sync"]).status.success());
    // What the killed run had done.
    let mut c = dc.login(USER).expect("login");
    c.create("Processed").expect("create");
    c.select("INBOX").expect("select");
    c.run(&format!("UID COPY {} Processed", uids[0]))
        .expect("copy");
    c.logout().expect("logout");
    db.execute(
        "UPDATE actions SET state = 'copying' WHERE message_id IN
         (SELECT id FROM messages WHERE uid IN ($1, $2))",
        &[P::I(i64::from(uids[0])), P::I(i64::from(uids[1]))],
    );
    let out = s
        .command(&["sync"])
        .env("RUST_LOG", "mailfeed=info")
        .output()
        .expect("sync");
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("looked in the destination") && log.contains("already_copied=1"),
        "{log}"
    );
    assert!(server(&dc, "INBOX").is_empty());
    let mut moved: Vec<Vec<u8>> = server(&dc, "Processed")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    assert_eq!(moved, stored_bodies(&db, "INBOX"), "each message once");
    assert!(
        actions(&db, "INBOX")
            .iter()
            .all(|(_, k, st)| k == "move" && st == "done")
    );
}

/// `create_destination = true`: a missing destination (non-ASCII name,
/// so modified UTF-7 on the wire) is created once, then the moves run.
fn a_missing_destination_is_created_when_asked(backend: Backend) {
    let dc = dovecot();
    dc.append_many(USER, "INBOX", &corpus::varied(2, 31))
        .expect("append");
    let mut s = setup(
        &dc,
        &["INBOX"],
        "after_store = \"move:Erledigt/Büro\"\ncreate_destination = true",
        "",
    );
    let db = backend.attach(&mut s);
    s.sync_ok();
    assert!(server(&dc, "INBOX").is_empty());
    let mut moved: Vec<Vec<u8>> = server(&dc, "Erledigt/Büro")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    assert_eq!(moved, stored_bodies(&db, "INBOX"));
    assert_eq!(moved.len(), 2);
}

/// PostgreSQL with leases, through the store's own API: the instance
/// holding an account's lease may act and record; when its renewals stop,
/// it holds back once less than a third of the period is left; once the
/// lease has run out and another instance has claimed it, it may neither act (the
/// confirmation before each batch of commands names the holder) nor
/// record an outcome (the fence check of the writer's commit refuses it,
/// and nothing of that transaction is kept); and a `sync` without leases
/// does not act while a live instance holds the account.
#[test]
fn only_the_lease_holder_acts_on_postgres() {
    use mailfeed::config::{PostgresStore, StoreConfig, Synchronous};
    use mailfeed::imap::{Uid, UidValidity};
    use mailfeed::secret::Secret;
    use mailfeed::store::actions::{ActionKind, Outcome};
    use mailfeed::store::{LeaseKeeper, NewMessage, StoreError, StoreHandle};

    let server = support::postgres::Postgres::start().expect("starting a private PostgreSQL");
    let url = server.create_database().expect("database");
    let pg = PostgresStore {
        url: Secret::new(url.clone()),
        password_file: None,
        ca_file: None,
        lease_period: Duration::from_secs(3),
    };
    let config = StoreConfig {
        path: std::path::PathBuf::new(),
        synchronous: Synchronous::Normal,
        postgres: Some(pg.clone()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let account = vec!["acct".to_owned()];
    let mut a = LeaseKeeper::open(&pg, "instance-a".into(), account.clone()).expect("keeper a");
    assert_eq!(a.tick().expect("tick").held, account);
    let (store, writer) = StoreHandle::open_leased(&config, 1 << 20, a.book()).expect("store");
    let uv = UidValidity(7);
    let (mb, ledger, open) = rt.block_on(async {
        let (mb, _) = store
            .ensure_mailbox("acct", "INBOX")
            .await
            .expect("mailbox");
        store.begin_generation(mb, uv).await.expect("generation");
        store
            .set_mailbox_action(mb, Some((ActionKind::Seen, None)))
            .await
            .expect("action");
        for uid in 1..=3u32 {
            let raw = format!("Message-ID: <{uid}@lease>\r\n\r\nbody {uid}\r\n").into_bytes();
            store
                .save(NewMessage {
                    mailbox: mb,
                    uidvalidity: uv,
                    uid: Uid(uid),
                    internal_date: None,
                    flags: vec![],
                    modseq: None,
                    size: raw.len() as u64,
                    raw,
                    truncated: false,
                    gmail: None,
                })
                .await
                .expect("save");
        }
        store.advance_cursor(mb, uv, 3).await.expect("cursor");
        store.commit().await.expect("commit");
        let ledger = store.ledger().await.expect("ledger").expect("a ledger");
        assert_eq!(ledger.mark_durable(mb).await.expect("barrier"), 3);
        ledger.confirm(mb).await.expect("the holder may act");
        let open = ledger.open_actions(mb, uv, 10).await.expect("open");
        assert_eq!(open.len(), 3);
        ledger
            .record(mb, vec![(open[0].id, Outcome::Done("marked".into()))])
            .await
            .expect("the holder records");
        (mb, ledger, open)
    });

    // Instance a stops renewing (a long pause): with less than a third of
    // the period left, it sends nothing more ...
    support::run::wait_for(
        "instance a to hold back as its lease runs out",
        Duration::from_secs(30),
        || {
            rt.block_on(ledger.confirm(mb))
                .is_err_and(|e| matches!(e, StoreError::LeaseRunningOut { .. }))
        },
    );
    // ... and b claims the lease once it has run out.
    let mut b = LeaseKeeper::open(&pg, "instance-b".into(), account.clone()).expect("keeper b");
    support::run::wait_for(
        "instance b to claim the lease",
        Duration::from_secs(60),
        || b.tick().is_ok_and(|t| t.held == account),
    );
    rt.block_on(async {
        let e = ledger.confirm(mb).await.expect_err("a holds no lease now");
        assert!(
            matches!(&e, StoreError::LeaseLost { holder, .. } if holder == "instance-b"),
            "{e}"
        );
        let e = ledger
            .record(mb, vec![(open[1].id, Outcome::Done("late".into()))])
            .await
            .expect_err("a's commit is fenced off");
        assert!(e.to_string().contains("instance-b"), "{e}");
    });
    drop(ledger);
    drop(store);
    writer.join();
    let states = || -> Vec<(i64, String)> {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.query(
            "SELECT m.uid, a.state FROM actions a JOIN messages m ON m.id = a.message_id ORDER BY m.uid",
            &[],
        )
        .expect("states")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    assert_eq!(
        states(),
        [
            (1, "done".to_owned()),
            (2, "pending".to_owned()),
            (3, "pending".to_owned())
        ],
        "only the holder's outcome was kept"
    );

    // A `sync` (no leases) on the same store: not while b holds it ...
    assert_eq!(b.tick().expect("renew").held, account);
    let (store, writer) = StoreHandle::open(&config, 1 << 20).expect("store");
    rt.block_on(async {
        let ledger = store.ledger().await.expect("ledger").expect("a ledger");
        let e = ledger.confirm(mb).await.expect_err("b holds the lease");
        assert!(
            matches!(&e, StoreError::LeaseHeld { holder, .. } if holder == "instance-b"),
            "{e}"
        );
    });
    // ... and once b has left, it may.
    b.leave().expect("leave");
    rt.block_on(async {
        let ledger = store.ledger().await.expect("ledger").expect("a ledger");
        ledger.confirm(mb).await.expect("nobody holds the lease");
    });
    drop(store);
    writer.join();
    drop(a);
}

/// Two `mailfeed run` instances share six accounts of the private Dovecot
/// on one PostgreSQL, each account with `after_store = "move:Processed"`:
/// each acts only for the accounts it holds. With the destination gone
/// for a while, new mail is stored and its moves stay pending; one
/// instance is killed (SIGKILL) with its moves pending, and the other takes
/// its accounts over and finishes them once the destination is back. Every stored message ends in Processed exactly once, none
/// is left in INBOX, and each action is done once with one event.
#[test]
fn two_instances_move_each_message_once_across_a_kill_on_postgres() {
    use support::run::Running;
    let users: Vec<(String, String)> = (0..6)
        .map(|i| (format!("share{i}"), format!("share{i}-pw-Kx")))
        .collect();
    let refs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let dc = Dovecot::start_with_users(&refs).expect("start dovecot");
    let accounts: Vec<Account<'_>> = users
        .iter()
        .map(|(u, p)| Account {
            name: u,
            port: dc.plain_port(),
            mode: Mode::Plain,
            ca_file: None,
            user: u,
            password: p,
            folders: &["INBOX"],
            extra: "after_store = \"move:Processed\"",
        })
        .collect();
    for (i, (u, _)) in users.iter().enumerate() {
        dc.create_folder(u, "Processed").expect("create");
        dc.append_many(u, "INBOX", &corpus::varied(5, 500 + i as u64))
            .expect("append");
    }
    let mut s = Setup::new(&accounts, "");
    let backend = Backend::postgres();
    let db = backend.attach(&mut s);
    let text = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(
        &s.config,
        text.replacen("\n\n[sync]", "\nlease_period = \"3s\"\n\n[sync]", 1),
    )
    .expect("config");
    let a = Running::start(&s, "info");
    let b = {
        let path = s.dir.path().join("run-b.log");
        let log = std::fs::File::create(&path).expect("run-b.log");
        let child = s
            .command(&["run"])
            .env("RUST_LOG", "mailfeed=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        Running(child, path)
    };
    let moved = |u: &str| server_of(&dc, u, "Processed");
    // Each look logs in to every mailbox: not more often than this.
    let all_moved = |n: usize| {
        std::thread::sleep(Duration::from_millis(200));
        users
            .iter()
            .all(|(u, _)| server_of(&dc, u, "INBOX").is_empty() && moved(u).len() == n)
    };
    wait_for(
        "both instances to move the first mail",
        Duration::from_secs(120),
        || all_moved(5),
    );
    // The first to start may hold every account at first; the shares
    // even out within a few lease ticks.
    let holders = || {
        db.rows::<(String, i64)>(
            "SELECT owner, count(*) FROM leases WHERE owner IS NOT NULL AND expires_at > now()
             GROUP BY owner",
            &[],
        )
    };
    wait_for(
        "the instances to share the accounts",
        Duration::from_secs(60),
        || {
            let h = holders();
            h.len() == 2 && h.iter().all(|(_, n)| *n == 3)
        },
    );
    // The destination goes away (renamed): the next moves fail and stay
    // pending, durably marked. New mail is stored by both instances; then
    // instance a is killed with its moves pending, the destination comes
    // back, and instance b must finish a's moves once it has a's leases.
    let rename = |from: &str, to: &str| {
        for (u, _) in &users {
            let mut c = dc.login(u).expect("login");
            c.run(&format!("RENAME {from} {to}")).expect("rename");
            c.logout().expect("logout");
        }
    };
    rename("Processed", "Held");
    for (i, (u, _)) in users.iter().enumerate() {
        dc.append_many(u, "INBOX", &corpus::varied(5, 600 + i as u64))
            .expect("append");
    }
    let of_a = format!("%/{}/%", a.0.id());
    let pending_of = |like: &str| {
        db.count(
            "SELECT count(*) FROM actions x JOIN messages m ON m.id = x.message_id
             JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts c ON c.id = b.account_id
             JOIN leases l ON l.account = c.name
             WHERE l.owner LIKE $1 AND x.state = 'pending' AND x.durable_at IS NOT NULL",
            &[P::T(like)],
        )
    };
    wait_for(
        "both instances to store the new mail, moves pending",
        Duration::from_secs(120),
        || pending_of("%") == 30,
    );
    assert_eq!(pending_of(&of_a), 15, "a's three accounts");
    drop(a);
    rename("Held", "Processed");
    wait_for(
        "the survivor to finish every account",
        Duration::from_secs(180),
        || all_moved(10),
    );
    let survivor = format!("/{}/", b.0.id());
    let h = holders();
    assert!(
        h.len() == 1 && h[0].0.contains(&survivor) && h[0].1 == 6,
        "the survivor holds every account: {h:?}"
    );
    drop(b);
    for (u, _) in &users {
        let mut got = moved(u);
        got.sort();
        let mut stored: Vec<Vec<u8>> = db.feed(u, "INBOX").into_iter().map(|(_, _, b)| b).collect();
        stored.sort();
        assert_eq!(got, stored, "{u}: each stored message moved exactly once");
        let (actions, events) = (
            db.count(
                "SELECT count(*) FROM actions a JOIN messages m ON m.id = a.message_id
                 JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts c ON c.id = b.account_id
                 WHERE c.name = $1 AND a.kind = 'move' AND a.state = 'done'",
                &[P::T(u)],
            ),
            db.count(
                "SELECT count(*) FROM message_events WHERE account = $1 AND kind = 'action'",
                &[P::T(u)],
            ),
        );
        assert_eq!((actions, events), (10, 10), "{u}");
    }
}

/// BODY[] of every message in a user's folder.
fn server_of(dc: &Dovecot, user: &str, folder: &str) -> Vec<Vec<u8>> {
    let mut c = dc.login(user).expect("login");
    c.examine(folder).expect("examine");
    let bodies = c.fetch_all().expect("bodies");
    c.logout().expect("logout");
    bodies.into_iter().map(|(_, b)| b).collect()
}
