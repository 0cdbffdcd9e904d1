//! The bytes of mail each account downloaded per UTC day on PostgreSQL,
//! counted in the transaction that stores the messages, for
//! `daily_download_limit` (SQLite's is `store/limits.rs`). Knows no IMAP.

use super::{Pg, PgContext};
use crate::store::{MailboxId, StoreError};

/// Adds `bytes` downloaded into `mailbox` to its account's count for today.
pub(crate) fn count(pg: &mut Pg, mailbox: MailboxId, bytes: u64) -> Result<(), StoreError> {
    let st = pg.st(
        "INSERT INTO download_days (account_id, day, bytes)
         SELECT account_id, (now() AT TIME ZONE 'UTC')::date, $2 FROM mailboxes WHERE id = $1
         ON CONFLICT (account_id, day) DO UPDATE SET bytes = download_days.bytes + excluded.bytes",
    )?;
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    pg.client
        .execute(&st, &[&mailbox.0, &bytes])
        .pg("counting the bytes downloaded today")?;
    Ok(())
}

/// Bytes the account downloaded today (UTC).
pub(crate) fn today(pg: &mut Pg, account: &str) -> Result<u64, StoreError> {
    let st = pg.st(
        "SELECT coalesce(sum(d.bytes), 0)::bigint FROM download_days d
         JOIN accounts a ON a.id = d.account_id
         WHERE a.name = $1 AND d.day = (now() AT TIME ZONE 'UTC')::date",
    )?;
    let n: i64 = pg
        .client
        .query_one(&st, &[&account])
        .pg("reading the bytes downloaded today")?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
