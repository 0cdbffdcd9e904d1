//! Changes to messages already stored: flag updates and expunges. Nothing is
//! ever deleted: an expunged message gets `expunged_at`, and each change
//! appends an `events` row so consumers can follow it with one cursor.
//!
//! One rule across UIDVALIDITY generations: a message has one row consumers
//! see (the first stored; re-found copies point to it with `supersedes`),
//! and every change, whichever generation reports it, is applied to that
//! row, with one event for each difference consumers can see. Re-finding a
//! message reconciles that row with the server; once a generation is
//! complete, rows it did not re-find are expunged.
//!
//! Must not talk to the network or decide what to fetch: the sync engine
//! says what the server reported; this module records it.

use rusqlite::{Connection, params};

use super::writer::Db;
use super::{Context, MailboxId, StoreError};
use crate::imap::UidSet;

/// Flags as stored: sorted, without duplicates, without `\Recent` (which
/// belongs to a session, not to the message).
pub fn canonical_flags(flags: &[String]) -> Vec<String> {
    let mut f: Vec<String> = flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .cloned()
        .collect();
    f.sort();
    f.dedup();
    f
}

/// A stored message of one generation and the row consumers see for it:
/// the row itself, or the earlier row it supersedes (re-found after a
/// UIDVALIDITY change). Every change is applied to both, so the visible row
/// follows the server whatever generation reported the change, and the
/// hidden one keeps its generation's truth.
struct Pair {
    /// The row of the reporting generation (events name it: its UID is the
    /// current one; `message_events` maps it to the visible row).
    row: i64,
    uid: u32,
    visible: i64,
    visible_flags: String,
    visible_live: bool,
    row_flags: String,
}

const PAIR: &str = "SELECT m.id, m.uid, v.id, v.flags, v.expunged_at IS NULL, m.flags
                    FROM messages m JOIN messages v ON v.id = coalesce(m.supersedes, m.id)";

fn pair(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pair> {
    Ok(Pair {
        row: r.get(0)?,
        uid: r.get(1)?,
        visible: r.get(2)?,
        visible_flags: r.get(3)?,
        visible_live: r.get(4)?,
        row_flags: r.get(5)?,
    })
}

fn record(
    c: &Connection,
    kind: &'static str,
    mailbox: MailboxId,
    row: i64,
    detail: String,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO events (kind, mailbox_id, message_id, detail) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![kind, mailbox.0, row, detail]))
    .doing("recording an event")?;
    Ok(())
}

fn flags_detail(uid: u32, flags: &str) -> String {
    serde_json::json!({ "uid": uid, "flags": flags }).to_string()
}

fn uid_detail(uid: u32) -> String {
    serde_json::json!({ "uid": uid }).to_string()
}

/// Sets the flags of both rows of a pair; one event when the visible row
/// changed.
fn set_flags(c: &Connection, mailbox: MailboxId, p: &Pair, text: &str) -> Result<bool, StoreError> {
    if p.visible_flags == text && p.row_flags == text {
        return Ok(false);
    }
    c.prepare_cached("UPDATE messages SET flags = ?3 WHERE id IN (?1, ?2) AND flags <> ?3")
        .and_then(|mut s| s.execute(params![p.row, p.visible, text]))
        .doing("updating flags")?;
    if p.visible_flags == text {
        return Ok(false);
    }
    record(c, "flags", mailbox, p.row, flags_detail(p.uid, text))?;
    Ok(true)
}

/// Updates flags that differ; returns how many messages changed as
/// consumers see them (one `flags` event each). A dense run of UIDs (a
/// rescan's chunk) is read with one range query: a statement per UID is
/// prepared again on every step here, which made a 100,000-message rescan
/// spend most of its time in SQLite's parser.
pub(crate) fn apply_flags(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
    changes: &[(u32, Vec<String>)],
) -> Result<u64, StoreError> {
    let (Some(lo), Some(hi)) = (
        changes.iter().map(|(u, _)| *u).min(),
        changes.iter().map(|(u, _)| *u).max(),
    ) else {
        return Ok(0);
    };
    let dense = u64::from(hi - lo) < 4 * changes.len() as u64 + 64;
    let stored: Option<Vec<Pair>> = if dense {
        let rows = c
            .prepare_cached(&format!(
                "{PAIR} WHERE m.mailbox_id = ?1 AND m.uidvalidity = ?2 AND m.uid BETWEEN ?3 AND ?4
                 ORDER BY m.uid"
            ))
            .and_then(|mut s| {
                s.query_map(params![mailbox.0, uidvalidity, lo, hi], pair)?
                    .collect::<rusqlite::Result<Vec<Pair>>>()
            })
            .doing("reading flags")?;
        Some(rows)
    } else {
        None
    };
    let mut changed = 0;
    for (uid, flags) in changes {
        let text = canonical_flags(flags).join(" ");
        let owned: Option<Pair>;
        let found = match &stored {
            Some(rows) => rows
                .binary_search_by_key(uid, |p| p.uid)
                .ok()
                .map(|i| &rows[i]),
            None => {
                owned = c
                    .prepare_cached(&format!(
                        "{PAIR} WHERE m.mailbox_id = ?1 AND m.uidvalidity = ?2 AND m.uid = ?3"
                    ))
                    .and_then(|mut s| {
                        let mut rows = s.query(params![mailbox.0, uidvalidity, uid])?;
                        rows.next()?.map(pair).transpose()
                    })
                    .doing("reading flags")?;
                owned.as_ref()
            }
        };
        if let Some(p) = found
            && set_flags(c, mailbox, p, &text)?
        {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Marks the stored messages among `uids` expunged (once, on the visible
/// row too); returns how many consumers see newly expunged. Works range by
/// range, so a server's `VANISHED 1:4000000` costs what is stored in that
/// range, not four million statements.
pub(crate) fn mark_expunged(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
    uids: &UidSet,
) -> Result<u64, StoreError> {
    let mut marked = 0;
    for &(first, last) in uids.ranges() {
        let pairs: Vec<Pair> = c
            .prepare_cached(&format!(
                "{PAIR} WHERE m.mailbox_id = ?1 AND m.uidvalidity = ?2 AND m.uid BETWEEN ?3 AND ?4
                   AND (m.expunged_at IS NULL OR v.expunged_at IS NULL)"
            ))
            .and_then(|mut s| {
                s.query_map(params![mailbox.0, uidvalidity, first, last], pair)?
                    .collect()
            })
            .doing("finding messages to mark expunged")?;
        for p in pairs {
            if expunge(c, mailbox, &p)? {
                marked += 1;
            }
        }
    }
    Ok(marked)
}

fn expunge(c: &Connection, mailbox: MailboxId, p: &Pair) -> Result<bool, StoreError> {
    c.prepare_cached(
        "UPDATE messages SET expunged_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
         WHERE id IN (?1, ?2) AND expunged_at IS NULL",
    )
    .and_then(|mut s| s.execute(params![p.row, p.visible]))
    .doing("marking messages expunged")?;
    if !p.visible_live {
        return Ok(false);
    }
    record(c, "expunged", mailbox, p.row, uid_detail(p.uid))?;
    Ok(true)
}

/// A message stored under a new UIDVALIDITY was found to be an earlier
/// row's (`visible`): that row takes the server's state now, flags and
/// presence, and each difference is one event, as if it had been reported
/// as a change. Returns whether anything differed.
pub(crate) fn reconcile_refound(
    c: &Connection,
    mailbox: MailboxId,
    row: i64,
    uid: u32,
    visible: i64,
    flags: &[String],
) -> Result<bool, StoreError> {
    let text = canonical_flags(flags).join(" ");
    let (visible_flags, visible_live): (String, bool) = c
        .prepare_cached("SELECT flags, expunged_at IS NULL FROM messages WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![visible], |r| Ok((r.get(0)?, r.get(1)?))))
        .doing("reading the earlier row of a re-found message")?;
    let p = Pair {
        row,
        uid,
        visible,
        visible_flags,
        visible_live,
        row_flags: text.clone(),
    };
    let mut differed = set_flags(c, mailbox, &p, &text)?;
    if !p.visible_live {
        c.prepare_cached("UPDATE messages SET expunged_at = NULL WHERE id = ?1")
            .and_then(|mut s| s.execute(params![visible]))
            .doing("restoring a message found again")?;
        record(c, "restored", mailbox, row, uid_detail(uid))?;
        differed = true;
    }
    Ok(differed)
}

/// Once a generation is completely stored, the visible rows of earlier
/// generations that no row of it re-found are no longer on the server:
/// they are marked expunged, one event each. Returns how many.
pub(crate) fn retire_unfound(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
) -> Result<u64, StoreError> {
    // Two index lookups first, so a mailbox of one generation (nearly all)
    // costs no scan.
    let others: bool = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uidvalidity < ?2)
                 OR EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uidvalidity > ?2)",
        )
        .and_then(|mut s| s.query_row(params![mailbox.0, uidvalidity], |r| r.get(0)))
        .doing("looking for earlier generations of the mailbox")?;
    if !others {
        return Ok(0);
    }
    let rows: Vec<(i64, u32)> = c
        .prepare_cached(
            "SELECT o.id, o.uid FROM messages o
             WHERE o.mailbox_id = ?1 AND (o.uidvalidity < ?2 OR o.uidvalidity > ?2)
               AND o.supersedes IS NULL AND o.expunged_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM messages n
                               WHERE n.supersedes = o.id AND n.uidvalidity = ?2)
             ORDER BY o.id",
        )
        .and_then(|mut s| {
            s.query_map(params![mailbox.0, uidvalidity], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
        .doing("finding messages of earlier generations")?;
    let mut n = 0;
    for (id, uid) in rows {
        let p = Pair {
            row: id,
            uid,
            visible: id,
            visible_flags: String::new(),
            visible_live: true,
            row_flags: String::new(),
        };
        if expunge(c, mailbox, &p)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Given every UID in `(after, up_to]` that still exists on the server,
/// marks the stored messages of that range that are gone; returns how many
/// were newly marked.
pub(crate) fn reconcile_existing(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
    (after, up_to): (u32, u32),
    existing: &UidSet,
) -> Result<u64, StoreError> {
    let gone: Vec<u32> = {
        let mut s = c
            .prepare_cached(
                "SELECT uid FROM messages WHERE mailbox_id = ?1 AND uidvalidity = ?2
                 AND uid > ?3 AND uid <= ?4 AND expunged_at IS NULL",
            )
            .doing("listing stored UIDs")?;
        let rows = s
            .query_map(params![mailbox.0, uidvalidity, after, up_to], |r| {
                r.get::<_, u32>(0)
            })
            .doing("listing stored UIDs")?;
        rows.collect::<Result<Vec<_>, _>>()
            .doing("listing stored UIDs")?
            .into_iter()
            .filter(|u| !existing.contains(*u))
            .collect()
    };
    mark_expunged(c, mailbox, uidvalidity, &UidSet::from_uids(gone))
}

/// Stored messages of a generation not marked expunged (for the cheap check
/// that decides whether a UID scan is needed).
pub(crate) fn live_count(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
) -> Result<u64, StoreError> {
    c.prepare_cached(
        "SELECT count(*) FROM messages WHERE mailbox_id = ?1 AND uidvalidity = ?2
         AND expunged_at IS NULL",
    )
    .and_then(|mut s| s.query_row(params![mailbox.0, uidvalidity], |r| r.get::<_, i64>(0)))
    .map(|n| u64::try_from(n).unwrap_or(0))
    .doing("counting stored messages")
}

pub(crate) fn set_highest_modseq(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
    modseq: Option<u64>,
) -> Result<(), StoreError> {
    c.prepare_cached("UPDATE mailboxes SET highest_modseq = ?3 WHERE id = ?1 AND uidvalidity = ?2")
        .and_then(|mut s| {
            s.execute(params![
                mailbox.0,
                uidvalidity,
                modseq.and_then(|m| i64::try_from(m).ok())
            ])
        })
        .doing("recording HIGHESTMODSEQ")?;
    Ok(())
}

/// Where the log stood before a pass: the last event and the last row, so
/// the pass can count what it added as consumers see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub(crate) seq: i64,
    pub(crate) row: i64,
}

/// What a pass added to one mailbox: rows in the feed, and rows re-found
/// after a UIDVALIDITY change (stored, linked, not shown again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    pub new: u64,
    pub refound: u64,
}

pub(crate) fn marks(c: &Connection) -> Result<Marks, StoreError> {
    c.prepare_cached(
        "SELECT (SELECT coalesce(max(seq), 0) FROM events),
                (SELECT coalesce(max(id), 0) FROM messages)",
    )
    .and_then(|mut s| {
        s.query_row([], |r| {
            Ok(Marks {
                seq: r.get(0)?,
                row: r.get(1)?,
            })
        })
    })
    .doing("reading the end of the log")
}

pub(crate) fn added_since(
    c: &Connection,
    mailbox: MailboxId,
    since: Marks,
) -> Result<Added, StoreError> {
    c.prepare_cached(
        "SELECT (SELECT count(*) FROM events
                 WHERE seq > ?2 AND mailbox_id = ?1 AND kind = 'new'),
                (SELECT count(*) FROM messages
                 WHERE id > ?3 AND mailbox_id = ?1 AND supersedes IS NOT NULL)",
    )
    .and_then(|mut s| {
        s.query_row(params![mailbox.0, since.seq, since.row], |r| {
            Ok(Added {
                new: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                refound: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            })
        })
    })
    .doing("counting what a pass added")
}

/// The same operations through the writer, in its order.
impl super::StoreHandle {
    /// Marks the visible rows of earlier generations that the now complete
    /// generation `uidvalidity` did not re-find expunged.
    pub async fn retire_unfound(
        &self,
        mailbox: MailboxId,
        uidvalidity: crate::imap::UidValidity,
    ) -> Result<u64, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => retire_unfound(c, mailbox, uidvalidity.0),
            Db::Postgres(pg) => {
                super::postgres::changes::retire_unfound(pg, mailbox, uidvalidity.0)
            }
        })
        .await
    }

    /// Where the log stands (see [`Marks`]).
    pub async fn marks(&self) -> Result<Marks, StoreError> {
        self.call_db(|db| match db {
            Db::Sqlite(c) => marks(c),
            Db::Postgres(pg) => super::postgres::changes::marks(pg),
        })
        .await
    }

    /// What was added to `mailbox` after `since`.
    pub async fn added_since(&self, mailbox: MailboxId, since: Marks) -> Result<Added, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => added_since(c, mailbox, since),
            Db::Postgres(pg) => super::postgres::changes::added_since(pg, mailbox, since),
        })
        .await
    }
}
