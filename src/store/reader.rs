//! [`Reader`]: the read side of the store boundary. `status`, `search`,
//! `export`, `tail` (and later an HTTP edge or metrics) read through its
//! typed operations and never see a connection or SQL. It opens the database
//! read-only, so a reader can run beside `mailfeed run` without ever taking
//! the write lock. The queries themselves live in `read.rs` (status, feed),
//! `consumer.rs` (the consumer views) and `search.rs` (the index's lag).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::consumer::{ExportFilter, ExportMessage, FeedEntry};
use super::read::{MailboxStatus, StoredMessage};
use super::search::SearchLag;

/// A read-only view of the database. A second backend would become a second
/// variant behind this type's private field; its callers would not change.
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens an existing database for reading only.
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(10))?;
            Ok(conn)
        };
        open()
            .map(|conn| Reader { conn })
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })
    }

    /// One line per mailbox for `mailfeed status`.
    pub fn status(&self) -> Result<Vec<MailboxStatus>, StoreError> {
        super::read::status(&self.conn)
    }

    /// Every mailbox's stored totals, for `/metrics`.
    pub fn totals(&self) -> Result<Vec<super::totals::MailboxTotals>, StoreError> {
        super::totals::totals(&self.conn)
    }

    /// The database file's size in bytes.
    pub fn database_bytes(&self) -> Result<u64, StoreError> {
        super::totals::database_bytes(&self.conn)
    }

    /// How far the search index trails the feed.
    pub fn search_lag(&self) -> Result<SearchLag, StoreError> {
        super::search::lag(&self.conn)
    }

    /// Messages matching an FTS5 query, best match first. Messages above
    /// the watermark ([`Reader::search_lag`]) are not found yet.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<FeedEntry>, StoreError> {
        super::consumer::search(&self.conn, query, limit)
    }

    /// Up to `limit` feed messages with `id > after`, in id order.
    pub fn entries_after(&self, after: i64, limit: u32) -> Result<Vec<FeedEntry>, StoreError> {
        super::consumer::entries_after(&self.conn, after, limit)
    }

    /// The id just below the last `n` feed messages.
    pub fn id_before_last(&self, n: u32) -> Result<i64, StoreError> {
        super::consumer::id_before_last(&self.conn, n)
    }

    /// Calls `each` for every matching feed message, in id order, one at a
    /// time.
    pub fn for_each_export<E>(
        &self,
        filter: &ExportFilter,
        each: impl FnMut(ExportMessage) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        super::consumer::for_each_export(&self.conn, filter, each)
    }

    /// The decoded bytes of an attachment, by its hex SHA-256.
    pub fn attachment_data(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        super::consumer::attachment_data(&self.conn, sha256)
    }

    /// Every feed message of one mailbox, by UID.
    pub fn feed_of(&self, account: &str, mailbox: &str) -> Result<Vec<StoredMessage>, StoreError> {
        super::read::feed_of(&self.conn, account, mailbox)
    }
}
