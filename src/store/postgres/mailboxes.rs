//! Accounts, mailboxes, the sync cursor and pass outcomes on PostgreSQL
//! (the same operations as `store/mailboxes.rs`).

use super::{Pg, PgContext, big, small};
use crate::imap::{UidValidity, mutf7};
use crate::store::{MailboxCursor, MailboxId, StoreError};

fn cursor_of(uv: Option<i64>, last: i64, hms: Option<i64>) -> MailboxCursor {
    MailboxCursor {
        uidvalidity: uv.and_then(|v| u32::try_from(v).ok()).map(UidValidity),
        last_uid: small(last),
        highest_modseq: hms.and_then(|v| u64::try_from(v).ok()),
    }
}

pub(crate) fn ensure(
    pg: &mut Pg,
    account: &str,
    wire_name: &str,
) -> Result<(MailboxId, MailboxCursor), StoreError> {
    let name = mutf7::decode(wire_name);
    let st = pg.st("INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")?;
    pg.client
        .execute(&st, &[&account])
        .pg("recording account")?;
    let st = pg.st("SELECT id FROM accounts WHERE name = $1")?;
    let account_id: i64 = pg
        .client
        .query_one(&st, &[&account])
        .pg("looking up account")?
        .get(0);
    let st = pg.st(
        "INSERT INTO mailboxes (account_id, name, wire_name) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, name) DO UPDATE SET wire_name = excluded.wire_name
         RETURNING id, uidvalidity, last_uid, highest_modseq",
    )?;
    let r = pg
        .client
        .query_one(&st, &[&account_id, &name, &wire_name])
        .pg("recording mailbox")?;
    Ok((MailboxId(r.get(0)), cursor_of(r.get(1), r.get(2), r.get(3))))
}

pub(crate) fn cursor(pg: &mut Pg, mailbox: MailboxId) -> Result<MailboxCursor, StoreError> {
    let st = pg.st("SELECT uidvalidity, last_uid, highest_modseq FROM mailboxes WHERE id = $1")?;
    let row = pg
        .client
        .query_opt(&st, &[&mailbox.0])
        .pg("reading mailbox cursor")?;
    Ok(row
        .map(|r| cursor_of(r.get(0), r.get(1), r.get(2)))
        .unwrap_or_default())
}

pub(crate) fn begin_generation(
    pg: &mut Pg,
    mailbox: MailboxId,
    uv: UidValidity,
) -> Result<(), StoreError> {
    pg.touch(mailbox);
    let st = pg.st("SELECT uidvalidity FROM mailboxes WHERE id = $1 FOR UPDATE")?;
    let old: Option<i64> = pg
        .client
        .query_one(&st, &[&mailbox.0])
        .pg("reading UIDVALIDITY")?
        .get(0);
    if old == Some(big(uv.0)) {
        return Ok(());
    }
    let st = pg.st(
        "UPDATE mailboxes SET uidvalidity = $2, last_uid = 0, highest_modseq = NULL WHERE id = $1",
    )?;
    pg.client
        .execute(&st, &[&mailbox.0, &big(uv.0)])
        .pg("starting a UIDVALIDITY generation")?;
    if let Some(old) = old {
        let st =
            pg.st("INSERT INTO events (kind, mailbox_id, detail) VALUES ('uidvalidity', $1, $2)")?;
        let detail = format!("{{\"old\":{old},\"new\":{}}}", uv.0);
        pg.client
            .execute(&st, &[&mailbox.0, &detail])
            .pg("recording the UIDVALIDITY change")?;
    }
    Ok(())
}

pub(crate) fn advance(
    pg: &mut Pg,
    mailbox: MailboxId,
    uv: UidValidity,
    last_uid: u32,
) -> Result<(), StoreError> {
    pg.touch(mailbox);
    let st = pg.st("UPDATE mailboxes SET last_uid = greatest(last_uid, $3)
         WHERE id = $1 AND uidvalidity = $2")?;
    pg.client
        .execute(&st, &[&mailbox.0, &big(uv.0), &big(last_uid)])
        .pg("advancing the mailbox cursor")?;
    Ok(())
}

pub(crate) fn record_outcome(
    pg: &mut Pg,
    mailbox: MailboxId,
    error: Option<&str>,
) -> Result<(), StoreError> {
    pg.touch(mailbox);
    match error {
        None => {
            let st = pg.st(
                "UPDATE mailboxes SET last_sync_at = mailfeed_now(),
                 last_error = NULL, last_error_at = NULL WHERE id = $1",
            )?;
            pg.client.execute(&st, &[&mailbox.0])
        }
        Some(e) => {
            let st = pg.st(
                "UPDATE mailboxes SET last_error = $2, last_error_at = mailfeed_now() WHERE id = $1",
            )?;
            pg.client.execute(&st, &[&mailbox.0, &e])
        }
    }
    .pg("recording the sync outcome")?;
    Ok(())
}
