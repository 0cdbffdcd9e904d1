//! The bytes of mail each account downloaded per UTC day, counted in the
//! transaction that stores the messages (so a crash cannot lose the count
//! of what it kept), for `daily_download_limit`. Knows no IMAP.

use rusqlite::{Connection, params};

use super::{Context, MailboxId, StoreError};

/// Adds `bytes` downloaded into `mailbox` to its account's count for today.
pub(crate) fn count(c: &Connection, mailbox: MailboxId, bytes: u64) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO download_days (account_id, day, bytes)
         SELECT account_id, strftime('%Y-%m-%d', 'now'), ?2 FROM mailboxes WHERE id = ?1
         ON CONFLICT (account_id, day) DO UPDATE SET bytes = bytes + excluded.bytes",
    )
    .and_then(|mut s| s.execute(params![mailbox.0, i64::try_from(bytes).unwrap_or(i64::MAX)]))
    .doing("counting the bytes downloaded today")?;
    Ok(())
}

/// Bytes the account downloaded today (UTC).
pub(crate) fn today(c: &Connection, account: &str) -> Result<u64, StoreError> {
    let n: i64 = c
        .prepare_cached(
            "SELECT coalesce(sum(d.bytes), 0) FROM download_days d
             JOIN accounts a ON a.id = d.account_id
             WHERE a.name = ?1 AND d.day = strftime('%Y-%m-%d', 'now')",
        )
        .and_then(|mut s| s.query_row(params![account], |r| r.get(0)))
        .doing("reading the bytes downloaded today")?;
    Ok(u64::try_from(n).unwrap_or(0))
}
