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
use super::postgres::PgTarget;
use super::postgres::reader::PgReader;
use super::read::{MailboxStatus, StoredMessage};
use super::search::SearchLag;
use crate::config::StoreConfig;

/// A read-only view of the database, SQLite or PostgreSQL.
pub struct Reader {
    conn: Backend,
}

/// A read-only connection to either backend (also the HTTP API's,
/// [`super::archive_read::ArchiveReader`]).
pub(super) enum Backend {
    Sqlite(Connection),
    Postgres(PgReader),
}

/// Runs a read on whichever backend `$self.conn` is.
macro_rules! on {
    ($self:ident, $c:ident => $sqlite:expr, $pg:ident => $postgres:expr) => {
        match &$self.conn {
            Backend::Sqlite($c) => $sqlite,
            Backend::Postgres(r) => r.run(move |$pg| $postgres),
        }
    };
}
pub(super) use on;

impl Reader {
    /// Opens the store the configuration names.
    pub fn open_store(store: &StoreConfig) -> Result<Reader, StoreError> {
        match &store.postgres {
            None => Self::open(&store.path),
            Some(pg) => {
                let target = PgTarget::parse(pg)?;
                Ok(Reader {
                    conn: Backend::Postgres(PgReader::open(&target)?),
                })
            }
        }
    }

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
            .map(|conn| Reader {
                conn: Backend::Sqlite(conn),
            })
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })
    }

    /// One line per mailbox for `mailfeed status`.
    pub fn status(&self) -> Result<Vec<MailboxStatus>, StoreError> {
        on!(self, c => super::read::status(c), pg => super::postgres::read::status(pg))
    }

    /// Every mailbox's stored totals, for `/metrics`.
    pub fn totals(&self) -> Result<Vec<super::totals::MailboxTotals>, StoreError> {
        on!(self, c => super::totals::totals(c), pg => super::postgres::read::totals(pg))
    }

    /// The database file's size in bytes.
    pub fn database_bytes(&self) -> Result<u64, StoreError> {
        on!(self, c => super::totals::database_bytes(c), pg => super::postgres::read::database_bytes(pg))
    }

    /// How far the search index trails the feed.
    pub fn search_lag(&self) -> Result<SearchLag, StoreError> {
        on!(self, c => super::search::lag(c), pg => super::postgres::read::search_lag(pg))
    }

    /// Messages matching an FTS5 query, best match first. Messages above
    /// the watermark ([`Reader::search_lag`]) are not found yet.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<FeedEntry>, StoreError> {
        let query = query.to_owned();
        on!(self, c => super::consumer::search(c, &query, limit), pg => super::postgres::read::search(pg, &query, limit))
    }

    /// Up to `limit` feed messages with `id > after`, in id order.
    pub fn entries_after(&self, after: i64, limit: u32) -> Result<Vec<FeedEntry>, StoreError> {
        on!(self, c => super::consumer::entries_after(c, after, limit), pg => super::postgres::read::entries_after(pg, after, limit))
    }

    /// Which instance holds each account's lease (PostgreSQL; none on
    /// SQLite, where one process works every account).
    pub fn leases(&self) -> Result<Vec<super::LeaseStatus>, StoreError> {
        on!(self, _c => Ok(Vec::new()), pg => super::postgres::lease::status(pg))
    }

    /// The id just below the last `n` feed messages.
    pub fn id_before_last(&self, n: u32) -> Result<i64, StoreError> {
        on!(self, c => super::consumer::id_before_last(c, n), pg => super::postgres::read::id_before_last(pg, n))
    }

    /// Calls `each` for every matching feed message, in id order, one at a
    /// time.
    pub fn for_each_export<E>(
        &self,
        filter: &ExportFilter,
        each: impl FnMut(ExportMessage) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        match &self.conn {
            Backend::Sqlite(c) => super::consumer::for_each_export(c, filter, each),
            Backend::Postgres(r) => r.for_each_export(filter, each),
        }
    }

    /// The decoded bytes of an attachment, by its hex SHA-256.
    pub fn attachment_data(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sha256 = sha256.to_owned();
        on!(self, c => super::consumer::attachment_data(c, &sha256), pg => super::postgres::read::attachment_data(pg, &sha256))
    }

    /// Every feed message of one mailbox, by UID.
    pub fn feed_of(&self, account: &str, mailbox: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let (account, mailbox) = (account.to_owned(), mailbox.to_owned());
        on!(self, c => super::read::feed_of(c, &account, &mailbox), pg => super::postgres::read::feed_of(pg, &account, &mailbox))
    }
}
