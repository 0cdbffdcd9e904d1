//! The single database writer: a thread that owns the write connection and
//! applies jobs in the order they were sent. Ordering is the whole safety
//! argument: a fetcher sends its messages before the cursor that covers them,
//! so whichever transaction the cursor lands in, its messages are already in
//! it or in an earlier one. Transactions are grouped: the writer commits when
//! its queue has stayed dry for a moment ([`LINGER`]), when asked, or when a
//! transaction grows large.
//!
//! Fail-stop: the first error rolls back the open transaction and stops the
//! writer; every later call fails. A cursor can therefore never be committed
//! after a message it covers was lost. The service starts a new writer; the
//! new one reads cursors from what was really committed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::blob::ZeroBlob;
use rusqlite::{Connection, MAIN_DB, params};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::checkpoint::{BACKSTOP_PAGES, Checkpointer};
use super::{Context, MailboxCursor, MailboxId, StoreError};
use crate::config::Synchronous;
use crate::imap::{Uid, UidValidity};

/// A message as fetched, ready to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub mailbox: MailboxId,
    pub uidvalidity: UidValidity,
    pub uid: Uid,
    /// INTERNALDATE in UTC ISO-8601.
    pub internal_date: Option<String>,
    pub flags: Vec<String>,
    pub modseq: Option<u64>,
    /// The size the server reported (RFC822.SIZE), or the bytes received.
    pub size: u64,
    /// Exactly the bytes the server sent for BODY[] (the header block only
    /// when `truncated`).
    pub raw: Vec<u8>,
    pub truncated: bool,
}

type Work = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

/// What the writer stores besides the message itself, worked out by the
/// parse stage: hashing and the one MIME parse then run on a thread of their
/// own, beside both the socket reader and the one writer thread, which is the
/// bottleneck of a sync. For a truncated message `raw` is the header block,
/// so only headers are found.
struct Derived {
    sha256: [u8; 32],
    parsed: crate::mime::ParsedMessage,
}

impl Derived {
    fn of(raw: &[u8]) -> Derived {
        Derived {
            sha256: super::sha256(raw),
            parsed: crate::mime::parse(raw),
        }
    }
}

/// A message as the fetcher queues it.
struct Queued {
    message: NewMessage,
    /// Its share of the byte budget, given back when this is dropped: after
    /// the writer has written it, or when a stopped stage discards it.
    _permit: OwnedSemaphorePermit,
}

/// A message after the parse stage: what the writer takes.
struct Parsed {
    queued: Queued,
    derived: Derived,
}

/// One job, `M` being the message as it stands: [`Queued`] into the parse
/// stage, [`Parsed`] out of it. The writer cannot receive an unparsed one.
enum Job<M> {
    Message(Box<M>),
    Work(Work),
    Commit(oneshot::Sender<()>),
    /// Commit and stop now (see [`StoreHandle::shutdown`]).
    Shutdown,
}

/// Commit once a transaction holds this many bytes of mail, even under load,
/// so WAL growth and the cost of a rollback stay bounded.
const COMMIT_BYTES: u64 = 64 * 1024 * 1024;
const COMMIT_JOBS: u32 = 20_000;
const QUEUE_JOBS: usize = 1024;

/// A cloneable handle to the writer thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Job<Queued>>,
    bytes: Arc<Semaphore>,
    byte_budget: u32,
    failure: Arc<Mutex<Option<String>>>,
    /// Set by [`StoreHandle::shutdown`]; the writer checks it between jobs.
    stop: Arc<AtomicBool>,
}

/// Joins the writer thread; dropping every [`StoreHandle`] lets it finish.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits until the writer has committed what it had and closed.
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

    /// Starts a writer on an already opened connection (tests use memory).
    pub fn start_with(conn: Connection, max_buffered_bytes: u64) -> (StoreHandle, WriterThread) {
        let (tx, parse_rx) = mpsc::channel(QUEUE_JOBS);
        let (parsed_tx, rx) = mpsc::channel(QUEUE_JOBS);
        let budget = u32::try_from(max_buffered_bytes.clamp(1 << 20, 1 << 31)).unwrap_or(1 << 31);
        let failure = Arc::new(Mutex::new(None));
        let f2 = failure.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let checkpointer = conn
            .path()
            .filter(|p| !p.is_empty())
            .and_then(|p| Checkpointer::start(Path::new(p)))
            .filter(|_| {
                conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
                    .is_ok()
            });
        let stop3 = stop.clone();
        let wake = tx.downgrade();
        let thread = std::thread::Builder::new()
            .name("mailfeed-parse".into())
            .spawn(move || parse_stage(parse_rx, parsed_tx, stop3))
            .and_then(|parser| {
                std::thread::Builder::new()
                    .name("mailfeed-writer".into())
                    .spawn(move || {
                        run(conn, rx, f2, stop2, checkpointer);
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
        (
            StoreHandle {
                tx,
                bytes: Arc::new(Semaphore::new(budget as usize)),
                byte_budget: budget,
                failure,
                stop,
            },
            thread,
        )
    }

    fn gone(&self) -> StoreError {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(msg) => StoreError::Stopped(msg),
            None => StoreError::WriterGone,
        }
    }

    /// Queues a message for the parse stage and then the writer; waits
    /// while the queue holds too many bytes. The caller awaits this before
    /// sending anything else, so the order of jobs (messages before their
    /// cursor) holds: both stages keep the order they were given.
    pub async fn save(&self, m: NewMessage) -> Result<(), StoreError> {
        // The decoded form (bodies, attachments) is about as large as the
        // raw bytes, and both wait in the queue.
        let want = u32::try_from(m.raw.len().saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(1, self.byte_budget);
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(want)
            .await
            .map_err(|_| self.gone())?;
        self.tx
            .send(Job::Message(Box::new(Queued {
                message: m,
                _permit: permit,
            })))
            .await
            .map_err(|_| self.gone())
    }

    /// Runs `f` on the writer thread, inside the current transaction.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
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
        self.tx
            .send(Job::Work(work))
            .await
            .map_err(|_| self.gone())?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.gone()),
        }
    }

    /// Waits until everything sent before is committed.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Commit(tx))
            .await
            .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?;
        // A failure after our jobs but before the commit also loses them.
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(msg) => Err(StoreError::Stopped(msg)),
            None => Ok(()),
        }
    }

    /// Stops the writer now, whoever still holds a handle: it finishes the
    /// job at hand, commits its open transaction and closes. Jobs still
    /// queued are dropped; they were sent after everything committed, so no
    /// cursor outlives its messages. Every later call fails.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes a writer waiting for work; a full queue means it is busy and
        // sees the flag before its next job.
        let _ = self.tx.try_send(Job::Shutdown);
    }

    /// Whether the writer has stopped after an error.
    pub fn has_failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true) || self.tx.is_closed()
    }

    /// Finds or creates the mailbox row; returns its id and cursor.
    pub async fn ensure_mailbox(
        &self,
        account: &str,
        wire_name: &str,
    ) -> Result<(MailboxId, MailboxCursor), StoreError> {
        let (account, wire) = (account.to_owned(), wire_name.to_owned());
        self.call(move |c| super::ensure_mailbox(c, &account, &wire))
            .await
    }

    /// Reads a mailbox's cursor as the writer sees it (including what is
    /// queued before this call).
    pub async fn cursor(&self, mailbox: MailboxId) -> Result<MailboxCursor, StoreError> {
        self.call(move |c| super::cursor(c, mailbox)).await
    }

    /// Switches a mailbox to a new UIDVALIDITY generation: rows stored under
    /// the old one stay, the cursor restarts, and an event records it.
    pub async fn begin_generation(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
    ) -> Result<(), StoreError> {
        self.call(move |c| begin_generation(c, mailbox, uidvalidity))
            .await
    }

    /// Records that every UID up to `last_uid` of `uidvalidity` is stored.
    pub async fn advance_cursor(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        last_uid: u32,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.prepare_cached(
                "UPDATE mailboxes SET last_uid = max(last_uid, ?3)
                 WHERE id = ?1 AND uidvalidity = ?2",
            )
            .and_then(|mut s| s.execute(params![mailbox.0, uidvalidity.0, last_uid]))
            .doing("advancing the mailbox cursor")?;
            Ok(())
        })
        .await
    }

    /// Records the end of a sync pass of one mailbox, good or bad.
    pub async fn record_outcome(
        &self,
        mailbox: MailboxId,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            match error {
                None => c.execute(
                    "UPDATE mailboxes SET last_sync_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                     last_error = NULL, last_error_at = NULL WHERE id = ?1",
                    params![mailbox.0],
                ),
                Some(e) => c.execute(
                    "UPDATE mailboxes SET last_error = ?2,
                     last_error_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
                    params![mailbox.0, e],
                ),
            }
            .doing("recording the sync outcome")?;
            Ok(())
        })
        .await
    }
}

/// Changes to stored messages, applied through the writer (issue: the
/// archive keeps everything; changes become events).
impl StoreHandle {
    /// Updates the flags of stored messages; returns how many changed.
    pub async fn apply_flags(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        changes: Vec<(u32, Vec<String>)>,
    ) -> Result<u64, StoreError> {
        self.call(move |c| super::changes::apply_flags(c, mailbox, uidvalidity.0, &changes))
            .await
    }

    /// Marks the stored messages among `uids` expunged; returns how many
    /// were newly marked.
    pub async fn mark_expunged(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        uids: crate::imap::UidSet,
    ) -> Result<u64, StoreError> {
        self.call(move |c| super::changes::mark_expunged(c, mailbox, uidvalidity.0, &uids))
            .await
    }

    /// Marks every stored UID in `(after, up_to]` that is not in `existing`
    /// expunged.
    pub async fn reconcile_existing(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        range: (u32, u32),
        existing: crate::imap::UidSet,
    ) -> Result<u64, StoreError> {
        self.call(move |c| {
            super::changes::reconcile_existing(c, mailbox, uidvalidity.0, range, &existing)
        })
        .await
    }

    /// Stored, not expunged messages of a generation.
    pub async fn live_count(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
    ) -> Result<u64, StoreError> {
        self.call(move |c| super::changes::live_count(c, mailbox, uidvalidity.0))
            .await
    }

    /// Records the HIGHESTMODSEQ up to which changes have been applied.
    pub async fn set_highest_modseq(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        modseq: Option<u64>,
    ) -> Result<(), StoreError> {
        self.call(move |c| super::changes::set_highest_modseq(c, mailbox, uidvalidity.0, modseq))
            .await
    }
}

fn begin_generation(c: &Connection, mailbox: MailboxId, uv: UidValidity) -> Result<(), StoreError> {
    let old: Option<i64> = c
        .query_row(
            "SELECT uidvalidity FROM mailboxes WHERE id = ?1",
            params![mailbox.0],
            |r| r.get(0),
        )
        .doing("reading UIDVALIDITY")?;
    if old == Some(i64::from(uv.0)) {
        return Ok(());
    }
    c.execute(
        "UPDATE mailboxes SET uidvalidity = ?2, last_uid = 0, highest_modseq = NULL WHERE id = ?1",
        params![mailbox.0, uv.0],
    )
    .doing("starting a UIDVALIDITY generation")?;
    if let Some(old) = old {
        c.execute(
            "INSERT INTO events (kind, mailbox_id, detail) VALUES ('uidvalidity', ?1, ?2)",
            params![mailbox.0, format!("{{\"old\":{old},\"new\":{}}}", uv.0)],
        )
        .doing("recording the UIDVALIDITY change")?;
    }
    Ok(())
}

/// Whether a mailbox holds rows of a generation other than the one being
/// stored, remembered for the open transaction (the write lock keeps it
/// true until the commit). Without one there is nothing an incoming message
/// could supersede, and the lookup below is skipped.
#[derive(Default)]
struct Generations(Option<(MailboxId, UidValidity, bool)>);

impl Generations {
    fn others(
        &mut self,
        c: &Connection,
        mb: MailboxId,
        uv: UidValidity,
    ) -> Result<bool, StoreError> {
        if let Some((m, u, others)) = self.0
            && m == mb
            && u == uv
        {
            return Ok(others);
        }
        let others: bool = c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uidvalidity < ?2)
                     OR EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uidvalidity > ?2)",
            )
            .and_then(|mut s| s.query_row(params![mb.0, uv.0], |r| r.get(0)))
            .doing("looking for earlier generations of the mailbox")?;
        self.0 = Some((mb, uv, others));
        Ok(others)
    }
}

fn insert_message(
    c: &Connection,
    m: &NewMessage,
    d: &Derived,
    generations: &mut Generations,
) -> Result<(), StoreError> {
    let (hash, parsed) = (&d.sha256, &d.parsed);
    if !generations.others(c, m.mailbox, m.uidvalidity)? {
        return insert_row(c, m, d, None);
    }
    // A message already stored under an earlier UIDVALIDITY of this mailbox,
    // with the same Message-ID and bytes, is linked to the row consumers
    // see (not to a hidden row of a generation in between) instead of
    // shown as new.
    let supersedes: Option<i64> = c
        .prepare_cached(
            "SELECT o.id FROM messages o
             WHERE o.mailbox_id = ?1 AND o.sha256 = ?2 AND o.uidvalidity <> ?3
               AND o.message_id IS ?4 AND o.supersedes IS NULL
               AND NOT EXISTS (SELECT 1 FROM messages n
                               WHERE n.supersedes = o.id AND n.uidvalidity = ?3)
             ORDER BY o.id LIMIT 1",
        )
        .and_then(|mut s| {
            let mut rows = s.query(params![
                m.mailbox.0,
                &hash[..],
                m.uidvalidity.0,
                parsed.message_id
            ])?;
            rows.next()?.map(|r| r.get(0)).transpose()
        })
        .doing("looking for an earlier copy of the message")?;
    insert_row(c, m, d, supersedes)
}

fn insert_row(
    c: &Connection,
    m: &NewMessage,
    d: &Derived,
    supersedes: Option<i64>,
) -> Result<(), StoreError> {
    let (hash, parsed) = (&d.sha256, &d.parsed);
    let inserted = c
        .prepare_cached(
            "INSERT INTO messages (mailbox_id, uidvalidity, uid, internal_date, size, flags,
                                   modseq, sha256, truncated, message_id, subject, supersedes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (mailbox_id, uidvalidity, uid) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                m.mailbox.0,
                m.uidvalidity.0,
                m.uid.0,
                m.internal_date,
                i64::try_from(m.size).unwrap_or(i64::MAX),
                m.flags.join(" "),
                m.modseq.and_then(|v| i64::try_from(v).ok()),
                &hash[..],
                m.truncated,
                parsed.message_id,
                parsed.subject,
                supersedes,
            ])
        })
        .doing("storing a message")?;
    if inserted == 0 {
        // Stored before, by a pass that was cut off before its cursor moved.
        // The bytes are the same; the flags may have changed since, and no
        // later change report covers them (they are above the old cursor).
        let flags = [(m.uid.0, m.flags.clone())];
        super::changes::apply_flags(c, m.mailbox, m.uidvalidity.0, &flags)?;
        return Ok(());
    }
    let id = c.last_insert_rowid();
    // A bound blob would be copied twice more inside SQLite (the bound value
    // and the record built from it), so a 50 MB message would briefly cost
    // 150 MB. Instead reserve the room and write the bytes straight into the
    // pages through the incremental blob API.
    c.prepare_cached("INSERT INTO message_raw (message_id, raw) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, ZeroBlob(m.raw.len() as u64)]))
        .and_then(|_| c.blob_open(MAIN_DB, c"message_raw", c"raw", id, false))
        .and_then(|mut blob| blob.write_at(&m.raw, 0))
        .doing("storing the raw message")?;
    super::parsed::write(c, id, parsed, supersedes.is_none())?;
    match supersedes {
        None => {
            c.prepare_cached(
                "INSERT INTO events (kind, mailbox_id, message_id) VALUES ('new', ?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![m.mailbox.0, id]))
            .doing("recording the new-message event")?;
        }
        Some(visible) => {
            super::changes::reconcile_refound(c, m.mailbox, id, m.uid.0, visible, &m.flags)?;
        }
    }
    Ok(())
}

/// How long an open transaction may wait for more work once the queue runs
/// dry. A fetch that the writer keeps up with empties the queue after nearly
/// every message; committing each time would make every commit flush the
/// full-text index's pending terms as a new segment (then merged again and
/// again) and pay a WAL commit per message. Waiting briefly turns those into
/// a few large transactions. Visibility is delayed by at most this much: a
/// pass's end and every explicit commit still commit at once.
const LINGER: Duration = Duration::from_millis(100);

/// Waits up to [`LINGER`] after the last commit for another job, when a
/// transaction is open; `None` means commit now.
fn linger(
    rx: &mut mpsc::Receiver<Job<Parsed>>,
    in_tx: bool,
    last_commit: Instant,
) -> Option<Job<Parsed>> {
    if !in_tx {
        return None;
    }
    while last_commit.elapsed() < LINGER {
        std::thread::sleep(Duration::from_millis(1));
        match rx.try_recv() {
            Ok(j) => return Some(j),
            Err(mpsc::error::TryRecvError::Empty) => {}
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
        }
    }
    None
}

/// The parse stage: takes jobs in order, hashes and parses each message, and
/// hands every job on to the writer in the same order. It stops when the
/// writer's queue closes (the writer stopped or failed), closing its own so
/// that senders see the writer gone, or when every handle is dropped.
fn parse_stage(
    mut rx: mpsc::Receiver<Job<Queued>>,
    tx: mpsc::Sender<Job<Parsed>>,
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
            Job::Shutdown => Job::Shutdown,
        };
        if tx.blocking_send(job).is_err() {
            break;
        }
    }
    rx.close();
    while rx.try_recv().is_ok() {}
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Job<Parsed>>,
    failure: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    checkpointer: Option<Checkpointer>,
) {
    let mut in_tx = false;
    let mut tx_bytes: u64 = 0;
    let mut tx_jobs: u32 = 0;
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut generations = Generations::default();
    let last_commit = std::cell::Cell::new(Instant::now());
    let commit = |in_tx: &mut bool| -> Result<(), StoreError> {
        if *in_tx {
            *in_tx = false;
            last_commit.set(Instant::now());
            conn.execute_batch("COMMIT").doing("committing")?;
            if let Some(c) = &checkpointer {
                c.nudge();
            }
        }
        Ok(())
    };
    let outcome: Result<(), StoreError> = (|| {
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let job = match rx.try_recv() {
                Ok(j) => j,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if let Some(j) = linger(&mut rx, in_tx, last_commit.get()) {
                        j
                    } else {
                        // The queue ran dry: make what we have durable now.
                        commit(&mut in_tx)?;
                        tx_bytes = 0;
                        tx_jobs = 0;
                        for w in waiters.drain(..) {
                            let _ = w.send(());
                        }
                        match rx.blocking_recv() {
                            Some(j) => j,
                            None => return Ok(()),
                        }
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            if let Job::Shutdown = job {
                break;
            }
            if let Job::Commit(w) = job {
                commit(&mut in_tx)?;
                tx_bytes = 0;
                tx_jobs = 0;
                let _ = w.send(());
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
                continue;
            }
            if !in_tx {
                conn.execute_batch("BEGIN IMMEDIATE")
                    .doing("starting a transaction")?;
                in_tx = true;
                generations = Generations::default();
            }
            match job {
                Job::Message(job) => {
                    let Parsed { queued, derived } = *job;
                    insert_message(&conn, &queued.message, &derived, &mut generations)?;
                    tx_bytes += queued.message.raw.len() as u64;
                    // Releases the message's share of the byte budget.
                    drop(queued);
                }
                Job::Work(f) => f(&conn)?,
                Job::Commit(_) | Job::Shutdown => {}
            }
            tx_jobs += 1;
            if tx_bytes >= COMMIT_BYTES || tx_jobs >= COMMIT_JOBS {
                commit(&mut in_tx)?;
                tx_bytes = 0;
                tx_jobs = 0;
            }
        }
        commit(&mut in_tx)
    })();
    if let Err(e) = outcome {
        let msg = e.to_string();
        tracing::error!("database writer stopped: {msg}");
        if in_tx {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Ok(mut f) = failure.lock() {
            *f = Some(msg);
        }
        // Refuse everything still queued; waiters see the failure.
        rx.close();
        while rx.try_recv().is_ok() {}
    }
    for w in waiters.drain(..) {
        let _ = w.send(());
    }
}
