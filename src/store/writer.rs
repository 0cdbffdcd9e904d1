//! The single database writer: a thread that owns the write connection and
//! applies jobs in the order they were sent, and the parse stage before it.
//! Ordering is the whole safety argument: a fetcher sends its messages
//! before the cursor that covers them, so whichever transaction the cursor
//! lands in, its messages are already in it or in an earlier one.
//!
//! The commit policy: the writer commits when its queue has stayed dry for a
//! moment ([`LINGER`]), when asked, or when a transaction grows large. When
//! it has no feed work, it fills the search index in batches of its own
//! ([`super::search`]), looking for feed work between chunks, so the feed
//! never waits for search for longer than one chunk.
//!
//! Fail-stop: the first error rolls back the open transaction and stops the
//! writer; every later call fails. A cursor can therefore never be committed
//! after a message it covers was lost. The service starts a new writer; the
//! new one reads cursors from what was really committed. This file holds no
//! SQL of its own but BEGIN and COMMIT; on PostgreSQL the commit first
//! numbers the transaction's rows in commit order (`postgres/publish.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::messages::{Derived, Generations, NewMessage};
use super::postgres::PgContext;
use super::{Context, StoreError, search};

/// Work run on the writer's connection inside its open transaction.
pub(crate) type Work = Box<dyn FnOnce(&mut Db) -> Result<(), StoreError> + Send>;

/// The writer's connection: the backend the store was opened on.
pub(crate) enum Db {
    Sqlite(Connection),
    Postgres(Box<super::postgres::Pg>),
}

/// A message as the fetcher queues it.
pub(crate) struct Queued {
    pub(crate) message: NewMessage,
    /// Its share of the byte budget, given back when this is dropped: after
    /// the writer has written it, or when a stopped stage discards it.
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// A message after the parse stage: what the writer takes.
pub(crate) struct Parsed {
    queued: Queued,
    derived: Derived,
}

/// One job, `M` being the message as it stands: [`Queued`] into the parse
/// stage, [`Parsed`] out of it. The writer cannot receive an unparsed one.
pub(crate) enum Job<M> {
    Message(Box<M>),
    Work(Work),
    /// Commit, then answer.
    Commit(oneshot::Sender<()>),
    /// Commit, bring the search index up to the feed, then answer.
    SearchCaughtUp(oneshot::Sender<()>),
    /// Commit and stop now (see [`super::StoreHandle::shutdown`]).
    Shutdown,
}

/// Commit once a transaction holds this many bytes of mail, even under load,
/// so WAL growth and the cost of a rollback stay bounded.
const COMMIT_BYTES: u64 = 64 * 1024 * 1024;
const COMMIT_JOBS: u32 = 20_000;

/// How long an open transaction may wait for more work once the queue runs
/// dry. A fetch that the writer keeps up with empties the queue after nearly
/// every message; committing each time would pay a WAL commit per message.
/// Waiting briefly turns those into a few large transactions. Visibility is
/// delayed by at most this much: a pass's end and every explicit commit
/// still commit at once.
pub(crate) const LINGER: Duration = Duration::from_millis(100);

/// Messages indexed per statement; between two, the writer looks for feed
/// work and, finding some, commits the index batch and turns to it. About
/// 0.1 s of FTS5 work for mail of a few KB.
const INDEX_CHUNK: u32 = 256;

/// Messages per index transaction at most. FTS5 writes a segment at each
/// commit and merges segments later, so a catching-up index wants few, large
/// transactions; this bounds the WAL and the work a crash rolls back.
const INDEX_TRANSACTION: u32 = 8_192;

/// The parse stage: takes jobs in order, hashes and parses each message, and
/// hands every job on to the writer in the same order. It stops when the
/// writer's queue closes (the writer stopped or failed), closing its own so
/// that senders see the writer gone, or when every handle is dropped.
pub(crate) fn parse_stage(
    mut rx: mpsc::Receiver<Job<Queued>>,
    tx: SyncSender<Job<Parsed>>,
    stop: Arc<AtomicBool>,
) {
    while let Some(job) = rx.blocking_recv() {
        if stop.load(Ordering::SeqCst) && !matches!(job, Job::Shutdown) {
            continue;
        }
        let job = match job {
            Job::Message(q) => {
                let derived = Derived::of(&q.message.raw);
                Job::Message(Box::new(Parsed {
                    queued: *q,
                    derived,
                }))
            }
            Job::Work(w) => Job::Work(w),
            Job::Commit(c) => Job::Commit(c),
            Job::SearchCaughtUp(c) => Job::SearchCaughtUp(c),
            Job::Shutdown => Job::Shutdown,
        };
        if tx.send(job).is_err() {
            break;
        }
    }
    rx.close();
    while rx.try_recv().is_ok() {}
}

/// The writer's state between jobs.
struct Writer<'s> {
    conn: Db,
    checkpointer: Option<Checkpointer>,
    stop: &'s AtomicBool,
    in_tx: bool,
    tx_bytes: u64,
    tx_jobs: u32,
    last_commit: Instant,
    generations: Generations,
    /// Whether messages may be stored above the search watermark.
    search_behind: bool,
}

impl Writer<'_> {
    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_tx {
            match &mut self.conn {
                Db::Sqlite(c) => c
                    .execute_batch("BEGIN IMMEDIATE")
                    .doing("starting a transaction")?,
                Db::Postgres(pg) => {
                    pg.touched.clear();
                    pg.generations = None;
                    pg.client
                        .batch_execute("BEGIN")
                        .pg("starting a transaction")?
                }
            }
            self.in_tx = true;
            self.generations = Generations::default();
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.tx_bytes = 0;
        self.tx_jobs = 0;
        if self.in_tx {
            self.in_tx = false;
            self.last_commit = Instant::now();
            match &mut self.conn {
                Db::Sqlite(c) => c.execute_batch("COMMIT").doing("committing")?,
                Db::Postgres(pg) => {
                    super::postgres::lease::check(pg)?;
                    super::postgres::publish::publish(pg)?;
                    pg.client.batch_execute("COMMIT").pg("committing")?;
                }
            }
            if let Some(c) = &self.checkpointer {
                c.nudge();
            }
        }
        Ok(())
    }

    /// Applies one message or piece of work inside the open transaction.
    fn apply(&mut self, job: Job<Parsed>) -> Result<(), StoreError> {
        self.begin()?;
        match job {
            Job::Message(job) => {
                let Parsed { queued, derived } = *job;
                match &mut self.conn {
                    Db::Sqlite(c) => super::messages::insert(
                        c,
                        &queued.message,
                        &derived,
                        &mut self.generations,
                    )?,
                    Db::Postgres(pg) => {
                        super::postgres::messages::insert(pg, &queued.message, &derived)?
                    }
                }
                self.tx_bytes += queued.message.raw.len() as u64;
                self.search_behind = true;
                // Releases the message's share of the byte budget.
                drop(queued);
            }
            Job::Work(f) => f(&mut self.conn)?,
            Job::Commit(_) | Job::SearchCaughtUp(_) | Job::Shutdown => {}
        }
        self.tx_jobs += 1;
        if self.tx_bytes >= COMMIT_BYTES || self.tx_jobs >= COMMIT_JOBS {
            self.commit()?;
        }
        Ok(())
    }

    /// Indexes the next chunk behind the feed (SQLite; PostgreSQL indexes
    /// each message as it is stored, so nothing is ever behind).
    fn index_next(&mut self) -> Result<u32, StoreError> {
        match &self.conn {
            Db::Sqlite(c) => search::index_next(c, INDEX_CHUNK),
            Db::Postgres(_) => Ok(0),
        }
    }

    /// One index transaction while the queue is dry: chunks until the index
    /// has caught up, the transaction is large, or feed work arrives (then
    /// returned, to be applied next).
    fn index_while_idle(
        &mut self,
        rx: &Receiver<Job<Parsed>>,
    ) -> Result<Option<Job<Parsed>>, StoreError> {
        self.begin()?;
        let mut done = 0;
        let next = loop {
            let n = self.index_next()?;
            done += n;
            if n < INDEX_CHUNK {
                self.search_behind = false;
                break None;
            }
            if done >= INDEX_TRANSACTION || self.stop.load(Ordering::SeqCst) {
                break None;
            }
            match rx.try_recv() {
                Ok(job) => break Some(job),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => break None,
            }
        };
        self.commit()?;
        Ok(next)
    }

    /// Commits, then indexes everything above the watermark, one large
    /// transaction after another (feed work waits; `sync` asks this at its
    /// end, so that it exits with a complete index).
    fn catch_up_search(&mut self, always_log: bool) -> Result<(), StoreError> {
        self.commit()?;
        let t0 = Instant::now();
        let mut total = 0u64;
        while self.search_behind && !self.stop.load(Ordering::SeqCst) {
            self.begin()?;
            let mut done = 0;
            while done < INDEX_TRANSACTION {
                let n = self.index_next()?;
                done += n;
                if n < INDEX_CHUNK {
                    self.search_behind = false;
                    break;
                }
            }
            total += u64::from(done);
            self.commit()?;
        }
        if total > 0 || always_log {
            tracing::info!(
                indexed_after_feed = total,
                seconds = format!("{:.2}", t0.elapsed().as_secs_f64()),
                "search index complete"
            );
        }
        Ok(())
    }
}

/// Waits up to [`LINGER`] after the last commit for another job; `Ok(None)`
/// means commit now.
fn linger(
    rx: &Receiver<Job<Parsed>>,
    last_commit: Instant,
) -> Result<Option<Job<Parsed>>, RecvTimeoutError> {
    match (last_commit + LINGER).checked_duration_since(Instant::now()) {
        None => Ok(None),
        Some(left) => match rx.recv_timeout(left) {
            Ok(job) => Ok(Some(job)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// The writer thread's body: applies jobs until shutdown, until every
/// handle is gone (then it completes the search index first), or until the
/// first error.
/// Keeps the first failure's message for the handles.
fn record(failure: &Mutex<Option<String>>, e: &StoreError) {
    if let Ok(mut f) = failure.lock()
        && f.is_none()
    {
        *f = Some(e.to_string());
    }
}

pub(crate) fn run(
    conn: Db,
    rx: Receiver<Job<Parsed>>,
    failure: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    checkpointer: Option<Checkpointer>,
    bulk: Option<&'static str>,
) {
    let mut w = Writer {
        conn,
        checkpointer,
        stop: &stop,
        in_tx: false,
        tx_bytes: 0,
        tx_jobs: 0,
        last_commit: Instant::now(),
        generations: Generations::default(),
        // Checked at the first idle moment: a crash may have left the index
        // behind, and this start completes it.
        search_behind: true,
    };
    let mut next: Option<Job<Parsed>> = None;
    let outcome: Result<(), StoreError> = (|| {
        loop {
            if stop.load(Ordering::SeqCst) {
                return w.commit();
            }
            let job = match next.take().map_or_else(|| rx.try_recv(), Ok) {
                Ok(job) => job,
                Err(TryRecvError::Empty) if w.in_tx => match linger(&rx, w.last_commit) {
                    Ok(Some(job)) => job,
                    // The queue ran dry: make what we have durable now.
                    Ok(None) => {
                        w.commit()?;
                        continue;
                    }
                    Err(_) => break,
                },
                Err(TryRecvError::Empty) if w.search_behind => {
                    next = w.index_while_idle(&rx)?;
                    continue;
                }
                Err(TryRecvError::Empty) => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
                Err(TryRecvError::Disconnected) => break,
            };
            match job {
                Job::Shutdown => return w.commit(),
                // The failure is recorded before `done` is dropped: the
                // caller then reads why, not just that the writer is gone.
                Job::Commit(done) => {
                    w.commit().inspect_err(|e| record(&failure, e))?;
                    let _ = done.send(());
                }
                Job::SearchCaughtUp(done) => {
                    w.catch_up_search(true)
                        .inspect_err(|e| record(&failure, e))?;
                    let _ = done.send(());
                }
                job => w.apply(job)?,
            }
        }
        // Every handle is gone: what was sent is committed, and the index
        // completed, before the thread ends (`sync` exits only then).
        w.catch_up_search(false)
    })();
    if let Err(e) = outcome {
        let msg = e.to_string();
        tracing::error!("database writer stopped: {msg}");
        if w.in_tx {
            let _ = match &mut w.conn {
                Db::Sqlite(c) => c.execute_batch("ROLLBACK").map_err(|_| ()),
                Db::Postgres(pg) => pg.client.batch_execute("ROLLBACK").map_err(|_| ()),
            };
        }
        if let Ok(mut f) = failure.lock() {
            *f = Some(msg);
        }
    }
    if let (Some(synchronous), Db::Sqlite(c)) = (bulk, &w.conn) {
        super::bulk::leave(c, synchronous);
    }
    // Dropping the queue refuses everything still in it; the parse stage
    // sees it closed at its next hand-over and closes its own.
    drop(rx);
}
