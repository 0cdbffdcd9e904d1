//! The watchers against a scripted server (`crate::testing::MiniServer`),
//! and stopping.

use super::*;
use crate::testing::{IdleReply, MiniServer, Script};
use reconnect::STOP_GRACE;
use watcher::idle_watcher;

struct Fixture {
    ctx: AccountCtx,
    _dir: tempfile::TempDir,
}

/// An account on `server` with a fresh database.
fn fixture(server: &MiniServer, timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = StoreHandle::start(
        &dir.path().join("t.db"),
        crate::config::Synchronous::Normal,
        32 << 20,
    )
    .expect("store");
    let settings = crate::config::SyncConfig {
        batch_size: 500,
        max_message_size: 100_000_000,
        max_line_size: crate::imap::DEFAULT_MAX_LINE as u64,
        timeout,
        poll_interval: Duration::from_secs(300),
        idle_refresh: Duration::from_secs(25 * 60),
        max_buffered_bytes: 32 << 20,
        rescan_every: 10,
    };
    let mut account = crate::testing::account(server.port);
    account.poll_interval = timeout;
    let ctx = AccountCtx {
        account: Arc::new(account),
        engine: Engine::new(store, crate::testing::options(timeout), settings),
        health: Arc::new(Health::default()),
        cancel: CancellationToken::new(),
        retry: (Duration::from_millis(50), Duration::from_secs(5)),
    };
    Fixture { ctx, _dir: dir }
}

/// A first sync longer than the watchdog grace (4 timeouts) keeps the
/// watchdog fed while messages keep arriving. Real time: each message
/// comes half a timeout after the previous one.
#[tokio::test]
async fn a_long_first_sync_that_progresses_keeps_the_watchdog_fed() {
    let timeout = Duration::from_millis(500);
    let mut script = Script::new((1..=12).collect(), IdleReply::Accept);
    script.body_delay = timeout / 2;
    let server = MiniServer::start(script).await;
    let f = fixture(&server, timeout);
    let health = f.ctx.health.clone();
    let watcher = tokio::spawn(idle_watcher(
        f.ctx.clone(),
        crate::imap::Folder::from_wire("INBOX"),
        None,
    ));
    let t0 = Instant::now();
    while server.count("IDLE") == 0 {
        assert!(
            health.all_on_time(),
            "watchdog starved after {:?}",
            t0.elapsed()
        );
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no IDLE: {:?}",
            server.events()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        t0.elapsed() > timeout * 5,
        "the sync was quicker than the grace"
    );
    f.ctx.cancel.cancel();
    watcher.await.expect("watcher");
}

/// A server that logs in and syncs fine but says BYE to every IDLE:
/// the watcher must back off more and more, not reconnect at the
/// minimum delay forever. Real time, minimum delay 50 ms: 1.5 s hold at
/// most six connections with doubling delays (≥ 40+80+160+320+640 ms
/// with jitter), and about twenty without.
#[tokio::test]
async fn a_server_that_drops_every_idle_is_retried_ever_more_slowly() {
    let server = MiniServer::start(Script::new(vec![1, 2], IdleReply::Bye)).await;
    let f = fixture(&server, Duration::from_millis(500));
    let watcher = tokio::spawn(idle_watcher(
        f.ctx.clone(),
        crate::imap::Folder::from_wire("INBOX"),
        None,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let connects = server.count("connect");
    f.ctx.cancel.cancel();
    watcher.await.expect("watcher");
    assert!(
        (3..=6).contains(&connects),
        "{connects} connections in 1.5 s: {:?}",
        server.events()
    );
}

/// A server that refuses IDLE gets the folder polled on the same
/// connection, every `poll_interval`, instead of a reconnect loop.
#[tokio::test]
async fn a_server_that_refuses_idle_is_polled_instead() {
    let server = MiniServer::start(Script::new(vec![1, 2], IdleReply::Refuse)).await;
    let mut f = fixture(&server, Duration::from_millis(500));
    let mut account = (*f.ctx.account).clone();
    account.poll_interval = Duration::from_millis(200);
    f.ctx.account = Arc::new(account);
    let watcher = tokio::spawn(idle_watcher(
        f.ctx.clone(),
        crate::imap::Folder::from_wire("INBOX"),
        None,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = server.events();
    f.ctx.cancel.cancel();
    watcher.await.expect("watcher");
    let count = |what: &str| events.iter().filter(|e| *e == what).count();
    assert_eq!(count("connect"), 1, "{events:?}");
    assert_eq!(count("IDLE"), 1, "IDLE is not asked again: {events:?}");
    assert!(count("EXAMINE") >= 4, "the folder is polled: {events:?}");
}

/// Waits (10 s at most) until the watcher has sent IDLE.
async fn wait_for_idle(server: &MiniServer) {
    let t0 = Instant::now();
    while server.count("IDLE") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no IDLE: {:?}",
            server.events()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An EXISTS that arrives after the UID listing is not lost until the
/// next IDLE refresh: the watcher syncs again before it enters IDLE.
#[tokio::test]
async fn a_change_during_the_sync_is_synced_before_idle() {
    let mut script = Script::new(vec![1, 2], IdleReply::Accept);
    script.after_first_listing = Some("* 3 EXISTS\r\n");
    let server = MiniServer::start(script).await;
    let f = fixture(&server, Duration::from_millis(500));
    let watcher = tokio::spawn(idle_watcher(
        f.ctx.clone(),
        crate::imap::Folder::from_wire("INBOX"),
        None,
    ));
    wait_for_idle(&server).await;
    let events = server.events();
    f.ctx.cancel.cancel();
    watcher.await.expect("watcher");
    let idle = events.iter().position(|e| e == "IDLE").expect("IDLE");
    let examines = events[..idle].iter().filter(|e| *e == "EXAMINE").count();
    assert_eq!(examines, 2, "one more pass before IDLE: {events:?}");
}

/// Stopping while in IDLE on a link that went dead: DONE and LOGOUT are
/// never answered, yet the watcher ends within two STOP_GRACEs, not a
/// timeout (5 s here) plus LOGOUT's own wait.
#[tokio::test]
async fn a_watcher_on_a_dead_link_stops_quickly() {
    let server = MiniServer::start(Script::new(vec![1], IdleReply::Deaf)).await;
    let f = fixture(&server, Duration::from_secs(5));
    let watcher = tokio::spawn(idle_watcher(
        f.ctx.clone(),
        crate::imap::Folder::from_wire("INBOX"),
        None,
    ));
    wait_for_idle(&server).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    f.ctx.cancel.cancel();
    watcher.await.expect("watcher");
    let took = t0.elapsed();
    assert!(
        took < STOP_GRACE * 2 + Duration::from_millis(300),
        "stopping took {took:?}"
    );
}

/// The writer stops on request although a task that never ends still
/// holds a handle, and what was stored before is committed.
#[tokio::test]
async fn stopping_does_not_wait_for_lingering_handles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let (store, writer) =
        StoreHandle::start(&db, crate::config::Synchronous::Normal, 32 << 20).expect("store");
    store.ensure_mailbox("acc", "INBOX").await.expect("mailbox");
    let tracker = TaskTracker::new();
    let lingering = store.clone();
    tracker.spawn(async move {
        // Holds its handle and never ends (a task stuck on a dead link).
        let _keep = lingering;
        std::future::pending::<()>().await;
    });
    tracker.close();
    let t0 = Instant::now();
    stop(&tracker, &store, writer).await;
    let took = t0.elapsed();
    assert!(
        // The documented bound; the writer's part is a few milliseconds on an
        // idle machine, but a loaded one may take a second to schedule it.
        took < STOP_WATCHERS + STOP_WRITER,
        "stopping took {took:?}"
    );
    assert!(store.commit().await.is_err(), "the writer has closed");
    let mailboxes = crate::store::Reader::open(&db)
        .and_then(|r| r.status())
        .expect("status");
    assert_eq!(mailboxes.len(), 1, "committed before the writer closed");
}
