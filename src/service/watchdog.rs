//! The watchdog's view of the watchers: each task announces the deadline by
//! which it will announce again, and its state; systemd's WATCHDOG=1 is sent
//! only while every deadline is met, and STATUS= summarises the states. An
//! entry goes with the task that registered it, however the task ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::health::{Board, State};

/// Deadlines and states announced by watchers; the watchdog pings only while
/// every deadline is met. Each watcher holds a [`Registration`] for its
/// entry, and the entry goes when the registration drops: whatever a stopped
/// task announced on its way out cannot outlive it.
#[derive(Default)]
pub(super) struct Health {
    next_id: std::sync::atomic::AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
    /// What `/metrics`, `/readyz` and alerts read.
    pub(super) board: Board,
}

#[derive(Default)]
struct Entry {
    deadline: Option<Instant>,
    state: Option<State>,
}

impl Health {
    /// A new entry for `who` (shown in logs only: two tasks with the same
    /// name, an old one ending and its replacement after SIGHUP, have
    /// separate entries).
    pub(super) fn register(self: &Arc<Self>, who: &str) -> Registration {
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

    pub(super) fn all_on_time(&self) -> bool {
        let now = Instant::now();
        self.entries
            .lock()
            .map(|e| e.values().all(|x| x.deadline.is_none_or(|t| t >= now)))
            .unwrap_or(false)
    }

    pub(super) fn status_line(&self) -> String {
        let e = match self.entries.lock() {
            Ok(e) => e,
            Err(_) => return String::new(),
        };
        let states: Vec<State> = e.values().filter_map(|x| x.state).collect();
        let watching = states
            .iter()
            .filter(|v| matches!(v, State::Idle | State::Polling))
            .count();
        let failing = states
            .iter()
            .filter(|v| matches!(v, State::BackingOff | State::Failed))
            .count();
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
pub(super) struct Registration {
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
    pub(super) fn expect_by(&self, deadline: Instant) {
        self.update(|x| x.deadline = Some(deadline));
    }

    pub(super) fn set_state(&self, state: State) {
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

/// Runs a sync while keeping `reg`'s deadline `grace` ahead of the engine's
/// last progress (a message received, a batch stored): a long first sync
/// that keeps moving feeds the watchdog however long it takes, while one that
/// makes no progress for `grace` stops feeding it.
pub(super) async fn fed_by_progress<T>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

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
            reg.set_state(State::Idle);
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
        new.set_state(State::Idle);
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
}
