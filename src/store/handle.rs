//! The engine's side of the store: [`StoreHandle`], a cloneable async facade
//! whose typed operations (cursor, save, advance, changes, commit) become
//! jobs for the parse stage and the writer thread (`writer.rs`), and the
//! start-up that wires those threads together. Holds the byte budget that
//! bounds the mail waiting in the queue. No SQL here: each operation names
//! the function that does it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::checkpoint::{BACKSTOP_PAGES, Checkpointer};
use super::postgres::{Pg, PgTarget};
use super::writer::{Db, Job, Queued, Work, parse_stage, run};
use super::{MailboxCursor, MailboxId, NewMessage, StoreError};
use crate::config::{StoreConfig, Synchronous};
use crate::imap::{UidSet, UidValidity};

/// Jobs waiting in each of the two queues.
const QUEUE_JOBS: usize = 1024;

/// A cloneable handle to the writer thread.
///
/// On a PostgreSQL store shared through leases the service may replace a
/// failed writer by a new one ([`StoreHandle::restart_leased`]). Each
/// handle belongs to the writer current when it was cloned: once that
/// writer is replaced, the handle's writes fail, so work begun before the
/// failure (messages whose transaction was rolled back) can never be
/// followed by a cursor committed through the new writer. Only handles
/// taken after the restart write through it; health and metrics always
/// look at the current writer.
#[derive(Clone)]
pub struct StoreHandle {
    current: Arc<Mutex<Current>>,
    /// Which writer this handle writes to (`Current::epoch` when cloned).
    epoch: u64,
}

/// The writer in use, and how many were replaced before it.
struct Current {
    epoch: u64,
    channel: Channel,
}

/// One writer thread's queue and state.
#[derive(Clone)]
struct Channel {
    tx: mpsc::Sender<Job<Queued>>,
    bytes: Arc<Semaphore>,
    byte_budget: u32,
    failure: Arc<Mutex<Option<String>>>,
    /// Set by [`StoreHandle::shutdown`]; the writer checks it between jobs.
    stop: Arc<AtomicBool>,
}

impl Channel {
    fn gone(&self) -> StoreError {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(msg) => StoreError::Stopped(msg),
            None => StoreError::WriterGone,
        }
    }
}

/// Joins the writer thread; dropping every [`StoreHandle`] lets it finish.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits until the writer has committed what it had, completed the
    /// search index (unless it was shut down) and closed.
    pub fn join(self) {
        let _ = self.0.join();
    }

    /// Whether the writer has closed (join would not wait).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl StoreHandle {
    /// Opens the database and starts the writer thread. `max_buffered_bytes`
    /// bounds the mail waiting in the queue (a larger single message may
    /// still pass, alone).
    pub fn start(
        path: &Path,
        sync: Synchronous,
        max_buffered_bytes: u64,
    ) -> Result<(StoreHandle, WriterThread), StoreError> {
        let conn = super::open(path, sync)?;
        Ok(Self::start_with(conn, max_buffered_bytes))
    }

    /// Opens the store the configuration names, SQLite or PostgreSQL, and
    /// starts the writer thread.
    pub fn open(
        store: &StoreConfig,
        max_buffered_bytes: u64,
    ) -> Result<(StoreHandle, WriterThread), StoreError> {
        match &store.postgres {
            None => Self::start(&store.path, store.synchronous, max_buffered_bytes),
            Some(pg) => {
                let target = PgTarget::parse(pg)?;
                Self::start_postgres(&target, max_buffered_bytes, None)
            }
        }
    }

    /// [`StoreHandle::open`] for an instance sharing a PostgreSQL store
    /// with others: each commit checks `leases`' fences for the accounts
    /// it wrote and fails, keeping nothing, when one was taken.
    pub fn open_leased(
        store: &StoreConfig,
        max_buffered_bytes: u64,
        leases: Arc<super::LeaseBook>,
    ) -> Result<(StoreHandle, WriterThread), StoreError> {
        match &store.postgres {
            None => Self::open(store, max_buffered_bytes),
            Some(pg) => {
                let target = PgTarget::parse(pg)?;
                Self::start_postgres(&target, max_buffered_bytes, Some(leases))
            }
        }
    }

    /// Connects to PostgreSQL, applies its migrations and starts the
    /// writer thread on that connection.
    pub(crate) fn start_postgres(
        target: &PgTarget,
        max_buffered_bytes: u64,
        leases: Option<Arc<super::LeaseBook>>,
    ) -> Result<(StoreHandle, WriterThread), StoreError> {
        let stall = leases.as_ref().map(|b| b.period());
        let mut pg = open_postgres(target, stall)?;
        pg.leases = leases;
        Ok(Self::spawn(
            Db::Postgres(Box::new(pg)),
            max_buffered_bytes,
            None,
        ))
    }

    /// [`StoreHandle::start`] for `mailfeed sync`: into a database with no
    /// mail yet and no other connection, the sync runs with a rollback
    /// journal and leaves WAL behind when the writer closes ([`super::bulk`]).
    pub fn start_first_sync(
        path: &Path,
        sync: Synchronous,
        max_buffered_bytes: u64,
    ) -> Result<(StoreHandle, WriterThread), StoreError> {
        let conn = super::open(path, sync)?;
        if super::bulk::enter(&conn) {
            let back = match sync {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            return Ok(Self::spawn(
                Db::Sqlite(conn),
                max_buffered_bytes,
                Some(back),
            ));
        }
        Ok(Self::start_with(conn, max_buffered_bytes))
    }

    /// Starts a writer on an already opened connection (tests use memory).
    pub(crate) fn start_with(
        conn: Connection,
        max_buffered_bytes: u64,
    ) -> (StoreHandle, WriterThread) {
        Self::spawn(Db::Sqlite(conn), max_buffered_bytes, None)
    }

    /// `bulk`: a SQLite connection in first-sync mode, to leave for WAL with
    /// this `synchronous` when the writer closes (and no checkpoints meanwhile).
    fn spawn(
        conn: Db,
        max_buffered_bytes: u64,
        bulk: Option<&'static str>,
    ) -> (StoreHandle, WriterThread) {
        let (tx, parse_rx) = mpsc::channel(QUEUE_JOBS);
        let (parsed_tx, rx) = std::sync::mpsc::sync_channel(QUEUE_JOBS);
        let budget = u32::try_from(max_buffered_bytes.clamp(1 << 20, 1 << 31)).unwrap_or(1 << 31);
        let failure = Arc::new(Mutex::new(None));
        let f2 = failure.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let checkpointer = match &conn {
            Db::Sqlite(conn) => conn
                .path()
                .filter(|p| !p.is_empty() && bulk.is_none())
                .and_then(|p| Checkpointer::start(Path::new(p)))
                .filter(|_| {
                    conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
                        .is_ok()
                }),
            Db::Postgres(_) => None,
        };
        let stop3 = stop.clone();
        let wake = tx.downgrade();
        let thread = std::thread::Builder::new()
            .name("mailfeed-parse".into())
            .spawn(move || parse_stage(parse_rx, parsed_tx, stop3))
            .and_then(|parser| {
                std::thread::Builder::new()
                    .name("mailfeed-writer".into())
                    .spawn(move || {
                        run(conn, rx, f2, stop2, checkpointer, bulk);
                        // The parse stage ends at its next hand-over now that
                        // the writer's queue is gone; an idle one is woken.
                        // Joining it means a joined writer leaves no thread.
                        if let Some(tx) = wake.upgrade() {
                            let _ = tx.try_send(Job::Shutdown);
                        }
                        let _ = parser.join();
                    })
            })
            .map(WriterThread);
        let thread = match thread {
            Ok(t) => t,
            // Spawning a thread fails only when the process is out of
            // resources; report it through the handle instead of panicking.
            Err(e) => {
                if let Ok(mut f) = failure.lock() {
                    *f = Some(format!("cannot start the writer thread: {e}"));
                }
                WriterThread(std::thread::spawn(|| {}))
            }
        };
        let channel = Channel {
            tx,
            bytes: Arc::new(Semaphore::new(budget as usize)),
            byte_budget: budget,
            failure,
            stop,
        };
        (
            StoreHandle {
                current: Arc::new(Mutex::new(Current { epoch: 0, channel })),
                epoch: 0,
            },
            thread,
        )
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue of this handle's writer; an error once it was replaced.
    fn channel(&self) -> Result<Channel, StoreError> {
        let current = self.current();
        if current.epoch != self.epoch {
            return Err(StoreError::Stopped(
                "the database writer was restarted after an error; this work was rolled back and starts again from the committed cursors".into(),
            ));
        }
        Ok(current.channel.clone())
    }

    /// Replaces the failed writer of a leased PostgreSQL store by a new
    /// one on a new connection, and makes this handle write to it. Every
    /// other handle taken before keeps pointing at the failed writer and
    /// fails. Blocking: call it off the async runtime.
    pub fn restart_leased(
        &mut self,
        store: &StoreConfig,
        max_buffered_bytes: u64,
        leases: Arc<super::LeaseBook>,
    ) -> Result<WriterThread, StoreError> {
        let (fresh, thread) = Self::open_leased(store, max_buffered_bytes, leases)?;
        let channel = fresh.current().channel.clone();
        let epoch = {
            let mut current = self.current();
            current.epoch += 1;
            current.channel = channel;
            current.epoch
        };
        self.epoch = epoch;
        Ok(thread)
    }

    /// Queues a message for the parse stage and then the writer; waits
    /// while the queue holds too many bytes. The caller awaits this before
    /// sending anything else, so the order of jobs (messages before their
    /// cursor) holds: both stages keep the order they were given.
    pub async fn save(&self, m: NewMessage) -> Result<(), StoreError> {
        let ch = self.channel()?;
        // The decoded form (bodies, attachments) is about as large as the
        // raw bytes, and both wait in the queue.
        let want = u32::try_from(m.raw.len().saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(1, ch.byte_budget);
        let permit = ch
            .bytes
            .clone()
            .acquire_many_owned(want)
            .await
            .map_err(|_| ch.gone())?;
        ch.tx
            .send(Job::Message(Box::new(Queued {
                message: m,
                _permit: permit,
            })))
            .await
            .map_err(|_| ch.gone())
    }

    /// Runs `f` on the writer thread's SQLite connection, inside the
    /// current transaction; an operation written for SQLite alone fails
    /// on PostgreSQL.
    #[allow(dead_code)] // for operations that exist on SQLite only
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => f(c),
            Db::Postgres(_) => Err(StoreError::Unsupported("this store operation")),
        })
        .await
    }

    /// Runs `f` on the writer thread, inside the current transaction, on
    /// whichever backend it has.
    pub(crate) async fn call_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let work: Work = Box::new(move |conn| match f(conn) {
            Ok(v) => {
                let _ = tx.send(Ok(v));
                Ok(())
            }
            Err(e) => {
                let copy = StoreError::Stopped(e.to_string());
                let _ = tx.send(Err(e));
                Err(copy)
            }
        });
        let ch = self.channel()?;
        ch.tx.send(Job::Work(work)).await.map_err(|_| ch.gone())?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(ch.gone()),
        }
    }

    /// Sends a job that the writer answers, waits for the answer, and
    /// reports a failure that happened before it.
    async fn ask(
        &self,
        job: impl FnOnce(oneshot::Sender<()>) -> Job<Queued>,
    ) -> Result<(), StoreError> {
        let ch = self.channel()?;
        let (tx, rx) = oneshot::channel();
        ch.tx.send(job(tx)).await.map_err(|_| ch.gone())?;
        rx.await.map_err(|_| ch.gone())?;
        // A failure after our jobs but before the commit also loses them.
        match ch.failure.lock().ok().and_then(|f| f.clone()) {
            Some(msg) => Err(StoreError::Stopped(msg)),
            None => Ok(()),
        }
    }

    /// Waits until everything sent before is committed.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.ask(Job::Commit).await
    }

    /// Waits until everything sent before is committed and in the search
    /// index. Feed work sent meanwhile waits behind the indexing.
    pub async fn catch_up_search(&self) -> Result<(), StoreError> {
        self.ask(Job::SearchCaughtUp).await
    }

    /// Stops the writer now, whoever still holds a handle: it finishes the
    /// job at hand, commits its open transaction and closes. Jobs still
    /// queued are dropped; they were sent after everything committed, so no
    /// cursor outlives its messages. Every later call fails.
    pub fn shutdown(&self) {
        let ch = self.current().channel.clone();
        ch.stop.store(true, Ordering::SeqCst);
        // Wakes a writer waiting for work; a full queue means it is busy and
        // sees the flag before its next job.
        let _ = ch.tx.try_send(Job::Shutdown);
    }

    /// Bytes of mail waiting for the parse stage and the writer (the
    /// decoded copy counted too, as the budget counts it).
    pub fn queued_bytes(&self) -> u64 {
        let ch = self.current().channel.clone();
        u64::from(ch.byte_budget).saturating_sub(ch.bytes.available_permits() as u64)
    }

    /// Whether the current writer has stopped after an error.
    pub fn has_failed(&self) -> bool {
        let ch = self.current().channel.clone();
        ch.failure.lock().map(|f| f.is_some()).unwrap_or(true) || ch.tx.is_closed()
    }

    /// Finds or creates the mailbox row; returns its id and cursor.
    pub async fn ensure_mailbox(
        &self,
        account: &str,
        wire_name: &str,
    ) -> Result<(MailboxId, MailboxCursor), StoreError> {
        let (account, wire) = (account.to_owned(), wire_name.to_owned());
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::mailboxes::ensure(c, &account, &wire),
            Db::Postgres(pg) => super::postgres::mailboxes::ensure(pg, &account, &wire),
        })
        .await
    }

    /// Reads a mailbox's cursor as the writer sees it (including what is
    /// queued before this call).
    pub async fn cursor(&self, mailbox: MailboxId) -> Result<MailboxCursor, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::mailboxes::cursor(c, mailbox),
            Db::Postgres(pg) => super::postgres::mailboxes::cursor(pg, mailbox),
        })
        .await
    }

    /// Switches a mailbox to a new UIDVALIDITY generation: rows stored under
    /// the old one stay, the cursor restarts, and an event records it.
    pub async fn begin_generation(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
    ) -> Result<(), StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::mailboxes::begin_generation(c, mailbox, uidvalidity),
            Db::Postgres(pg) => {
                super::postgres::mailboxes::begin_generation(pg, mailbox, uidvalidity)
            }
        })
        .await
    }

    /// Records that every UID up to `last_uid` of `uidvalidity` is stored.
    pub async fn advance_cursor(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        last_uid: u32,
    ) -> Result<(), StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::mailboxes::advance(c, mailbox, uidvalidity, last_uid),
            Db::Postgres(pg) => {
                super::postgres::mailboxes::advance(pg, mailbox, uidvalidity, last_uid)
            }
        })
        .await
    }

    /// Records the end of a sync pass of one mailbox, good or bad.
    pub async fn record_outcome(
        &self,
        mailbox: MailboxId,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::mailboxes::record_outcome(c, mailbox, error.as_deref()),
            Db::Postgres(pg) => {
                super::postgres::mailboxes::record_outcome(pg, mailbox, error.as_deref())
            }
        })
        .await
    }
}

/// Changes to stored messages, applied through the writer (the archive keeps
/// everything; changes become events).
impl StoreHandle {
    /// Updates the flags of stored messages; returns how many changed.
    pub async fn apply_flags(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        changes: Vec<(u32, Vec<String>)>,
    ) -> Result<u64, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::changes::apply_flags(c, mailbox, uidvalidity.0, &changes),
            Db::Postgres(pg) => {
                super::postgres::changes::apply_flags(pg, mailbox, uidvalidity.0, &changes)
            }
        })
        .await
    }

    /// Marks the stored messages among `uids` expunged; returns how many
    /// were newly marked.
    pub async fn mark_expunged(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        uids: UidSet,
    ) -> Result<u64, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::changes::mark_expunged(c, mailbox, uidvalidity.0, &uids),
            Db::Postgres(pg) => {
                super::postgres::changes::mark_expunged(pg, mailbox, uidvalidity.0, &uids)
            }
        })
        .await
    }

    /// Marks every stored UID in `(after, up_to]` that is not in `existing`
    /// expunged.
    pub async fn reconcile_existing(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        range: (u32, u32),
        existing: UidSet,
    ) -> Result<u64, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => {
                super::changes::reconcile_existing(c, mailbox, uidvalidity.0, range, &existing)
            }
            Db::Postgres(pg) => super::postgres::changes::reconcile_existing(
                pg,
                mailbox,
                uidvalidity.0,
                range,
                &existing,
            ),
        })
        .await
    }

    /// Stored, not expunged messages of a generation.
    pub async fn live_count(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
    ) -> Result<u64, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::changes::live_count(c, mailbox, uidvalidity.0),
            Db::Postgres(pg) => super::postgres::changes::live_count(pg, mailbox, uidvalidity.0),
        })
        .await
    }

    /// Records the HIGHESTMODSEQ up to which changes have been applied.
    pub async fn set_highest_modseq(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        modseq: Option<u64>,
    ) -> Result<(), StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::changes::set_highest_modseq(c, mailbox, uidvalidity.0, modseq),
            Db::Postgres(pg) => {
                super::postgres::changes::set_highest_modseq(pg, mailbox, uidvalidity.0, modseq)
            }
        })
        .await
    }
}

/// Connects and migrates on a thread of its own: the synchronous client
/// runs a small runtime that must not be entered from async code, and
/// `open` is called from it.
///
/// `stall`: with leases, a transaction left open that long (its process
/// paused or cut off) is ended by the server, so its row locks cannot hold
/// up the instance that took its accounts over.
fn open_postgres(target: &PgTarget, stall: Option<std::time::Duration>) -> Result<Pg, StoreError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut pg = target.open()?;
            if let Some(d) = stall {
                use super::postgres::PgContext;
                pg.client
                    .batch_execute(&format!(
                        "SET idle_in_transaction_session_timeout = {}",
                        d.as_millis().max(1000)
                    ))
                    .pg("setting the idle transaction timeout")?;
            }
            Ok(pg)
        })
        .join()
        .unwrap_or_else(|_| Err(StoreError::Stopped("opening PostgreSQL panicked".into())))
    })
}

/// Gmail (X-GM-EXT-1): one stored message per account and X-GM-MSGID.
impl StoreHandle {
    /// Records the memberships (and labels) of listed UIDs whose message
    /// the account stores already, queued before any cursor that passes
    /// them; returns the UIDs whose message must be fetched.
    pub async fn link_gmail(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        sightings: Vec<super::Sighting>,
    ) -> Result<Vec<u32>, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::gmail::link_sightings(c, mailbox, uidvalidity, &sightings),
            Db::Postgres(pg) => {
                super::postgres::gmail::link_sightings(pg, mailbox, uidvalidity, &sightings)
            }
        })
        .await
    }

    /// Applies label reports `(X-GM-MSGID, labels)` of stored messages;
    /// each change is a `labels` event. Returns how many changed.
    pub async fn apply_labels(
        &self,
        mailbox: MailboxId,
        reports: Vec<(u64, Vec<String>)>,
    ) -> Result<u64, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::gmail::apply_labels(c, mailbox, &reports),
            Db::Postgres(pg) => super::postgres::gmail::apply_labels(pg, mailbox, &reports),
        })
        .await
    }

    /// Bytes of mail the account downloaded today (UTC), including what is
    /// queued before this call.
    pub async fn downloaded_today(&self, account: &str) -> Result<u64, StoreError> {
        let account = account.to_owned();
        self.call_db(move |db| match db {
            Db::Sqlite(c) => super::limits::today(c, &account),
            Db::Postgres(pg) => super::postgres::limits::today(pg, &account),
        })
        .await
    }
}
