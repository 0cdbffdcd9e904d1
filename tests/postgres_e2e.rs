//! `mailfeed sync` and `mailfeed run` with the store on a private
//! PostgreSQL and mail on a private Dovecot: the feed ends byte-identical
//! to the server's BODY[], a second pass adds nothing, and `run` picks up
//! new mail. The fault suite (proxy seeds, the SIGKILL loop, the server
//! going away) runs on PostgreSQL in tests/faults.rs.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mailfeed::config::{PostgresStore, StoreConfig, Synchronous};
use mailfeed::secret::Secret;
use mailfeed::store::Reader;
use support::corpus;
use support::dovecot::Dovecot;
use support::mailfeed::{Account, Setup};
use support::postgres::Postgres;

const USER: &str = "alice";
const PASS: &str = "alice-pw-Q7";

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
    let mut setup = Setup::new(
        &[Account::tls(&dc, &cert, USER, PASS, &["INBOX", "Archive"])],
        "batch_size = 25",
    );
    setup.use_postgres(&pg, &url);

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
