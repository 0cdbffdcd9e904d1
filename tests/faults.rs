//! Nothing lost, nothing doubled — proved by attack, against a real Dovecot,
//! on both store backends: each attack is one body run on SQLite and on a
//! private PostgreSQL (`_on_postgres`), its checks read through
//! `support::feed_db`.
//!
//! * `proxy_faults_over_many_seeds`: a fault proxy (cut after K bytes either
//!   way, stall then cut, cut inside a literal, RST, slow drip) sits between
//!   mailfeed and Dovecot. For each seed, `mailfeed sync` is repeated until
//!   it succeeds; the database must then equal the server exactly: the same
//!   (mailbox, UIDVALIDITY, UID) set, identical bytes, one row, one raw copy
//!   and one `new` event per message, the search index equal to the feed,
//!   and the database intact (`FeedDb::assert_intact`).
//! * `sigkill_at_random_moments`: through a throttled link, `sync` is
//!   SIGKILLed at random moments of its transfer many times (in rounds on
//!   fresh databases); at least 90% of the kills must land mid-sync, the
//!   database must stay intact after every kill, and one clean sync must
//!   then give exact equality.
//! * `sigkill_during_search_indexing` (SQLite: PostgreSQL has no index to
//!   trail the feed): kills that find the index behind leave it completable.
//! * `long_reader_never_blocks_the_writer`: a reader holding a read
//!   transaction open across two syncs neither blocks them nor sees a torn
//!   state.
//! * The database itself failing (PostgreSQL): stopped under `sync`, down
//!   or refusing the password at start, restarted under `run`.
//!
//! Seeds and kills default to 50 each (20 seeds on PostgreSQL, see
//! `PG_SEEDS`);
//! `MAILFEED_FAULT_SEEDS`, `MAILFEED_PG_FAULT_SEEDS`,
//! `MAILFEED_FAULT_FIRST_SEED`, `MAILFEED_KILLS` and `MAILFEED_PG_KILLS`
//! change that (a failing seed is named in the failure message, so it can
//! be rerun alone).

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::Dovecot;
use support::fault_proxy::{FaultProxy, SeededPlan};
use support::feed_db::{Backend, FeedDb};
use support::mailfeed::{Account, Setup};
use support::rng::Rng;

const USER: &str = "faults";
const PASS: &str = "faults-pw-3k";
const FOLDERS: [&str; 2] = ["INBOX", "Archive"];

/// PostgreSQL's defaults. The same kills as SQLite; fewer proxy seeds,
/// which cost about 5 s each on PostgreSQL (10 s on a loaded machine), so
/// the suite's PostgreSQL time stays within a few minutes.
/// `MAILFEED_PG_FAULT_SEEDS=50` runs SQLite's full set (it passes).
const PG_SEEDS: u64 = 20;
const PG_KILLS: u64 = 50;

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

/// Everything "exactly equal to the server" means, checked on the
/// database of either backend; `context` names the seed or round for the
/// failure message.
fn assert_exact(held: &FeedDb, truth: &Truth, context: &str) {
    held.assert_intact(context);
    for (folder, (uv, msgs)) in &truth.0 {
        let stored = held.feed("test", folder);
        let got: Vec<(u32, u32)> = stored.iter().map(|(v, u, _)| (*v, *u)).collect();
        let want: Vec<(u32, u32)> = msgs.iter().map(|(u, _)| (*uv, *u)).collect();
        assert_eq!(got, want, "{context}: (uidvalidity, uid) set of {folder}");
        for ((_, u, raw), (_, body)) in stored.iter().zip(msgs) {
            assert!(
                raw == body,
                "{context}: bytes of {folder} UID {u} differ from the server's"
            );
        }
        let (last_uid, db_uv) = held.cursor(folder);
        assert_eq!(db_uv, *uv, "{context}: cursor generation of {folder}");
        assert_eq!(
            last_uid,
            msgs.last().map_or(0, |m| m.0),
            "{context}: cursor of {folder}"
        );
    }
    // Nothing doubled anywhere: one row, one raw copy, one event each.
    let n = truth.total() as i64;
    let count = |sql: &str| held.count(sql, &[]);
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
             GROUP BY mailbox_id, uidvalidity, uid HAVING count(*) > 1) d"
        ),
        0,
        "{context}: duplicate keys"
    );
    assert_eq!(
        count("SELECT count(*) FROM messages WHERE truncated <> 0"),
        0,
        "{context}: nothing is truncated at the default limit"
    );
    held.assert_index_exact(context);
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
    let seeds = env_u64("MAILFEED_FAULT_SEEDS", 50);
    proxy_faults(&Backend::Sqlite, seeds);
}

#[test]
fn proxy_faults_over_many_seeds_on_postgres() {
    let seeds = env_u64("MAILFEED_PG_FAULT_SEEDS", PG_SEEDS);
    proxy_faults(&Backend::postgres(), seeds);
}

fn proxy_faults(backend: &Backend, seeds: u64) {
    let (dc, truth) = loaded_dovecot(11);
    let first = env_u64("MAILFEED_FAULT_FIRST_SEED", 0);
    let name = backend.name();

    // A clean run through a pass-through proxy measures how many bytes a
    // connection carries, so cut points spread over the whole conversation.
    let span = {
        let proxy = FaultProxy::start(dc.plain_port(), |_| support::fault_proxy::Fault::None);
        let mut setup = setup_for(proxy.port(), "timeout = \"2s\"\nbatch_size = 40");
        let held = backend.attach(&mut setup);
        setup.sync_ok();
        assert_exact(&held, &truth, &format!("{name}: calibration run"));
        proxy.down_bytes().into_iter().max().unwrap_or(1)
    };

    let started = Instant::now();
    let mut runs = 0;
    let mut failed_runs = 0;
    for seed in first..first + seeds {
        let proxy = FaultProxy::seeded(dc.plain_port(), seed, span);
        // Small batches, so a cut lands between committed ranges as often as
        // inside one.
        let mut setup = setup_for(proxy.port(), "timeout = \"1s\"\nbatch_size = 40");
        let held = backend.attach(&mut setup);
        let breaking = SeededPlan::new(seed, span).breaking();
        let mut attempts = 0;
        loop {
            attempts += 1;
            runs += 1;
            let out = setup.run(&["sync"]);
            let context = format!(
                "{name}: seed {seed}, attempt {attempts}, proxy {:?}",
                proxy.log()
            );
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
        assert_exact(
            &held,
            &truth,
            &format!("{name}: seed {seed} ({:?})", proxy.log()),
        );
        // And once more: a clean pass adds nothing.
        let out = setup.sync_ok();
        assert!(
            text(&out.stdout).contains("0 new message(s)"),
            "{name}: seed {seed}: second pass fetched again: {}",
            text(&out.stdout)
        );
        assert_exact(&held, &truth, &format!("{name}: seed {seed}, second pass"));
    }
    eprintln!(
        "{name}: {seeds} seeds, {runs} sync runs ({failed_runs} failed by a fault), {} messages each, in {:?}",
        truth.total(),
        started.elapsed()
    );
}

/// A link to `dc` slow enough (8 KiB every 2 ms) that a kill or a stopped
/// database finds the sync still storing.
fn throttled(dc: &Dovecot) -> FaultProxy {
    FaultProxy::start(dc.plain_port(), |_| support::fault_proxy::Fault::Drip {
        bytes: u64::MAX,
        max_piece: 8 * 1024,
        delay: Duration::from_millis(2),
    })
}

fn spawn_sync(setup: &Setup) -> Child {
    setup
        .command(&["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailfeed")
}

#[test]
fn sigkill_at_random_moments() {
    let kills = env_u64("MAILFEED_KILLS", 50);
    sigkill_loop(&Backend::Sqlite, kills);
}

#[test]
fn sigkill_at_random_moments_on_postgres() {
    let kills = env_u64("MAILFEED_PG_KILLS", PG_KILLS);
    sigkill_loop(&Backend::postgres(), kills);
}

/// The link is throttled (the proxy forwards the server's bytes in pieces
/// of up to 8 KiB, 2 ms apart), so a sync of the corpus takes seconds and
/// each kill is aimed into what is left of the transfer: it waits until
/// the new run's connection carries mail, then strikes within 70% of the
/// time the rest would take at the measured rate. A kill "lands mid-sync"
/// when the process was still running and the database, after it, lacks
/// messages: the transfer was under way. At least 90% must land so.
fn sigkill_loop(backend: &Backend, kills: u64) {
    let (dc, truth) = loaded_dovecot(23);
    let name = backend.name();
    let total_bytes: u64 = truth
        .0
        .values()
        .flat_map(|(_, m)| m.iter().map(|(_, b)| b.len() as u64))
        .sum();
    let proxy = throttled(&dc);
    let config = "batch_size = 30";

    // How long a whole transfer takes through the throttle.
    let full = {
        let mut setup = setup_for(proxy.port(), config);
        let held = backend.attach(&mut setup);
        let t = Instant::now();
        setup.sync_ok();
        assert_exact(&held, &truth, &format!("{name}: calibration run"));
        t.elapsed()
    };

    let started = Instant::now();
    let mut rng = Rng::from_state(0x5EED_0000_0000_0017);
    let (mut landed, mut spawned, mut round) = (0u64, 0u64, 0);
    while spawned < kills {
        round += 1;
        let mut setup = setup_for(proxy.port(), config);
        let held = backend.attach(&mut setup);
        // Up to ten kills on one database, while more than a fifth is left
        // to fetch; then a clean sync must complete it exactly.
        let mut this_round = 0;
        while spawned < kills && this_round < 10 && held.stored_bytes() < total_bytes * 4 / 5 {
            spawned += 1;
            this_round += 1;
            let before = held.stored_bytes();
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
            let at = Duration::from_micros(rng.below_u64((left * 7 / 10).max(1_000)));
            std::thread::sleep(at);
            let running = child.try_wait().expect("try_wait").is_none();
            let _ = child.kill(); // SIGKILL
            let status = child.wait().expect("wait");
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            let context = format!("{name}: round {round}, kill at {at:?}");
            assert!(
                !stderr.contains("panicked"),
                "{context}: panic before the kill ({status}):\n{stderr}"
            );
            // Whatever moment the kill hit, the database is intact.
            if held.exists() {
                held.assert_intact(&context);
            }
            if running && held.stored_bytes() < total_bytes {
                landed += 1;
            }
        }
        setup.sync_ok();
        assert_exact(&held, &truth, &format!("{name}: round {round} after kills"));
    }
    eprintln!(
        "{name}: {landed} of {spawned} kills landed mid-sync ({}%) in {round} rounds; \
         {} messages, {total_bytes} bytes; a throttled full sync takes {full:?}; in {:?}",
        landed * 100 / spawned.max(1),
        truth.total(),
        started.elapsed()
    );
    assert!(
        landed * 10 >= spawned * 9,
        "{name}: only {landed} of {spawned} kills landed mid-sync"
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
    Some(support::feed_db::watermark(&conn))
}

/// The search index is filled behind the feed, in batches of its own
/// transactions; a SIGKILL that finds it behind (some messages stored, not
/// yet indexed) leaves a database whose index the next start completes, with
/// no message indexed twice or skipped. Syncs are killed at random moments
/// until enough kills have found the index behind the feed; each round ends
/// with a clean sync that must give the exact index.
///
/// SQLite alone: PostgreSQL writes each message's search document in the
/// transaction that stores the message (`store/postgres/messages.rs`), so
/// its index never trails the feed and there is no watermark to attack;
/// `FeedDb::assert_index_exact` checks one document per message after every
/// PostgreSQL run of the tests above.
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
        let mut setup = setup_for(dc.plain_port(), "");
        let held = Backend::Sqlite.attach(&mut setup);
        let t = Instant::now();
        let out = setup.sync_ok();
        let log = text(&out.stderr);
        assert!(log.contains("feed complete"), "{log}");
        assert!(log.contains("search index complete"), "{log}");
        assert_exact(&held, &truth, "calibration run");
        t.elapsed()
    };
    let window = full.as_micros() as u64 * 12 / 10;

    let mut rng = Rng::from_state(0x5EED_0000_0000_1D3C);
    let (mut landed, mut spawned, mut round) = (0, 0, 0);
    while landed < kills {
        round += 1;
        let mut setup = setup_for(dc.plain_port(), "");
        let held = Backend::Sqlite.attach(&mut setup);
        let mut win = window;
        for _ in 0..3 {
            spawned += 1;
            assert!(spawned < kills * 10, "kills keep missing the indexing");
            let mut child = spawn_sync(&setup);
            let at = Duration::from_micros(rng.below_u64(win));
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
            if !held.exists() {
                continue;
            }
            held.assert_intact(&format!("round {round}, kill at {at:?}"));
            match watermark(&setup) {
                Some((through, last)) if through < last => landed += 1,
                // Caught up before the kill: later kills in this round come
                // sooner, while the index may still be behind.
                _ => win = (win / 2).max(1_000),
            }
        }
        setup.sync_ok();
        assert_exact(&held, &truth, &format!("round {round} after kills"));
    }
    eprintln!(
        "{landed} kills left the index behind the feed ({spawned} runs, {round} rounds, full sync {full:?})"
    );
}

#[test]
fn long_reader_never_blocks_the_writer() {
    long_reader(&Backend::Sqlite);
}

#[test]
fn long_reader_never_blocks_the_writer_on_postgres() {
    long_reader(&Backend::postgres());
}

/// A consumer holding a read transaction open across two syncs neither
/// blocks them nor sees a torn or moving state.
fn long_reader(backend: &Backend) {
    let name = backend.name();
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot");
    dc.create_folder(USER, "Archive").expect("create");
    dc.append_many(USER, "INBOX", &corpus::varied(40, 5))
        .expect("append");
    let mut setup = setup_for(dc.plain_port(), "");
    let held = backend.attach(&mut setup);
    setup.sync_ok();

    // A consumer opens a read transaction and keeps it.
    let mut reader = held.snapshot();
    let feed = "SELECT count(*) FROM message_feed";
    let before = reader.count(feed);
    assert_eq!(before, 40, "{name}");

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
                "{name}: sync is blocked behind the reader"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "{name}: sync with a reader open: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            t.elapsed()
        );
        // The reader's snapshot did not move.
        assert_eq!(
            reader.count(feed),
            before,
            "{name}: the reader saw a change inside its transaction"
        );
    }
    reader.end();
    assert_eq!(reader.count(feed), 100, "{name}");
    let truth = dc.fetch_all(USER, "INBOX").expect("truth");
    let uv = dc.uid_validity(USER, "INBOX").expect("uidvalidity");
    let want: Vec<(u32, u32, Vec<u8>)> = truth.into_iter().map(|(u, b)| (uv, u, b)).collect();
    assert!(
        held.feed("test", "INBOX") == want,
        "{name}: INBOX differs from the server"
    );
}

/// Waits up to `limit` for `f` to hold; panics naming `what` otherwise.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `mailfeed <command>`, killing it after `limit` (then its status is
/// not an exit code, and the caller's assertion says so).
fn run_for_at_most(setup: &Setup, command: &str, limit: Duration) -> Output {
    let mut child = setup
        .command(&[command])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailfeed");
    let t0 = Instant::now();
    while child.try_wait().expect("try_wait").is_none() && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("output")
}

/// Lines of `text` that mention PostgreSQL's address: what the user is
/// told about the database.
fn database_lines(text: &str, port: u16) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains(&format!("127.0.0.1:{port}")))
        .collect()
}

/// PostgreSQL stopped (`pg_ctl stop -m immediate`) while a throttled
/// `mailfeed sync` is storing: the pass fails with a clear line naming the
/// database (never the password) and no panic; `sync` with the server
/// still down fails at start with one such line; once the server is back,
/// one `sync` completes the feed exactly: nothing lost, nothing doubled.
#[test]
fn postgres_stopped_mid_sync_fails_the_pass_and_loses_nothing() {
    let (dc, truth) = loaded_dovecot(37);
    let backend = Backend::postgres();
    let pg = backend.server().expect("postgres");
    let proxy = throttled(&dc);
    let mut setup = setup_for(proxy.port(), "batch_size = 30");
    let held = backend.attach(&mut setup);

    let child = setup
        .command(&["sync"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailfeed");
    // Some ranges are committed, more are on their way.
    wait_until("a first committed range", Duration::from_secs(120), || {
        held.stored_bytes() > 0
    });
    pg.stop_immediate().expect("stopping PostgreSQL");
    let out = child.wait_with_output().expect("sync");
    let context = "sync with PostgreSQL stopped under it";
    assert_clean_failure(&out, context);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let all = format!("{stdout}{stderr}");
    assert!(
        !all.contains(support::postgres::PASSWORD),
        "{context}: the password shown:\n{all}"
    );
    assert!(
        stdout
            .lines()
            .filter(|l| l.starts_with("FAILED test/"))
            .all(|l| l.contains("PostgreSQL") || l.contains("database")),
        "{context}: a FAILED line does not say the database failed:\n{stdout}"
    );
    assert!(
        held.stored_bytes()
            < truth
                .0
                .values()
                .flat_map(|(_, m)| m)
                .map(|(_, b)| b.len() as u64)
                .sum(),
        "{context}: the stop came after the whole transfer"
    );

    // Still down: `sync` and `run` end at start with one clear line.
    for command in ["sync", "run"] {
        let down = run_for_at_most(&setup, command, Duration::from_secs(120));
        assert_eq!(
            down.status.code(),
            Some(1),
            "{command} with the server down"
        );
        let said = text(&down.stderr);
        let lines = database_lines(&said, pg.port());
        assert_eq!(
            lines.len(),
            1,
            "{command}: one line names the database:\n{said}"
        );
        assert!(lines[0].contains("connecting to postgresql://"), "{said}");
        assert!(
            !said.contains(support::postgres::PASSWORD) && !said.contains("panicked"),
            "{said}"
        );
    }

    pg.start_again().expect("starting PostgreSQL again");
    // A wrong password: one line, the server's refusal, not the password.
    let pw_file = setup.dir.path().join("pg.password");
    std::fs::write(&pw_file, "not-the-password-77\n").expect("password file");
    let refused = run_for_at_most(&setup, "sync", Duration::from_secs(120));
    assert_eq!(refused.status.code(), Some(1), "sync with a wrong password");
    let said = text(&refused.stderr);
    let lines = database_lines(&said, pg.port());
    assert_eq!(lines.len(), 1, "one line names the database:\n{said}");
    assert!(
        lines[0].contains("password authentication failed"),
        "{said}"
    );
    assert!(!said.contains("not-the-password-77"), "{said}");
    std::fs::write(&pw_file, format!("{}\n", support::postgres::PASSWORD)).expect("password file");
    held.assert_intact("after the restart");
    setup.sync_ok();
    assert_exact(&held, &truth, "the sync after the restart");
}

/// `mailfeed run` on PostgreSQL outlives a restart of the server: stopped
/// (`-m immediate`) while `run` is storing its first, throttled sync, the
/// pass fails with a clear line; `run` keeps going, starts again with
/// backoff, and once the server is back it completes the feed and stores
/// the mail that arrived meanwhile — exactly, nothing lost or doubled —
/// and still stops cleanly on SIGTERM.
#[test]
fn run_reconnects_to_postgres_after_a_restart() {
    let (dc, _) = loaded_dovecot(43);
    let backend = Backend::postgres();
    let pg = backend.server().expect("postgres");
    let proxy = throttled(&dc);
    let mut setup = setup_for(proxy.port(), "batch_size = 30\npoll_interval = \"2s\"");
    let held = backend.attach(&mut setup);
    let log_path = setup.dir.path().join("run.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut run = setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run");
    wait_until("a first committed range", Duration::from_secs(120), || {
        held.stored_bytes() > 0
    });
    pg.stop_immediate().expect("stopping PostgreSQL");
    dc.append_many(USER, "INBOX", &corpus::varied(15, 44))
        .expect("append");
    dc.append_many(USER, "Archive", &corpus::varied(5, 45))
        .expect("append");
    let truth = Truth::read(&dc);
    // Long enough for passes to fail and `run` to notice its writer gone.
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        run.try_wait().expect("try_wait").is_none(),
        "run exited while the database was down:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    pg.start_again().expect("starting PostgreSQL again");
    let complete = |held: &FeedDb| {
        truth
            .0
            .iter()
            .all(|(f, (_, msgs))| held.feed("test", f).len() == msgs.len())
    };
    wait_until(
        "the feed complete after the restart",
        Duration::from_secs(240),
        || {
            assert!(
                run.try_wait().expect("try_wait").is_none(),
                "run exited after the database came back:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            complete(&held)
        },
    );
    // SAFETY: kill() on our own child's pid.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let status = run.wait().expect("run");
    let stderr = std::fs::read_to_string(&log_path).expect("log");
    assert!(status.success(), "run after SIGTERM: {status}\n{stderr}");
    assert!(!stderr.contains(support::postgres::PASSWORD), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A pass cut by the database leaves no IMAP command half-read behind.
    assert!(!stderr.contains("violated the protocol"), "{stderr}");
    assert_exact(&held, &truth, "run across a PostgreSQL restart");
    eprintln!(
        "{}",
        stderr
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
