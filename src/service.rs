//! The daemon behind `mailfeed run`. One task per account; within it one
//! watcher per IDLE-watched folder (each with its own connection, up to
//! `max_connections`) and one poller for the rest. Watchers reconnect with
//! exponential backoff and jitter; credentials errors back off much longer.
//!
//! Signals: SIGTERM/SIGINT stop the watchers (an IDLE is ended with DONE and
//! LOGOUT, each given a second at most since the link may be dead; a fetch in
//! progress is dropped between messages, which is safe because the cursor
//! only moves after whole ranges), then the writer is told to stop: it
//! commits what it has, whatever tasks still hold handles. `run` returns
//! within about 4 s of the signal. SIGHUP reloads the configuration: added accounts start,
//! removed ones stop, changed ones restart; an invalid file is refused and the
//! old configuration keeps running.
//!
//! systemd: READY=1 once every account made its first connection attempt,
//! STATUS= summaries, STOPPING=1, and WATCHDOG=1 only while every watcher
//! keeps meeting the deadline it announced (a hung loop stops the pings).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod edges;

use crate::config::{AccountConfig, Config};
use crate::health::{Board, FolderReport, State};
use crate::imap::{Command, Response, Untagged, UntaggedStatus};
use crate::session::{Session, SessionError};
use crate::store::StoreHandle;
use crate::sync::{Engine, SyncError, resolve_folders};

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            current: min,
            min,
            max,
        }
    }

    /// The next delay (doubling, ±20 % jitter so many clients do not retry in
    /// step), raised to at least `floor`.
    pub fn next_delay(&mut self, floor: Duration) -> Duration {
        let base = self.current.max(floor).min(self.max.max(floor));
        self.current = (base * 2).min(self.max);
        let jitter = 0.8 + fastrand::f64() * 0.4;
        base.mul_f64(jitter)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Deadlines and states announced by watchers; the watchdog pings only while
/// every deadline is met. Each watcher holds a [`Registration`] for its
/// entry, and the entry goes when the registration drops: whatever a stopped
/// task announced on its way out cannot outlive it.
#[derive(Default)]
struct Health {
    next_id: std::sync::atomic::AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
    /// What `/metrics`, `/readyz` and alerts read.
    board: Board,
}

#[derive(Default)]
struct Entry {
    deadline: Option<Instant>,
    state: Option<String>,
}

impl Health {
    /// A new entry for `who` (shown in logs only: two tasks with the same
    /// name, an old one ending and its replacement after SIGHUP, have
    /// separate entries).
    fn register(self: &Arc<Self>, who: &str) -> Registration {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut e) = self.entries.lock() {
            e.insert(id, Entry::default());
        }
        Registration {
            health: self.clone(),
            id,
            who: who.to_owned(),
        }
    }

    fn all_on_time(&self) -> bool {
        let now = Instant::now();
        self.entries
            .lock()
            .map(|e| e.values().all(|x| x.deadline.is_none_or(|t| t >= now)))
            .unwrap_or(false)
    }

    fn status_line(&self) -> String {
        let e = match self.entries.lock() {
            Ok(e) => e,
            Err(_) => return String::new(),
        };
        let states: Vec<&str> = e.values().filter_map(|x| x.state.as_deref()).collect();
        let watching = states
            .iter()
            .filter(|v| v.starts_with("idle") || v.starts_with("poll"))
            .count();
        let failing = states.iter().filter(|v| v.starts_with("retry")).count();
        format!(
            "{} watchers: {watching} healthy, {failing} retrying",
            states.len()
        )
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// One task's entry in [`Health`]; removed on drop.
struct Registration {
    health: Arc<Health>,
    id: u64,
    who: String,
}

impl Registration {
    fn update(&self, f: impl FnOnce(&mut Entry)) {
        if let Ok(mut e) = self.health.entries.lock()
            && let Some(x) = e.get_mut(&self.id)
        {
            f(x);
        }
    }

    /// This task promises to announce again before `deadline`.
    fn expect_by(&self, deadline: Instant) {
        self.update(|x| x.deadline = Some(deadline));
    }

    fn set_state(&self, state: String) {
        self.update(|x| x.state = Some(state));
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut e) = self.health.entries.lock() {
            e.remove(&self.id);
        }
        tracing::trace!(who = %self.who, "watcher unregistered");
    }
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(states);
}

/// Everything an account task needs.
#[derive(Clone)]
struct AccountCtx {
    account: Arc<AccountConfig>,
    engine: Engine,
    health: Arc<Health>,
    cancel: CancellationToken,
    /// Reconnect delays: the first and the longest.
    retry: (Duration, Duration),
}

impl AccountCtx {
    fn backoff(&self) -> Backoff {
        Backoff::new(self.retry.0, self.retry.1)
    }
}

/// Runs until SIGTERM/SIGINT; returns the exit code.
pub async fn run(config: Arc<Config>, path: PathBuf) -> Result<i32> {
    if let Some(limit) = crate::fd_limit::raise_soft_limit() {
        let planned = crate::fd_limit::planned_connections(&config);
        match crate::fd_limit::headroom_warning(planned, limit) {
            Some(warning) => tracing::warn!("{warning}"),
            None => tracing::debug!(planned, soft = limit.soft, "open-file limit"),
        }
    }
    let mut signals = signal_hook_tokio::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    // One writer per SQLite file; on PostgreSQL one instance per
    // configuration is the rule for now (see README).
    let _lock = match config.store.postgres {
        None => Some(crate::store::lock::DatabaseLock::acquire(
            &config.store.path,
        )?),
        Some(_) => None,
    };
    let (store, writer) = StoreHandle::open(&config.store, config.sync.max_buffered_bytes)?;
    let health = Arc::new(Health::default());
    let tracker = TaskTracker::new();
    let edges = CancellationToken::new();
    edges::start(&config, &health.board, &store, &edges, &tracker).await?;
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut running: HashMap<String, (AccountConfig, CancellationToken)> = HashMap::new();
    let mut current = config.clone();
    for acc in &current.accounts {
        let token = start_account(&current, acc, &store, &health, &tracker, first_tx.clone())?;
        running.insert(acc.name.clone(), (acc.clone(), token));
    }
    let mut waiting_first: std::collections::HashSet<String> =
        current.accounts.iter().map(|a| a.name.clone()).collect();
    if waiting_first.is_empty() {
        notify(&[sd_notify::NotifyState::Ready]);
    }
    let watchdog = sd_notify::watchdog_enabled();
    let mut dog_tick =
        tokio::time::interval(watchdog.map(|d| d / 2).unwrap_or(Duration::from_secs(30)));
    let mut exit = 0;
    loop {
        tokio::select! {
            sig = signals.next() => match sig {
                Some(signal_hook::consts::SIGHUP) => {
                    reload(&path, &mut current, &mut running, &store, &health, &tracker, &first_tx);
                }
                Some(_) | None => {
                    tracing::info!("stopping: finishing the current batch and logging out");
                    notify(&[sd_notify::NotifyState::Stopping]);
                    break;
                }
            },
            Some(name) = first_rx.recv() => {
                waiting_first.remove(&name);
                if waiting_first.is_empty() {
                    tracing::info!("every account has made its first connection attempt");
                    notify(&[sd_notify::NotifyState::Ready]);
                }
            }
            _ = dog_tick.tick() => {
                if store.has_failed() {
                    tracing::error!("the database writer failed; stopping so the service manager can restart mailfeed");
                    exit = 1;
                    break;
                }
                let line = health.status_line();
                notify(&[sd_notify::NotifyState::Status(&line)]);
                if watchdog.is_some() && health.all_on_time() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }
    for (_, (_, token)) in running.drain() {
        token.cancel();
    }
    edges.cancel();
    tracker.close();
    stop(&tracker, &store, writer).await;
    Ok(exit)
}

/// How long stopping may take at most: the watchers' own bound (two
/// [`STOP_GRACE`]s, ending IDLE and LOGOUT) with a margin, then the writer.
const STOP_WATCHERS: Duration = Duration::from_millis(2500);
const STOP_WRITER: Duration = Duration::from_millis(1500);

/// Waits for the cancelled tasks, then stops the writer by an explicit job
/// (tasks still alive hold handles, so waiting for the last handle to drop
/// could take forever): it commits what it has, or, if it is still busy
/// when time is up, the process exits and SQLite rolls the open transaction
/// back. Returns within `STOP_WATCHERS + STOP_WRITER`.
async fn stop(tracker: &TaskTracker, store: &StoreHandle, writer: crate::store::WriterThread) {
    if tokio::time::timeout(STOP_WATCHERS, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; exiting anyway");
    }
    store.shutdown();
    let t0 = Instant::now();
    while !writer.is_finished() && t0.elapsed() < STOP_WRITER {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if writer.is_finished() {
        writer.join();
    } else {
        tracing::warn!(
            "the database writer is still busy; exiting, its open transaction is rolled back"
        );
    }
}

fn start_account(
    config: &Config,
    acc: &AccountConfig,
    store: &StoreHandle,
    health: &Arc<Health>,
    tracker: &TaskTracker,
    first: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<CancellationToken> {
    let token = CancellationToken::new();
    let ctx = AccountCtx {
        account: Arc::new(acc.clone()),
        engine: Engine::new(
            store.clone(),
            crate::cli::connect_options(config, acc)?,
            config.sync.clone(),
        )
        .with_actions(&acc.actions),
        health: health.clone(),
        cancel: token.clone(),
        retry: (Duration::from_secs(1), Duration::from_secs(300)),
    };
    ctx.engine.actions.announce(&acc.name);
    if acc.security == crate::config::Security::Plain {
        tracing::warn!(account = %acc.name, "security = \"plain\": the password and all mail travel unencrypted");
    }
    let tracker2 = tracker.clone();
    tracker.spawn(async move { account_task(ctx, tracker2, first).await });
    Ok(token)
}

fn reload(
    path: &std::path::Path,
    current: &mut Arc<Config>,
    running: &mut HashMap<String, (AccountConfig, CancellationToken)>,
    store: &StoreHandle,
    health: &Arc<Health>,
    tracker: &TaskTracker,
    first: &tokio::sync::mpsc::UnboundedSender<String>,
) {
    let new = match Config::load(path) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(
                "SIGHUP: keeping the running configuration; the new one is invalid: {e}"
            );
            return;
        }
    };
    if new.store != current.store {
        tracing::warn!("SIGHUP: [store] changes take effect only after a restart");
    }
    if new.http != current.http || new.alerts != current.alerts {
        tracing::warn!("SIGHUP: [http] and [[alerts]] changes take effect only after a restart");
    }
    let settings_changed = new.sync != current.sync;
    let mut started = 0;
    let mut stopped = 0;
    running.retain(|name, (old, token)| {
        let keep = !settings_changed && new.accounts.iter().any(|a| a == old);
        if !keep {
            // Its tasks remove their own health entries as they end.
            tracing::debug!(account = %name, "stopping");
            token.cancel();
            stopped += 1;
        }
        keep
    });
    for acc in &new.accounts {
        if running.contains_key(&acc.name) {
            continue;
        }
        match start_account(&new, acc, store, health, tracker, first.clone()) {
            Ok(token) => {
                running.insert(acc.name.clone(), (acc.clone(), token));
                started += 1;
            }
            Err(e) => tracing::error!(account = %acc.name, "SIGHUP: cannot start account: {e:#}"),
        }
    }
    tracing::info!(started, stopped, "SIGHUP: configuration reloaded");
    *current = new;
}

/// Resolves the account's folders, then runs its watchers until cancelled.
async fn account_task(
    ctx: AccountCtx,
    tracker: TaskTracker,
    first: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let name = ctx.account.name.clone();
    let mut backoff = ctx.backoff();
    let mut first = Some(first);
    let reg = ctx.health.register(&format!("{name}/(folders)"));
    let rep = ctx
        .health
        .board
        .report(&name, None, ctx.engine.opts.timeout * 4);
    let (session, folders) = loop {
        reg.expect_by(Instant::now() + ctx.engine.opts.timeout * 4);
        let attempt = async {
            let mut s = Session::connect(&ctx.account, &ctx.engine.opts, None).await?;
            let f = resolve_folders(&mut s, &ctx.account.folders).await?;
            Ok::<_, SessionError>((s, f))
        };
        let result = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = attempt => r,
        };
        if let Some(f) = first.take() {
            let _ = f.send(name.clone());
        }
        match result {
            Ok(ok) => break ok,
            Err(e) => {
                let delay = retry_delay(&mut backoff, &e);
                report_failure(&name, "(folders)", &e.to_string(), e.is_permanent(), delay);
                rep.session_failed(&e);
                reg.set_state(format!("retry: {e}"));
                reg.expect_by(Instant::now() + delay + ctx.engine.opts.timeout * 4);
                if sleep_or_cancel(&ctx.cancel, delay).await {
                    return;
                }
            }
        }
    };
    drop(reg);
    drop(rep);
    if folders.is_empty() {
        tracing::warn!(account = %name, "the configured folders match no folder on the server");
    }
    let use_idle = ctx.account.idle && session.capabilities().idle();
    let max = ctx.account.max_connections as usize;
    let (idle_folders, poll_folders): (Vec<String>, Vec<String>) = if !use_idle {
        (Vec::new(), folders)
    } else if folders.len() <= max {
        (folders, Vec::new())
    } else {
        let mut f = folders;
        let rest = f.split_off(max.saturating_sub(1));
        (f, rest)
    };
    tracing::info!(
        account = %name,
        idle = idle_folders.len(),
        polled = poll_folders.len(),
        "watching folders"
    );
    // The first connection serves the poller, or the first IDLE watcher.
    let mut spare = Some(session);
    if !poll_folders.is_empty() {
        let c = ctx.clone();
        let s = spare.take();
        tracker.spawn(async move { poller(c, poll_folders, s).await });
    }
    for folder in idle_folders {
        let c = ctx.clone();
        let s = spare.take();
        tracker.spawn(async move { idle_watcher(c, folder, s).await });
    }
    if let Some(s) = spare {
        logout_quickly(s).await;
    }
}

fn retry_delay(backoff: &mut Backoff, e: &SessionError) -> Duration {
    let floor = if e.is_permanent() {
        Duration::from_secs(300)
    } else if e.server_asks_to_wait() {
        Duration::from_secs(30)
    } else {
        Duration::ZERO
    };
    backoff.next_delay(floor)
}

fn report_failure(account: &str, folder: &str, error: &str, permanent: bool, delay: Duration) {
    if permanent {
        tracing::error!(
            account,
            folder,
            retry_in_s = delay.as_secs(),
            "{error} — this will not fix itself; check the configuration"
        );
    } else {
        tracing::warn!(account, folder, retry_in_s = delay.as_secs(), "{error}");
    }
}

/// How long a stopping watcher may spend ending IDLE (DONE and its reply),
/// and then again on LOGOUT: the link may be dead, and `mailfeed run` must
/// exit well within systemd's stop timeout.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// LOGOUT within [`STOP_GRACE`], else just close the connection.
async fn logout_quickly(s: Session) {
    let _ = tokio::time::timeout(STOP_GRACE, s.logout()).await;
}

/// Sleeps unless cancelled first; true when cancelled.
async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Runs a sync while keeping `reg`'s deadline `grace` ahead of the engine's
/// last progress (a message received, a batch stored): a long first sync
/// that keeps moving feeds the watchdog however long it takes, while one that
/// makes no progress for `grace` stops feeding it.
async fn fed_by_progress<T>(
    reg: &Registration,
    progress: &std::sync::atomic::AtomicU64,
    grace: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    reg.expect_by(Instant::now() + grace);
    let mut seen = progress.load(std::sync::atomic::Ordering::Relaxed);
    let mut check = tokio::time::interval(grace / 8);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = check.tick() => {
                let now = progress.load(std::sync::atomic::Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    reg.expect_by(Instant::now() + grace);
                }
            }
        }
    }
}

fn session_error(e: &SyncError) -> Option<&SessionError> {
    match e {
        SyncError::Session(s) => Some(s),
        _ => None,
    }
}

/// Keeps one folder in sync over its own connection, waiting in IDLE.
async fn idle_watcher(ctx: AccountCtx, folder: String, mut session: Option<Session>) {
    let mut ctx = ctx;
    ctx.engine = ctx.engine.with_own_progress();
    let name = ctx.account.name.clone();
    let shown = crate::imap::mutf7::decode(&folder);
    let reg = ctx.health.register(&format!("{name}/{shown}"));
    let timeout = ctx.engine.opts.timeout;
    let rep = ctx.health.board.report(
        &name,
        Some(&shown),
        ctx.engine.settings.idle_refresh + timeout * 4,
    );
    let mut connected_before = session.is_some();
    let mut backoff = ctx.backoff();
    let mut idle_refused = false;
    loop {
        reg.expect_by(Instant::now() + timeout * 4);
        let s = match session.take() {
            Some(s) => s,
            None => {
                let r = tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    r = Session::connect(&ctx.account, &ctx.engine.opts, None) => r,
                };
                match r {
                    Ok(s) => {
                        if connected_before {
                            rep.reconnected();
                        }
                        connected_before = true;
                        s
                    }
                    Err(e) => {
                        let delay = retry_delay(&mut backoff, &e);
                        report_failure(&name, &shown, &e.to_string(), e.is_permanent(), delay);
                        rep.session_failed(&e);
                        reg.set_state(format!("retry: {e}"));
                        reg.expect_by(Instant::now() + delay + timeout * 4);
                        if sleep_or_cancel(&ctx.cancel, delay).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        let mut s = s;
        let looped = idle_loop(
            &ctx,
            &mut s,
            &folder,
            (&reg, &rep),
            &mut backoff,
            &mut idle_refused,
        );
        match looped.await {
            Ok(()) => {
                logout_quickly(s).await;
                return;
            }
            Err(e) => {
                let (permanent, delay) = match session_error(&e) {
                    Some(se) => (se.is_permanent(), retry_delay(&mut backoff, se)),
                    None => (false, backoff.next_delay(Duration::ZERO)),
                };
                report_failure(&name, &shown, &e.to_string(), permanent, delay);
                rep.sync_failed(&e);
                reg.set_state(format!("retry: {e}"));
                reg.expect_by(Instant::now() + delay + timeout * 4);
                if sleep_or_cancel(&ctx.cancel, delay).await {
                    return;
                }
            }
        }
    }
}

/// How long an IDLE must last before the connection counts as healthy and
/// the reconnect backoff starts again from its minimum.
const HEALTHY_IDLE: Duration = Duration::from_secs(60);

/// Sync, IDLE until something changes or the refresh period ends, repeat.
/// Returns Ok only when cancelled. The backoff is reset only once the
/// connection has proved healthy (an IDLE cycle completed, or an IDLE that
/// lasted [`HEALTHY_IDLE`]), so a server that accepts the login and the sync
/// but then drops every IDLE is retried ever more slowly. A server that
/// refuses IDLE gets the folder polled on this connection instead
/// (`idle_refused` remembers that across reconnects).
async fn idle_loop(
    ctx: &AccountCtx,
    s: &mut Session,
    folder: &str,
    (reg, rep): (&Registration, &FolderReport),
    backoff: &mut Backoff,
    idle_refused: &mut bool,
) -> Result<(), SyncError> {
    let timeout = ctx.engine.opts.timeout;
    let refresh = ctx.engine.settings.idle_refresh;
    loop {
        // The pass looks at the folder afresh: what was noted before is in it.
        s.take_unsolicited_changes();
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = fed_by_progress(reg, &ctx.engine.progress, timeout * 4, rep.pass(ctx.engine.sync_folder(s, &ctx.account.name, folder))) => { r?; }
        }
        if *idle_refused {
            return poll_one(ctx, s, folder, (reg, rep), backoff).await;
        }
        if s.take_unsolicited_changes() {
            // A change announced during the pass (an EXISTS after the UID
            // listing, say) may not be in it, and IDLE will not repeat it.
            tracing::debug!(account = %ctx.account.name, "the folder changed during the sync; syncing again");
            continue;
        }
        reg.set_state("idle".into());
        let tag = s.send(&Command::Idle).await?;
        // Wait for the server's `+`; anything else first is just data.
        loop {
            let r = tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                r = s.next_response() => r?,
            };
            match r.response {
                Response::Continuation(_) => break,
                Response::Tagged { status, text, .. } => {
                    tracing::warn!(
                        account = %ctx.account.name,
                        folder = %crate::imap::mutf7::decode(folder),
                        "the server refused IDLE ({} {}); polling this folder every {:?} instead",
                        status.as_str(),
                        text.text,
                        ctx.account.poll_interval
                    );
                    *idle_refused = true;
                    return poll_one(ctx, s, folder, (reg, rep), backoff).await;
                }
                _ => {}
            }
        }
        rep.idle_opened();
        let idle_since = Instant::now();
        let deadline = idle_since + refresh;
        let mut proved_healthy = false;
        reg.expect_by(deadline + timeout * 4);
        let mut cancelled = false;
        loop {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                break;
            }
            let mut wait = left;
            if !proved_healthy {
                let to_healthy = (idle_since + HEALTHY_IDLE).saturating_duration_since(now);
                if to_healthy.is_zero() {
                    proved_healthy = true;
                    backoff.reset();
                    continue;
                }
                wait = wait.min(to_healthy);
            }
            let r = tokio::select! {
                _ = ctx.cancel.cancelled() => { cancelled = true; break; }
                r = s.next_response_within(wait) => r?,
            };
            let Some(r) = r else { continue };
            match r.response {
                Response::Untagged(
                    Untagged::Exists(_)
                    | Untagged::Expunge(_)
                    | Untagged::Fetch(..)
                    | Untagged::Vanished { .. },
                ) => break,
                Response::Untagged(Untagged::Status(UntaggedStatus::Bye, text)) => {
                    return Err(SessionError::Bye(text.text).into());
                }
                _ => {}
            }
        }
        if cancelled {
            // Stopping: end IDLE politely if the server answers at once.
            let _ = tokio::time::timeout(STOP_GRACE, async {
                s.send_done().await?;
                s.collect(&tag, "IDLE").await
            })
            .await;
            return Ok(());
        }
        // DONE must be answered within the normal timeout: a silent peer here
        // is a dead connection (a NAT that dropped it, a blackholed link).
        let done = async {
            s.send_done().await?;
            s.collect(&tag, "IDLE").await
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = done => { r?; }
        }
        // A whole IDLE cycle: this connection works.
        backoff.reset();
    }
}

/// Polls one folder on its watcher's connection (the server refused IDLE):
/// wait `poll_interval`, sync, repeat. Returns Ok only when cancelled.
async fn poll_one(
    ctx: &AccountCtx,
    s: &mut Session,
    folder: &str,
    (reg, rep): (&Registration, &FolderReport),
    backoff: &mut Backoff,
) -> Result<(), SyncError> {
    let timeout = ctx.engine.opts.timeout;
    let interval = ctx.account.poll_interval;
    loop {
        reg.set_state("poll".into());
        rep.set_state(State::Polling);
        reg.expect_by(Instant::now() + interval + timeout * 4);
        if sleep_or_cancel(&ctx.cancel, interval).await {
            return Ok(());
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = fed_by_progress(reg, &ctx.engine.progress, timeout * 4, rep.pass(ctx.engine.sync_folder(s, &ctx.account.name, folder))) => { r?; }
        }
        // A poll that worked, after a whole interval on this connection.
        backoff.reset();
    }
}

/// Polls folders that have no IDLE connection of their own.
async fn poller(ctx: AccountCtx, folders: Vec<String>, mut session: Option<Session>) {
    let mut ctx = ctx;
    ctx.engine = ctx.engine.with_own_progress();
    let name = ctx.account.name.clone();
    let reg = ctx.health.register(&format!("{name}/(poll)"));
    let mut backoff = ctx.backoff();
    let timeout = ctx.engine.opts.timeout;
    let interval = ctx.account.poll_interval;
    let reps: Vec<FolderReport> = folders
        .iter()
        .map(|f| {
            let shown = crate::imap::mutf7::decode(f);
            ctx.health
                .board
                .report(&name, Some(&shown), interval + timeout * 6)
        })
        .collect();
    let mut connected_before = session.is_some();
    loop {
        let mut s = match session.take() {
            Some(s) => s,
            None => {
                reg.expect_by(Instant::now() + timeout * 4);
                let r = tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    r = Session::connect(&ctx.account, &ctx.engine.opts, None) => r,
                };
                match r {
                    Ok(s) => {
                        if connected_before {
                            reps.iter().for_each(FolderReport::reconnected);
                        }
                        connected_before = true;
                        s
                    }
                    Err(e) => {
                        let delay = retry_delay(&mut backoff, &e);
                        report_failure(&name, "(poll)", &e.to_string(), e.is_permanent(), delay);
                        reps.iter().for_each(|r| r.session_failed(&e));
                        reg.set_state(format!("retry: {e}"));
                        reg.expect_by(Instant::now() + delay + timeout * 4);
                        if sleep_or_cancel(&ctx.cancel, delay).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        let mut broken = false;
        let mut ok = vec![false; folders.len()];
        for (i, (folder, rep)) in folders.iter().zip(&reps).enumerate() {
            // Each folder gets a fresh deadline: a pass over many folders is
            // progress, not a hang.
            let grace = timeout * 6;
            let r = tokio::select! {
                _ = ctx.cancel.cancelled() => { logout_quickly(s).await; return; }
                r = fed_by_progress(&reg, &ctx.engine.progress, grace, rep.pass(ctx.engine.sync_folder(&mut s, &name, folder))) => r,
            };
            ok[i] = r.is_ok();
            if let Err(e) = r {
                rep.sync_failed(&e);
                let shown = crate::imap::mutf7::decode(folder);
                tracing::warn!(account = %name, folder = %shown, "sync failed: {e}");
                if e.breaks_connection() {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            let delay = backoff.next_delay(Duration::ZERO);
            reg.set_state("retry: connection lost".into());
            reg.expect_by(Instant::now() + delay + timeout * 4);
            if sleep_or_cancel(&ctx.cancel, delay).await {
                return;
            }
            continue;
        }
        backoff.reset();
        reg.set_state("poll".into());
        for (rep, _) in reps.iter().zip(&ok).filter(|(_, ok)| **ok) {
            rep.set_state(State::Polling);
        }
        reg.expect_by(Instant::now() + interval + timeout * 4);
        // A connection that died while we slept is found by the next pass's
        // first read (which has a timeout) and replaced.
        if sleep_or_cancel(&ctx.cancel, interval).await {
            logout_quickly(s).await;
            return;
        }
        session = Some(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{IdleReply, MiniServer, Script};

    /// SIGHUP cancels a watcher caught between DONE and its tagged reply:
    /// it announces one more deadline before it sees the cancel, then ends.
    /// Nothing it announced may stay behind to starve the watchdog, and the
    /// replacement with the same name keeps its own entry.
    #[tokio::test(start_paused = true)]
    async fn a_stopped_watchers_deadline_goes_with_it() {
        let health = Arc::new(Health::default());
        let cancel = CancellationToken::new();
        let (h, c) = (health.clone(), cancel.clone());
        let (in_done_tx, in_done) = tokio::sync::oneshot::channel();
        let old = tokio::spawn(async move {
            let reg = h.register("acc/INBOX");
            reg.set_state("idle".into());
            reg.expect_by(Instant::now() + Duration::from_secs(240));
            let _ = in_done_tx.send(());
            // DONE answered late; the loop comes round and re-announces.
            tokio::time::sleep(Duration::from_secs(2)).await;
            reg.expect_by(Instant::now() + Duration::from_secs(240));
            c.cancelled().await;
        });
        in_done.await.expect("old watcher started");
        cancel.cancel(); // the reload
        let new = health.register("acc/INBOX");
        new.set_state("idle".into());
        old.await.expect("old watcher ended");
        assert_eq!(health.entries(), 1, "only the replacement is left");
        // Long after the old deadlines, the replacement keeps announcing.
        tokio::time::advance(Duration::from_secs(600)).await;
        new.expect_by(Instant::now() + Duration::from_secs(240));
        assert!(health.all_on_time());
        assert_eq!(health.status_line(), "1 watchers: 1 healthy, 0 retrying");
        drop(new);
        assert_eq!(health.entries(), 0);
    }

    /// A task that ends any way at all (return, panic, abort) takes its
    /// entry with it.
    #[tokio::test(start_paused = true)]
    async fn registrations_go_when_their_task_is_aborted() {
        let health = Arc::new(Health::default());
        let h = health.clone();
        let task = tokio::spawn(async move {
            let reg = h.register("acc/(poll)");
            reg.expect_by(Instant::now() + Duration::from_secs(1));
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        assert_eq!(health.entries(), 1);
        task.abort();
        let _ = task.await;
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(health.entries(), 0);
        assert!(health.all_on_time());
    }

    /// A sync that keeps making progress keeps its deadline ahead, however
    /// long it runs; one that stops making progress misses it.
    #[tokio::test(start_paused = true)]
    async fn progress_keeps_the_deadline_ahead() {
        let health = Arc::new(Health::default());
        let reg = health.register("acc/INBOX");
        let grace = Duration::from_secs(240);
        let progress = std::sync::atomic::AtomicU64::new(0);
        let moving = async {
            // Twenty grace periods of steady progress.
            for _ in 0..40 {
                tokio::time::sleep(grace / 2).await;
                progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let watch = async {
            loop {
                tokio::time::sleep(grace / 16).await;
                assert!(health.all_on_time(), "a moving sync missed its deadline");
            }
        };
        tokio::select! {
            () = fed_by_progress(&reg, &progress, grace, moving) => {}
            () = watch => unreachable!(),
        }
        // Now a sync that hangs: on time until the grace runs out, late after.
        let stuck = fed_by_progress(&reg, &progress, grace, std::future::pending::<()>());
        let watch = async {
            tokio::time::sleep(grace - Duration::from_secs(1)).await;
            assert!(health.all_on_time());
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert!(
                !health.all_on_time(),
                "a stuck sync must starve the watchdog"
            );
        };
        tokio::select! {
            () = stuck => unreachable!(),
            () = watch => {}
        }
    }

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
        let watcher = tokio::spawn(idle_watcher(f.ctx.clone(), "INBOX".into(), None));
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
        let watcher = tokio::spawn(idle_watcher(f.ctx.clone(), "INBOX".into(), None));
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
        let watcher = tokio::spawn(idle_watcher(f.ctx.clone(), "INBOX".into(), None));
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
        let watcher = tokio::spawn(idle_watcher(f.ctx.clone(), "INBOX".into(), None));
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
        let watcher = tokio::spawn(idle_watcher(f.ctx.clone(), "INBOX".into(), None));
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
            took < STOP_WATCHERS + Duration::from_millis(500),
            "stopping took {took:?}"
        );
        assert!(store.commit().await.is_err(), "the writer has closed");
        let mailboxes = crate::store::Reader::open(&db)
            .and_then(|r| r.status())
            .expect("status");
        assert_eq!(mailboxes.len(), 1, "committed before the writer closed");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let d1 = b.next_delay(Duration::ZERO);
        assert!(d1 >= Duration::from_millis(800) && d1 <= Duration::from_millis(1200));
        let d2 = b.next_delay(Duration::ZERO);
        assert!(d2 >= Duration::from_millis(1600) && d2 <= Duration::from_millis(2400));
        for _ in 0..20 {
            b.next_delay(Duration::ZERO);
        }
        assert!(b.next_delay(Duration::ZERO) <= Duration::from_secs(360));
        b.reset();
        assert!(b.next_delay(Duration::ZERO) <= Duration::from_millis(1200));
        // Credentials errors wait at least the floor.
        assert!(b.next_delay(Duration::from_secs(300)) >= Duration::from_secs(240));
    }
}
