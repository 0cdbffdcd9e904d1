//! One account's task: connect and resolve its folders (retrying as any
//! task does), then watch them all on that connection with NOTIFY where the
//! server offers it, or hand them to IDLE watchers, up to `max_connections`,
//! and the rest to one poller.

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::task::TaskTracker;

use super::AccountCtx;
use super::notifier::notify_watcher;
use super::poller::poller;
use super::reconnect::{Watch, connect, logout_quickly, reconnect};
use super::watcher::idle_watcher;
use crate::imap::Folder;
use crate::session::{Session, SessionError};
use crate::sync::resolve_folders;

/// Resolves the account's folders, then starts its watchers. `first` is
/// told the account's name after its first connection attempt, whatever
/// the outcome (READY waits for every account's).
pub(super) async fn account_task(
    ctx: AccountCtx,
    tracker: TaskTracker,
    first: UnboundedSender<String>,
) {
    let name = ctx.account.name.clone();
    let mut backoff = ctx.backoff();
    let mut first = Some(first);
    let reg = ctx.health.register(&format!("{name}/(folders)"));
    let reports = [ctx
        .health
        .board
        .report(&name, None, ctx.engine.opts.timeout * 4)];
    let watch = Watch {
        ctx: &ctx,
        label: "(folders)",
        reg: &reg,
        reports: &reports,
    };
    let attempt = || {
        // Told once, after the first attempt that was not cancelled.
        let first = first.take();
        let (ctx, name) = (&ctx, &name);
        async move {
            let r = async {
                let mut s = connect(ctx).await?;
                let f = resolve_folders(&mut s, &ctx.account.folders).await?;
                Ok::<_, SessionError>((s, f))
            }
            .await;
            if let Some(f) = first {
                let _ = f.send(name.clone());
            }
            r
        }
    };
    let Some((session, folders)) = reconnect(&watch, &mut backoff, None, attempt).await else {
        return;
    };
    drop(reg);
    drop(reports);
    if folders.is_empty() {
        tracing::warn!(account = %name, "the configured folders match no folder on the server");
    }
    let caps = session.capabilities();
    if ctx.account.idle && folders.len() > 1 && caps.idle() && session.notify_offered() {
        // One connection watches them all.
        let t = tracker.clone();
        tracker.spawn(async move { notify_watcher(ctx, folders, session, t).await });
        return;
    }
    watch_separately(ctx, &tracker, folders, session).await;
}

/// Watches each folder on its own IDLE connection, up to `max_connections`,
/// and polls the rest over one; `session` serves the first of them.
pub(super) async fn watch_separately(
    ctx: AccountCtx,
    tracker: &TaskTracker,
    folders: Vec<Folder>,
    session: Session,
) {
    let name = &ctx.account.name;
    let use_idle = ctx.account.idle && session.capabilities().idle();
    let max = ctx.account.max_connections as usize;
    let (idle_folders, poll_folders): (Vec<Folder>, Vec<Folder>) = if !use_idle {
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
