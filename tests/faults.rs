//! Nothing lost, nothing doubled — proved by attack, against a real Dovecot.
//!
//! * `proxy_faults_over_many_seeds`: a fault proxy (cut after K bytes either
//!   way, stall then cut, cut inside a literal, RST, slow drip) sits between
//!   mailfeed and Dovecot. For each seed, `mailfeed sync` is repeated until
//!   it succeeds; the database must then equal the server exactly: the same
//!   (mailbox, UIDVALIDITY, UID) set, identical bytes, one row, one raw copy
//!   and one `new` event per message, and `PRAGMA integrity_check` = ok.
//! * `sigkill_at_random_moments`: through a throttled link, `sync` is
//!   SIGKILLed at random moments of its transfer many times (in rounds on
//!   fresh databases); at least 90% of the kills must land mid-sync, the
//!   database must stay intact after every kill, and one clean sync must
//!   then give exact equality.
//! * `long_reader_never_blocks_the_writer`: a reader holding a read
//!   transaction open across two syncs neither blocks them nor sees a torn
//!   state.
//!
//! Seeds and kills default to 50 each; `MAILFEED_FAULT_SEEDS`,
//! `MAILFEED_FAULT_FIRST_SEED` and `MAILFEED_KILLS` change that (a failing
//! seed is named in the failure message, so it can be rerun alone).

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::Dovecot;
use support::fault_proxy::{FaultProxy, Rng, SeededPlan};
use support::mailfeed::{Account, Setup};

const USER: &str = "faults";
const PASS: &str = "faults-pw-3k";
const FOLDERS: [&str; 2] = ["INBOX", "Archive"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A folder's messages on the server: (UID, BODY[]).
type Messages = Vec<(u32, Vec<u8>)>;

/// The server's content: folder → (UIDVALIDITY, messages).
struct Truth(BTreeMap<String, (u32, Messages)>);

impl Truth {
    fn read(dc: &Dovecot) -> Truth {
        let mut m = BTreeMap::new();
        for f in FOLDERS {
            let uv = dc.uid_validity(USER, f).expect("uidvalidity");
            let all = dc.fetch_all(USER, f).expect("fetch truth");
            m.insert(f.to_string(), (uv, all));
        }
        Truth(m)
    }

    fn total(&self) -> usize {
        self.0.values().map(|(_, v)| v.len()).sum()
    }
}

/// A Dovecot holding a few hundred varied messages in two folders.
fn loaded_dovecot(seed: u64) -> (Dovecot, Truth) {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot");
    dc.create_folder(USER, "Archive").expect("create");
    dc.append_many(USER, "INBOX", &corpus::varied(180, seed))
        .expect("append");
    dc.append_many(USER, "Archive", &corpus::sized(120, seed, 300, 12_000))
        .expect("append");
    let truth = Truth::read(&dc);
    (dc, truth)
}

fn setup_for(port: u16, extra: &str) -> Setup {
    let mut acc = Account {
        name: "test",
        port,
        mode: support::mailfeed::Mode::Plain,
        ca_file: None,
        user: USER,
        password: PASS,
        folders: &FOLDERS,
        extra: "",
    };
    acc.port = port;
    Setup::new(&[acc], extra)
}

/// Everything "exactly equal to the server" means, checked on the database
/// file; `context` names the seed or round for the failure message.
fn assert_exact(setup: &Setup, truth: &Truth, context: &str) {
    let conn = setup.db();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok", "{context}: integrity_check");
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(fk, 0, "{context}: foreign key violations");
    for (folder, (uv, msgs)) in &truth.0 {
        let stored = setup.stored("test", folder);
        let got: Vec<(u32, u32)> = stored.iter().map(|(v, u, _)| (*v, *u)).collect();
        let want: Vec<(u32, u32)> = msgs.iter().map(|(u, _)| (*uv, *u)).collect();
        assert_eq!(got, want, "{context}: (uidvalidity, uid) set of {folder}");
        for ((_, u, raw), (_, body)) in stored.iter().zip(msgs) {
            assert!(
                raw == body,
                "{context}: bytes of {folder} UID {u} differ from the server's"
            );
        }
        let (last_uid, db_uv): (u32, u32) = conn
            .query_row(
                "SELECT last_uid, uidvalidity FROM mailboxes WHERE name = ?1",
                [folder],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("cursor");
        assert_eq!(db_uv, *uv, "{context}: cursor generation of {folder}");
        assert_eq!(
            last_uid,
            msgs.last().map_or(0, |m| m.0),
            "{context}: cursor of {folder}"
        );
    }
    // Nothing doubled anywhere: one row, one raw copy, one event each.
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let n = truth.total() as i64;
    assert_eq!(count("SELECT count(*) FROM messages"), n, "{context}: rows");
    assert_eq!(
        count("SELECT count(*) FROM message_raw"),
        n,
        "{context}: raw"
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'new'"),
        n,
        "{context}: new-message events"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT 1 FROM messages
             GROUP BY mailbox_id, uidvalidity, uid HAVING count(*) > 1)"
        ),
        0,
        "{context}: duplicate keys"
    );
    assert_eq!(
        count("SELECT count(*) FROM messages WHERE truncated"),
        0,
        "{context}: nothing is truncated at the default limit"
    );
    assert_index_exact(&conn, context);
}

/// The search index holds exactly the feed: one entry per `message_feed`
/// row (none twice, none skipped), the watermark at the last message, and
/// FTS5's own check that the index equals what its source view gives.
fn assert_index_exact(conn: &rusqlite::Connection, context: &str) {
    let ids = |sql: &str| -> Vec<i64> {
        conn.prepare(sql)
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect(sql)
    };
    assert_eq!(
        ids("SELECT id FROM message_search_docsize ORDER BY id"),
        ids("SELECT id FROM message_feed ORDER BY id"),
        "{context}: search index entries = feed rows"
    );
    let (through, last): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT indexed_through FROM search_watermark),
                    (SELECT coalesce(max(id), 0) FROM messages)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("watermark");
    assert_eq!(through, last, "{context}: search watermark");
    conn.execute_batch(
        "INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)",
    )
    .unwrap_or_else(|e| panic!("{context}: search index differs from its source: {e}"));
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failed run must say so plainly and never panic.
fn assert_clean_failure(out: &Output, context: &str) {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{context}: mailfeed panicked:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{context}: exit status {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("FAILED test/")),
        "{context}: no FAILED line:\n{stdout}\n{stderr}"
    );
}

#[test]
fn proxy_faults_over_many_seeds() {
    let (dc, truth) = loaded_dovecot(11);
    let seeds = env_u64("MAILFEED_FAULT_SEEDS", 50);
    let first = env_u64("MAILFEED_FAULT_FIRST_SEED", 0);

    // A clean run through a pass-through proxy measures how many bytes a
    // connection carries, so cut points spread over the whole conversation.
    let span = {
        let proxy = FaultProxy::start(dc.plain_port(), |_| support::fault_proxy::Fault::None);
        let setup = setup_for(proxy.port(), "timeout = \"2s\"\nbatch_size = 40");
        setup.sync_ok();
        assert_exact(&setup, &truth, "calibration run");
        proxy.down_bytes().into_iter().max().unwrap_or(1)
    };

    let started = Instant::now();
    let mut runs = 0;
    let mut failed_runs = 0;
    for seed in first..first + seeds {
        let proxy = FaultProxy::seeded(dc.plain_port(), seed, span);
        // Small batches, so a cut lands between committed ranges as often as
        // inside one.
        let setup = setup_for(proxy.port(), "timeout = \"1s\"\nbatch_size = 40");
        let breaking = SeededPlan::new(seed, span).breaking();
        let mut attempts = 0;
        loop {
            attempts += 1;
            runs += 1;
            let out = setup.run(&["sync"]);
            let context = format!("seed {seed}, attempt {attempts}, proxy {:?}", proxy.log());
            if out.status.success() {
                break;
            }
            failed_runs += 1;
            assert_clean_failure(&out, &context);
            // Each failing run uses up at least one of the `breaking`
            // connections; the slack allows for a run slowed past its 1 s
            // timeout on a busy machine.
            assert!(
                attempts <= breaking + 3,
                "{context}: still failing after {attempts} attempts"
            );
        }
        assert_exact(&setup, &truth, &format!("seed {seed} ({:?})", proxy.log()));
        // And once more: a clean pass adds nothing.
        let out = setup.sync_ok();
        assert!(
            text(&out.stdout).contains("0 new message(s)"),
            "seed {seed}: second pass fetched again: {}",
            text(&out.stdout)
        );
        assert_exact(&setup, &truth, &format!("seed {seed}, second pass"));
    }
    eprintln!(
        "{seeds} seeds, {runs} sync runs ({failed_runs} failed by a fault), {} messages each, in {:?}",
        truth.total(),
        started.elapsed()
    );
}

fn spawn_sync(setup: &Setup) -> Child {
    setup
        .command(&["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailfeed")
}

/// Bytes of mail stored so far (every generation, all folders).
fn stored_bytes(setup: &Setup) -> u64 {
    if !setup.db.exists() {
        return 0;
    }
    setup
        .db()
        .query_row(
            "SELECT coalesce(sum(length(raw)), 0) FROM message_raw",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .unwrap_or(0)
}

/// The link is throttled (the proxy forwards the server's bytes in pieces
/// of up to 8 KiB, 2 ms apart), so a sync of the corpus takes seconds and
/// each kill is aimed into what is left of the transfer: it waits until
/// the new run's connection carries mail, then strikes within 70% of the
/// time the rest would take at the measured rate. A kill "lands mid-sync"
/// when the process was still running and the database, after it, lacks
/// messages: the transfer was under way. At least 90% must land so.
#[test]
fn sigkill_at_random_moments() {
    let (dc, truth) = loaded_dovecot(23);
    let kills = env_u64("MAILFEED_KILLS", 50);
    let total_bytes: u64 = truth
        .0
        .values()
        .flat_map(|(_, m)| m.iter().map(|(_, b)| b.len() as u64))
        .sum();
    let throttle = |_| support::fault_proxy::Fault::Drip {
        bytes: u64::MAX,
        max_piece: 8 * 1024,
        delay: Duration::from_millis(2),
    };
    let proxy = FaultProxy::start(dc.plain_port(), throttle);
    let config = "batch_size = 30";

    // How long a whole transfer takes through the throttle.
    let full = {
        let setup = setup_for(proxy.port(), config);
        let t = Instant::now();
        setup.sync_ok();
        assert_exact(&setup, &truth, "calibration run");
        t.elapsed()
    };

    let started = Instant::now();
    let mut rng = Rng(0x5EED_0000_0000_0017);
    let (mut landed, mut spawned, mut round) = (0u64, 0u64, 0);
    while spawned < kills {
        round += 1;
        let setup = setup_for(proxy.port(), config);
        // Up to ten kills on one database, while more than a fifth is left
        // to fetch; then a clean sync must complete it exactly.
        let mut this_round = 0;
        while spawned < kills && this_round < 10 && stored_bytes(&setup) < total_bytes * 4 / 5 {
            spawned += 1;
            this_round += 1;
            let before = stored_bytes(&setup);
            let connections = proxy.down_bytes().len();
            let mut child = spawn_sync(&setup);
            // The transfer has begun once the run's connections carry more
            // than a login and an EXAMINE.
            let t0 = Instant::now();
            while proxy.down_bytes().iter().skip(connections).sum::<u64>() < 16 * 1024
                && t0.elapsed() < Duration::from_secs(30)
                && child.try_wait().expect("try_wait").is_none()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let left = full.as_micros() as u64 * (total_bytes - before) / total_bytes;
            let at = Duration::from_micros(rng.below((left * 7 / 10).max(1_000)));
            std::thread::sleep(at);
            let running = child.try_wait().expect("try_wait").is_none();
            let _ = child.kill(); // SIGKILL
            let status = child.wait().expect("wait");
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            assert!(
                !stderr.contains("panicked"),
                "round {round}, kill at {at:?}: panic before the kill ({status}):\n{stderr}"
            );
            // Whatever moment the kill hit, the database is intact.
            if setup.db.exists() {
                let ok: String = setup
                    .db()
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .expect("integrity_check after kill");
                assert_eq!(ok, "ok", "round {round}, kill at {at:?}");
            }
            if running && stored_bytes(&setup) < total_bytes {
                landed += 1;
            }
        }
        setup.sync_ok();
        assert_exact(&setup, &truth, &format!("round {round} after kills"));
    }
    eprintln!(
        "{landed} of {spawned} kills landed mid-sync ({}%) in {round} rounds; \
         {} messages, {total_bytes} bytes; a throttled full sync takes {full:?}; in {:?}",
        landed * 100 / spawned.max(1),
        truth.total(),
        started.elapsed()
    );
    assert!(
        landed * 10 >= spawned * 9,
        "only {landed} of {spawned} kills landed mid-sync"
    );
}

/// How far the index trails after a kill: (watermark, last message id), or
/// `None` when the kill came before the migrations were all applied (each
/// commits on its own, so the database is an older, valid schema that the
/// next run completes).
fn watermark(setup: &Setup) -> Option<(i64, i64)> {
    let conn = setup.db();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    let has_watermark: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'search_watermark'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    if !has_watermark {
        assert!(
            version < 7,
            "schema version {version} without a search watermark"
        );
        return None;
    }
    Some(
        conn.query_row(
            "SELECT (SELECT indexed_through FROM search_watermark),
                    (SELECT coalesce(max(id), 0) FROM messages)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("watermark"),
    )
}

/// The search index is filled behind the feed, in batches of its own
/// transactions; a SIGKILL that finds it behind (some messages stored, not
/// yet indexed) leaves a database whose index the next start completes, with
/// no message indexed twice or skipped. Syncs are killed at random moments
/// until enough kills have found the index behind the feed; each round ends
/// with a clean sync that must give the exact index.
#[test]
fn sigkill_during_search_indexing() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot");
    dc.create_folder(USER, "Archive").expect("create");
    // Enough text that indexing it takes a while.
    dc.append_many(USER, "INBOX", &corpus::sized(1_500, 31, 2_000, 20_000))
        .expect("append");
    dc.append_many(USER, "Archive", &corpus::varied(100, 31))
        .expect("append");
    let truth = Truth::read(&dc);
    let kills = env_u64("MAILFEED_INDEX_KILLS", 12);

    let full = {
        let setup = setup_for(dc.plain_port(), "");
        let t = Instant::now();
        let out = setup.sync_ok();
        let log = text(&out.stderr);
        assert!(log.contains("feed complete"), "{log}");
        assert!(log.contains("search index complete"), "{log}");
        assert_exact(&setup, &truth, "calibration run");
        t.elapsed()
    };
    let window = full.as_micros() as u64 * 12 / 10;

    let mut rng = Rng(0x5EED_0000_0000_1D3C);
    let (mut landed, mut spawned, mut round) = (0, 0, 0);
    while landed < kills {
        round += 1;
        let setup = setup_for(dc.plain_port(), "");
        let mut win = window;
        for _ in 0..3 {
            spawned += 1;
            assert!(spawned < kills * 10, "kills keep missing the indexing");
            let mut child = spawn_sync(&setup);
            let at = Duration::from_micros(rng.below(win));
            std::thread::sleep(at);
            let _ = child.kill(); // SIGKILL
            child.wait().expect("wait");
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            assert!(
                !stderr.contains("panicked"),
                "panic before the kill:\n{stderr}"
            );
            if !setup.db.exists() {
                continue;
            }
            let ok: String = setup
                .db()
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity_check after kill");
            assert_eq!(ok, "ok", "round {round}, kill at {at:?}");
            match watermark(&setup) {
                Some((through, last)) if through < last => landed += 1,
                // Caught up before the kill: later kills in this round come
                // sooner, while the index may still be behind.
                _ => win = (win / 2).max(1_000),
            }
        }
        setup.sync_ok();
        assert_exact(&setup, &truth, &format!("round {round} after kills"));
    }
    eprintln!(
        "{landed} kills left the index behind the feed ({spawned} runs, {round} rounds, full sync {full:?})"
    );
}

#[test]
fn long_reader_never_blocks_the_writer() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot");
    dc.create_folder(USER, "Archive").expect("create");
    dc.append_many(USER, "INBOX", &corpus::varied(40, 5))
        .expect("append");
    let setup = setup_for(dc.plain_port(), "");
    setup.sync_ok();

    // A consumer opens a read transaction and keeps it.
    let reader = setup.db();
    reader.execute_batch("BEGIN").expect("begin");
    let before: i64 = reader
        .query_row("SELECT count(*) FROM message_feed", [], |r| r.get(0))
        .expect("count");
    assert_eq!(before, 40);

    for round in 0..2 {
        dc.append_many(USER, "INBOX", &corpus::varied(30, 6 + round))
            .expect("append");
        let t = Instant::now();
        let mut child = setup
            .command(&["sync"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The writer's busy timeout is 30 s: a blocked writer would show
        // as a long wait; a free one finishes in well under that.
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "sync is blocked behind the reader"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "sync with a reader open: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        // The reader's snapshot did not move.
        let still: i64 = reader
            .query_row("SELECT count(*) FROM message_feed", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            still, before,
            "the reader saw a change inside its transaction"
        );
    }
    reader.execute_batch("COMMIT").expect("commit");
    let after: i64 = reader
        .query_row("SELECT count(*) FROM message_feed", [], |r| r.get(0))
        .expect("count");
    assert_eq!(after, 100);
    support::mailfeed::assert_mirror(&setup, &dc, USER, "test", "INBOX");
}
