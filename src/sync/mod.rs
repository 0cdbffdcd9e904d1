//! The sync engine: a pure *plan* (cursor + what EXAMINE said → what to
//! fetch, in which UID ranges) and an *execute* step that drives a
//! [`Session`] and hands messages to the store writer. It never sees raw
//! protocol bytes or SQL.
//!
//! Safety argument, in one place: a batch is a contiguous UID range
//! `(previous end, end]` that covers every UID the server listed in it. When
//! the server's tagged OK for that range's FETCH has arrived and every earlier
//! range is complete, every message in it has been handed to the writer, so
//! the cursor may move to `end`. The writer applies jobs in order, so the
//! cursor can never be committed before those messages.
//!
//! Files: `plan.rs` (pure plan and batches), `pipeline.rs` (pure range and
//! cursor bookkeeping of the pipelined fetch), `fetch.rs` (drives it over a
//! session), `listing.rs` (UID listings and flag scans), `changes.rs` (flags
//! and expunges of stored messages, changes reported unasked), `folder.rs`
//! (one folder pass), `account.rs` (folder resolution, one account pass).

pub mod progress;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::SyncConfig;
use crate::session::{ConnectOptions, SessionError};
use crate::store::{MailboxId, StoreError, StoreHandle};
use progress::{ProgressEvent, ProgressSink};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server reported no usable UIDVALIDITY for the folder")]
    NoUidValidity,
    #[error("server sent no content (NIL) for UID {0}; it will be retried on the next pass")]
    NilBody(u32),
    #[error("server sent a message without its UID")]
    MissingUid,
    #[error("UIDVALIDITY changed during the session (from {old} to {new})")]
    UidValidityChanged { old: u32, new: u32 },
    #[error(
        "daily_download_limit of {limit} bytes reached for today (UTC); the account pauses until {resumes} and then resumes where it stopped"
    )]
    DailyLimit { limit: u64, resumes: String },
    #[error(
        "server listed UID {0} but did not send it, and it still exists; the folder's cursor stays below it and the next pass asks again"
    )]
    NotDelivered(u32),
    #[error(transparent)]
    Action(#[from] crate::actions::ActionError),
}

impl SyncError {
    /// True when the connection is unusable afterwards.
    pub fn breaks_connection(&self) -> bool {
        match self {
            SyncError::Session(SessionError::CommandFailed { .. }) => false,
            // A store error can stop a pass in the middle of a FETCH whose
            // responses are still arriving, and the writer is fail-stop:
            // the connection is neither in step nor of further use.
            SyncError::Session(_)
            | SyncError::Store(_)
            | SyncError::MissingUid
            | SyncError::UidValidityChanged { .. } => true,
            SyncError::Action(e) => e.breaks_connection(),
            _ => false,
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SyncError::Session(e) => e.hint(),
            _ => None,
        }
    }
}

/// What one mailbox pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderStats {
    /// Messages received (new, re-found, or stored before by a cut-off pass).
    pub fetched: u64,
    /// Rows the pass added to the feed (one `new` event each).
    pub new: u64,
    /// Messages stored under a new UIDVALIDITY that were already in the
    /// feed under an earlier one (linked, not shown again).
    pub refound: u64,
    pub bytes: u64,
    pub new_generation: bool,
}

/// The outcome of one folder in a pass.
#[derive(Debug)]
pub struct FolderOutcome {
    pub account: String,
    pub folder: String,
    pub result: Result<FolderStats, SyncError>,
}

/// Everything the engine needs besides a session.
#[derive(Clone)]
pub struct Engine {
    pub store: StoreHandle,
    pub opts: ConnectOptions,
    pub settings: SyncConfig,
    /// Passes made per mailbox, to space out rescans (see `rescan_every`).
    pub passes: Arc<Mutex<std::collections::HashMap<MailboxId, u64>>>,
    /// Mailboxes whose next pass must list UIDs and flags whatever the
    /// schedule: the server reported an expunge by number, or more changes
    /// than were held (see [`crate::session::Reported`]).
    pub rescan_now: Arc<Mutex<std::collections::HashSet<MailboxId>>>,
    /// Rises with every message received and every batch stored: whoever
    /// runs a long sync can tell one that is moving from one that hangs.
    pub progress: Arc<AtomicU64>,
    /// What to do on the server after storing (`crate::actions`).
    pub actions: Arc<crate::actions::Actions>,
    /// Told of each folder's totals and each message, when someone shows them.
    pub sink: Option<ProgressSink>,
    /// `daily_download_limit` of the account this engine syncs.
    pub daily_download_limit: Option<u64>,
}

impl Engine {
    pub fn new(store: StoreHandle, opts: ConnectOptions, settings: SyncConfig) -> Engine {
        Engine {
            store,
            opts,
            settings,
            passes: Arc::default(),
            rescan_now: Arc::default(),
            progress: Arc::default(),
            actions: Arc::default(),
            sink: None,
            daily_download_limit: None,
        }
    }

    /// The same engine reporting to `sink` (folder listings then also ask
    /// for RFC822.SIZE, so the byte total is known up front).
    pub fn with_sink(self, sink: ProgressSink) -> Engine {
        Engine {
            sink: Some(sink),
            ..self
        }
    }

    fn tell(&self, event: ProgressEvent<'_>) {
        if let Some(s) = &self.sink {
            s(event);
        }
    }

    /// The same engine, pausing its account once `limit` bytes were
    /// downloaded in a UTC day.
    pub fn with_daily_limit(self, limit: Option<u64>) -> Engine {
        Engine {
            daily_download_limit: limit,
            ..self
        }
    }

    /// Bytes the account may still download today (`None`: no limit); an
    /// error once none are left.
    async fn download_budget(&self, account: &str) -> Result<Option<u64>, SyncError> {
        let Some(limit) = self.daily_download_limit else {
            return Ok(None);
        };
        let today = self.store.downloaded_today(account).await?;
        if today >= limit {
            return Err(daily_limit(limit));
        }
        Ok(Some(limit - today))
    }

    /// The same engine with a progress counter of its own, for one caller.
    pub fn with_own_progress(&self) -> Engine {
        Engine {
            progress: Arc::default(),
            ..self.clone()
        }
    }

    fn made_progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// The pause of an account that reached its daily limit: until the next
/// UTC midnight.
fn daily_limit(limit: u64) -> SyncError {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let next_day = (now / 86_400 + 1) * 86_400;
    SyncError::DailyLimit {
        limit,
        resumes: crate::utc::format_utc(next_day),
    }
}

mod account;
mod changes;
mod fetch;
mod folder;
mod gmail;
mod listing;
mod pipeline;
mod plan;

pub use account::{resolve_folders, sync_account};
pub(crate) use folder::FetchCtx;
pub use pipeline::{Arrival, Completed, Pipeline, UnknownTag};
pub use plan::{Batch, Plan, batches, plan};

#[cfg(test)]
mod unsolicited_tests;
