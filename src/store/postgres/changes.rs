//! Flag changes and expunges on PostgreSQL, with the visible-row rule of
//! `store/changes.rs`: every change applies to the row consumers see (the
//! first stored; re-found copies point to it with `supersedes`), one event
//! per difference they can see. Nothing is deleted.

use postgres::Row;

use super::{Pg, PgContext, big, small};
use crate::imap::UidSet;
use crate::store::changes::{Added, Marks, canonical_flags};
use crate::store::{MailboxId, StoreError};

struct Pair {
    row: i64,
    uid: u32,
    visible: i64,
    visible_flags: String,
    visible_live: bool,
    row_flags: String,
}

fn pair(r: &Row) -> Pair {
    Pair {
        row: r.get(0),
        uid: small(r.get(1)),
        visible: r.get(2),
        visible_flags: r.get(3),
        visible_live: r.get(4),
        row_flags: r.get(5),
    }
}

fn record(
    pg: &mut Pg,
    kind: &'static str,
    mailbox: MailboxId,
    row: i64,
    detail: String,
) -> Result<(), StoreError> {
    let st =
        pg.st("INSERT INTO events (kind, mailbox_id, message_id, detail) VALUES ($1, $2, $3, $4)")?;
    pg.client
        .execute(&st, &[&kind, &mailbox.0, &row, &detail])
        .pg("recording an event")?;
    Ok(())
}

fn set_flags(pg: &mut Pg, mailbox: MailboxId, p: &Pair, text: &str) -> Result<bool, StoreError> {
    if p.visible_flags == text && p.row_flags == text {
        return Ok(false);
    }
    let st = pg.st("UPDATE messages SET flags = $3 WHERE id IN ($1, $2) AND flags <> $3")?;
    pg.client
        .execute(&st, &[&p.row, &p.visible, &text])
        .pg("updating flags")?;
    if p.visible_flags == text {
        return Ok(false);
    }
    let detail = serde_json::json!({ "uid": p.uid, "flags": text }).to_string();
    record(pg, "flags", mailbox, p.row, detail)?;
    Ok(true)
}

pub(crate) fn apply_flags(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: u32,
    changes: &[(u32, Vec<String>)],
) -> Result<u64, StoreError> {
    pg.touch(mailbox);
    let st = pg.st(
        "SELECT m.id, m.uid, v.id, v.flags, v.expunged_at IS NULL, m.flags
         FROM messages m JOIN messages v ON v.id = coalesce(m.supersedes, m.id)
         WHERE m.mailbox_id = $1 AND m.uidvalidity = $2 AND m.uid = $3",
    )?;
    let mut changed = 0;
    for (uid, flags) in changes {
        let text = canonical_flags(flags).join(" ");
        let found = pg
            .client
            .query_opt(&st, &[&mailbox.0, &big(uidvalidity), &big(*uid)])
            .pg("reading flags")?
            .map(|r| pair(&r));
        if let Some(p) = found
            && set_flags(pg, mailbox, &p, &text)?
        {
            changed += 1;
        }
    }
    Ok(changed)
}

pub(crate) fn mark_expunged(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: u32,
    uids: &UidSet,
) -> Result<u64, StoreError> {
    pg.touch(mailbox);
    let st = pg.st(
        "SELECT m.id, m.uid, v.id, v.flags, v.expunged_at IS NULL, m.flags
         FROM messages m JOIN messages v ON v.id = coalesce(m.supersedes, m.id)
         WHERE m.mailbox_id = $1 AND m.uidvalidity = $2 AND m.uid BETWEEN $3 AND $4
           AND (m.expunged_at IS NULL OR v.expunged_at IS NULL)
         ORDER BY m.uid",
    )?;
    let mut marked = 0;
    for &(first, last) in uids.ranges() {
        let pairs: Vec<Pair> = pg
            .client
            .query(
                &st,
                &[&mailbox.0, &big(uidvalidity), &big(first), &big(last)],
            )
            .pg("finding messages to mark expunged")?
            .iter()
            .map(pair)
            .collect();
        for p in pairs {
            if expunge(pg, mailbox, &p)? {
                marked += 1;
            }
        }
    }
    Ok(marked)
}

fn expunge(pg: &mut Pg, mailbox: MailboxId, p: &Pair) -> Result<bool, StoreError> {
    let st = pg.st("UPDATE messages SET expunged_at = mailfeed_now()
         WHERE id IN ($1, $2) AND expunged_at IS NULL")?;
    pg.client
        .execute(&st, &[&p.row, &p.visible])
        .pg("marking messages expunged")?;
    if !p.visible_live {
        return Ok(false);
    }
    let detail = serde_json::json!({ "uid": p.uid }).to_string();
    record(pg, "expunged", mailbox, p.row, detail)?;
    Ok(true)
}

pub(crate) fn reconcile_refound(
    pg: &mut Pg,
    mailbox: MailboxId,
    row: i64,
    uid: u32,
    visible: i64,
    flags: &[String],
) -> Result<bool, StoreError> {
    let text = canonical_flags(flags).join(" ");
    let st = pg.st("SELECT flags, expunged_at IS NULL FROM messages WHERE id = $1")?;
    let r = pg
        .client
        .query_one(&st, &[&visible])
        .pg("reading the earlier row of a re-found message")?;
    let p = Pair {
        row,
        uid,
        visible,
        visible_flags: r.get(0),
        visible_live: r.get(1),
        row_flags: text.clone(),
    };
    let mut differed = set_flags(pg, mailbox, &p, &text)?;
    if !p.visible_live {
        let st = pg.st("UPDATE messages SET expunged_at = NULL WHERE id = $1")?;
        pg.client
            .execute(&st, &[&visible])
            .pg("restoring a message found again")?;
        let detail = serde_json::json!({ "uid": uid }).to_string();
        record(pg, "restored", mailbox, row, detail)?;
        differed = true;
    }
    Ok(differed)
}

pub(crate) fn retire_unfound(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: u32,
) -> Result<u64, StoreError> {
    let st = pg.st("SELECT o.id, o.uid FROM messages o
         WHERE o.mailbox_id = $1 AND o.uidvalidity <> $2
           AND o.supersedes IS NULL AND o.expunged_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM messages n
                           WHERE n.supersedes = o.id AND n.uidvalidity = $2)
         ORDER BY o.id")?;
    let rows: Vec<(i64, i64)> = pg
        .client
        .query(&st, &[&mailbox.0, &big(uidvalidity)])
        .pg("finding messages of earlier generations")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut n = 0;
    for (id, uid) in rows {
        let p = Pair {
            row: id,
            uid: small(uid),
            visible: id,
            visible_flags: String::new(),
            visible_live: true,
            row_flags: String::new(),
        };
        if expunge(pg, mailbox, &p)? {
            n += 1;
        }
    }
    Ok(n)
}

pub(crate) fn reconcile_existing(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: u32,
    (after, up_to): (u32, u32),
    existing: &UidSet,
) -> Result<u64, StoreError> {
    pg.touch(mailbox);
    let st = pg.st(
        "SELECT uid FROM messages WHERE mailbox_id = $1 AND uidvalidity = $2
         AND uid > $3 AND uid <= $4 AND expunged_at IS NULL",
    )?;
    let gone: Vec<u32> = pg
        .client
        .query(
            &st,
            &[&mailbox.0, &big(uidvalidity), &big(after), &big(up_to)],
        )
        .pg("listing stored UIDs")?
        .iter()
        .map(|r| small(r.get(0)))
        .filter(|u| !existing.contains(*u))
        .collect();
    mark_expunged(pg, mailbox, uidvalidity, &UidSet::from_uids(gone))
}

pub(crate) fn live_count(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: u32,
) -> Result<u64, StoreError> {
    let st = pg.st(
        "SELECT count(*) FROM messages WHERE mailbox_id = $1 AND uidvalidity = $2
         AND expunged_at IS NULL",
    )?;
    let n: i64 = pg
        .client
        .query_one(&st, &[&mailbox.0, &big(uidvalidity)])
        .pg("counting stored messages")?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) fn set_highest_modseq(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: u32,
    modseq: Option<u64>,
) -> Result<(), StoreError> {
    pg.touch(mailbox);
    let st =
        pg.st("UPDATE mailboxes SET highest_modseq = $3 WHERE id = $1 AND uidvalidity = $2")?;
    pg.client
        .execute(
            &st,
            &[
                &mailbox.0,
                &big(uidvalidity),
                &modseq.and_then(|m| i64::try_from(m).ok()),
            ],
        )
        .pg("recording HIGHESTMODSEQ")?;
    Ok(())
}

/// Marks by internal row ids: this writer's own rows rise with them, which
/// is all a pass counts.
pub(crate) fn marks(pg: &mut Pg) -> Result<Marks, StoreError> {
    let st = pg.st("SELECT (SELECT coalesce(max(id), 0) FROM events),
                (SELECT coalesce(max(id), 0) FROM messages)")?;
    let r = pg
        .client
        .query_one(&st, &[])
        .pg("reading the end of the log")?;
    Ok(Marks {
        seq: r.get(0),
        row: r.get(1),
    })
}

pub(crate) fn added_since(
    pg: &mut Pg,
    mailbox: MailboxId,
    since: Marks,
) -> Result<Added, StoreError> {
    let st = pg.st("SELECT (SELECT count(*) FROM events
                 WHERE id > $2 AND mailbox_id = $1 AND kind = 'new'),
                (SELECT count(*) FROM messages
                 WHERE id > $3 AND mailbox_id = $1 AND supersedes IS NOT NULL)")?;
    let r = pg
        .client
        .query_one(&st, &[&mailbox.0, &since.seq, &since.row])
        .pg("counting what a pass added")?;
    Ok(Added {
        new: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
        refound: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
    })
}
