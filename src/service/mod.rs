//! The daemon behind `mailfeed run`. One task per account; within it one
//! NOTIFY watcher for all its folders where the server offers NOTIFY, else one
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

//!
//! `account.rs` an account's task, `notifier.rs` the one connection that
//! watches all of an account's folders with NOTIFY, `watcher.rs` an IDLE watcher,
//! `poller.rs` the poller, `reconnect.rs` the one connect → back off →
//! report loop they share, `backoff.rs` the delays, `watchdog.rs` deadlines
//! and states for systemd, `edges.rs` HTTP and alerts, `error.rs` why it
//! could not start, `leases.rs` the lease ticks and hand-overs, `restart.rs`
//! a new writer after the old one failed on a leased store. Speaks no IMAP: it
//! asks the session to wait for a change and the engine to sync.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod account;
mod backoff;
mod edges;
mod error;
pub(crate) mod leases;
mod notifier;
mod poller;
mod reconnect;
mod restart;
mod watchdog;
mod watcher;

pub use backoff::Backoff;
pub use error::ServiceError;

use crate::config::{AccountConfig, Config};
use crate::store::StoreHandle;
use crate::sync::Engine;
use watchdog::Health;

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(states);
}

/// Everything an account task needs.
#[derive(Clone)]
pub(crate) struct AccountCtx {
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

/// How `run` ended; the CLI turns it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by SIGTERM or SIGINT.
    Stopped,
    /// The SQLite writer failed, or the lease thread stopped: stopped so
    /// the service manager can restart mailfeed. (A PostgreSQL writer that
    /// failed is restarted in place, `restart.rs`.)
    WriterFailed,
}

/// Runs until SIGTERM/SIGINT or a failed writer.
pub async fn run(config: Arc<Config>, path: PathBuf) -> Result<Outcome, ServiceError> {
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
    ])
    .map_err(ServiceError::Signals)?;
    // One writer per SQLite file; on PostgreSQL instances share the
    // accounts through leases, and each commit checks their fences.
    let _lock = match config.store.postgres {
        None => Some(crate::store::lock::DatabaseLock::acquire(
            &config.store.path,
        )?),
        Some(_) => None,
    };
    let shares = match &config.store.postgres {
        None => None,
        Some(pg) => Some(leases::Shares::open(pg, account_names(&config)).await?),
    };
    let (mut store, mut writer) = match &shares {
        None => StoreHandle::open(&config.store, config.sync.max_buffered_bytes)?,
        Some(s) => StoreHandle::open_leased(
            &config.store,
            config.sync.max_buffered_bytes,
            s.book.clone(),
        )?,
    };
    let health = Arc::new(Health::default());
    let tracker = TaskTracker::new();
    let edges = CancellationToken::new();
    edges::start(&config, &health.board, &store, &edges, &tracker).await?;
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut current = config.clone();
    // With leases, an account starts once this instance holds its lease.
    let mut held: Option<HashSet<String>> = None;
    let (mut ticks, ticker) = match &shares {
        Some(s) => {
            let (mut rx, stop) = s.ticks();
            let first = tokio::time::timeout(s.interval * 3, rx.recv()).await;
            held = Some(
                first
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .held
                    .into_iter()
                    .collect(),
            );
            (Some(rx), Some(stop))
        }
        None => (None, None),
    };
    for acc in &current.accounts {
        if held.as_ref().is_some_and(|h| !h.contains(&acc.name)) {
            continue;
        }
        let started = start_account(&current, acc, &store, &health, &tracker, first_tx.clone())?;
        running.insert(acc.name.clone(), started);
    }
    let mut waiting_first: HashSet<String> = running.keys().cloned().collect();
    if waiting_first.is_empty() {
        notify(&[sd_notify::NotifyState::Ready]);
    }
    let watchdog = sd_notify::watchdog_enabled();
    let mut dog_tick =
        tokio::time::interval(watchdog.map(|d| d / 2).unwrap_or(Duration::from_secs(30)));
    let mut outcome = Outcome::Stopped;
    let mut restarts = restart::Restarts::new();
    // A failed writer is replaced from two places in the loop (a lease tick
    // and the watchdog tick), with the loop's whole state.
    macro_rules! recover_store {
        ($book:expr) => {
            restarts
                .recover(
                    restart::Loop {
                        started: &config,
                        current: &current,
                        running: &mut running,
                        held: held.as_ref(),
                        store: &mut store,
                        writer: &mut writer,
                        health: &health,
                        tracker: &tracker,
                        first: &first_tx,
                    },
                    $book,
                )
                .await
        };
    }
    loop {
        tokio::select! {
            sig = signals.next() => match sig {
                Some(signal_hook::consts::SIGHUP) => {
                    reload(&path, &mut current, &mut running, held.as_ref(), &store, &health, &tracker, &first_tx);
                    if let Some(s) = &shares {
                        s.set_accounts(account_names(&current)).await;
                    }
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
            tick = async { ticks.as_mut()?.recv().await }, if ticks.is_some() => {
                let Some(tick) = tick else {
                    // The lease thread ended: without renewals the leases
                    // run out and the others take the accounts over.
                    tracing::error!("the lease thread stopped; stopping so the service manager can restart mailfeed");
                    outcome = Outcome::WriterFailed;
                    break;
                };
                for name in &tick.lost {
                    if let Some(r) = running.remove(name) {
                        tracing::warn!(account = %name, "lease lost to another instance; stopping the account");
                        r.token.cancel();
                    }
                }
                let Some(s) = &shares else { continue };
                if !tick.surplus.is_empty() {
                    let mut finished = Vec::new();
                    for name in &tick.surplus {
                        if let Some(r) = running.remove(name) {
                            r.token.cancel();
                            finished.push(r.finished);
                        }
                    }
                    tracing::info!(accounts = ?tick.surplus, live_instances = tick.live_instances, "handing accounts over to balance the instances");
                    let (s, names, st) = (s.clone(), tick.surplus.clone(), store.clone());
                    tracker.spawn(async move { s.hand_over(names, finished, st).await });
                }
                for acc in &current.accounts {
                    // After a writer failure the restart below starts them.
                    if tick.held.contains(&acc.name) && !running.contains_key(&acc.name) && !store.has_failed() {
                        match start_account(&current, acc, &store, &health, &tracker, first_tx.clone()) {
                            Ok(r) => {
                                running.insert(acc.name.clone(), r);
                            }
                            Err(e) => tracing::error!(account = %acc.name, "cannot start account: {e:#}"),
                        }
                    }
                }
                held = Some(tick.held.into_iter().collect());
                if store.has_failed() {
                    // Only this instance's uncommitted work is lost; the
                    // accounts it still holds start again on a new writer.
                    let book = s.book.clone();
                    recover_store!(book);
                }
            }
            _ = dog_tick.tick() => {
                if store.has_failed() {
                    let Some(s) = &shares else {
                        tracing::error!("the database writer failed; stopping so the service manager can restart mailfeed");
                        outcome = Outcome::WriterFailed;
                        break;
                    };
                    let book = s.book.clone();
                    recover_store!(book);
                }
                let line = health.status_line();
                notify(&[sd_notify::NotifyState::Status(&line)]);
                if watchdog.is_some() && health.all_on_time() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }
    for (_, r) in running.drain() {
        r.token.cancel();
    }
    edges.cancel();
    tracker.close();
    let failed = store.has_failed();
    if let Some(t) = &ticker {
        t.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    drop(ticks);
    stop(&tracker, &store, writer).await;
    // After a failed writer the leases run out instead: what it had not
    // committed is gone, and the next holder starts from the cursors.
    if let Some(s) = &shares
        && !failed
    {
        s.leave().await;
    }
    Ok(outcome)
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

/// The configured account names (the leases an instance may claim).
fn account_names(config: &Config) -> Vec<String> {
    config.accounts.iter().map(|a| a.name.clone()).collect()
}

/// An account being worked.
struct Running {
    config: AccountConfig,
    /// Cancels its tasks.
    token: CancellationToken,
    /// Cancelled once its task and every connection it started ended.
    finished: CancellationToken,
}

fn start_account(
    config: &Config,
    acc: &AccountConfig,
    store: &StoreHandle,
    health: &Arc<Health>,
    tracker: &TaskTracker,
    first: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<Running, ServiceError> {
    let token = CancellationToken::new();
    let ctx = AccountCtx {
        account: Arc::new(acc.clone()),
        engine: Engine::new(
            store.clone(),
            crate::session::connect_options(config, acc)?,
            config.sync.clone(),
        )
        .with_daily_limit(acc.daily_download_limit)
        .with_actions(&acc.actions),
        health: health.clone(),
        cancel: token.clone(),
        retry: (Duration::from_secs(1), Duration::from_secs(300)),
    };
    ctx.engine.actions.announce(&acc.name);
    if acc.security == crate::config::Security::Plain {
        tracing::warn!(account = %acc.name, "security = \"plain\": the password and all mail travel unencrypted");
    }
    // Its connections run on a tracker of its own, so a hand-over can
    // wait for all of them; the outer tracker waits for this task.
    let own = TaskTracker::new();
    let finished = CancellationToken::new();
    let done = finished.clone();
    tracker.spawn(async move {
        account::account_task(ctx, own.clone(), first).await;
        own.close();
        own.wait().await;
        done.cancel();
    });
    Ok(Running {
        config: acc.clone(),
        token,
        finished,
    })
}

#[allow(clippy::too_many_arguments)]
fn reload(
    path: &std::path::Path,
    current: &mut Arc<Config>,
    running: &mut HashMap<String, Running>,
    held: Option<&HashSet<String>>,
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
    running.retain(|name, r| {
        let keep = !settings_changed && new.accounts.contains(&r.config);
        if !keep {
            // Its tasks remove their own health entries as they end.
            tracing::debug!(account = %name, "stopping");
            r.token.cancel();
            stopped += 1;
        }
        keep
    });
    for acc in &new.accounts {
        // With leases, only accounts this instance holds; the others
        // start when a lease tick claims them.
        if running.contains_key(&acc.name) || held.is_some_and(|h| !h.contains(&acc.name)) {
            continue;
        }
        match start_account(&new, acc, store, health, tracker, first.clone()) {
            Ok(r) => {
                running.insert(acc.name.clone(), r);
                started += 1;
            }
            Err(e) => tracing::error!(account = %acc.name, "SIGHUP: cannot start account: {e:#}"),
        }
    }
    tracing::info!(started, stopped, "SIGHUP: configuration reloaded");
    *current = new;
}

#[cfg(test)]
mod tests;
