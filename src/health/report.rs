//! One watcher's handle on its [`Board`] entry: the calls the service makes
//! as things happen (a pass starts, ends, fails; IDLE opens; a reconnect).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use super::{Board, ErrorKind, Key, State};
use crate::session::SessionError;
use crate::sync::SyncError;

/// Removes its share of the entry on drop, whichever way the task ends.
pub struct FolderReport {
    board: Board,
    key: Key,
}

impl FolderReport {
    pub(super) fn new(board: Board, key: Key) -> Self {
        FolderReport { board, key }
    }

    pub fn set_state(&self, state: State) {
        self.board.update(&self.key, |h| {
            h.state = state;
            if state != State::Idle {
                h.idle_open = false;
            }
        });
    }

    /// IDLE is running (the server sent its `+`).
    pub fn idle_opened(&self) {
        self.board.update(&self.key, |h| {
            h.state = State::Idle;
            h.idle_open = true;
        });
    }

    /// A connection made after an earlier one was lost or refused.
    pub fn reconnected(&self) {
        self.board.update(&self.key, |h| h.reconnects += 1);
    }

    /// A pass finished in `took`.
    pub fn succeeded(&self, took: Duration) {
        self.board.update(&self.key, |h| {
            h.consecutive_failures = 0;
            h.failing_since = None;
            h.last_success = Some(SystemTime::now());
            h.last_duration = Some(took);
        });
    }

    /// Something failed; `permanent` when retrying soon will not help.
    pub fn failed(&self, kind: ErrorKind, error: &str, permanent: bool) {
        self.board.update(&self.key, |h| {
            h.consecutive_failures += 1;
            h.failing_since.get_or_insert_with(SystemTime::now);
            h.last_error = Some(error.to_owned());
            h.last_error_kind = Some(kind);
            h.errors[kind.index()] += 1;
            h.idle_open = false;
            h.state = if permanent {
                State::Failed
            } else {
                State::BackingOff
            };
        });
    }

    pub fn session_failed(&self, e: &SessionError) {
        self.failed(ErrorKind::of_session(e), &e.to_string(), e.is_permanent());
    }

    pub fn sync_failed(&self, e: &SyncError) {
        let permanent = matches!(e, SyncError::Session(s) if s.is_permanent());
        self.failed(ErrorKind::of_sync(e), &e.to_string(), permanent);
    }

    /// Runs one pass, recording its start and, when it succeeds, its
    /// duration. A failure is the caller's to record ([`Self::sync_failed`]):
    /// it also fails in ways outside a pass (IDLE, a lost connection).
    pub async fn pass<T>(
        &self,
        work: impl Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        self.set_state(State::Syncing);
        let t0 = Instant::now();
        let r = work.await;
        if r.is_ok() {
            self.succeeded(t0.elapsed());
        }
        r
    }
}

impl Drop for FolderReport {
    fn drop(&mut self) {
        self.board.release(&self.key);
    }
}
