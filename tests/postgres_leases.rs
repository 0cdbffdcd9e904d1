//! Several `mailfeed run` processes sharing one private PostgreSQL and the
//! accounts of one private Dovecot through leases. Three instances balance
//! 30 accounts (10 each); SIGKILL of one moves its accounts to the other
//! two within a lease period and a tick, and the feed ends exactly equal to
//! the server, while a consumer following `id` sees every row once. An
//! instance paused (SIGSTOP) past its leases while fetching over a slow
//! link cannot commit for the accounts taken from it once it resumes, yet
//! keeps running and works the account it still holds (the feed ends equal
//! to the server, nothing twice), and an account only one instance's
//! configuration lists is never claimed by another.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mailfeed::config::{PostgresStore, StoreConfig, Synchronous};
use mailfeed::secret::Secret;
use mailfeed::store::{LeaseStatus, Reader};
use support::corpus;
use support::dovecot::Dovecot;
use support::fault_proxy::{Fault, FaultProxy};
use support::mailfeed::{Account, Setup};
use support::postgres::Postgres;

fn users(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i:02}"), format!("pw-{prefix}{i:02}-Zq")))
        .collect()
}

fn store(url: &str) -> StoreConfig {
    StoreConfig {
        path: PathBuf::new(),
        synchronous: Synchronous::Normal,
        postgres: Some(PostgresStore {
            url: Secret::new(url),
            password_file: None,
            ca_file: None,
            lease_period: mailfeed::config::DEFAULT_LEASE_PERIOD,
        }),
    }
}

/// A configuration for `accounts` (name = user) on `port`, its store the
/// database `url` with `lease_period`.
fn setup(
    pg: &Postgres,
    url: &str,
    port: u16,
    accounts: &[(String, String)],
    period: &str,
) -> Setup {
    let dc_accounts: Vec<Account<'_>> = accounts
        .iter()
        .map(|(u, p)| Account {
            name: u,
            port,
            mode: support::mailfeed::Mode::Plain,
            ca_file: None,
            user: u,
            password: p,
            folders: &["INBOX"],
            extra: "",
        })
        .collect();
    let s = Setup::new(&dc_accounts, "batch_size = 10");
    let name = url.rsplit('/').next().expect("database name");
    let pw = s.dir.path().join("pg.password");
    std::fs::write(&pw, format!("{}\n", support::postgres::PASSWORD)).expect("pw");
    let text = std::fs::read_to_string(&s.config).expect("config");
    let store = format!(
        "url = \"{}\"\npassword_file = \"{}\"\nlease_period = \"{period}\"",
        pg.url_without_password(name),
        pw.display()
    );
    std::fs::write(&s.config, text.replace("path = \"mail.db\"", &store)).expect("config");
    s
}

struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn spawn(s: &Setup, n: usize) -> Instance {
        let log = s.dir.path().join(format!("run{n}.log"));
        let f = File::create(&log).expect("log file");
        let child = s
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn mailfeed run");
        Instance { child, log }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill() on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then the exit status within 30 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid in an owner id (`host/pid/start`).
fn pid_of(owner: &str) -> &str {
    owner.split('/').nth(1).unwrap_or("")
}

/// Live leases by holder pid.
fn holders(leases: &[LeaseStatus]) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in leases {
        if let Some(o) = &l.owner
            && l.expires_in > 0.0
        {
            m.entry(pid_of(o).to_owned())
                .or_default()
                .insert(l.account.clone());
        }
    }
    m
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, t0.elapsed());
        }
        assert!(t0.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether every account's INBOX in the feed equals the server's, by UID
/// and bytes.
fn mirrors(r: &Reader, dc: &Dovecot, accounts: &[(String, String)]) -> bool {
    accounts.iter().all(|(u, _)| {
        let truth = dc.fetch_all(u, "INBOX").expect("truth");
        let stored: Vec<(u32, Vec<u8>)> = r
            .feed_of(u, "INBOX")
            .expect("feed")
            .into_iter()
            .map(|m| (m.uid, m.raw))
            .collect();
        stored == truth
    })
}

/// Follows `id` until told to stop and the feed is drained; every id must
/// rise, and each (account, uid) come once.
fn follower(url: String, done: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(String, u32)>> {
    std::thread::spawn(move || {
        let r = Reader::open_store(&store(&url)).expect("reader");
        let (mut last, mut seen) = (0i64, Vec::new());
        loop {
            let finished = done.load(Ordering::SeqCst);
            let batch = r.entries_after(last, 200).expect("follow");
            for e in &batch {
                assert!(e.id > last, "ids went back: {} after {last}", e.id);
                last = e.id;
                seen.push((e.account.clone(), e.uid));
            }
            if finished && batch.is_empty() {
                return seen;
            }
            if batch.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
}

#[test]
fn three_instances_share_thirty_accounts_and_take_over_from_a_killed_one() {
    const PERIOD: Duration = Duration::from_secs(6);
    let accounts = users("u", 30);
    let dc = dovecot_with_mail(&accounts, |i| corpus::varied(8, i));
    let pg = Postgres::start().expect("postgres");
    let url = pg.create_database().expect("database");
    let s = setup(&pg, &url, dc.plain_port(), &accounts, "6s");
    // The schema exists before the consumer starts reading.
    drop(Reader::open_store(&store(&url)).expect("schema"));
    let done = Arc::new(AtomicBool::new(false));
    let consumer = follower(url.clone(), done.clone());

    let mut instances: Vec<Instance> = (0..3).map(|n| Instance::spawn(&s, n)).collect();
    let r = Reader::open_store(&store(&url)).expect("reader");
    let pids: BTreeSet<String> = instances.iter().map(Instance::pid).collect();
    let balance = || {
        let h = holders(&r.leases().expect("leases"));
        (h.keys().cloned().collect::<BTreeSet<_>>() == pids && h.values().all(|a| a.len() == 10))
            .then_some(())
    };
    let t0 = Instant::now();
    while balance().is_none() {
        if t0.elapsed() > Duration::from_secs(120) {
            for i in &instances {
                let log = i.log();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        l.contains("lease") || l.contains("writer") || l.contains("handing")
                    })
                    .collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                eprintln!("--- instance {} ---\n{tail}", i.pid());
            }
            panic!(
                "not balanced after 120 s: {:?}",
                r.leases().expect("leases")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let balanced = t0.elapsed();
    eprintln!("balanced 10/10/10 after {balanced:?}");
    // `status` names the instance holding each account.
    let out = s.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for pid in &pids {
        let rows = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1).map(pid_of) == Some(pid.as_str()))
            .count();
        assert_eq!(rows, 10, "status rows held by {pid}:\n{text}");
    }
    wait_for(
        "the first sync of every account",
        Duration::from_secs(240),
        || mirrors(&r, &dc, &accounts).then_some(()),
    );

    // New mail keeps arriving before and after the kill.
    for (k, m) in corpus::varied(20, 99).into_iter().enumerate() {
        let (u, _) = &accounts[(k * 7) % accounts.len()];
        dc.append(u, "INBOX", &m).expect("append");
    }

    let victim = instances.remove(1);
    let victim_pid = victim.pid();
    let victim_had = holders(&r.leases().expect("leases"))
        .remove(&victim_pid)
        .expect("victim's accounts");
    assert_eq!(victim_had.len(), 10);
    let mut fences_before = BTreeMap::new();
    for l in r.leases().expect("leases") {
        fences_before.insert(l.account, l.fence);
    }
    let mut victim = victim;
    let killed = Instant::now();
    let _ = victim.child.kill(); // SIGKILL
    let _ = victim.child.wait();
    for (k, m) in corpus::varied(40, 123).into_iter().enumerate() {
        let (u, _) = &accounts[(k * 11 + 3) % accounts.len()];
        dc.append(u, "INBOX", &m).expect("append");
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors: BTreeSet<String> = instances.iter().map(Instance::pid).collect();
    let (_, _) = wait_for(
        "the survivors holding 15 accounts each",
        Duration::from_secs(120),
        || {
            let h = holders(&r.leases().expect("leases"));
            (h.keys().cloned().collect::<BTreeSet<_>>() == survivors
                && h.values().all(|a| a.len() == 15))
            .then_some(())
        },
    );
    let took = killed.elapsed();
    // Each of the victim's accounts was claimed anew (its fence moved).
    for l in r.leases().expect("leases") {
        if victim_had.contains(&l.account) {
            assert!(l.fence > fences_before[&l.account], "{l:?}");
        }
    }
    eprintln!(
        "the killed instance's 10 accounts moved {took:?} after SIGKILL (lease period {PERIOD:?})"
    );
    // The lease runs out at most a period after its last renewal, and the
    // others look every third of a period; a loaded machine adds a little.
    assert!(
        took <= PERIOD + PERIOD / 3 + Duration::from_secs(4),
        "takeover took {took:?}"
    );

    wait_for(
        "the feed equal to the server",
        Duration::from_secs(240),
        || mirrors(&r, &dc, &accounts).then_some(()),
    );
    done.store(true, Ordering::SeqCst);
    let seen = consumer.join().expect("consumer");
    let unique: BTreeSet<(String, u32)> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "the consumer saw a row twice");
    let truth: BTreeSet<(String, u32)> = accounts
        .iter()
        .flat_map(|(u, _)| {
            dc.fetch_all(u, "INBOX")
                .expect("truth")
                .into_iter()
                .map(|(uid, _)| (u.clone(), uid))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        unique, truth,
        "the consumer saw exactly the server's messages"
    );
    eprintln!("{} messages, each seen once by the consumer", truth.len());

    for mut i in instances {
        let st = i.stop();
        assert!(st.success(), "survivor exit {st}: {}", i.log());
    }
    // A clean stop hands the leases back at once.
    let leases = r.leases().expect("leases");
    assert!(leases.iter().all(|l| l.owner.is_none()), "{leases:?}");
}

/// As many messages stored as the accounts' INBOXes hold: none twice.
fn assert_stored_once(r: &Reader, dc: &Dovecot, accounts: &[(String, String)]) {
    let total: i64 = r.status().expect("status").iter().map(|s| s.stored).sum();
    let truth: i64 = accounts
        .iter()
        .map(|(u, _)| dc.fetch_all(u, "INBOX").expect("truth").len() as i64)
        .sum();
    assert_eq!(total, truth, "no message stored twice");
}

/// Dovecot with `accounts`, the INBOX of the i-th holding `mail(i)`.
fn dovecot_with_mail(accounts: &[(String, String)], mail: impl Fn(u64) -> Vec<Vec<u8>>) -> Dovecot {
    let refs: Vec<(&str, &str)> = accounts
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let dc = Dovecot::start_with_users(&refs).expect("dovecot");
    for (i, (u, _)) in accounts.iter().enumerate() {
        dc.append_many(u, "INBOX", &mail(i as u64)).expect("append");
    }
    dc
}

/// Dovecot holding a dozen 60-120 KB messages in each account's INBOX, a
/// link to it that drips (so a pass over it is still running seconds
/// later), and a fresh PostgreSQL database.
struct SlowWorld {
    dc: Dovecot,
    slow: FaultProxy,
    pg: Postgres,
    url: String,
}

impl SlowWorld {
    fn start(accounts: &[(String, String)]) -> SlowWorld {
        let dc = dovecot_with_mail(accounts, |i| corpus::sized(12, i, 60_000, 120_000));
        let slow = FaultProxy::start(dc.plain_port(), |_| Fault::Drip {
            bytes: u64::MAX,
            max_piece: 4 * 1024,
            delay: Duration::from_millis(15),
        });
        let pg = Postgres::start().expect("postgres");
        let url = pg.create_database().expect("database");
        SlowWorld { dc, slow, pg, url }
    }
}

#[test]
fn a_paused_instance_cannot_commit_for_accounts_taken_from_it_and_works_the_rest() {
    const PERIOD: Duration = Duration::from_secs(4);
    let shared = users("f", 4);
    let mut a_accounts = shared.clone();
    a_accounts.push(("solo".into(), "pw-solo-Zq".into()));
    // A fetches over a slow link, so it is mid-transfer when paused.
    let SlowWorld { dc, slow, pg, url } = SlowWorld::start(&a_accounts);
    let sa = setup(&pg, &url, slow.port(), &a_accounts, "4s");
    let sb = setup(&pg, &url, dc.plain_port(), &shared, "4s");
    let r = Reader::open_store(&store(&url)).expect("reader");

    let mut a = Instance::spawn(&sa, 0);
    let a_pid = a.pid();
    wait_for(
        "A holding all five accounts",
        Duration::from_secs(60),
        || {
            let h = holders(&r.leases().expect("leases"));
            (h.get(&a_pid).map(|s| s.len()) == Some(5)).then_some(())
        },
    );
    // Some of A's mail is stored, not all: it is mid-transfer.
    wait_for(
        "A storing its first messages",
        Duration::from_secs(60),
        || {
            (r.status()
                .expect("status")
                .iter()
                .map(|s| s.stored)
                .sum::<i64>()
                > 0)
            .then_some(())
        },
    );
    a.signal(libc::SIGSTOP);
    let paused = Instant::now();
    let mut b = Instance::spawn(&sb, 1);
    let b_pid = b.pid();
    let names: BTreeSet<String> = shared.iter().map(|(u, _)| u.clone()).collect();
    wait_for(
        "B holding the four shared accounts",
        Duration::from_secs(60),
        || {
            let h = holders(&r.leases().expect("leases"));
            (h.get(&b_pid) == Some(&names)).then_some(())
        },
    );
    let took = paused.elapsed();
    eprintln!("B took the paused A's accounts {took:?} after SIGSTOP");
    assert!(
        took <= PERIOD + PERIOD / 3 + Duration::from_secs(6),
        "took {took:?}"
    );
    wait_for(
        "B storing every shared account",
        Duration::from_secs(180),
        || mirrors(&r, &dc, &shared).then_some(()),
    );
    let fences: BTreeMap<String, i64> = r
        .leases()
        .expect("leases")
        .into_iter()
        .map(|l| (l.account, l.fence))
        .collect();
    let before: i64 = r.status().expect("status").iter().map(|s| s.stored).sum();

    a.signal(libc::SIGCONT);
    let (_, noticed) = wait_for(
        "A noticing its lost leases",
        Duration::from_secs(60),
        || {
            let log = a.log();
            (log.contains("lease lost to another instance")
                || log.contains("lease of account")
                || log.contains("database writer stopped"))
            .then_some(())
        },
    );
    eprintln!("A noticed {noticed:?} after SIGCONT");
    // Whatever A still had in flight had every chance to commit.
    std::thread::sleep(PERIOD);
    let log = a.log();
    let fenced = log.contains("lease of account f");
    let ended = log.contains("idle-in-transaction");
    eprintln!(
        "A's own commit refused by the fence check: {fenced}; its stalled transaction ended by the server: {ended}; A exited: {:?}",
        a.child.try_wait().expect("wait")
    );
    for l in log
        .lines()
        .filter(|l| l.contains("lease") || l.contains("writer"))
    {
        eprintln!("  A: {}", &l[..l.len().min(240)]);
    }
    assert!(
        mirrors(&r, &dc, &shared),
        "the shared accounts still equal the server"
    );
    let solo_stored = r.feed_of("solo", "INBOX").expect("feed").len() as i64;
    let after: i64 = r.status().expect("status").iter().map(|s| s.stored).sum();
    let shared_after = after - solo_stored;
    let shared_truth: i64 = shared
        .iter()
        .map(|(u, _)| dc.fetch_all(u, "INBOX").expect("truth").len() as i64)
        .sum();
    assert_eq!(
        shared_after, shared_truth,
        "nothing doubled (before: {before})"
    );
    for l in r.leases().expect("leases") {
        if names.contains(&l.account) {
            // Balancing may give A one back once it runs again, always
            // through a new claim: fences only rise.
            assert!(l.fence >= fences[&l.account], "{l:?} after {fences:?}");
        } else {
            // Only A's configuration lists it: B never claims it.
            assert_ne!(l.owner.as_deref().map(pid_of), Some(b_pid.as_str()));
        }
    }
    // A lost the shared accounts, not itself: it keeps running and works
    // the account it still holds (and whatever balancing gives it back),
    // new mail included.
    assert!(
        a.child.try_wait().expect("wait").is_none(),
        "A exited after losing leases:\n{}",
        a.log()
    );
    for (k, m) in corpus::varied(10, 77).into_iter().enumerate() {
        let (u, _) = if k % 2 == 0 {
            &a_accounts[4]
        } else {
            &a_accounts[k % 4]
        };
        dc.append(u, "INBOX", &m).expect("append");
    }
    let (_, caught_up) = wait_for(
        "every account equal to the server, solo worked by the resumed A",
        Duration::from_secs(240),
        || mirrors(&r, &dc, &a_accounts).then_some(()),
    );
    eprintln!("all five accounts equal to the server {caught_up:?} after new mail");
    let solo = r
        .leases()
        .expect("leases")
        .into_iter()
        .find(|l| l.account == "solo")
        .expect("solo's lease");
    assert_eq!(solo.owner.as_deref().map(pid_of), Some(a_pid.as_str()));
    assert!(
        a.child.try_wait().expect("wait").is_none(),
        "A exited:\n{}",
        a.log()
    );
    assert_stored_once(&r, &dc, &a_accounts);
    let st = a.stop();
    assert!(st.success(), "A: {}", a.log());
    let st = b.stop();
    assert!(st.success(), "B: {}", b.log());
}

#[test]
fn sync_takes_the_leases_of_its_accounts_and_skips_those_a_running_instance_holds() {
    const PERIOD: Duration = Duration::from_secs(4);
    let accounts = users("p", 3);
    // The pass fetches over a slow link, so it is still running when the
    // instance starts.
    let SlowWorld { dc, slow, pg, url } = SlowWorld::start(&accounts);
    let pass = setup(&pg, &url, slow.port(), &accounts, "4s");
    let direct = setup(&pg, &url, dc.plain_port(), &accounts, "4s");
    let r = Reader::open_store(&store(&url)).expect("reader");
    let names: BTreeSet<String> = accounts.iter().map(|(u, _)| u.clone()).collect();

    let log = pass.dir.path().join("sync.log");
    let mut sync = pass
        .command(&["sync", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(File::create(&log).expect("log"))
        .spawn()
        .expect("spawn sync");
    let sync_pid = sync.id().to_string();
    wait_for(
        "the pass holding the three leases",
        Duration::from_secs(60),
        || {
            let h = holders(&r.leases().expect("leases"));
            (h.get(&sync_pid) == Some(&names)).then_some(())
        },
    );
    let sync_owner = r
        .leases()
        .expect("leases")
        .into_iter()
        .find_map(|l| l.owner)
        .expect("owner");
    assert!(sync_owner.ends_with("/sync"), "{sync_owner}");
    let mut a = Instance::spawn(&direct, 0);
    let a_pid = a.pid();
    // While the pass runs, the instance works none of its accounts. The
    // pass hands its leases back before its process ends, so the instance
    // may take one in between: each account seen with the instance before
    // the exit is judged by the pass's log below.
    let mut seen_early = BTreeSet::new();
    let status = loop {
        for l in r.leases().expect("leases") {
            if l.owner.as_deref().map(pid_of) == Some(a_pid.as_str()) {
                seen_early.insert(l.account);
            }
        }
        if let Some(st) = sync.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pass_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!pass_log.contains("lease lost"), "{pass_log}");
    // The pass logs a release only for a row that still named it: an
    // account the instance took mid-pass has no such line. Every account
    // has one, those the instance was seen with before the exit included.
    for account in &names {
        let released = pass_log
            .lines()
            .any(|l| l.contains("lease released") && l.contains(&format!("account={account}")));
        assert!(
            released,
            "the instance claimed {account} while the pass held it:\n{pass_log}"
        );
    }
    eprintln!("accounts the instance took between the pass's release and its exit: {seen_early:?}");
    let mut out = String::new();
    use std::io::Read;
    sync.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(
        status.success(),
        "{status}: {out}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(mirrors(&r, &dc, &accounts), "the pass stored everything");
    // Handed back at its end: the instance takes them within a tick.
    let (_, took) = wait_for(
        "the instance holding the three accounts after the pass",
        PERIOD * 3,
        || {
            let h = holders(&r.leases().expect("leases"));
            (h.get(&a_pid) == Some(&names)).then_some(())
        },
    );
    eprintln!("the instance took the accounts {took:?} after the pass ended");

    // A pass beside the instance: every account skipped, named, exit 75.
    let out = direct.run(&["sync", "--quiet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{text}");
    for (u, _) in &accounts {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("SKIPPED {u}:")))
            .unwrap_or_else(|| panic!("no SKIPPED line for {u}: {text}"));
        assert!(line.contains(&format!("/{a_pid}/")), "{line}");
    }
    let h = holders(&r.leases().expect("leases"));
    assert_eq!(h.get(&a_pid), Some(&names), "the instance kept its leases");

    // The instance goes on; the feed equals the server, nothing twice.
    for (k, m) in corpus::varied(6, 5).into_iter().enumerate() {
        dc.append(&accounts[k % 3].0, "INBOX", &m).expect("append");
    }
    wait_for(
        "the feed equal to the server",
        Duration::from_secs(120),
        || mirrors(&r, &dc, &accounts).then_some(()),
    );
    assert_stored_once(&r, &dc, &accounts);
    let st = a.stop();
    assert!(st.success(), "A: {}", a.log());
}
