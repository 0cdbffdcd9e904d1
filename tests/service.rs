//! `mailfeed run` as a service against a real Dovecot: IDLE latency, many
//! folders and accounts, reconnects after the server restarts, SIGTERM during
//! a sync, SIGHUP reload, a blackholed connection, and the systemd unit.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::{Dovecot, Options, capabilities_without};
use support::mailfeed::{Account, Setup, assert_mirror};
use support::run::{Running, SIGHUP, SIGTERM, wait_for};

const USER: &str = "bob";
const PASS: &str = "bob-pw-77";

fn synced_once(setup: &Setup, mailbox: &str) -> bool {
    let Ok(conn) = rusqlite::Connection::open(&setup.db) else {
        return false;
    };
    conn.query_row(
        "SELECT last_sync_at IS NOT NULL FROM mailboxes WHERE name = ?1",
        [mailbox],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

/// Whether the message with this Message-ID is at or below the search
/// watermark, and so found by search.
fn indexed(setup: &Setup, message_id: &str) -> bool {
    let Ok(conn) = rusqlite::Connection::open(&setup.db) else {
        return false;
    };
    conn.query_row(
        "SELECT count(*) FROM message_feed f, search_watermark w
         WHERE f.message_id = ?1 AND f.id <= w.indexed_through
           AND f.id IN (SELECT rowid FROM message_search WHERE message_search MATCH 'idle')",
        [message_id],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n == 1)
}

#[test]
fn idle_delivers_new_mail_fast() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(5, 9))
        .expect("append");
    // The server's own notification delay, seen by a bare IDLE client: the
    // floor under any client's latency.
    let mut raw = Vec::new();
    for i in 0..5 {
        let mut watcher = dc.login(USER).expect("login");
        watcher.examine("INBOX").expect("examine");
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let seen = watcher.idle_wait(Duration::from_secs(5)).expect("idle");
            tx.send(Instant::now()).expect("send");
            seen
        });
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        let msg = format!("Subject: raw {i}\r\n\r\nx\r\n");
        dc.append(USER, "INBOX", msg.as_bytes()).expect("append");
        let at = rx.recv().expect("recv");
        assert!(
            h.join()
                .expect("join")
                .iter()
                .any(|l| l.ends_with("EXISTS"))
        );
        raw.push(at - t0);
    }
    raw.sort();
    let raw_median = raw[raw.len() / 2];
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    let _run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(20), || {
        setup.feed_count("INBOX") == 10
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::new();
    let mut search_lags = Vec::new();
    let mut client = dc.login(USER).expect("login");
    for i in 0..20 {
        let before = setup.feed_count("INBOX");
        let msg =
            format!("From: a@b\r\nSubject: idle {i}\r\nMessage-ID: <idle{i}@t>\r\n\r\nhi\r\n");
        let t0 = Instant::now();
        client.append("INBOX", &[], msg.as_bytes()).expect("append");
        wait_for("IDLE delivery", Duration::from_secs(2), || {
            setup.feed_count("INBOX") == before + 1
        });
        latencies.push(t0.elapsed());
        // The search index follows the feed within seconds while `run` runs.
        search_lags.push(wait_for(
            "the search index",
            Duration::from_secs(10),
            || indexed(&setup, &format!("idle{i}@t")),
        ));
    }
    search_lags.sort();
    eprintln!(
        "search index after the feed: median {:?}, max {:?}",
        search_lags[search_lags.len() / 2],
        search_lags[search_lags.len() - 1]
    );
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "IDLE latency over 20 trials: median {median:?}, max {:?}; a bare IDLE client sees EXISTS after {raw_median:?} (median of 5)",
        latencies[19]
    );
    assert!(median < Duration::from_secs(2));
    // What mailfeed adds on top of the server's notification delay (fetch,
    // parse, commit) must stay small.
    assert!(
        median < raw_median + Duration::from_millis(250),
        "mailfeed adds {:?} to the server's {raw_median:?}",
        median.saturating_sub(raw_median)
    );
    assert_mirror(&setup, &dc, USER, "test", "INBOX");
}

#[test]
fn many_folders_and_two_accounts_at_once() {
    // Without NOTIFY, so each folder needs a connection of its own.
    let mut dc = Dovecot::start_with(Options {
        users: vec![(USER.into(), PASS.into())],
        extra_config: capabilities_without(&["NOTIFY"]),
    })
    .expect("dovecot");
    dc.add_user("carol", "carol-pw").expect("user");
    for f in ["A", "B", "C"] {
        dc.create_folder(USER, f).expect("create");
    }
    let mut a1 = Account::plain(&dc, USER, PASS, &["A", "B", "C"]);
    a1.name = "bob";
    // Two connections for three folders: two IDLE, one polled.
    a1.extra = "max_connections = 2\npoll_interval = \"1s\"";
    let mut a2 = Account::plain(&dc, "carol", "carol-pw", &["INBOX"]);
    a2.name = "carol";
    let setup = Setup::new(&[a1, a2], "");
    let _run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(20), || {
        ["A", "B", "C", "INBOX"]
            .iter()
            .all(|m| synced_once(&setup, m))
    });
    for f in ["A", "B", "C"] {
        dc.append(USER, f, format!("Subject: {f}\r\n\r\nx\r\n").as_bytes())
            .expect("append");
    }
    dc.append("carol", "INBOX", b"Subject: c\r\n\r\ny\r\n")
        .expect("append");
    wait_for("all four messages", Duration::from_secs(10), || {
        ["A", "B", "C", "INBOX"]
            .iter()
            .all(|m| setup.feed_count(m) == 1)
    });
    // `max_connections` holds: one IDLE watcher and the poller.
    assert_eq!(dc.connections(USER).expect("doveadm who"), 2);
}

/// Dovecot offers NOTIFY: five folders are watched over ONE connection
/// (counted by Dovecot itself, not by mailfeed), and new mail in a folder
/// that is not selected, in the one that is, and a flag change all arrive
/// within a bounded wait.
#[test]
fn notify_watches_all_folders_on_one_connection() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let folders = ["INBOX", "A", "B", "C", "D"];
    for f in &folders[1..] {
        dc.create_folder(USER, f).expect("create");
    }
    let mut account = Account::plain(&dc, USER, PASS, &folders);
    // Room for a connection per folder: only NOTIFY keeps it to one.
    account.extra = "max_connections = 10";
    let setup = Setup::new(&[account], "");
    let run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(30), || {
        folders.iter().all(|m| synced_once(&setup, m))
    });
    // Sampled over a second: a watcher per folder would show five.
    for _ in 0..5 {
        assert_eq!(dc.connections(USER).expect("doveadm who"), 1);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut client = dc.login(USER).expect("login");
    // Every folder in turn: four are not selected on mailfeed's connection
    // (announced by STATUS), one is (announced by EXISTS).
    for (i, f) in ["C", "INBOX", "D", "A", "B"].iter().enumerate() {
        let msg = format!("From: a@b\r\nSubject: n{i}\r\nMessage-ID: <n{i}@t>\r\n\r\nhi\r\n");
        client.append(f, &[], msg.as_bytes()).expect("append");
        wait_for(
            &format!("the message in {f}"),
            Duration::from_secs(10),
            || setup.feed_count(f) == 1,
        );
    }
    // A burst across folders: mailfeed moves from folder to folder while
    // the server still has changes to announce for the one it leaves.
    for round in 0..3 {
        for f in &folders {
            let msg = format!("Subject: burst {round} {f}\r\n\r\nx\r\n");
            client.append(f, &[], msg.as_bytes()).expect("append");
        }
        wait_for("the burst", Duration::from_secs(10), || {
            folders.iter().all(|f| setup.feed_count(f) == round + 2)
        });
    }
    client.select("C").expect("select");
    client.add_flags(&[1], &["\\Flagged"]).expect("flag");
    wait_for("the flag change in C", Duration::from_secs(10), || {
        let Ok(conn) = rusqlite::Connection::open(&setup.db) else {
            return false;
        };
        conn.query_row(
            "SELECT flags FROM message_feed WHERE mailbox = 'C'",
            [],
            |r| r.get::<_, String>(0),
        )
        .is_ok_and(|f| f.contains("\\Flagged"))
    });
    client.logout().expect("logout");
    assert_eq!(dc.connections(USER).expect("doveadm who"), 1);
    let log = std::fs::read_to_string(&run.1).expect("log");
    assert!(log.contains("over one connection (NOTIFY)"), "{log}");
    for f in folders {
        assert_mirror(&setup, &dc, USER, "test", f);
    }
}

/// A server that announces NOTIFY but refuses `NOTIFY SET` (Dovecot
/// without its mailbox list index) gets each folder its own IDLE
/// connection, and new mail still arrives.
#[test]
fn notify_refused_falls_back_to_idle_per_folder() {
    let mut extra = capabilities_without(&[]);
    extra.push_str("mailbox_list_index = no\n");
    let dc = Dovecot::start_with(Options {
        users: vec![(USER.into(), PASS.into())],
        extra_config: extra,
    })
    .expect("dovecot");
    let folders = ["INBOX", "A", "B"];
    for f in &folders[1..] {
        dc.create_folder(USER, f).expect("create");
    }
    let mut account = Account::plain(&dc, USER, PASS, &folders);
    account.extra = "max_connections = 10";
    let setup = Setup::new(&[account], "");
    let run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(30), || {
        folders.iter().all(|m| synced_once(&setup, m))
    });
    wait_for(
        "an IDLE connection per folder",
        Duration::from_secs(10),
        || dc.connections(USER).is_ok_and(|n| n == 3),
    );
    dc.append(USER, "B", b"Subject: b\r\n\r\nx\r\n")
        .expect("append");
    wait_for("the message in B", Duration::from_secs(10), || {
        setup.feed_count("B") == 1
    });
    let log = std::fs::read_to_string(&run.1).expect("log");
    assert!(log.contains("watching them separately"), "{log}");
}

#[test]
fn reconnects_after_server_restart_without_loss() {
    let mut dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    let _run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(20), || {
        synced_once(&setup, "INBOX")
    });
    dc.stop().expect("stop");
    std::thread::sleep(Duration::from_millis(500));
    dc.start_again().expect("start again");
    dc.append_many(USER, "INBOX", &corpus::varied(3, 5))
        .expect("append");
    wait_for("mail after restart", Duration::from_secs(30), || {
        setup.feed_count("INBOX") == 3
    });
    assert_mirror(&setup, &dc, USER, "test", "INBOX");
}

#[test]
fn sigterm_mid_sync_exits_quickly_and_restart_completes() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::sized(3000, 7, 2_000, 40_000))
        .expect("append");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX"])],
        "batch_size = 50",
    );
    let mut run = Running::start(&setup, "debug");
    // Under way: a batch has been handed to the store. (Rows become visible
    // only at the writer's next commit, which a steady stream of mail puts
    // off for up to 64 MB, so the feed count is no sign on a loaded machine.)
    wait_for("the sync to be under way", Duration::from_secs(60), || {
        std::fs::read_to_string(&run.1).is_ok_and(|log| log.contains("batch stored"))
    });
    let t0 = Instant::now();
    run.signal(SIGTERM);
    let status = loop {
        if let Some(s) = run.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "did not exit within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!(
        "exited {status} {:?} after SIGTERM with {} messages stored",
        t0.elapsed(),
        setup.feed_count("INBOX")
    );
    assert!(status.success(), "exit status {status}");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "test", "INBOX");
    assert_eq!(setup.message_rows(), 3000, "no duplicates");
}

#[test]
fn sighup_adds_and_removes_folders() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    for f in ["Keep", "Drop", "Add"] {
        dc.create_folder(USER, f).expect("create");
    }
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["Keep", "Drop"])], "");
    let run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(20), || {
        synced_once(&setup, "Keep") && synced_once(&setup, "Drop")
    });
    // An invalid config is refused and the old one keeps running.
    let good = std::fs::read_to_string(&setup.config).expect("read");
    std::fs::write(&setup.config, good.replace("[store]", "[store]\nbogus = 1")).expect("write");
    run.signal(SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    dc.append(USER, "Drop", b"Subject: still\r\n\r\nx\r\n")
        .expect("append");
    wait_for("old config still running", Duration::from_secs(5), || {
        setup.feed_count("Drop") == 1
    });

    std::fs::write(
        &setup.config,
        good.replace("\"Keep\", \"Drop\"", "\"Keep\", \"Add\""),
    )
    .expect("write");
    run.signal(SIGHUP);
    wait_for("the added folder", Duration::from_secs(10), || {
        synced_once(&setup, "Add")
    });
    dc.append(USER, "Add", b"Subject: new\r\n\r\nx\r\n")
        .expect("append");
    dc.append(USER, "Keep", b"Subject: k\r\n\r\nx\r\n")
        .expect("append");
    dc.append(USER, "Drop", b"Subject: gone\r\n\r\nx\r\n")
        .expect("append");
    wait_for("Add and Keep", Duration::from_secs(10), || {
        setup.feed_count("Add") == 1 && setup.feed_count("Keep") == 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        setup.feed_count("Drop"),
        1,
        "a removed folder is no longer watched"
    );
}

/// A TCP proxy whose existing connections can be silently blackholed (bytes
/// read and dropped, nothing closed), as a NAT that forgot the flow does.
struct BlackholeProxy {
    port: u16,
    generation: Arc<AtomicU64>,
    blackhole_below: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl BlackholeProxy {
    fn start(upstream: u16) -> BlackholeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let generation = Arc::new(AtomicU64::new(0));
        let blackhole_below = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, b, s) = (generation.clone(), blackhole_below.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let my_gen = g.fetch_add(1, Ordering::SeqCst) + 1;
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let b = b.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if my_gen <= b.load(Ordering::SeqCst) {
                                continue; // swallowed
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        BlackholeProxy {
            port,
            generation,
            blackhole_below,
            stop,
        }
    }

    /// Blackholes every connection opened so far; new ones work.
    fn blackhole_existing(&self) {
        self.blackhole_below
            .store(self.generation.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn blackholed_idle_connection_is_detected() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let proxy = BlackholeProxy::start(dc.plain_port());
    let mut acc = Account::plain(&dc, USER, PASS, &["INBOX"]);
    acc.port = proxy.port;
    let setup = Setup::new(&[acc], "idle_refresh = \"2s\"");
    // A short read timeout so the dead link is found quickly.
    let text = std::fs::read_to_string(&setup.config).expect("read");
    std::fs::write(
        &setup.config,
        text.replace("timeout = \"10s\"", "timeout = \"1s\""),
    )
    .expect("write");
    let _run = Running::start(&setup, "debug");
    wait_for("initial sync", Duration::from_secs(20), || {
        synced_once(&setup, "INBOX")
    });
    std::thread::sleep(Duration::from_millis(300));
    proxy.blackhole_existing();
    let t0 = Instant::now();
    dc.append(USER, "INBOX", b"Subject: through the void\r\n\r\nx\r\n")
        .expect("append");
    // idle_refresh (2 s) + timeout (1 s) + first backoff (~1 s) + margin.
    wait_for("mail after blackhole", Duration::from_secs(8), || {
        setup.feed_count("INBOX") == 1
    });
    eprintln!(
        "blackholed connection replaced; mail arrived after {:?}",
        t0.elapsed()
    );
}

#[test]
fn systemd_units_verify() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed; skipping");
        return;
    }
    // The single SQLite unit, and the template for N instances on
    // PostgreSQL verified as two of its instances.
    for (file, verified) in [
        ("mailfeed.service", &["mailfeed.service"][..]),
        (
            "mailfeed@.service",
            &["mailfeed@1.service", "mailfeed@2.service"][..],
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let unit = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("systemd")
                .join(file),
        )
        .expect("unit");
        if file.contains('@') {
            // `store.path` from the environment beside `store.url` is a
            // configuration error: the template must not set it.
            assert!(!unit.contains("MAILFEED__STORE__PATH"), "{file}");
        }
        // Verify against the binary just built instead of the install path.
        let unit = unit.replace("/usr/local/bin/mailfeed", env!("CARGO_BIN_EXE_mailfeed"));
        std::fs::write(dir.path().join(file), unit).expect("write");
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .args(verified.iter().map(|v| dir.path().join(v)))
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let relevant: Vec<&str> = stderr
            .lines()
            // Messages about the host's own units are not about ours.
            .filter(|l| l.contains("mailfeed"))
            .collect();
        assert!(
            out.status.success() && relevant.is_empty(),
            "systemd-analyze verify {file}: {stderr}"
        );
    }
}

#[test]
fn notifies_systemd_ready_status_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    let sock_path = setup.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut cmd = setup.command(&["run"]);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000");
    let run = Running::spawn(&setup, cmd);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1") && seen.contains("STATUS=")) {
        assert!(t0.elapsed() < Duration::from_secs(20), "got only: {seen}");
        let n = sock.recv(&mut buf).expect("recv");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    run.signal(SIGTERM);
    loop {
        let n = sock.recv(&mut buf).expect("recv STOPPING");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
}

/// SIGTERM while a watcher sits in IDLE on a link that has gone dead (the
/// server answers neither DONE nor LOGOUT) and with a long timeout: `run`
/// still exits within 5 s, well inside systemd's TimeoutStopSec.
#[test]
fn sigterm_during_idle_on_a_dead_link_exits_within_5s() {
    use support::fake_server::{FakeServer, Step, expect, send};
    let server = FakeServer::single(vec![
        send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR IDLE] fake ready\r\n"),
        expect("AUTHENTICATE PLAIN"),
        send("$T OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n"),
        expect("EXAMINE INBOX"),
        send(
            "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n$T OK [READ-ONLY] done\r\n",
        ),
        expect("UID FETCH 1:* (UID)"),
        send("$T OK done\r\n"),
        expect("IDLE"),
        send("+ idling\r\n"),
        // From here on the link is dead: nothing is answered.
        Step::Stall(Duration::from_secs(120)),
    ]);
    let acc = Account {
        name: "test",
        port: server.port(),
        mode: support::mailfeed::Mode::Plain,
        ca_file: None,
        user: "dead",
        password: "dead-pw-1",
        folders: &["INBOX"],
        extra: "",
    };
    let setup = Setup::new(&[acc], "timeout = \"30s\"");
    let mut run = Running::start(&setup, "debug");
    wait_for("mailfeed to enter IDLE", Duration::from_secs(20), || {
        server.transcript().iter().any(|l| l.ends_with("IDLE"))
    });
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    run.signal(SIGTERM);
    let status = loop {
        if let Some(s) = run.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "did not exit within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("exited {status} {:?} after SIGTERM", t0.elapsed());
    assert!(status.success(), "exit status {status}");
    assert!(
        synced_once(&setup, "INBOX"),
        "the sync before IDLE was committed"
    );
}

/// With more connections planned than the open-file limit allows, `check` says so, with the
/// numbers and the fix, before it connects anywhere; with room, it says nothing.
#[test]
fn check_warns_when_planned_connections_near_the_open_file_limit() {
    // Twenty accounts of five IDLE connections each, all on a port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let names: Vec<String> = (0..20).map(|i| format!("acct{i}")).collect();
    let accounts: Vec<Account<'_>> = names
        .iter()
        .map(|name| Account {
            name,
            port,
            mode: support::mailfeed::Mode::Plain,
            ca_file: None,
            user: USER,
            password: PASS,
            folders: &["INBOX"],
            extra: "max_connections = 5\n",
        })
        .collect();
    let setup = Setup::new(&accounts, "timeout = \"2s\"\n");
    let check_under = |limit: u32| {
        let out = std::process::Command::new("prlimit")
            .arg(format!("--nofile={limit}:{limit}"))
            .arg(env!("CARGO_BIN_EXE_mailfeed"))
            .arg("-c")
            .arg(&setup.config)
            .arg("check")
            .output()
            .expect("prlimit");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tight = check_under(128);
    assert!(
        tight.contains("up to 100 IMAP connections are planned, near the open-file limit of 128")
            && tight.contains("LimitNOFILE="),
        "{tight}"
    );
    let roomy = check_under(4096);
    assert!(!roomy.contains("open-file limit"), "{roomy}");
    assert!(
        roomy.contains("acct19"),
        "check went on to every account: {roomy}"
    );
}
