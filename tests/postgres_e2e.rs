//! `mailfeed sync` and `mailfeed run` with the store on a private
//! PostgreSQL and mail on a private Dovecot: the feed ends byte-identical
//! to the server's BODY[], a second pass adds nothing, `run` picks up new
//! mail, and SIGKILL at random moments of a throttled sync loses and
//! doubles nothing (a reduced version of tests/faults.rs's kill loop:
//! `MAILFEED_PG_KILLS`, default 6).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mailfeed::config::{PostgresStore, StoreConfig, Synchronous};
use mailfeed::secret::Secret;
use mailfeed::store::Reader;
use support::corpus;
use support::dovecot::Dovecot;
use support::fault_proxy::{Fault, FaultProxy};
use support::mailfeed::{Account, Setup};
use support::postgres::Postgres;

const USER: &str = "alice";
const PASS: &str = "alice-pw-Q7";

/// A setup whose `[store]` is the PostgreSQL database at `url`, the
/// password given through `password_file` rather than the URL.
fn on_postgres(setup: &Setup, pg: &Postgres, url: &str) {
    let name = url.rsplit('/').next().expect("database name");
    let pw = setup.dir.path().join("pg.password");
    std::fs::write(&pw, format!("{}\n", support::postgres::PASSWORD)).expect("pw");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    let store = format!(
        "url = \"{}\"\npassword_file = \"{}\"",
        pg.url_without_password(name),
        pw.display()
    );
    std::fs::write(&setup.config, text.replace("path = \"mail.db\"", &store)).expect("config");
}

fn reader(url: &str) -> Reader {
    Reader::open_store(&StoreConfig {
        path: PathBuf::new(),
        synchronous: Synchronous::Normal,
        postgres: Some(PostgresStore {
            url: Secret::new(url),
            password_file: None,
            ca_file: None,
            lease_period: mailfeed::config::DEFAULT_LEASE_PERIOD,
        }),
    })
    .expect("reader")
}

/// Every feed row of each folder equals the server's messages, by UID and
/// bytes, once.
fn assert_mirror(url: &str, dc: &Dovecot, folders: &[&str], context: &str) {
    let r = reader(url);
    for f in folders {
        let truth = dc.fetch_all(USER, f).expect("truth");
        let stored: Vec<(u32, Vec<u8>)> = r
            .feed_of("test", f)
            .expect("feed")
            .into_iter()
            .map(|m| (m.uid, m.raw))
            .collect();
        assert_eq!(
            stored.iter().map(|s| s.0).collect::<Vec<_>>(),
            truth.iter().map(|t| t.0).collect::<Vec<_>>(),
            "{context}: UIDs of {f}"
        );
        for ((u, a), (_, b)) in stored.iter().zip(&truth) {
            assert!(a == b, "{context}: UID {u} of {f} differs from BODY[]");
        }
    }
    // Feed ids are unique and every row is reachable by following them.
    let mut last = 0;
    let mut n = 0;
    loop {
        let batch = r.entries_after(last, 500).expect("follow");
        if batch.is_empty() {
            break;
        }
        n += batch.len();
        last = batch.last().map(|e| e.id).unwrap_or(last);
    }
    let total: usize = folders
        .iter()
        .map(|f| dc.fetch_all(USER, f).expect("truth").len())
        .sum();
    assert_eq!(n, total, "{context}: rows reachable by id");
}

#[test]
fn sync_and_run_store_into_postgres() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.create_folder(USER, "Archive").expect("folder");
    dc.append_many(USER, "INBOX", &corpus::varied(80, 3))
        .expect("append");
    let real: Vec<Vec<u8>> = corpus::mail_parser_samples()
        .into_iter()
        .map(|(_, b)| b)
        .take(60)
        .collect();
    dc.append_many(USER, "Archive", &real).expect("append real");
    let pg = Postgres::start().expect("postgres");
    let url = pg.create_database().expect("database");
    let cert = dc.cert_path();
    let setup = Setup::new(
        &[Account::tls(&dc, &cert, USER, PASS, &["INBOX", "Archive"])],
        "batch_size = 25",
    );
    on_postgres(&setup, &pg, &url);

    let out = setup.sync_ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("synced 2 folder(s)"), "{stdout}");
    assert_mirror(&url, &dc, &["INBOX", "Archive"], "first sync");
    let out = setup.sync_ok();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 new message(s)"),
        "second sync"
    );

    let status = setup.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("Archive") && text.contains("INBOX"), "{text}");
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(!stderr.contains(support::postgres::PASSWORD), "{stderr}");

    // `run` stores what arrives while it runs.
    let mut run = setup
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    dc.append_many(USER, "INBOX", &corpus::varied(5, 9))
        .expect("append");
    let want = dc.fetch_all(USER, "INBOX").expect("truth").len();
    let r = reader(&url);
    let t0 = Instant::now();
    while r.feed_of("test", "INBOX").expect("feed").len() < want {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "run did not store the new mail"
        );
        assert!(run.try_wait().expect("wait").is_none(), "run exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill() on our own child's pid.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let status = run.wait().expect("wait");
    assert!(status.success(), "run after SIGTERM: {status}");
    assert_mirror(&url, &dc, &["INBOX", "Archive"], "after run");
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
fn sigkill_mid_sync_loses_nothing_on_postgres() {
    let kills: u64 = std::env::var("MAILFEED_PG_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.create_folder(USER, "Big").expect("folder");
    dc.append_many(USER, "INBOX", &corpus::varied(150, 5))
        .expect("append");
    dc.append_many(USER, "Big", &corpus::sized(40, 6, 20_000, 120_000))
        .expect("append");
    let throttle = |_| Fault::Drip {
        bytes: u64::MAX,
        max_piece: 8 * 1024,
        delay: Duration::from_millis(2),
    };
    let proxy = FaultProxy::start(dc.plain_port(), throttle);
    let pg = Postgres::start().expect("postgres");
    let url = pg.create_database().expect("database");
    let mut acc = Account::plain(&dc, USER, PASS, &["INBOX", "Big"]);
    acc.port = proxy.port();
    let setup = Setup::new(&[acc], "batch_size = 20");
    on_postgres(&setup, &pg, &url);

    let r = reader(&url);
    let stored = || -> usize {
        ["INBOX", "Big"]
            .iter()
            .map(|f| r.feed_of("test", f).map(|v| v.len()).unwrap_or(0))
            .sum()
    };
    let total: usize = ["INBOX", "Big"]
        .iter()
        .map(|f| dc.fetch_all(USER, f).expect("truth").len())
        .sum();
    let mut seed = 0x5EED_u64;
    let mut landed = 0;
    let mut seen_before = BTreeMap::new();
    for k in 0..kills {
        let before = stored();
        let mut child = spawn_sync(&setup);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(300 + (seed >> 33) % 1500);
        std::thread::sleep(wait);
        let running = child.try_wait().expect("try_wait").is_none();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let after = stored();
        assert!(after >= before, "kill {k}: rows disappeared");
        if running && after < total {
            landed += 1;
        }
        // Rows already seen keep their ids and bytes.
        for f in ["INBOX", "Big"] {
            for m in r.feed_of("test", f).expect("feed") {
                let key = (f, m.uid);
                let value = (m.id, m.raw.len());
                let prior = seen_before.insert(key, value);
                assert!(
                    prior.is_none() || prior == Some(value),
                    "kill {k}: {key:?} changed"
                );
            }
        }
        if after == total {
            break;
        }
    }
    setup.sync_ok();
    assert_mirror(&url, &dc, &["INBOX", "Big"], "after kills");
    eprintln!("{landed} of {kills} kills landed mid-sync");
    assert!(landed >= 1, "no kill landed mid-sync");
}
