//! The SQL of accounts and mailboxes: finding or creating their rows, the
//! sync cursor (UIDVALIDITY generation, last stored UID) and the outcome of
//! each pass. Runs on the writer thread; knows nothing of messages.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Context, MailboxCursor, MailboxId, StoreError};
use crate::imap::{UidValidity, mutf7};

/// Finds or creates the row for an account and returns its id.
fn ensure_account(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO accounts (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
        params![name],
    )
    .doing("recording account")?;
    conn.query_row(
        "SELECT id FROM accounts WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .doing("looking up account")
}

fn cursor_of(uv: Option<i64>, last: i64, hms: Option<i64>) -> MailboxCursor {
    MailboxCursor {
        uidvalidity: uv.and_then(|v| u32::try_from(v).ok()).map(UidValidity),
        last_uid: u32::try_from(last).unwrap_or(0),
        highest_modseq: hms.and_then(|v| u64::try_from(v).ok()),
    }
}

/// Finds or creates a mailbox row (by readable name) and returns its id and
/// cursor.
pub(crate) fn ensure(
    conn: &Connection,
    account: &str,
    wire_name: &str,
) -> Result<(MailboxId, MailboxCursor), StoreError> {
    let account_id = ensure_account(conn, account)?;
    let name = mutf7::decode(wire_name);
    conn.execute(
        "INSERT INTO mailboxes (account_id, name, wire_name) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, name) DO UPDATE SET wire_name = excluded.wire_name",
        params![account_id, name, wire_name],
    )
    .doing("recording mailbox")?;
    let (id, uv, last, hms): (i64, Option<i64>, i64, Option<i64>) = conn
        .query_row(
            "SELECT id, uidvalidity, last_uid, highest_modseq FROM mailboxes
             WHERE account_id = ?1 AND name = ?2",
            params![account_id, name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .doing("reading mailbox cursor")?;
    Ok((MailboxId(id), cursor_of(uv, last, hms)))
}

/// Reads a mailbox's cursor.
pub(crate) fn cursor(conn: &Connection, mailbox: MailboxId) -> Result<MailboxCursor, StoreError> {
    let row: Option<(Option<i64>, i64, Option<i64>)> = conn
        .query_row(
            "SELECT uidvalidity, last_uid, highest_modseq FROM mailboxes WHERE id = ?1",
            params![mailbox.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .doing("reading mailbox cursor")?;
    Ok(row
        .map(|(uv, last, hms)| cursor_of(uv, last, hms))
        .unwrap_or_default())
}

/// Switches a mailbox to generation `uv` (no change if it is there already):
/// the cursor restarts, old rows stay, an event records the change.
pub(crate) fn begin_generation(
    c: &Connection,
    mailbox: MailboxId,
    uv: UidValidity,
) -> Result<(), StoreError> {
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

/// Moves the cursor of generation `uv` up to `last_uid` (never down).
pub(crate) fn advance(
    c: &Connection,
    mailbox: MailboxId,
    uv: UidValidity,
    last_uid: u32,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE mailboxes SET last_uid = max(last_uid, ?3)
         WHERE id = ?1 AND uidvalidity = ?2",
    )
    .and_then(|mut s| s.execute(params![mailbox.0, uv.0, last_uid]))
    .doing("advancing the mailbox cursor")?;
    Ok(())
}

/// Records the end of a sync pass, good (`None`) or bad.
pub(crate) fn record_outcome(
    c: &Connection,
    mailbox: MailboxId,
    error: Option<&str>,
) -> Result<(), StoreError> {
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
}
