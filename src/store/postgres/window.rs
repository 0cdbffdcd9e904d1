//! The backfill window recorded per mailbox and the stored UIDs a widened
//! window is compared with, on PostgreSQL (as `store/window.rs`).

use super::{Pg, PgContext, big, small};
use crate::imap::{UidSet, UidValidity};
use crate::store::{MailboxId, StoreError};

pub(crate) fn recorded(pg: &mut Pg, mailbox: MailboxId) -> Result<Option<String>, StoreError> {
    let st = pg.st("SELECT \"window\" FROM mailbox_windows WHERE mailbox_id = $1")?;
    Ok(pg
        .client
        .query_opt(&st, &[&mailbox.0])
        .pg("reading the mailbox's window")?
        .map(|r| r.get(0)))
}

pub(crate) fn set(pg: &mut Pg, mailbox: MailboxId, key: &str) -> Result<(), StoreError> {
    pg.touch(mailbox);
    let st = pg.st(
        "INSERT INTO mailbox_windows (mailbox_id, \"window\") VALUES ($1, $2)
         ON CONFLICT (mailbox_id) DO UPDATE SET \"window\" = excluded.\"window\"",
    )?;
    pg.client
        .execute(&st, &[&mailbox.0, &key])
        .pg("recording the mailbox's window")?;
    Ok(())
}

pub(crate) fn stored_uids(
    pg: &mut Pg,
    mailbox: MailboxId,
    uv: UidValidity,
    up_to: u32,
) -> Result<UidSet, StoreError> {
    let st = pg.st(
        "SELECT uid FROM messages WHERE mailbox_id = $1 AND uidvalidity = $2
         AND uid <= $3 ORDER BY uid",
    )?;
    let rows = pg
        .client
        .query(&st, &[&mailbox.0, &big(uv.0), &big(up_to)])
        .pg("listing stored UIDs")?;
    Ok(UidSet::from_uids(rows.iter().map(|r| small(r.get(0)))))
}
