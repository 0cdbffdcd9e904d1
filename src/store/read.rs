//! Read-only queries behind [`super::Reader`]: per-mailbox progress for
//! `status` and the stored message set.

use rusqlite::{Connection, params};

use super::{Context, StoreError};

/// One line of `mailfeed status`. Counts are of what consumers see
/// (`message_feed`): a message re-found after a UIDVALIDITY change counts
/// once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MailboxStatus {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: i64,
    pub stored: i64,
    pub truncated: i64,
    pub expunged: i64,
    /// Messages stored raw whose MIME structure could not be (fully) parsed.
    pub parse_errors: i64,
    pub uidvalidity_changes: i64,
    /// Feed messages stored but not yet in the search index.
    pub search_pending: i64,
    pub last_sync_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

pub(crate) fn status(conn: &Connection) -> Result<Vec<MailboxStatus>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT a.name, b.name, b.uidvalidity, b.last_uid,
                    (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                        AND m.supersedes IS NULL),
                    (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                        AND m.supersedes IS NULL AND m.truncated),
                    (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                        AND m.supersedes IS NULL AND m.expunged_at IS NOT NULL),
                    (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                        AND m.supersedes IS NULL AND m.parse_error IS NOT NULL),
                    (SELECT count(*) FROM events e WHERE e.mailbox_id = b.id
                        AND e.kind = 'uidvalidity'),
                    (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                        AND m.supersedes IS NULL
                        AND m.id > (SELECT indexed_through FROM search_progress)),
                    b.last_sync_at, b.last_error, b.last_error_at
             FROM mailboxes b JOIN accounts a ON a.id = b.account_id
             ORDER BY a.name, b.name",
        )
        .doing("reading status")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(MailboxStatus {
                account: r.get(0)?,
                mailbox: r.get(1)?,
                uidvalidity: r.get(2)?,
                last_uid: r.get(3)?,
                stored: r.get(4)?,
                truncated: r.get(5)?,
                expunged: r.get(6)?,
                parse_errors: r.get(7)?,
                uidvalidity_changes: r.get(8)?,
                search_pending: r.get(9)?,
                last_sync_at: r.get(10)?,
                last_error: r.get(11)?,
                last_error_at: r.get(12)?,
            })
        })
        .doing("reading status")?;
    rows.collect::<Result<Vec<_>, _>>().doing("reading status")
}

/// A stored message's identity and bytes, as consumers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// Every row of `message_feed` for one account and mailbox, by UID.
pub(crate) fn feed_of(
    conn: &Connection,
    account: &str,
    mailbox: &str,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, account, mailbox, uidvalidity, uid, raw FROM message_feed
             WHERE account = ?1 AND mailbox = ?2 ORDER BY uidvalidity, uid",
        )
        .doing("reading the feed")?;
    let rows = stmt
        .query_map(params![account, mailbox], |r| {
            Ok(StoredMessage {
                id: r.get(0)?,
                account: r.get(1)?,
                mailbox: r.get(2)?,
                uidvalidity: r.get(3)?,
                uid: r.get(4)?,
                raw: r.get(5)?,
            })
        })
        .doing("reading the feed")?;
    rows.collect::<Result<Vec<_>, _>>()
        .doing("reading the feed")
}
