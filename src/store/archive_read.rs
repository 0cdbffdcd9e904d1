//! Read-side queries behind the HTTP API and web page: the feed and event
//! pages with their cursors, one message in its parsed form, full-text
//! search that tells a malformed query from a failing database, and raw
//! message and attachment bytes streamed with SQLite's incremental BLOB I/O
//! (never a whole blob in memory). Reads the consumer views of
//! docs/consumer-contract.md, plus the two blob tables the contract names
//! for streaming. Must not write: every connection here is read-only.
//! The edges see only [`ArchiveSource`] and [`ArchiveReader`], a sibling of
//! [`super::Reader`] whose connection never leaves the store; on
//! PostgreSQL the same reads are `postgres/archive_read.rs`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, MAIN_DB, OptionalExtension, params};

use super::postgres::PgTarget;
use super::postgres::archive_read as pg;
use super::postgres::reader::PgReader;
use super::reader::{Backend, on};
use super::{Context, StoreError};
use crate::config::StoreConfig;

/// Where the HTTP API's connections come from: the store the
/// configuration names. Opening one is cheap to repeat; the caller pools.
#[derive(Clone)]
pub struct ArchiveSource(Source);

#[derive(Clone)]
enum Source {
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
}

impl ArchiveSource {
    /// The store `[store]` names, SQLite or PostgreSQL.
    pub fn of(store: &StoreConfig) -> Result<ArchiveSource, StoreError> {
        Ok(ArchiveSource(match &store.postgres {
            None => Source::Sqlite(store.path.clone()),
            Some(p) => Source::Postgres(Box::new(PgTarget::parse(p)?)),
        }))
    }

    /// A SQLite file (`mailfeed serve --db`).
    pub fn sqlite(path: &Path) -> ArchiveSource {
        ArchiveSource(Source::Sqlite(path.to_owned()))
    }

    /// Opens one read-only connection. On PostgreSQL it lives on a thread
    /// of its own (the synchronous client must not run or be dropped
    /// inside async code), so this may be called from anywhere.
    pub fn open(&self) -> Result<ArchiveReader, StoreError> {
        match &self.0 {
            Source::Sqlite(path) => ArchiveReader::open(path),
            Source::Postgres(target) => {
                let r = PgReader::open(target)?;
                r.run(|p| {
                    use super::postgres::PgContext;
                    p.client
                        .batch_execute("SET default_transaction_read_only = on")
                        .pg("making the connection read-only")
                })?;
                Ok(ArchiveReader {
                    conn: Backend::Postgres(r),
                })
            }
        }
    }
}

/// One read-only connection for the HTTP API's reads (pooled by the
/// caller, used on one blocking thread at a time).
pub struct ArchiveReader {
    conn: Backend,
}

impl ArchiveReader {
    /// Opens an existing database for reading only.
    pub fn open(path: &Path) -> Result<ArchiveReader, StoreError> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            Ok(conn)
        };
        open()
            .map(|conn| ArchiveReader {
                conn: Backend::Sqlite(conn),
            })
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })
    }

    /// Whether the connection is gone for good (PostgreSQL: the server
    /// closed it or went away), so a pool should drop it, not keep it.
    pub fn is_closed(&self) -> bool {
        match &self.conn {
            Backend::Sqlite(_) => false,
            Backend::Postgres(r) => r.run(|p| Ok(p.client.is_closed())).unwrap_or(true),
        }
    }

    /// One line per mailbox, as `mailfeed status` shows them.
    pub fn status(&self) -> Result<Vec<super::MailboxStatus>, StoreError> {
        on!(self, c => super::read::status(c), p => super::postgres::read::status(p))
    }

    /// How far the search index is behind the feed.
    pub fn search_lag(&self) -> Result<super::SearchLag, StoreError> {
        on!(self, c => super::search::lag(c), p => super::postgres::read::search_lag(p))
    }

    /// See [`feed_page`].
    pub fn feed_page(&self, after_id: i64, limit: u32) -> Result<Vec<FeedRow>, StoreError> {
        on!(self, c => feed_page(c, after_id, limit), p => pg::feed_page(p, after_id, limit))
    }

    /// See [`message`].
    pub fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        on!(self, c => message(c, id), p => pg::message(p, id))
    }

    /// See [`html_body`].
    pub fn html_body(&self, id: i64) -> Result<Option<Option<String>>, StoreError> {
        on!(self, c => html_body(c, id), p => pg::html_body(p, id))
    }

    /// See [`events_page`].
    pub fn events_page(&self, after_seq: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        on!(self, c => events_page(c, after_seq, limit), p => pg::events_page(p, after_seq, limit))
    }

    /// See [`search`]; on PostgreSQL a `websearch_to_tsquery` query, which
    /// any text is (so never [`SearchError::Malformed`]).
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>, SearchError> {
        match &self.conn {
            Backend::Sqlite(c) => search(c, query, limit),
            Backend::Postgres(r) => {
                let query = query.to_owned();
                Ok(r.run(move |p| pg::search(p, &query, limit))?)
            }
        }
    }

    /// See [`blob_info`].
    pub fn blob_info(&self, blob: &Blob) -> Result<Option<BlobInfo>, StoreError> {
        let blob = blob.clone();
        on!(self, c => blob_info(c, &blob), p => Ok(pg::blob_info(p, &blob)?.map(|(info, _)| info)))
    }

    /// See [`copy_blob`]. On PostgreSQL each chunk is one `substring`
    /// query; stored bytes never change, so the pieces fit together.
    pub fn copy_blob(
        &self,
        blob: &Blob,
        each: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<bool, StoreError> {
        let r = match &self.conn {
            Backend::Sqlite(c) => return copy_blob(c, blob, each),
            Backend::Postgres(r) => r,
        };
        let b = blob.clone();
        let Some(key) = r.run(move |p| Ok(pg::blob_info(p, &b)?.map(|(_, key)| key)))? else {
            return Ok(false);
        };
        let mut at = 0u64;
        loop {
            let chunk = r.run(move |p| pg::blob_chunk(p, key, at, CHUNK))?;
            if chunk.is_empty() {
                return Ok(true);
            }
            at += chunk.len() as u64;
            if each(&chunk).is_break() {
                return Ok(true);
            }
        }
    }
}

/// The columns of `message_feed` but `raw`, as the API shows one row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeedRow {
    pub id: i64,
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: i64,
    pub uid: i64,
    pub internal_date: Option<String>,
    pub size: i64,
    pub flags: String,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub truncated: bool,
    pub stored_at: String,
    pub expunged_at: Option<String>,
    pub sent_at: Option<String>,
    pub date_raw: Option<String>,
    pub from_name: Option<String>,
    pub from_address: Option<String>,
    pub in_reply_to: Option<String>,
    pub reference_ids: Option<String>,
    pub has_attachments: bool,
    pub attachment_count: i64,
    pub parse_error: Option<String>,
}

const FEED_COLUMNS: &str = "id, account, mailbox, uidvalidity, uid, internal_date, size, flags,
     message_id, subject, truncated, stored_at, expunged_at, sent_at, date_raw, from_name,
     from_address, in_reply_to, reference_ids, has_attachments, attachment_count, parse_error";

fn feed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedRow> {
    Ok(FeedRow {
        id: r.get(0)?,
        account: r.get(1)?,
        mailbox: r.get(2)?,
        uidvalidity: r.get(3)?,
        uid: r.get(4)?,
        internal_date: r.get(5)?,
        size: r.get(6)?,
        flags: r.get(7)?,
        message_id: r.get(8)?,
        subject: r.get(9)?,
        truncated: r.get(10)?,
        stored_at: r.get(11)?,
        expunged_at: r.get(12)?,
        sent_at: r.get(13)?,
        date_raw: r.get(14)?,
        from_name: r.get(15)?,
        from_address: r.get(16)?,
        in_reply_to: r.get(17)?,
        reference_ids: r.get(18)?,
        has_attachments: r.get(19)?,
        attachment_count: r.get(20)?,
        parse_error: r.get(21)?,
    })
}

/// Up to `limit` rows of `message_feed` with `id > after_id`, in id order:
/// the consumer contract's polling query.
fn feed_page(conn: &Connection, after_id: i64, limit: u32) -> Result<Vec<FeedRow>, StoreError> {
    let sql = format!("SELECT {FEED_COLUMNS} FROM message_feed WHERE id > ?1 ORDER BY id LIMIT ?2");
    let mut st = conn.prepare_cached(&sql).doing("reading the feed")?;
    let rows = st
        .query_map(params![after_id, limit], feed_row)
        .doing("reading the feed")?;
    rows.collect::<Result<Vec<_>, _>>()
        .doing("reading the feed")
}

/// One address of `message_addresses`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AddressRow {
    pub role: String,
    pub position: i64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// One attachment of `message_attachments`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttachmentRow {
    pub position: i64,
    pub filename: Option<String>,
    pub content_type: String,
    pub content_id: Option<String>,
    pub disposition: Option<String>,
    pub size: i64,
    pub sha256: String,
}

/// A message in its parsed form: its feed row, addresses, bodies,
/// attachments and the header block exactly as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub row: FeedRow,
    pub addresses: Vec<AddressRow>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<AttachmentRow>,
    /// The stored header block (up to the first empty line), for the caller
    /// to split into fields; at most [`MAX_HEADER_BLOCK`] bytes.
    #[serde(skip)]
    pub header_block: Vec<u8>,
}

/// How much of a message's head is read to find its header block: headers
/// beyond that are not shown (the raw endpoint still has them).
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// One message by feed id, or `None` when no feed row has that id.
fn message(conn: &Connection, id: i64) -> Result<Option<MessageDetail>, StoreError> {
    let sql = format!("SELECT {FEED_COLUMNS} FROM message_feed WHERE id = ?1");
    let Some(row) = conn
        .query_row(&sql, params![id], feed_row)
        .optional()
        .doing("reading a message")?
    else {
        return Ok(None);
    };
    let mut st = conn
        .prepare_cached(
            "SELECT role, position, name, address FROM message_addresses
             WHERE feed_id = ?1 ORDER BY role, position",
        )
        .doing("reading addresses")?;
    let addresses = st
        .query_map(params![id], |r| {
            Ok(AddressRow {
                role: r.get(0)?,
                position: r.get(1)?,
                name: r.get(2)?,
                address: r.get(3)?,
            })
        })
        .doing("reading addresses")?
        .collect::<Result<Vec<_>, _>>()
        .doing("reading addresses")?;
    let (text, html) = conn
        .query_row(
            "SELECT text, html FROM message_bodies WHERE feed_id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .doing("reading bodies")?
        .unwrap_or((None, None));
    let attachments = attachments_of(conn, id)?;
    let mut head = Vec::new();
    copy_blob(conn, &Blob::Raw(id), &mut |chunk| {
        head.extend_from_slice(chunk);
        if head.len() >= MAX_HEADER_BLOCK {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    head.truncate(MAX_HEADER_BLOCK);
    Ok(Some(MessageDetail {
        row,
        addresses,
        text,
        html,
        attachments,
        header_block: head,
    }))
}

fn attachments_of(conn: &Connection, id: i64) -> Result<Vec<AttachmentRow>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT position, filename, content_type, content_id, disposition, size, sha256
             FROM message_attachments WHERE feed_id = ?1 ORDER BY position",
        )
        .doing("reading attachments")?;
    let rows = st
        .query_map(params![id], |r| {
            Ok(AttachmentRow {
                position: r.get(0)?,
                filename: r.get(1)?,
                content_type: r.get(2)?,
                content_id: r.get(3)?,
                disposition: r.get(4)?,
                size: r.get(5)?,
                sha256: r.get(6)?,
            })
        })
        .doing("reading attachments")?;
    rows.collect::<Result<Vec<_>, _>>()
        .doing("reading attachments")
}

/// The HTML body of a feed message: `Some(None)` when it has none.
fn html_body(conn: &Connection, id: i64) -> Result<Option<Option<String>>, StoreError> {
    if !feed_has(conn, id)? {
        return Ok(None);
    }
    let html = conn
        .query_row(
            "SELECT html FROM message_bodies WHERE feed_id = ?1",
            params![id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .doing("reading the HTML body")?
        .flatten();
    Ok(Some(html))
}

fn feed_has(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM message_feed WHERE id = ?1)",
        params![id],
        |r| r.get(0),
    )
    .doing("looking up a message")
}

/// One row of `message_events`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub kind: String,
    pub feed_id: Option<i64>,
    pub account: String,
    pub mailbox: String,
    pub uid: Option<i64>,
    pub at: String,
    pub detail: Option<String>,
}

/// Up to `limit` rows of `message_events` with `seq > after_seq`, in order.
fn events_page(conn: &Connection, after_seq: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, kind, feed_id, account, mailbox, uid, at, detail FROM message_events
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .doing("reading events")?;
    let rows = st
        .query_map(params![after_seq, limit], |r| {
            Ok(EventRow {
                seq: r.get(0)?,
                kind: r.get(1)?,
                feed_id: r.get(2)?,
                account: r.get(3)?,
                mailbox: r.get(4)?,
                uid: r.get(5)?,
                at: r.get(6)?,
                detail: r.get(7)?,
            })
        })
        .doing("reading events")?;
    rows.collect::<Result<Vec<_>, _>>().doing("reading events")
}

/// One search match: the feed row and a snippet of the body around the
/// matched words (marked with `[` and `]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub row: FeedRow,
    pub snippet: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is not valid FTS5 syntax (or names an unknown column):
    /// the caller's mistake, with SQLite's reason.
    #[error("malformed search query: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Messages matching an FTS5 query, best match first.
fn search(conn: &Connection, query: &str, limit: u32) -> Result<Vec<SearchHit>, SearchError> {
    let cols = FEED_COLUMNS
        .split(',')
        .map(|c| format!("f.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {cols}, snippet(message_search, 3, '[', ']', '…', 12)
         FROM message_search s JOIN message_feed f ON f.id = s.rowid
         WHERE message_search MATCH ?1 ORDER BY s.rank LIMIT ?2"
    );
    let classify = |e: rusqlite::Error| match &e {
        // SQLITE_ERROR (the generic code) is what FTS5 answers for a query
        // it cannot parse or a column it does not have; locking, I/O and
        // corruption have codes of their own and stay database errors.
        rusqlite::Error::SqliteFailure(f, msg) if f.code == rusqlite::ErrorCode::Unknown => {
            SearchError::Malformed(msg.clone().unwrap_or_else(|| e.to_string()))
        }
        _ => SearchError::Store(StoreError::Sql {
            doing: "searching",
            source: e,
        }),
    };
    let mut st = conn.prepare_cached(&sql).map_err(classify)?;
    let rows = st
        .query_map(params![query, limit], |r| {
            Ok(SearchHit {
                row: feed_row(r)?,
                snippet: r.get(22)?,
            })
        })
        .map_err(classify)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(classify)
}

/// A stored blob that can be streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    /// A feed message's raw bytes, by feed id.
    Raw(i64),
    /// An attachment's decoded bytes, by lower-case hex SHA-256.
    Attachment(String),
}

/// What is known about a blob before its bytes are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes (an ETag that never changes).
    pub sha256: String,
    /// For attachments: the content type and file name of the first message
    /// part that carries it.
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

/// Size, hash and (for attachments) type and name of a blob; `None` when
/// no feed message has it.
fn blob_info(conn: &Connection, blob: &Blob) -> Result<Option<BlobInfo>, StoreError> {
    match blob {
        Blob::Raw(id) => conn
            .query_row(
                "SELECT length(r.raw), lower(hex(m.sha256)) FROM message_feed f
                 JOIN messages m ON m.id = f.id JOIN message_raw r ON r.message_id = f.id
                 WHERE f.id = ?1",
                params![id],
                |r| {
                    Ok(BlobInfo {
                        size: r.get::<_, i64>(0)?.max(0) as u64,
                        sha256: r.get(1)?,
                        content_type: None,
                        filename: None,
                    })
                },
            )
            .optional()
            .doing("looking up a raw message"),
        Blob::Attachment(sha) => conn
            .query_row(
                "SELECT d.size, a.content_type, a.filename FROM message_attachments a
                 JOIN attachment_data d ON d.sha256 = a.sha256
                 WHERE a.sha256 = ?1 ORDER BY a.feed_id, a.position LIMIT 1",
                params![sha],
                |r| {
                    Ok(BlobInfo {
                        size: r.get::<_, i64>(0)?.max(0) as u64,
                        sha256: sha.clone(),
                        content_type: r.get(1)?,
                        filename: r.get(2)?,
                    })
                },
            )
            .optional()
            .doing("looking up an attachment"),
    }
}

/// Streaming chunk size: large enough for few calls, small enough that a
/// slow client holds little memory.
pub const CHUNK: usize = 64 * 1024;

/// Hands a blob's bytes to `each`, [`CHUNK`] bytes at a time, until the end
/// or until `each` breaks. Returns whether the blob exists. The open blob
/// handle keeps one read snapshot, so the bytes are consistent however long
/// the copy takes.
fn copy_blob(
    conn: &Connection,
    blob: &Blob,
    each: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> Result<bool, StoreError> {
    let (table, column, rowid) = match blob {
        Blob::Raw(id) => (c"message_raw", c"raw", Some(*id)),
        Blob::Attachment(sha) => (
            c"attachment_blobs",
            c"data",
            conn.query_row(
                "SELECT rowid FROM attachment_blobs WHERE sha256 = ?1",
                params![sha],
                |r| r.get(0),
            )
            .optional()
            .doing("looking up an attachment")?,
        ),
    };
    let Some(rowid) = rowid else {
        return Ok(false);
    };
    let handle = match conn.blob_open(MAIN_DB, table, column, rowid, true) {
        Ok(h) => h,
        Err(rusqlite::Error::SqliteFailure(_, _)) => return Ok(false),
        Err(e) => return Err(e).doing("opening a blob"),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0usize;
    loop {
        let n = handle.read_at(&mut buf, at).doing("reading a blob")?;
        if n == 0 {
            return Ok(true);
        }
        at += n;
        if each(&buf[..n]).is_break() {
            return Ok(true);
        }
    }
}
