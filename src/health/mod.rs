//! The service's health as others may read it: per account and folder, what
//! a watcher is doing now, how its last syncs went, and its failures by
//! kind. The service writes it through [`FolderReport`]s; the HTTP edge and
//! the alerts read copies ([`Board::snapshot`]), so a reader never holds a
//! lock a watcher waits for beyond one copy. Does no IO: no sockets, no SQL;
//! it only reads the clock to stamp what it is told.

mod kind;
mod report;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use kind::ErrorKind;
pub use report::FolderReport;

/// What a watcher is doing, as `/metrics` and `status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Connecting or waiting for its first pass.
    Starting,
    /// Waiting in IDLE for the server to announce a change.
    Idle,
    /// Waiting for the next poll.
    Polling,
    /// A pass is running.
    Syncing,
    /// Waiting before a retry after a failure that may go away.
    BackingOff,
    /// Waiting a long while after a failure that will not go away by itself
    /// (credentials, a refused security setting).
    Failed,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Starting,
        State::Idle,
        State::Polling,
        State::Syncing,
        State::BackingOff,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Idle => "idle",
            State::Polling => "polling",
            State::Syncing => "syncing",
            State::BackingOff => "backing_off",
            State::Failed => "failed",
        }
    }
}

/// Where an entry belongs: an account's folder, or the account itself
/// (`folder` is `None`) for what happens before folders are known (the
/// first login and the folder listing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub account: String,
    pub folder: Option<String>,
}

impl Key {
    /// `account` or `account/folder`, for people.
    pub fn shown(&self) -> String {
        match &self.folder {
            Some(f) => format!("{}/{f}", self.account),
            None => self.account.clone(),
        }
    }
}

/// One entry's health at the moment of the snapshot.
#[derive(Debug, Clone)]
pub struct FolderHealth {
    pub state: State,
    /// Failures since the last successful pass (or connection).
    pub consecutive_failures: u64,
    /// When the current run of failures began; `None` while healthy.
    pub failing_since: Option<SystemTime>,
    pub last_error: Option<String>,
    /// The kind of the last error, to tell an operator where to look.
    pub last_error_kind: Option<ErrorKind>,
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    /// Errors so far, by kind (indexed by [`ErrorKind::index`]).
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Connections made again after one was lost or refused.
    pub reconnects: u64,
    /// Whether an IDLE command is running on this entry's connection.
    pub idle_open: bool,
    /// How long this entry may go without a successful pass and still be
    /// ready: the IDLE refresh or the poll interval, plus a few timeouts.
    pub expected_interval: Duration,
}

impl FolderHealth {
    fn new(expected_interval: Duration) -> Self {
        FolderHealth {
            state: State::Starting,
            consecutive_failures: 0,
            failing_since: None,
            last_error: None,
            last_error_kind: None,
            last_success: None,
            last_duration: None,
            errors: [0; ErrorKind::ALL.len()],
            reconnects: 0,
            idle_open: false,
            expected_interval,
        }
    }

    /// Why this entry is not ready at `now`, or `None` when it is: it must
    /// have succeeded, not be failing, and be waiting in IDLE or have synced
    /// within its expected interval.
    pub fn not_ready(&self, now: SystemTime) -> Option<String> {
        if let Some(since) = self.failing_since {
            let error = self.last_error.as_deref().unwrap_or("unknown error");
            return Some(format!(
                "failing for {}s ({} attempts): {error}",
                now.duration_since(since).unwrap_or_default().as_secs(),
                self.consecutive_failures
            ));
        }
        let Some(last) = self.last_success else {
            return Some("has not synced yet".into());
        };
        if self.state == State::Idle && self.idle_open {
            return None;
        }
        let age = now.duration_since(last).unwrap_or_default();
        if age > self.expected_interval {
            return Some(format!(
                "last synced {}s ago, expected every {}s",
                age.as_secs(),
                self.expected_interval.as_secs()
            ));
        }
        None
    }
}

/// The shared health of every running watcher. Cheap to clone.
#[derive(Clone, Default)]
pub struct Board {
    entries: Arc<Mutex<BTreeMap<Key, Slot>>>,
}

struct Slot {
    health: FolderHealth,
    /// Live [`FolderReport`]s for this key; the entry goes with the last.
    holders: usize,
}

impl Board {
    /// A report handle for `account` and `folder` (`None`: the account). A
    /// reload's replacement watcher shares the entry of the one it replaces,
    /// so counters carry on; the entry goes when no report holds it.
    pub fn report(
        &self,
        account: &str,
        folder: Option<&str>,
        expected_interval: Duration,
    ) -> FolderReport {
        let key = Key {
            account: account.to_owned(),
            folder: folder.map(str::to_owned),
        };
        if let Ok(mut e) = self.entries.lock() {
            let slot = e.entry(key.clone()).or_insert_with(|| Slot {
                health: FolderHealth::new(expected_interval),
                holders: 0,
            });
            slot.holders += 1;
            slot.health.expected_interval = expected_interval;
        }
        FolderReport::new(self.clone(), key)
    }

    /// A copy of every entry, in key order.
    pub fn snapshot(&self) -> Vec<(Key, FolderHealth)> {
        self.entries
            .lock()
            .map(|e| {
                e.iter()
                    .map(|(k, s)| (k.clone(), s.health.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn update(&self, key: &Key, f: impl FnOnce(&mut FolderHealth)) {
        if let Ok(mut e) = self.entries.lock()
            && let Some(s) = e.get_mut(key)
        {
            f(&mut s.health);
        }
    }

    fn release(&self, key: &Key) {
        if let Ok(mut e) = self.entries.lock()
            && let Some(s) = e.get_mut(key)
        {
            s.holders -= 1;
            if s.holders == 0 {
                e.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
