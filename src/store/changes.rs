//! Changes to messages already stored: flag updates and expunges. Nothing is
//! ever deleted: an expunged message gets `expunged_at`, and each change
//! appends an `events` row so consumers can follow it with one cursor.

use rusqlite::{Connection, params};

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

/// Updates flags that differ; returns how many messages changed.
pub(crate) fn apply_flags(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
    changes: &[(u32, Vec<String>)],
) -> Result<u64, StoreError> {
    let mut changed = 0;
    for (uid, flags) in changes {
        let text = canonical_flags(flags).join(" ");
        let row: Option<i64> = c
            .prepare_cached(
                "UPDATE messages SET flags = ?4
                 WHERE mailbox_id = ?1 AND uidvalidity = ?2 AND uid = ?3 AND flags <> ?4
                 RETURNING id",
            )
            .and_then(|mut s| {
                let mut rows = s.query(params![mailbox.0, uidvalidity, uid, text])?;
                rows.next()?.map(|r| r.get(0)).transpose()
            })
            .doing("updating flags")?;
        if let Some(id) = row {
            c.prepare_cached(
                "INSERT INTO events (kind, mailbox_id, message_id, detail)
                 VALUES ('flags', ?1, ?2, json_object('uid', ?3, 'flags', ?4))",
            )
            .and_then(|mut s| s.execute(params![mailbox.0, id, uid, text]))
            .doing("recording a flag change")?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Marks the stored messages among `uids` expunged (once); returns how many
/// were newly marked. Works range by range, so a server's `VANISHED 1:4000000`
/// costs what is stored in that range, not four million statements.
pub(crate) fn mark_expunged(
    c: &Connection,
    mailbox: MailboxId,
    uidvalidity: u32,
    uids: &UidSet,
) -> Result<u64, StoreError> {
    let mut marked = 0;
    for &(first, last) in uids.ranges() {
        let rows: Vec<(i64, u32)> = c
            .prepare_cached(
                "UPDATE messages SET expunged_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                 WHERE mailbox_id = ?1 AND uidvalidity = ?2 AND uid BETWEEN ?3 AND ?4
                   AND expunged_at IS NULL
                 RETURNING id, uid",
            )
            .and_then(|mut s| {
                s.query_map(params![mailbox.0, uidvalidity, first, last], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .doing("marking messages expunged")?;
        for (id, uid) in rows {
            c.prepare_cached(
                "INSERT INTO events (kind, mailbox_id, message_id, detail)
                 VALUES ('expunged', ?1, ?2, json_object('uid', ?3))",
            )
            .and_then(|mut s| s.execute(params![mailbox.0, id, uid]))
            .doing("recording an expunge")?;
            marked += 1;
        }
    }
    Ok(marked)
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
