//! Read-side queries behind `mailfeed search`, `export` and `tail`. They read
//! only the consumer views (`message_feed`, `message_attachments`,
//! `message_search`), the same interface documented for integrations, so the
//! commands double as examples of using it.

use rusqlite::{Connection, params};

use super::{Context, StoreError};

/// One message as `search` and `tail` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeedEntry {
    pub id: i64,
    pub account: String,
    pub mailbox: String,
    pub uid: u32,
    /// The Date header in UTC, or else the server's INTERNALDATE.
    pub date: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub attachments: Vec<String>,
    pub parse_error: Option<String>,
}

const ENTRY_COLUMNS: &str =
    "f.id, f.account, f.mailbox, f.uid, coalesce(f.sent_at, f.internal_date),
     f.from_address, f.from_name, f.subject, f.parse_error,
     (SELECT json_group_array(coalesce(x.filename, '')) FROM message_attachments x
       WHERE x.feed_id = f.id)";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedEntry> {
    let names: String = r.get(9)?;
    Ok(FeedEntry {
        id: r.get(0)?,
        account: r.get(1)?,
        mailbox: r.get(2)?,
        uid: r.get(3)?,
        date: r.get(4)?,
        from: r.get(5)?,
        from_name: r.get(6)?,
        subject: r.get(7)?,
        parse_error: r.get(8)?,
        // Built by SQLite's json_group_array just above, so it is valid JSON
        // of strings; an unnamed attachment shows as "".
        attachments: serde_json::from_str(&names).unwrap_or_default(),
    })
}

/// Messages matching an FTS5 query (see SQLite's FTS5 query syntax), best
/// match first.
pub(crate) fn search(
    conn: &Connection,
    query: &str,
    limit: u32,
) -> Result<Vec<FeedEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM message_search s JOIN message_feed f ON f.id = s.rowid
         WHERE message_search MATCH ?1 ORDER BY s.rank LIMIT ?2"
    );
    let mut st = conn.prepare(&sql).doing("searching")?;
    let rows = st
        .query_map(params![query, limit], entry)
        .doing("searching")?;
    rows.collect::<Result<Vec<_>, _>>().doing("searching")
}

/// Up to `limit` feed messages with `id > after`, in id order.
pub(crate) fn entries_after(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<FeedEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM message_feed f WHERE f.id > ?1 ORDER BY f.id LIMIT ?2"
    );
    let mut st = conn.prepare_cached(&sql).doing("reading new messages")?;
    let rows = st
        .query_map(params![after, limit], entry)
        .doing("reading new messages")?;
    rows.collect::<Result<Vec<_>, _>>()
        .doing("reading new messages")
}

/// The id just below the last `n` feed messages (0 when there are fewer),
/// where `tail` without `--from-id` starts.
pub(crate) fn id_before_last(conn: &Connection, n: u32) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT coalesce(min(id) - 1, 0) FROM
           (SELECT id FROM message_feed ORDER BY id DESC LIMIT ?1)",
        params![n],
        |r| r.get(0),
    )
    .doing("finding the last messages")
}

/// Which messages `export` writes.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub account: Option<String>,
    pub mailbox: Option<String>,
    /// ISO-8601 date or date-time; compared with the Date header (UTC), or
    /// the INTERNALDATE for messages without a usable Date.
    pub since: Option<String>,
}

/// A message to export: its identity, dates, flags and stored bytes.
#[derive(Debug, Clone)]
pub struct ExportMessage {
    pub id: i64,
    pub internal_date: Option<String>,
    pub sent_at: Option<String>,
    pub flags: String,
    pub raw: Vec<u8>,
}

/// Calls `each` for every matching feed message, in id order, one at a time
/// (memory holds one message, whatever the archive's size).
pub(crate) fn for_each_export<E>(
    conn: &Connection,
    filter: &ExportFilter,
    mut each: impl FnMut(ExportMessage) -> Result<(), E>,
) -> Result<Result<(), E>, StoreError> {
    let mut st = conn
        .prepare(
            "SELECT id, internal_date, sent_at, flags, raw FROM message_feed
             WHERE (?1 IS NULL OR account = ?1) AND (?2 IS NULL OR mailbox = ?2)
               AND (?3 IS NULL OR coalesce(sent_at, internal_date) >= ?3)
             ORDER BY id",
        )
        .doing("reading messages to export")?;
    let mut rows = st
        .query(params![filter.account, filter.mailbox, filter.since])
        .doing("reading messages to export")?;
    while let Some(r) = rows.next().doing("reading messages to export")? {
        let m = ExportMessage {
            id: r.get(0).doing("reading messages to export")?,
            internal_date: r.get(1).doing("reading messages to export")?,
            sent_at: r.get(2).doing("reading messages to export")?,
            flags: r.get(3).doing("reading messages to export")?,
            raw: r.get(4).doing("reading messages to export")?,
        };
        if let Err(e) = each(m) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// The decoded bytes of an attachment, by the lower-case hex SHA-256 that
/// `message_attachments.sha256` gives.
pub(crate) fn attachment_data(
    conn: &Connection,
    sha256: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT data FROM attachment_data WHERE sha256 = ?1",
        params![sha256],
        |r| r.get(0),
    )
    .optional()
    .doing("reading attachment contents")
}
