//! `run` on a PostgreSQL store shared through leases, after its database
//! writer failed — a commit refused by the fence check because a lease was
//! lost, or its connection ended by the server while the process was
//! paused or cut off. The instance does not exit: it stops the accounts it
//! runs (their uncommitted work went with the rolled-back transaction),
//! starts a new writer on a new connection, and starts again the accounts
//! it still holds, from their committed cursors. The stopped tasks' store
//! handles point at the failed writer and keep failing
//! (`StoreHandle::restart_leased`), so nothing they still send can land
//! after the restart. Accounts whose lease was lost are not started again:
//! the lease tick took them out of the held set. Restarts back off (1 s
//! doubling to 1 min) so a writer that keeps failing does not spin.
//! Speaks no IMAP or SQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::{Backoff, Health, Running, start_account};
use crate::config::Config;
use crate::store::{LeaseBook, StoreHandle, WriterThread};

/// How long the stopped accounts' tasks may take to end before the new
/// writer starts anyway (their handles fail either way).
const TASKS_END: Duration = Duration::from_secs(5);

/// A quiet spell after which a failure counts as the first again.
const QUIET: Duration = Duration::from_secs(600);

/// When the next restart may be tried.
pub(super) struct Restarts {
    backoff: Backoff,
    not_before: Instant,
    last: Option<Instant>,
}

/// What a restart works on: the service loop's state.
pub(super) struct Loop<'a> {
    /// The configuration `run` started with (its `[store]` is the one used).
    pub(super) started: &'a Config,
    /// The configuration now (after reloads): which accounts to start.
    pub(super) current: &'a Config,
    pub(super) running: &'a mut HashMap<String, Running>,
    pub(super) held: Option<&'a HashSet<String>>,
    pub(super) store: &'a mut StoreHandle,
    pub(super) writer: &'a mut WriterThread,
    pub(super) health: &'a Arc<Health>,
    pub(super) tracker: &'a TaskTracker,
    pub(super) first: &'a tokio::sync::mpsc::UnboundedSender<String>,
}

impl Restarts {
    pub(super) fn new() -> Restarts {
        Restarts {
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            not_before: Instant::now(),
            last: None,
        }
    }

    /// Replaces the failed writer and restarts the held accounts, if a
    /// restart is due; a failure (the database still away) is logged and
    /// tried again at a later call.
    pub(super) async fn recover(&mut self, l: Loop<'_>, book: Arc<LeaseBook>) {
        let now = Instant::now();
        if now < self.not_before {
            return;
        }
        if self.last.is_some_and(|t| now.duration_since(t) > QUIET) {
            self.backoff.reset();
        }
        self.last = Some(now);
        self.not_before = now + self.backoff.next_delay(Duration::ZERO);
        if !l.running.is_empty() {
            tracing::warn!(
                accounts = l.running.len(),
                "the database writer failed; stopping this instance's accounts, their uncommitted work is redone from the committed cursors"
            );
        }
        let finished: Vec<_> = l
            .running
            .drain()
            .map(|(_, r)| {
                r.token.cancel();
                r.finished
            })
            .collect();
        let ended = tokio::time::timeout(TASKS_END, async {
            for f in finished {
                f.cancelled().await;
            }
        })
        .await;
        if ended.is_err() {
            tracing::warn!("some account tasks did not end in time; their writes fail");
        }
        let mut fresh = l.store.clone();
        let (store, budget) = (l.started.store.clone(), l.started.sync.max_buffered_bytes);
        let opened = tokio::task::spawn_blocking(move || {
            fresh
                .restart_leased(&store, budget, book)
                .map(|thread| (fresh, thread))
        })
        .await;
        let (fresh, thread) = match opened {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::error!("restarting the database writer failed (trying again): {e}");
                return;
            }
            Err(e) => {
                tracing::error!("restarting the database writer failed (trying again): {e}");
                return;
            }
        };
        *l.store = fresh;
        let old = std::mem::replace(l.writer, thread);
        tokio::task::spawn_blocking(move || old.join());
        let mut started = 0;
        for acc in &l.current.accounts {
            if l.held.is_some_and(|h| !h.contains(&acc.name)) {
                continue;
            }
            match start_account(
                l.current,
                acc,
                l.store,
                l.health,
                l.tracker,
                l.first.clone(),
            ) {
                Ok(r) => {
                    l.running.insert(acc.name.clone(), r);
                    started += 1;
                }
                Err(e) => tracing::error!(account = %acc.name, "cannot start account: {e:#}"),
            }
        }
        tracing::info!(
            accounts = started,
            "database writer restarted; the accounts this instance holds are running again"
        );
    }
}
