//! The ledger of actions on the server (`after_store`, `delete_after`): which
//! messages have an action, whether it may run yet, and how it ended. Owns
//! the `actions` and `mailbox_actions` tables and the `action` events.
//!
//! The durable barrier lives here: an action may run only once its message
//! row and the cursor covering it are committed *and synced to disk*. On
//! SQLite the writer commits with the configured `synchronous` (NORMAL by
//! default: a power cut may lose the last commits), so
//! [`Ledger::mark_durable`] commits on a connection of its own with
//! `synchronous=FULL`; in WAL mode that fsyncs the log holding every earlier
//! commit (older ones are in the database file, which each checkpoint
//! syncs). On PostgreSQL the ledger writes through the writer, in its
//! transaction, and commits with `synchronous_commit = on`, which flushes
//! the WAL of every earlier commit too; each such commit checks the
//! account's lease fence (`postgres/actions.rs`). Only actions marked by
//! such a commit are handed out. Must not: talk IMAP, or decide what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use super::postgres::Pg;
use super::postgres::actions as pgsql;
use super::writer::Db;
use super::{Context, MailboxId, StoreError, StoreHandle};
use crate::imap::{UidSet, UidValidity};

/// The three things mailfeed may do to a message on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Seen,
    Move,
    Delete,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Seen => "seen",
            ActionKind::Move => "move",
            ActionKind::Delete => "delete",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<ActionKind> {
        match s {
            "seen" => Some(ActionKind::Seen),
            "move" => Some(ActionKind::Move),
            "delete" => Some(ActionKind::Delete),
            _ => None,
        }
    }
}

/// An action that may run now: its message is durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAction {
    pub id: i64,
    pub uid: u32,
    pub kind: ActionKind,
    /// `move`: the destination's wire name.
    pub target: Option<String>,
    /// `after_store` or `delete_after`.
    pub reason: String,
    /// A move whose copy was made (without MOVE): only the expunge is left.
    pub copied: bool,
    /// A move whose UID COPY was sent by a run that ended before its answer:
    /// the copy may or may not exist.
    pub copying: bool,
    /// The message's Message-ID, to look for such a copy.
    pub message_id: Option<String>,
    /// The message was already reported expunged from the server.
    pub gone: bool,
}

/// How an action ended, or the step it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    Failed(String),
    /// The copy of a move exists; the original is not yet expunged.
    Copied,
    /// UID COPY is about to be sent.
    Copying,
}

/// The configured `after_store` of a mailbox, for the trigger that records
/// a pending action with each new message.
pub type MailboxAction = Option<(ActionKind, Option<String>)>;

impl StoreHandle {
    /// Records the mailbox's `after_store` action (or none) through the
    /// writer, ahead of any message of this pass.
    pub async fn set_mailbox_action(
        &self,
        mailbox: MailboxId,
        action: MailboxAction,
    ) -> Result<(), StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => set_mailbox_action(c, mailbox, action),
            Db::Postgres(pg) => pgsql::set_mailbox_action(pg, mailbox, action),
        })
        .await
    }

    /// The action ledger of this store; `None` for an in-memory SQLite
    /// database (there is no second connection to it).
    pub async fn ledger(&self) -> Result<Option<Ledger>, StoreError> {
        let path = self
            .call_db(|db| match db {
                Db::Sqlite(c) => Ok(Some(c.path().map(PathBuf::from))),
                Db::Postgres(_) => Ok(None),
            })
            .await?;
        match path {
            None => Ok(Some(Ledger::on_postgres(self.clone()))),
            Some(Some(p)) if !p.as_os_str().is_empty() => Ok(Some(Ledger::open(&p)?)),
            Some(_) => Ok(None),
        }
    }
}

fn set_mailbox_action(
    c: &Connection,
    mailbox: MailboxId,
    action: MailboxAction,
) -> Result<(), StoreError> {
    match action {
        None => c
            .execute(
                "DELETE FROM mailbox_actions WHERE mailbox_id = ?1",
                params![mailbox.0],
            )
            .doing("clearing the mailbox's action")?,
        Some((kind, target)) => c
            .execute(
                "INSERT INTO mailbox_actions (mailbox_id, kind, target) VALUES (?1, ?2, ?3)
                 ON CONFLICT (mailbox_id) DO UPDATE SET kind = excluded.kind, target = excluded.target",
                params![mailbox.0, kind.as_str(), target],
            )
            .doing("recording the mailbox's action")?,
    };
    Ok(())
}

/// The ledger of one store: on SQLite a connection of its own
/// (synchronous=FULL), shared by one account's tasks, every call on a
/// blocking thread; on PostgreSQL the store's writer, each call one
/// committed transaction.
#[derive(Clone)]
pub struct Ledger(On);

#[derive(Clone)]
enum On {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(StoreHandle),
}

/// The connection a ledger call runs on.
enum Conn<'a> {
    Sqlite(&'a mut Connection),
    Postgres(&'a mut Pg),
}

impl Ledger {
    /// Opens the ledger on the SQLite database the writer uses.
    pub fn open(path: &Path) -> Result<Ledger, StoreError> {
        let err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        Ok(Ledger(On::Sqlite(Arc::new(Mutex::new(conn)))))
    }

    /// The ledger of a PostgreSQL store: its writer.
    fn on_postgres(store: StoreHandle) -> Ledger {
        Ledger(On::Postgres(store))
    }

    /// Runs `f` and makes what it wrote durable. SQLite: on a blocking
    /// thread, where every write is an IMMEDIATE transaction (it waits,
    /// busy timeout, for the writer's lock up front instead of failing
    /// with a stale snapshot when the writer commits between a read and a
    /// write). PostgreSQL: on the writer, then its commit unless `f` only
    /// reads (`writes` false).
    async fn with<T: Send + 'static>(
        &self,
        writes: bool,
        f: impl FnOnce(Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.0 {
            On::Sqlite(conn) => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
                    f(Conn::Sqlite(&mut c))
                })
                .await
                .map_err(|e| StoreError::Stopped(format!("action ledger task: {e}")))?
            }
            On::Postgres(store) => {
                let v = store
                    .call_db(move |db| match db {
                        Db::Postgres(pg) => f(Conn::Postgres(pg)),
                        // A ledger belongs to the store that made it.
                        Db::Sqlite(_) => Err(StoreError::Stopped(
                            "the action ledger of a PostgreSQL store found SQLite".into(),
                        )),
                    })
                    .await?;
                if writes {
                    store.commit().await?;
                }
                Ok(v)
            }
        }
    }

    /// Whether this process may send commands for the mailbox's account
    /// now: always on SQLite (one process per file, by its lock); on
    /// PostgreSQL when it holds the account's lease (see
    /// `postgres::actions::confirm`). Asked right before each batch of
    /// commands.
    pub async fn confirm(&self, mailbox: MailboxId) -> Result<(), StoreError> {
        let On::Postgres(store) = &self.0 else {
            return Ok(());
        };
        // A lease held elsewhere is an answer, not a failure of the writer
        // (which stops at its first error): it comes back outside.
        store
            .call_db(move |db| match db {
                Db::Postgres(pg) => match pgsql::confirm(pg, mailbox) {
                    Err(
                        e @ (StoreError::LeaseLost { .. }
                        | StoreError::LeaseRunningOut { .. }
                        | StoreError::LeaseHeld { .. }),
                    ) => Ok(Err(e)),
                    other => other.map(Ok),
                },
                Db::Sqlite(_) => Ok(Ok(())),
            })
            .await?
    }

    /// The durable barrier (see the module's doc): marks the mailbox's
    /// pending actions whose message and covering cursor are committed, in
    /// a synchronous=FULL commit. Returns how many were marked.
    pub async fn mark_durable(&self, mailbox: MailboxId) -> Result<usize, StoreError> {
        self.with(true, move |conn| {
            let c = match conn {
                Conn::Sqlite(c) => c,
                Conn::Postgres(pg) => return pgsql::mark_durable(pg, mailbox),
            };
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .doing("starting the durable barrier")?;
            let n = tx
                .execute(
                    "UPDATE actions SET durable_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                     WHERE id IN (
                         SELECT a.id FROM actions a CROSS JOIN messages m ON m.id = a.message_id
                         CROSS JOIN mailboxes b ON b.id = m.mailbox_id
                         WHERE a.state = 'pending' AND a.durable_at IS NULL
                           AND m.mailbox_id = ?1 AND m.uidvalidity = b.uidvalidity
                           AND m.uid <= b.last_uid)",
                    params![mailbox.0],
                )
                .doing("marking actions durable")?;
            tx.commit().doing("committing the durable barrier")?;
            Ok(n)
        })
        .await
    }

    /// Ends, as failed, the open actions that may no longer run: their
    /// message's generation is gone (the UID names nothing now), or the
    /// configuration no longer asks for them (`keep` says what it asks).
    pub async fn cancel_stale(
        &self,
        mailbox: MailboxId,
        keep: MailboxAction,
        delete_after: bool,
    ) -> Result<usize, StoreError> {
        self.with(true, move |conn| {
            let c = match conn {
                Conn::Sqlite(c) => c,
                Conn::Postgres(pg) => return pgsql::cancel_stale(pg, mailbox, keep, delete_after),
            };
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).doing("starting to cancel actions")?;
            let stale: Vec<(i64, i64, String)> = {
                let mut s = tx
                    .prepare(
                        "SELECT a.id, a.message_id, CASE
                            WHEN m.uidvalidity <> b.uidvalidity THEN 'the folder''s UIDVALIDITY changed; the UID no longer names this message'
                            ELSE 'no longer configured' END
                         FROM actions a CROSS JOIN messages m ON m.id = a.message_id
                         CROSS JOIN mailboxes b ON b.id = m.mailbox_id
                         WHERE m.mailbox_id = ?1 AND a.state IN ('pending', 'copying', 'copied') AND (
                            m.uidvalidity <> b.uidvalidity
                            OR (a.reason = 'delete_after' AND NOT ?4)
                            OR (a.reason = 'after_store' AND a.state = 'pending'
                                AND (a.kind IS NOT ?2 OR a.target IS NOT ?3)))",
                    )
                    .doing("finding stale actions")?;
                let kind = keep.as_ref().map(|(k, _)| k.as_str());
                let target = keep.as_ref().and_then(|(_, t)| t.clone());
                s.query_map(params![mailbox.0, kind, target, delete_after], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .and_then(|rows| rows.collect())
                .doing("finding stale actions")?
            };
            for (id, _, why) in &stale {
                record_one(&tx, mailbox, *id, &Outcome::Failed(why.clone()))?;
            }
            tx.commit().doing("cancelling stale actions")?;
            Ok(stale.len())
        })
        .await
    }

    /// Up to `limit` actions of the mailbox that may run now (durable, of
    /// the current generation `uidvalidity`), by UID.
    pub async fn open_actions(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        limit: u32,
    ) -> Result<Vec<OpenAction>, StoreError> {
        self.with(false, move |conn| {
            let c = match conn {
                Conn::Sqlite(c) => c,
                Conn::Postgres(pg) => return pgsql::open_actions(pg, mailbox, uidvalidity, limit),
            };
            let mut s = c
                .prepare_cached(
                    "SELECT a.id, m.uid, a.kind, a.target, a.reason, a.state = 'copied',
                            m.expunged_at IS NOT NULL, a.state = 'copying', m.message_id
                      FROM actions a CROSS JOIN messages m ON m.id = a.message_id
                     WHERE m.mailbox_id = ?1 AND m.uidvalidity = ?2
                       AND a.state IN ('pending', 'copying', 'copied') AND a.durable_at IS NOT NULL
                     ORDER BY m.uid, a.id LIMIT ?3",
                )
                .doing("reading open actions")?;
            let rows = s
                .query_map(params![mailbox.0, uidvalidity.0, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, bool>(5)?,
                        r.get::<_, bool>(6)?,
                        r.get::<_, bool>(7)?,
                        r.get::<_, Option<String>>(8)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .doing("reading open actions")?;
            Ok(rows
                .into_iter()
                .filter_map(
                    |(id, uid, kind, target, reason, copied, gone, copying, message_id)| {
                        Some(OpenAction {
                            id,
                            uid,
                            kind: ActionKind::parse(&kind)?,
                            target,
                            reason,
                            copied,
                            gone,
                            copying,
                            message_id,
                        })
                    },
                )
                .collect())
        })
        .await
    }

    /// Records outcomes, with an `action` event for each that ended; one
    /// synchronous=FULL commit, so a `copied` state survives a power cut.
    pub async fn record(
        &self,
        mailbox: MailboxId,
        outcomes: Vec<(i64, Outcome)>,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.with(true, move |conn| {
            let c = match conn {
                Conn::Sqlite(c) => c,
                Conn::Postgres(pg) => return pgsql::record(pg, mailbox, &outcomes),
            };
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .doing("starting to record actions")?;
            for (id, o) in &outcomes {
                record_one(&tx, mailbox, *id, o)?;
            }
            tx.commit().doing("recording actions")
        })
        .await
    }

    /// Queues `delete` actions (reason `delete_after`) for the messages of
    /// `uids` that are stored in the current generation, covered by the
    /// cursor, still on the server as far as mailfeed knows, and whose
    /// stored INTERNALDATE is before `before` (`YYYY-MM-DDTHH:MM:SSZ`).
    /// Returns how many were queued.
    pub async fn queue_expiry(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        uids: UidSet,
        before: String,
    ) -> Result<usize, StoreError> {
        self.with(true, move |conn| {
            let c = match conn {
                Conn::Sqlite(c) => c,
                Conn::Postgres(pg) => {
                    return pgsql::queue_expiry(pg, mailbox, uidvalidity, &uids, &before);
                }
            };
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .doing("starting to queue expiry")?;
            let mut n = 0;
            for &(first, last) in uids.ranges() {
                n += tx
                    .execute(
                        "INSERT OR IGNORE INTO actions (message_id, kind, reason)
                         SELECT m.id, 'delete', 'delete_after'
                         FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                         WHERE m.mailbox_id = ?1 AND m.uidvalidity = ?2
                           AND b.uidvalidity = ?2 AND m.uid <= b.last_uid
                           AND m.uid BETWEEN ?3 AND ?4 AND m.expunged_at IS NULL
                           AND m.internal_date IS NOT NULL AND m.internal_date < ?5",
                        params![mailbox.0, uidvalidity.0, first, last, before],
                    )
                    .doing("queueing expired messages for deletion")?;
            }
            tx.commit().doing("queueing expiry")?;
            Ok(n)
        })
        .await
    }
}

fn record_one(c: &Connection, mailbox: MailboxId, id: i64, o: &Outcome) -> Result<(), StoreError> {
    let (state, result) = match o {
        Outcome::Done(r) => ("done", Some(r.as_str())),
        Outcome::Failed(r) => ("failed", Some(r.as_str())),
        Outcome::Copied => ("copied", None),
        Outcome::Copying => ("copying", None),
    };
    let changed = c
        .prepare_cached(
            "UPDATE actions SET state = ?2, result = coalesce(?3, result),
                 done_at = CASE WHEN ?2 IN ('done', 'failed')
                     THEN strftime('%Y-%m-%dT%H:%M:%fZ','now') END
             WHERE id = ?1 AND state IN ('pending', 'copying', 'copied')",
        )
        .and_then(|mut s| s.execute(params![id, state, result]))
        .doing("recording an action's outcome")?;
    if changed > 0 && matches!(o, Outcome::Done(_) | Outcome::Failed(_)) {
        c.prepare_cached(
            "INSERT INTO events (kind, mailbox_id, message_id, detail)
             SELECT 'action', ?1, a.message_id, json_object('action', a.kind, 'target', a.target,
                    'reason', a.reason, 'state', a.state, 'result', a.result)
             FROM actions a WHERE a.id = ?2",
        )
        .and_then(|mut s| s.execute(params![mailbox.0, id]))
        .doing("recording an action event")?;
    }
    Ok(())
}
