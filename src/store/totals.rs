//! Totals for `/metrics`: per mailbox, what is stored (messages, bytes,
//! truncated, parse errors, UIDVALIDITY changes), and the database's size.
//! Read on a read-only connection; one query for all mailboxes.

use rusqlite::Connection;

use super::{Context, StoreError};

/// One mailbox's stored totals: the rows consumers see (a message re-found
/// after a UIDVALIDITY change counts once), expunged messages included: they
/// stay in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxTotals {
    pub account: String,
    /// The readable name (`status` shows the same).
    pub mailbox: String,
    pub messages: u64,
    /// Sum of the messages' sizes as the server reported them (RFC822.SIZE).
    pub bytes: u64,
    pub truncated: u64,
    pub parse_errors: u64,
    pub uidvalidity_changes: u64,
}

/// Every mailbox's totals, by account and mailbox.
pub(crate) fn totals(conn: &Connection) -> Result<Vec<MailboxTotals>, StoreError> {
    const DOING: &str = "reading totals for metrics";
    let mut stmt = conn
        .prepare_cached(
            "SELECT a.name, b.name,
                    count(m.id), coalesce(sum(m.size), 0),
                    coalesce(sum(m.truncated), 0),
                    count(m.parse_error),
                    (SELECT count(*) FROM events e WHERE e.mailbox_id = b.id
                        AND e.kind = 'uidvalidity')
             FROM mailboxes b JOIN accounts a ON a.id = b.account_id
             LEFT JOIN messages m ON m.mailbox_id = b.id AND m.supersedes IS NULL
             GROUP BY b.id ORDER BY a.name, b.name",
        )
        .doing(DOING)?;
    let rows = stmt
        .query_map([], |r| {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok(MailboxTotals {
                account: r.get(0)?,
                mailbox: r.get(1)?,
                messages: n(2)?,
                bytes: n(3)?,
                truncated: n(4)?,
                parse_errors: n(5)?,
                uidvalidity_changes: n(6)?,
            })
        })
        .doing(DOING)?;
    rows.collect::<Result<Vec<_>, _>>().doing(DOING)
}

/// The database's size in bytes (pages in use and free, without the WAL).
pub(crate) fn database_bytes(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v.max(0) as u64)
    .doing("reading the database size")
}
