//! All of an account's folders watched over one connection (NOTIFY, RFC
//! 5465): the watch is set, every folder gets a pass, then the connection
//! (no folder selected, where UNSELECT allows) waits in IDLE until the
//! server names a folder that changed, and only those get a pass, besides
//! any folder whose last pass is a refresh period (`idle_refresh`) old. A
//! server that refuses the watch or IDLE gets the folders watched
//! separately instead. What the
//! server said is the session's ([`Session::take_notified`]); this decides
//! only which folder to sync and when.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::AccountCtx;
use super::account::watch_separately;
use super::backoff::Backoff;
use super::reconnect::{Failure, Watch, logout_quickly, session_or_reconnect};
use super::watchdog::{Registration, fed_by_progress};
use super::watcher::{Waited, idle_until_change};
use crate::health::{FolderReport, State};
use crate::imap::Folder;
use crate::session::{IdleBegun, NotifyBegun, Seen, Session};
use crate::sync::SyncError;

/// How a watch over one connection ended, short of an error.
enum Ended {
    /// The task was stopped.
    Cancelled,
    /// The server refused NOTIFY or IDLE (its words).
    Refused(String),
}

/// Watches `folders` over one connection until the task is stopped.
pub(super) async fn notify_watcher(
    ctx: AccountCtx,
    folders: Vec<Folder>,
    session: Session,
    tracker: TaskTracker,
) {
    let mut ctx = ctx;
    ctx.engine = ctx.engine.with_own_progress();
    let name = ctx.account.name.clone();
    let timeout = ctx.engine.opts.timeout;
    let reg = ctx.health.register(&format!("{name}/(notify)"));
    let reps: Vec<FolderReport> = folders
        .iter()
        .map(|f| {
            ctx.health.board.report(
                &name,
                Some(f.name()),
                ctx.engine.settings.idle_refresh + timeout * 4,
            )
        })
        .collect();
    let watch = Watch {
        ctx: &ctx,
        label: "(notify)",
        reg: &reg,
        reports: &reps,
    };
    tracing::info!(account = %name, folders = folders.len(), "watching folders over one connection (NOTIFY)");
    let mut session = Some(session);
    let mut connected_before = true;
    let mut backoff = ctx.backoff();
    let (s, words) = loop {
        reg.expect_by(Instant::now() + timeout * 4);
        let Some(mut s) =
            session_or_reconnect(&mut session, &watch, &mut backoff, &mut connected_before).await
        else {
            return;
        };
        match watch_loop(&ctx, &mut s, &folders, (&reg, &reps), &mut backoff).await {
            Ok(Ended::Cancelled) => {
                logout_quickly(s).await;
                return;
            }
            Ok(Ended::Refused(words)) => break (s, words),
            Err(e) => {
                if watch.back_off(&mut backoff, Failure::Sync(&e)).await {
                    return;
                }
            }
        }
    };
    tracing::warn!(account = %name, "the server refused to watch the folders together ({words}); watching them separately");
    drop(reps);
    drop(reg);
    watch_separately(ctx, &tracker, folders, s).await;
}

/// Sets the watch, syncs every folder, then waits and syncs the folders
/// named, until stopped or refused.
async fn watch_loop(
    ctx: &AccountCtx,
    s: &mut Session,
    folders: &[Folder],
    (reg, reps): (&Registration, &[FolderReport]),
    backoff: &mut Backoff,
) -> Result<Ended, SyncError> {
    let timeout = ctx.engine.opts.timeout;
    let account = &ctx.account.name;
    // Set before the first pass: whatever arrives during the passes is
    // noted, so nothing falls between a folder's pass and the wait.
    let wires: Vec<String> = folders.iter().map(|f| f.wire().to_owned()).collect();
    let begun = tokio::select! {
        _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
        r = s.notify_set(&wires) => r?,
    };
    if let NotifyBegun::Refused(words) = begun {
        return Ok(Ended::Refused(words));
    }
    let mut due: BTreeSet<usize> = (0..folders.len()).collect();
    // What each folder's last pass saw when it opened it, and when.
    let mut seen: Vec<Option<Seen>> = vec![None; folders.len()];
    let refresh = ctx.engine.settings.idle_refresh;
    let mut passed_at = vec![Instant::now(); folders.len()];
    // The folder left selected: its changes are announced as EXISTS,
    // EXPUNGE or FETCH, not STATUS.
    let mut selected: Option<usize> = None;
    loop {
        // Folders selected during this round, the one left selected before
        // it included: a change made while a folder was selected is
        // announced only while it stays selected, so it is asked after.
        let mut touched: BTreeSet<usize> = selected.into_iter().collect();
        while !due.is_empty() {
            if s.take_unsolicited_changes()
                && let Some(j) = selected
            {
                due.insert(j);
            }
            // The selected folder first: the changes it reported unasked
            // belong to it only while it stays selected.
            let Some(i) = selected
                .filter(|j| due.contains(j))
                .or_else(|| due.first().copied())
            else {
                break;
            };
            due.remove(&i);
            let rep = &reps[i];
            let r = tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
                r = fed_by_progress(reg, &ctx.engine.progress, timeout * 4, rep.pass(ctx.engine.sync_folder(s, account, &folders[i]))) => r,
            };
            selected = Some(i);
            touched.insert(i);
            passed_at[i] = Instant::now();
            seen[i] = s
                .opened()
                .filter(|(f, _)| *f == folders[i].wire())
                .map(|(_, st)| st);
            if let Err(e) = r {
                if e.breaks_connection() {
                    return Err(e);
                }
                // Tried again at the next refresh, or when it changes.
                rep.sync_failed(&e);
                tracing::warn!(account = %account, folder = %folders[i], "sync failed: {e}");
            }
            if s.take_unsolicited_changes() {
                // Announced during the pass; it may not be in it.
                due.insert(i);
            }
            note(s, folders, &mut due);
            if !due.is_empty() {
                continue;
            }
            // Nothing selected while waiting, so the watch announces every
            // change; then what changed while selected, unannounced.
            if s.unselect().await? {
                selected = None;
            }
            for &j in &touched {
                let moved = match &seen[j] {
                    Some(st) => s.moved_on(folders[j].wire(), st).await?,
                    None => false,
                };
                if moved {
                    due.insert(j);
                }
            }
            touched.clear();
            touched.extend(selected);
            note(s, folders, &mut due);
        }
        reg.set_state(State::Idle);
        let begun = tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
            r = s.begin_idle() => r?,
        };
        if let IdleBegun::Refused(words) = begun {
            return Ok(Ended::Refused(words));
        }
        for (i, rep) in reps.iter().enumerate() {
            if Some(i) == selected.or(Some(0)) {
                // The one IDLE running, shown once.
                rep.idle_opened();
            } else {
                rep.set_state(State::Idle);
            }
        }
        // Every folder gets a pass at least every refresh period, as each
        // IDLE watcher's does, however busy the others keep the connection.
        let oldest = passed_at.iter().min().copied().unwrap_or_else(Instant::now);
        let limit = (oldest + refresh).saturating_duration_since(Instant::now());
        let limit = limit.max(Duration::from_secs(1));
        match idle_until_change(ctx, s, reg, backoff, limit).await? {
            Waited::Cancelled => return Ok(Ended::Cancelled),
            Waited::Quiet | Waited::Changed => {
                if s.take_unsolicited_changes()
                    && let Some(j) = selected
                {
                    due.insert(j);
                }
                note(s, folders, &mut due);
            }
        }
        let now = Instant::now();
        due.extend((0..folders.len()).filter(|&i| passed_at[i] + refresh <= now));
        if !due.is_empty() {
            tracing::debug!(account = %account, folders = due.len(), "folders changed; syncing them");
        }
    }
}

/// Adds the folders the server named since last asked to `due`.
fn note(s: &mut Session, folders: &[Folder], due: &mut BTreeSet<usize>) {
    let n = s.take_notified();
    if n.all {
        due.extend(0..folders.len());
        return;
    }
    for f in &n.folders {
        if let Some(i) = folders.iter().position(|x| x.wire() == f) {
            due.insert(i);
        }
    }
}
