//! One folder kept in sync over its own connection: a pass, then IDLE until
//! the server announces a change or the refresh period ends, then again. A
//! server that refuses IDLE gets the folder polled on the same connection.
//! The waiting is the session's ([`Session::wait_in_idle`]); this decides
//! only when to sync, wait, give up and reconnect.

use std::time::Duration;

use tokio::time::Instant;

use super::AccountCtx;
use super::backoff::Backoff;
use super::reconnect::{
    Failure, STOP_GRACE, Watch, logout_quickly, session_or_reconnect, sleep_or_cancel,
};
use super::watchdog::{Registration, fed_by_progress};
use crate::health::{FolderReport, State};
use crate::imap::Folder;
use crate::session::{IdleBegun, Session};
use crate::sync::SyncError;

/// Keeps one folder in sync over its own connection, waiting in IDLE.
pub(super) async fn idle_watcher(ctx: AccountCtx, folder: Folder, mut session: Option<Session>) {
    let mut ctx = ctx;
    ctx.engine = ctx.engine.with_own_progress();
    let name = ctx.account.name.clone();
    let shown = folder.name();
    let reg = ctx.health.register(&format!("{name}/{shown}"));
    let timeout = ctx.engine.opts.timeout;
    let reports = [ctx.health.board.report(
        &name,
        Some(shown),
        ctx.engine.settings.idle_refresh + timeout * 4,
    )];
    let watch = Watch {
        ctx: &ctx,
        label: shown,
        reg: &reg,
        reports: &reports,
    };
    let mut connected_before = session.is_some();
    let mut backoff = ctx.backoff();
    let mut idle_refused = false;
    loop {
        reg.expect_by(Instant::now() + timeout * 4);
        let Some(mut s) =
            session_or_reconnect(&mut session, &watch, &mut backoff, &mut connected_before).await
        else {
            return;
        };
        let looped = idle_loop(
            &ctx,
            &mut s,
            &folder,
            (&reg, &reports[0]),
            &mut backoff,
            &mut idle_refused,
        );
        match looped.await {
            Ok(()) => {
                logout_quickly(s).await;
                return;
            }
            Err(e) => {
                if watch.back_off(&mut backoff, Failure::Sync(&e)).await {
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
    folder: &Folder,
    (reg, rep): (&Registration, &FolderReport),
    backoff: &mut Backoff,
    idle_refused: &mut bool,
) -> Result<(), SyncError> {
    let timeout = ctx.engine.opts.timeout;
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
        reg.set_state(State::Idle);
        let begun = tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = s.begin_idle() => r?,
        };
        if let IdleBegun::Refused(words) = begun {
            tracing::warn!(
                account = %ctx.account.name,
                folder = %folder,
                "the server refused IDLE ({words}); polling this folder every {:?} instead",
                ctx.account.poll_interval
            );
            *idle_refused = true;
            return poll_one(ctx, s, folder, (reg, rep), backoff).await;
        }
        rep.idle_opened();
        let refresh = ctx.engine.settings.idle_refresh;
        if idle_until_change(ctx, s, reg, backoff, refresh).await? == Waited::Cancelled {
            return Ok(());
        }
    }
}

/// How an IDLE wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waited {
    /// The server announced a change; IDLE was ended.
    Changed,
    /// The refresh period passed quietly; IDLE was ended.
    Quiet,
    /// The task was stopped.
    Cancelled,
}

/// Waits in the IDLE just begun until the server announces a change or
/// `limit` passes (at most `idle_refresh`), then ends it with DONE. The
/// backoff is reset once the IDLE proved the connection healthy.
pub(super) async fn idle_until_change(
    ctx: &AccountCtx,
    s: &mut Session,
    reg: &Registration,
    backoff: &mut Backoff,
    limit: Duration,
) -> Result<Waited, SyncError> {
    let timeout = ctx.engine.opts.timeout;
    let idle_since = Instant::now();
    let deadline = idle_since + limit.min(ctx.engine.settings.idle_refresh);
    let mut proved_healthy = false;
    reg.expect_by(deadline + timeout * 4);
    let mut changed = false;
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
        let announced = tokio::select! {
            _ = ctx.cancel.cancelled() => {
                // Stopping: end IDLE politely if the server answers at once.
                let _ = tokio::time::timeout(STOP_GRACE, s.end_idle()).await;
                return Ok(Waited::Cancelled);
            }
            r = s.wait_in_idle(wait) => r?,
        };
        if announced {
            changed = true;
            break;
        }
    }
    // DONE must be answered within the normal timeout: a silent peer here
    // is a dead connection (a NAT that dropped it, a blackholed link).
    tokio::select! {
        _ = ctx.cancel.cancelled() => return Ok(Waited::Cancelled),
        r = s.end_idle() => r?,
    }
    // A whole IDLE cycle: this connection works.
    backoff.reset();
    Ok(if changed {
        Waited::Changed
    } else {
        Waited::Quiet
    })
}

/// Polls one folder on its watcher's connection (the server refused IDLE):
/// wait `poll_interval`, sync, repeat. Returns Ok only when cancelled.
async fn poll_one(
    ctx: &AccountCtx,
    s: &mut Session,
    folder: &Folder,
    (reg, rep): (&Registration, &FolderReport),
    backoff: &mut Backoff,
) -> Result<(), SyncError> {
    let timeout = ctx.engine.opts.timeout;
    let interval = ctx.account.poll_interval;
    loop {
        reg.set_state(State::Polling);
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
