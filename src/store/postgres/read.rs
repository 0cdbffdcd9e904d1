//! The read side on PostgreSQL (behind [`crate::store::Reader`]): status,
//! the feed by position, search, export, attachments. Reads the consumer
//! views, as on SQLite. Search takes a `websearch_to_tsquery` query
//! (words, "quoted phrases", `or`, `-excluded`), ranked by `ts_rank`.

use postgres::Row;

use super::{Pg, PgContext, small};
use crate::store::{
    ExportFilter, ExportMessage, FeedEntry, MailboxStatus, SearchLag, StoreError, StoredMessage,
};

pub(crate) fn status(pg: &mut Pg) -> Result<Vec<MailboxStatus>, StoreError> {
    let st = pg.st("SELECT a.name, b.name, b.uidvalidity, b.last_uid,
                (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                    AND m.supersedes IS NULL),
                (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                    AND m.supersedes IS NULL AND m.truncated <> 0),
                (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                    AND m.supersedes IS NULL AND m.expunged_at IS NOT NULL),
                (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id
                    AND m.supersedes IS NULL AND m.parse_error IS NOT NULL),
                (SELECT count(*) FROM events e WHERE e.mailbox_id = b.id
                    AND e.kind = 'uidvalidity'),
                b.last_sync_at, b.last_error, b.last_error_at
         FROM mailboxes b JOIN accounts a ON a.id = b.account_id
         ORDER BY a.name, b.name")?;
    let rows = pg.client.query(&st, &[]).pg("reading status")?;
    Ok(rows
        .iter()
        .map(|r| MailboxStatus {
            account: r.get(0),
            mailbox: r.get(1),
            uidvalidity: r.get(2),
            last_uid: r.get(3),
            stored: r.get(4),
            truncated: r.get(5),
            expunged: r.get(6),
            parse_errors: r.get(7),
            uidvalidity_changes: r.get(8),
            // Written with each message: never behind.
            search_pending: 0,
            last_sync_at: r.get(9),
            last_error: r.get(10),
            last_error_at: r.get(11),
        })
        .collect())
}

/// The search document is written with its message: nothing trails.
pub(crate) fn search_lag(pg: &mut Pg) -> Result<SearchLag, StoreError> {
    let st = pg.st("SELECT indexed_through FROM search_watermark")?;
    let through: i64 = pg
        .client
        .query_one(&st, &[])
        .pg("measuring the search lag")?
        .get(0);
    Ok(SearchLag {
        indexed_through: through,
        messages: 0,
        seconds: 0.0,
    })
}

const ENTRY_COLUMNS: &str =
    "f.id, f.account, f.mailbox, f.uid, coalesce(f.sent_at, f.internal_date),
     f.from_address, f.from_name, f.subject, f.parse_error,
     ARRAY(SELECT coalesce(x.filename, '') FROM message_attachments x
           WHERE x.feed_id = f.id ORDER BY x.position)";

fn entry(r: &Row) -> FeedEntry {
    FeedEntry {
        id: r.get(0),
        account: r.get(1),
        mailbox: r.get(2),
        uid: small(r.get(3)),
        date: r.get(4),
        from: r.get(5),
        from_name: r.get(6),
        subject: r.get(7),
        parse_error: r.get(8),
        attachments: r.get(9),
    }
}

pub(crate) fn search(pg: &mut Pg, query: &str, limit: u32) -> Result<Vec<FeedEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM message_search s JOIN messages m ON m.id = s.message_id
         JOIN message_feed f ON f.id = m.position
         WHERE s.document @@ websearch_to_tsquery('simple', $1)
         ORDER BY ts_rank(s.document, websearch_to_tsquery('simple', $1)) DESC, f.id
         LIMIT $2"
    );
    let rows = pg
        .client
        .query(&sql, &[&query, &i64::from(limit)])
        .pg("searching")?;
    Ok(rows.iter().map(entry).collect())
}

pub(crate) fn entries_after(
    pg: &mut Pg,
    after: i64,
    limit: u32,
) -> Result<Vec<FeedEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM message_feed f WHERE f.id > $1 ORDER BY f.id LIMIT $2"
    );
    let rows = pg
        .client
        .query(&sql, &[&after, &i64::from(limit)])
        .pg("reading new messages")?;
    Ok(rows.iter().map(entry).collect())
}

pub(crate) fn id_before_last(pg: &mut Pg, n: u32) -> Result<i64, StoreError> {
    let st = pg.st("SELECT coalesce(min(id) - 1, 0)::bigint FROM
           (SELECT id FROM message_feed ORDER BY id DESC LIMIT $1) t")?;
    Ok(pg
        .client
        .query_one(&st, &[&i64::from(n)])
        .pg("finding the last messages")?
        .get(0))
}

pub(crate) fn for_each_export<E>(
    pg: &mut Pg,
    filter: &ExportFilter,
    mut each: impl FnMut(ExportMessage) -> Result<(), E>,
) -> Result<Result<(), E>, StoreError> {
    // A cursor in a read-only transaction: one message in memory at a
    // time, whatever the archive's size.
    let mut tx = pg
        .client
        .build_transaction()
        .read_only(true)
        .start()
        .pg("reading messages to export")?;
    let portal = tx
        .bind(
            "SELECT id, internal_date, sent_at, flags, raw FROM message_feed
             WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR mailbox = $2)
               AND ($3::text IS NULL OR coalesce(sent_at, internal_date) >= $3)
             ORDER BY id",
            &[&filter.account, &filter.mailbox, &filter.since],
        )
        .pg("reading messages to export")?;
    loop {
        let rows = tx
            .query_portal(&portal, 16)
            .pg("reading messages to export")?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let m = ExportMessage {
                id: r.get(0),
                internal_date: r.get(1),
                sent_at: r.get(2),
                flags: r.get(3),
                raw: r.get(4),
            };
            if let Err(e) = each(m) {
                return Ok(Err(e));
            }
        }
    }
    Ok(Ok(()))
}

pub(crate) fn attachment_data(pg: &mut Pg, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let st = pg.st("SELECT data FROM attachment_data WHERE sha256 = $1")?;
    Ok(pg
        .client
        .query_opt(&st, &[&sha256])
        .pg("reading attachment contents")?
        .map(|r| r.get(0)))
}

pub(crate) fn feed_of(
    pg: &mut Pg,
    account: &str,
    mailbox: &str,
) -> Result<Vec<StoredMessage>, StoreError> {
    let st = pg.st(
        "SELECT id, account, mailbox, uidvalidity, uid, raw FROM message_feed
         WHERE account = $1 AND mailbox = $2 ORDER BY uidvalidity, uid",
    )?;
    let rows = pg
        .client
        .query(&st, &[&account, &mailbox])
        .pg("reading the feed")?;
    Ok(rows
        .iter()
        .map(|r| StoredMessage {
            id: r.get(0),
            account: r.get(1),
            mailbox: r.get(2),
            uidvalidity: small(r.get(3)),
            uid: small(r.get(4)),
            raw: r.get(5),
        })
        .collect())
}

/// Every mailbox's totals for `/metrics`, as `store/totals.rs` on SQLite.
pub(crate) fn totals(pg: &mut Pg) -> Result<Vec<crate::store::totals::MailboxTotals>, StoreError> {
    let st = pg.st("SELECT a.name, b.name,
                count(m.id), coalesce(sum(m.size), 0)::bigint,
                coalesce(sum(m.truncated), 0)::bigint,
                count(m.parse_error),
                (SELECT count(*) FROM events e WHERE e.mailbox_id = b.id
                    AND e.kind = 'uidvalidity')
         FROM mailboxes b JOIN accounts a ON a.id = b.account_id
         LEFT JOIN messages m ON m.mailbox_id = b.id AND m.supersedes IS NULL
         GROUP BY a.name, b.id ORDER BY a.name, b.name")?;
    let rows = pg.client.query(&st, &[]).pg("reading totals for metrics")?;
    let n = |r: &Row, i: usize| r.get::<_, i64>(i).max(0) as u64;
    Ok(rows
        .iter()
        .map(|r| crate::store::totals::MailboxTotals {
            account: r.get(0),
            mailbox: r.get(1),
            messages: n(r, 2),
            bytes: n(r, 3),
            truncated: n(r, 4),
            parse_errors: n(r, 5),
            uidvalidity_changes: n(r, 6),
        })
        .collect())
}

/// The size of the database on the server.
pub(crate) fn database_bytes(pg: &mut Pg) -> Result<u64, StoreError> {
    let st = pg.st("SELECT pg_database_size(current_database())")?;
    let n: i64 = pg
        .client
        .query_one(&st, &[])
        .pg("reading the database size")?
        .get(0);
    Ok(n.max(0) as u64)
}
