//! The HTTP API's reads on PostgreSQL (behind
//! [`crate::store::archive_read::ArchiveReader`]): the feed and event pages,
//! one message in its parsed form, search with a snippet, and blobs read a
//! piece at a time with `substring(... from x for n)`, so a large raw
//! message or attachment is never in memory whole. Reads the consumer views
//! and the two blob tables, as SQLite's `archive_read.rs` does; writes
//! nothing.

use postgres::Row;

use super::{Pg, PgContext};
use crate::store::StoreError;
use crate::store::archive_read::{
    AddressRow, AttachmentRow, Blob, BlobInfo, EventRow, FeedRow, MAX_HEADER_BLOCK, MessageDetail,
    SearchHit,
};

const FEED_COLUMNS: &str = "f.id, f.account, f.mailbox, f.uidvalidity, f.uid, f.internal_date,
     f.size, f.flags, f.message_id, f.subject, f.truncated, f.stored_at, f.expunged_at,
     f.sent_at, f.date_raw, f.from_name, f.from_address, f.in_reply_to, f.reference_ids,
     f.has_attachments, f.attachment_count, f.parse_error";

fn feed_row(r: &Row) -> FeedRow {
    FeedRow {
        id: r.get(0),
        account: r.get(1),
        mailbox: r.get(2),
        uidvalidity: r.get(3),
        uid: r.get(4),
        internal_date: r.get(5),
        size: r.get(6),
        flags: r.get(7),
        message_id: r.get(8),
        subject: r.get(9),
        truncated: r.get::<_, i32>(10) != 0,
        stored_at: r.get(11),
        expunged_at: r.get(12),
        sent_at: r.get(13),
        date_raw: r.get(14),
        from_name: r.get(15),
        from_address: r.get(16),
        in_reply_to: r.get(17),
        reference_ids: r.get(18),
        has_attachments: r.get::<_, i32>(19) != 0,
        attachment_count: i64::from(r.get::<_, i32>(20)),
        parse_error: r.get(21),
    }
}

pub(crate) fn feed_page(
    pg: &mut Pg,
    after_id: i64,
    limit: u32,
) -> Result<Vec<FeedRow>, StoreError> {
    let sql =
        format!("SELECT {FEED_COLUMNS} FROM message_feed f WHERE f.id > $1 ORDER BY f.id LIMIT $2");
    let rows = pg
        .client
        .query(&sql, &[&after_id, &i64::from(limit)])
        .pg("reading the feed")?;
    Ok(rows.iter().map(feed_row).collect())
}

pub(crate) fn message(pg: &mut Pg, id: i64) -> Result<Option<MessageDetail>, StoreError> {
    let sql = format!(
        "SELECT {FEED_COLUMNS}, substring(f.raw from 1 for $2) FROM message_feed f WHERE f.id = $1"
    );
    let head_len = MAX_HEADER_BLOCK as i32;
    let Some(row) = pg
        .client
        .query_opt(&sql, &[&id, &head_len])
        .pg("reading a message")?
    else {
        return Ok(None);
    };
    let header_block: Vec<u8> = row.get(22);
    let row = feed_row(&row);
    let st = pg.st("SELECT role, position, name, address FROM message_addresses
         WHERE feed_id = $1 ORDER BY role, position")?;
    let addresses = pg
        .client
        .query(&st, &[&id])
        .pg("reading addresses")?
        .iter()
        .map(|r| AddressRow {
            role: r.get(0),
            position: i64::from(r.get::<_, i32>(1)),
            name: r.get(2),
            address: r.get(3),
        })
        .collect();
    let st = pg.st("SELECT text, html FROM message_bodies WHERE feed_id = $1")?;
    let (text, html) = pg
        .client
        .query_opt(&st, &[&id])
        .pg("reading bodies")?
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or((None, None));
    let st = pg.st(
        "SELECT position, filename, content_type, content_id, disposition, size, sha256
         FROM message_attachments WHERE feed_id = $1 ORDER BY position",
    )?;
    let attachments = pg
        .client
        .query(&st, &[&id])
        .pg("reading attachments")?
        .iter()
        .map(|r| AttachmentRow {
            position: i64::from(r.get::<_, i32>(0)),
            filename: r.get(1),
            content_type: r.get(2),
            content_id: r.get(3),
            disposition: r.get(4),
            size: r.get(5),
            sha256: r.get(6),
        })
        .collect();
    Ok(Some(MessageDetail {
        row,
        addresses,
        text,
        html,
        attachments,
        header_block,
    }))
}

/// The HTML body of a feed message: `Some(None)` when it has none.
pub(crate) fn html_body(pg: &mut Pg, id: i64) -> Result<Option<Option<String>>, StoreError> {
    let st = pg.st(
        "SELECT (SELECT b.html FROM message_bodies b WHERE b.feed_id = f.id)
         FROM message_feed f WHERE f.id = $1",
    )?;
    Ok(pg
        .client
        .query_opt(&st, &[&id])
        .pg("reading the HTML body")?
        .map(|r| r.get(0)))
}

pub(crate) fn events_page(
    pg: &mut Pg,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<EventRow>, StoreError> {
    let st = pg.st(
        "SELECT seq, kind, feed_id, account, mailbox, uid, at, detail FROM message_events
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )?;
    let rows = pg
        .client
        .query(&st, &[&after_seq, &i64::from(limit)])
        .pg("reading events")?;
    Ok(rows
        .iter()
        .map(|r| EventRow {
            seq: r.get(0),
            kind: r.get(1),
            feed_id: r.get(2),
            account: r.get(3),
            mailbox: r.get(4),
            uid: r.get(5),
            at: r.get(6),
            detail: r.get(7),
        })
        .collect())
}

/// Messages matching a `websearch_to_tsquery` query (any text is a valid
/// one), best match first, with a snippet of the text body around the
/// matched words marked `[` and `]`, as FTS5's on SQLite.
pub(crate) fn search(pg: &mut Pg, query: &str, limit: u32) -> Result<Vec<SearchHit>, StoreError> {
    let sql = format!(
        "SELECT {FEED_COLUMNS},
                ts_headline('simple', left(coalesce(b.text, ''), 262144), q,
                            'StartSel=[, StopSel=], MaxWords=12, MinWords=4, FragmentDelimiter=…')
         FROM websearch_to_tsquery('simple', $1) q,
              message_search s JOIN messages m ON m.id = s.message_id
              JOIN message_feed f ON f.id = m.position
              LEFT JOIN message_bodies b ON b.feed_id = f.id
         WHERE s.document @@ q
         ORDER BY ts_rank(s.document, q) DESC, f.id
         LIMIT $2"
    );
    // Text cannot hold NUL: one in the query matches nothing but itself.
    let query = super::text(Some(query));
    let rows = pg
        .client
        .query(&sql, &[&query, &i64::from(limit)])
        .pg("searching")?;
    Ok(rows
        .iter()
        .map(|r| SearchHit {
            row: feed_row(r),
            snippet: r.get(22),
        })
        .collect())
}

/// Where a blob's bytes are: the internal row of `message_raw` or
/// `attachment_blobs`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlobKey {
    Raw(i64),
    Attachment(i64),
}

/// Size, hash and (for attachments) type and name of a blob, with where
/// its bytes are; `None` when no feed message has it.
pub(crate) fn blob_info(
    pg: &mut Pg,
    blob: &Blob,
) -> Result<Option<(BlobInfo, BlobKey)>, StoreError> {
    match blob {
        Blob::Raw(id) => {
            let st = pg.st(
                "SELECT m.id, octet_length(r.raw)::bigint, encode(m.sha256, 'hex')
                 FROM messages m JOIN message_raw r ON r.message_id = m.id
                 WHERE m.position = $1 AND m.supersedes IS NULL",
            )?;
            Ok(pg
                .client
                .query_opt(&st, &[id])
                .pg("looking up a raw message")?
                .map(|r| {
                    let info = BlobInfo {
                        size: r.get::<_, i64>(1).max(0) as u64,
                        sha256: r.get(2),
                        content_type: None,
                        filename: None,
                    };
                    (info, BlobKey::Raw(r.get(0)))
                }))
        }
        Blob::Attachment(sha) => {
            let st = pg.st(
                "SELECT d.id, d.size, a.content_type, a.filename FROM message_attachments a
                 JOIN attachment_blobs d ON d.sha256 = a.sha256
                 WHERE a.sha256 = $1 ORDER BY a.feed_id, a.position LIMIT 1",
            )?;
            Ok(pg
                .client
                .query_opt(&st, &[sha])
                .pg("looking up an attachment")?
                .map(|r| {
                    let info = BlobInfo {
                        size: r.get::<_, i64>(1).max(0) as u64,
                        sha256: sha.clone(),
                        content_type: r.get(2),
                        filename: r.get(3),
                    };
                    (info, BlobKey::Attachment(r.get(0)))
                }))
        }
    }
}

/// Up to `len` bytes of a blob from byte `at` (empty past its end). The
/// columns are stored without compression (`STORAGE EXTERNAL`), so the
/// server reads just the pieces that hold these bytes.
pub(crate) fn blob_chunk(
    pg: &mut Pg,
    key: BlobKey,
    at: u64,
    len: usize,
) -> Result<Vec<u8>, StoreError> {
    // `substring` counts from 1, in int4: a blob is far below 2 GiB (the
    // largest literal mailfeed accepts is bounded well below that).
    let from = i32::try_from(at + 1).map_err(|_| {
        StoreError::Stopped(format!("a blob read at byte {at}: beyond what is stored"))
    })?;
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    let (st, id) = match key {
        BlobKey::Raw(id) => (
            pg.st("SELECT substring(raw from $2 for $3) FROM message_raw WHERE message_id = $1")?,
            id,
        ),
        BlobKey::Attachment(id) => (
            pg.st("SELECT substring(data from $2 for $3) FROM attachment_blobs WHERE id = $1")?,
            id,
        ),
    };
    Ok(pg
        .client
        .query_opt(&st, &[&id, &from, &len])
        .pg("reading a blob")?
        .map(|r| r.get(0))
        .unwrap_or_default())
}
