//! Actions on the server after the commit, against a real, private Dovecot:
//! `seen`, `move:Processed` and `delete` act on exactly the stored messages
//! (a message another client marked `\Deleted` survives: never a bare
//! EXPUNGE); a missing destination fails clearly and nothing is lost; a
//! SIGKILL loop between commit and action ends with every stored message
//! moved exactly once and none moved before it was stored; `delete_after`
//! removes only old, stored messages; a second process on the same
//! database refuses.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::corpus;
use support::courier::Courier;
use support::cyrus::Cyrus;
use support::dovecot::Dovecot;
use support::mailfeed::{Account, Mode, Setup};
use support::run::{Running, wait_for};
use support::server::TestServer;

const USER: &str = "quinn";
const PASS: &str = "quinn-pw-A5";

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

fn stored_bodies(setup: &Setup, mailbox: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = setup
        .stored("test", mailbox)
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    v.sort();
    v
}

/// (uid, kind, state) of every action of a mailbox.
fn actions(setup: &Setup, mailbox: &str) -> Vec<(u32, String, String)> {
    setup
        .db()
        .prepare(
            "SELECT m.uid, a.kind, a.state FROM actions a JOIN messages m ON m.id = a.message_id
             JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = ?1 ORDER BY m.uid, a.kind",
        )
        .and_then(|mut s| {
            s.query_map([mailbox], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("actions")
}

fn events(setup: &Setup, kind: &str, mailbox: &str) -> i64 {
    setup
        .db()
        .query_row(
            "SELECT count(*) FROM message_events WHERE kind = ?1 AND mailbox = ?2",
            [kind, mailbox],
            |r| r.get(0),
        )
        .expect("events")
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

#[test]
fn seen_move_and_delete_act_on_exactly_the_stored_messages() {
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
    let s = setup(&dc, &folders, "", "");
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
        actions(&s, "INBOX")
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
        stored_bodies(&s, "INBOX"),
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
        let a = actions(&s, folder);
        assert_eq!(a.len(), n, "{folder}: {a:?}");
        assert!(
            a.iter().all(|(_, k, st)| k == kind && st == "done"),
            "{folder}: {a:?}"
        );
        assert_eq!(events(&s, "action", folder), n as i64, "{folder}");
    }
    // The archive keeps everything; the server's expunges are ordinary
    // `expunged` events, the bystander's row is not among them.
    assert_eq!(s.message_rows(), 1 + 6 + 8 + 4);
    assert_eq!(events(&s, "expunged", "INBOX"), 6);
    assert_eq!(events(&s, "expunged", "Deletes"), 4);
    let bystander_gone: i64 = s
        .db()
        .query_row(
            "SELECT count(*) FROM message_feed WHERE mailbox = 'Deletes' AND uid = ?1 AND expunged_at IS NULL",
            [bystander],
            |r| r.get(0),
        )
        .expect("bystander");
    assert_eq!(bystander_gone, 1);
}

#[test]
fn delete_after_removes_only_old_stored_messages() {
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
    let s = setup(&dc, &["INBOX"], "delete_after = \"30d\"", "");
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
    let a = actions(&s, "INBOX");
    let mut expected: Vec<(u32, String, String)> = old
        .iter()
        .chain([&late])
        .map(|u| (*u, "delete".to_owned(), "done".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(a, expected);
    assert_eq!(s.message_rows(), 6, "the archive keeps every message");
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
#[test]
fn sigkill_between_commit_and_action_moves_each_message_exactly_once() {
    kill_loop(&dovecot(), 0xAC71_0000_0000_0015);
}

/// The same without MOVE: UID COPY, STORE and UID EXPUNGE, with the
/// `copying` record and the look in the destination after a kill.
#[test]
fn sigkill_during_copy_store_expunge_moves_each_message_exactly_once() {
    kill_loop(&dovecot_with(NO_MOVE), 0xAC71_0000_0000_0016);
}

fn kill_loop(dc: &Dovecot, seed: u64) {
    dc.create_folder(USER, "Processed").expect("create");
    let s = setup(
        dc,
        &["INBOX"],
        "after_store = \"move:Processed\"",
        "batch_size = 5",
    );
    let kills: u64 = std::env::var("MAILFEED_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut rng = support::rng::Rng::from_state(seed);
    let mut seed = 100;
    let mut window_us: u64 = 400_000;
    let (mut landed, mut spawned, mut between, mut mid_copy) = (0, 0, 0, 0);
    while landed < kills {
        seed += 1;
        dc.append_many(USER, "INBOX", &corpus::varied(4, seed))
            .expect("append");
        spawned += 1;
        assert!(spawned < kills * 8, "kills keep missing running syncs");
        let mut child = s
            .command(&["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let at = Duration::from_micros(rng.below_u64(window_us));
        std::thread::sleep(at);
        if child.try_wait().expect("try_wait").is_some() {
            window_us = (window_us * 3 / 4).max(5_000);
        } else {
            landed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        if s.db.exists() {
            let ok: String = s
                .db()
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity");
            assert_eq!(ok, "ok");
        }
        // A kill that left stored messages with their move still open
        // fell between the commit and the action.
        if s.db.exists() && s.feed_count("INBOX") > 0 {
            let (open, copying): (i64, i64) = s
                .db()
                .query_row(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'copying') FROM actions
                     WHERE state IN ('pending', 'copying', 'copied')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap_or((0, 0));
            if open > 0 {
                between += 1;
            }
            if copying > 0 {
                mid_copy += 1;
            }
        }
        // Nothing in Processed was moved before it was stored (a kill
        // before the schema was made leaves no tables, and nothing moved).
        let ready: i64 = s
            .db()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'message_feed'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        let stored = if ready > 0 {
            stored_bodies(&s, "INBOX")
        } else {
            Vec::new()
        };
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
    let stored = stored_bodies(&s, "INBOX");
    assert_eq!(
        moved.len(),
        stored.len(),
        "each stored message moved exactly once"
    );
    assert_eq!(moved, stored);
    let a = actions(&s, "INBOX");
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

#[test]
fn without_move_a_move_is_copy_store_and_uid_expunge() {
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
    let s = setup(&dc, &["INBOX"], "", "");
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
    let mut want: Vec<Vec<u8>> = s
        .stored("test", "INBOX")
        .into_iter()
        .filter(|(_, uid, _)| *uid != bystander)
        .map(|(_, _, b)| b)
        .collect();
    want.sort();
    assert_eq!(moved, want, "exactly the stored messages");
    assert_eq!(moved.len(), 5);
    assert_eq!(
        actions(&s, "INBOX")
            .iter()
            .map(|(u, k, st)| (*u, k.as_str(), st.as_str()))
            .collect::<Vec<_>>(),
        (2..=6).map(|u| (u, "move", "done")).collect::<Vec<_>>()
    );
}

#[test]
fn without_uidplus_delete_and_move_are_refused_and_the_folder_is_only_read() {
    let dc = dovecot_with(NO_UIDPLUS);
    dc.create_folder(USER, "Seen").expect("create");
    dc.append_many(USER, "INBOX", &corpus::varied(3, 12))
        .expect("append");
    dc.append_many(USER, "Seen", &corpus::varied(2, 13))
        .expect("append");
    let s = setup(
        &dc,
        &["INBOX", "Seen"],
        "after_store = \"delete\"\n\n[[accounts.folder]]\nname = \"Seen\"\nafter_store = \"seen\"\n",
        "",
    );
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
    assert!(actions(&s, "INBOX").is_empty(), "nothing queued for later");
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
#[test]
fn a_cut_connection_during_the_actions_recovers() {
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
    let seeds: u64 = std::env::var("MAILFEED_FAULT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // One database throughout; each round brings new mail.
    let proxy = FaultProxy::start(dc.plain_port(), |_| Fault::None);
    let mut s = setup_through(&dc, proxy.port(), extra);
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
    assert_eq!(moved, stored_bodies(&s, "INBOX"), "moved once each");
    let n = (seeds as usize + 1) * 4;
    assert_eq!(moved.len(), n);
    for (folder, kind, n) in [
        ("INBOX", "move", n),
        ("Seen", "seen", (seeds as usize + 1) * 3),
        ("Deletes", "delete", (seeds as usize + 1) * 3),
    ] {
        let a = actions(&s, folder);
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
    let s = Setup::new(&[account], "rescan_every = 1");
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
    assert_eq!(moved, stored_bodies(&s, "INBOX"), "{kind}");
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
        let a = actions(&s, folder);
        assert_eq!(a.len(), n, "{kind} {folder}: {a:?}");
        assert!(
            a.iter().all(|(_, _, st)| st == "done"),
            "{kind} {folder}: {a:?}"
        );
    }
    assert_eq!(s.message_rows(), 1 + 4 + 3 + 3, "{kind}");
    assert_eq!(events(&s, "expunged", "INBOX"), 4, "{kind}");
    assert_eq!(events(&s, "expunged", &dels_f), 3, "{kind}");
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
#[test]
fn a_copy_cut_off_before_its_answer_is_not_made_twice() {
    let dc = dovecot_with(NO_MOVE);
    let mails = corpus::varied(3, 21);
    let uids = dc.append_many(USER, "INBOX", &mails).expect("append");
    let s = setup(&dc, &["INBOX"], "after_store = \"move:Processed\"", "");
    // Processed is missing: the moves stay pending, durably marked.
    assert!(!s.run(&["sync"]).status.success());
    // What the killed run had done.
    let mut c = dc.login(USER).expect("login");
    c.create("Processed").expect("create");
    c.select("INBOX").expect("select");
    c.run(&format!("UID COPY {} Processed", uids[0]))
        .expect("copy");
    c.logout().expect("logout");
    s.db()
        .execute(
            "UPDATE actions SET state = 'copying' WHERE message_id IN
             (SELECT id FROM messages WHERE uid IN (?1, ?2))",
            [uids[0], uids[1]],
        )
        .expect("copying");
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
    assert_eq!(moved, stored_bodies(&s, "INBOX"), "each message once");
    assert!(
        actions(&s, "INBOX")
            .iter()
            .all(|(_, k, st)| k == "move" && st == "done")
    );
}

/// `create_destination = true`: a missing destination (non-ASCII name,
/// so modified UTF-7 on the wire) is created once, then the moves run.
#[test]
fn a_missing_destination_is_created_when_asked() {
    let dc = dovecot();
    dc.append_many(USER, "INBOX", &corpus::varied(2, 31))
        .expect("append");
    let s = setup(
        &dc,
        &["INBOX"],
        "after_store = \"move:Erledigt/Büro\"\ncreate_destination = true",
        "",
    );
    s.sync_ok();
    assert!(server(&dc, "INBOX").is_empty());
    let mut moved: Vec<Vec<u8>> = server(&dc, "Erledigt/Büro")
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    moved.sort();
    assert_eq!(moved, stored_bodies(&s, "INBOX"));
    assert_eq!(moved.len(), 2);
}
