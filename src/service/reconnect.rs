//! Connect → on error → back off → report, written once for every task of
//! the service (the account's folder listing, each IDLE watcher, the
//! poller): the failure is logged and put on the health board, the state and
//! the next deadline announced to the watchdog, and the task sleeps unless
//! it is stopped first.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::AccountCtx;
use super::backoff::Backoff;
use super::watchdog::Registration;
use crate::health::{FolderReport, State};
use crate::session::{Session, SessionError};
use crate::sync::SyncError;

/// One task as it reports: its registration with the watchdog, its entries
/// on the health board, and the label its log lines carry.
pub(super) struct Watch<'a> {
    pub ctx: &'a AccountCtx,
    pub label: &'a str,
    pub reg: &'a Registration,
    pub reports: &'a [FolderReport],
}

/// What went wrong, as far as backing off is concerned.
pub(super) enum Failure<'e> {
    /// Connecting, logging in or listing failed.
    Session(&'e SessionError),
    /// A pass or IDLE failed.
    Sync(&'e SyncError),
    /// A connection broke during a pass the caller already reported.
    ConnectionLost,
}

impl Watch<'_> {
    /// Records `failure`, announces the retry and sleeps; true when the task
    /// was stopped meanwhile.
    pub async fn back_off(&self, backoff: &mut Backoff, failure: Failure<'_>) -> bool {
        let (delay, permanent) = match failure {
            Failure::Session(e) => {
                let delay = backoff.after(e);
                self.log(&e.to_string(), e.is_permanent(), delay);
                self.reports.iter().for_each(|r| r.session_failed(e));
                (delay, e.is_permanent())
            }
            Failure::Sync(e) => {
                let (delay, permanent) = match e {
                    SyncError::Session(se) => (backoff.after(se), se.is_permanent()),
                    _ => (backoff.next_delay(Duration::ZERO), false),
                };
                self.log(&e.to_string(), permanent, delay);
                self.reports.iter().for_each(|r| r.sync_failed(e));
                (delay, permanent)
            }
            Failure::ConnectionLost => (backoff.next_delay(Duration::ZERO), false),
        };
        self.reg.set_state(if permanent {
            State::Failed
        } else {
            State::BackingOff
        });
        self.reg
            .expect_by(Instant::now() + delay + self.ctx.engine.opts.timeout * 4);
        sleep_or_cancel(&self.ctx.cancel, delay).await
    }

    fn log(&self, error: &str, permanent: bool, delay: Duration) {
        let (account, folder) = (self.ctx.account.name.as_str(), self.label);
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
}

/// Runs `attempt` until it succeeds, backing off after each failure;
/// `None` when the task is stopped first. With `reconnects`, a success after
/// an earlier connection (lost or refused) is counted on the board.
pub(super) async fn reconnect<T, F>(
    watch: &Watch<'_>,
    backoff: &mut Backoff,
    mut reconnects: Option<&mut bool>,
    mut attempt: impl FnMut() -> F,
) -> Option<T>
where
    F: Future<Output = Result<T, SessionError>>,
{
    let ctx = watch.ctx;
    loop {
        watch
            .reg
            .expect_by(Instant::now() + ctx.engine.opts.timeout * 4);
        let r = tokio::select! {
            _ = ctx.cancel.cancelled() => return None,
            r = attempt() => r,
        };
        match r {
            Ok(t) => {
                if let Some(before) = reconnects.as_deref_mut() {
                    if *before {
                        watch.reports.iter().for_each(FolderReport::reconnected);
                    }
                    *before = true;
                }
                return Some(t);
            }
            Err(e) => {
                if watch.back_off(backoff, Failure::Session(&e)).await {
                    return None;
                }
            }
        }
    }
}

/// The session a task already holds, or else a new one through
/// [`reconnect`] (backing off and reporting as every task does); `None`
/// when the task was cancelled while waiting.
pub(super) async fn session_or_reconnect(
    session: &mut Option<Session>,
    watch: &Watch<'_>,
    backoff: &mut Backoff,
    connected_before: &mut bool,
) -> Option<Session> {
    match session.take() {
        Some(s) => Some(s),
        None => {
            let attempt = || connect(watch.ctx);
            reconnect(watch, backoff, Some(connected_before), attempt).await
        }
    }
}

/// A connection and login for the account, as every task makes them.
pub(super) async fn connect(ctx: &AccountCtx) -> Result<Session, SessionError> {
    Session::connect(&ctx.account, &ctx.engine.opts, None).await
}

/// How long a stopping watcher may spend ending IDLE (DONE and its reply),
/// and then again on LOGOUT: the link may be dead, and `mailfeed run` must
/// exit well within systemd's stop timeout.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(1);

/// LOGOUT within [`STOP_GRACE`], else just close the connection.
pub(super) async fn logout_quickly(s: Session) {
    let _ = tokio::time::timeout(STOP_GRACE, s.logout()).await;
}

/// Sleeps unless cancelled first; true when cancelled.
pub(super) async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
