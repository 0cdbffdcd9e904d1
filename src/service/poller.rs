//! The folders that have no IDLE connection of their own, polled in turn
//! over one connection every `poll_interval`.

use tokio::time::Instant;

use super::AccountCtx;
use super::reconnect::{Failure, Watch, logout_quickly, session_or_reconnect, sleep_or_cancel};
use super::watchdog::fed_by_progress;
use crate::health::{FolderReport, State};
use crate::imap::Folder;
use crate::session::Session;

/// Polls `folders` until the task is stopped.
pub(super) async fn poller(ctx: AccountCtx, folders: Vec<Folder>, mut session: Option<Session>) {
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
            ctx.health
                .board
                .report(&name, Some(f.name()), interval + timeout * 6)
        })
        .collect();
    let watch = Watch {
        ctx: &ctx,
        label: "(poll)",
        reg: &reg,
        reports: &reps,
    };
    let mut connected_before = session.is_some();
    loop {
        let Some(mut s) =
            session_or_reconnect(&mut session, &watch, &mut backoff, &mut connected_before).await
        else {
            return;
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
                tracing::warn!(account = %name, folder = %folder, "sync failed: {e}");
                if e.breaks_connection() {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            if watch.back_off(&mut backoff, Failure::ConnectionLost).await {
                return;
            }
            continue;
        }
        backoff.reset();
        reg.set_state(State::Polling);
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
