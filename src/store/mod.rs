//! The store boundary: the only code that touches the database. Opens SQLite
//! (WAL, busy timeout, foreign keys, mode 0600; `migrations/*.sql` on
//! `user_version`) or PostgreSQL (`postgres/`). Outside this module nothing sees a
//! connection, a row or SQL; the engine and the edges use two types:
//! [`StoreHandle`] (writes through one writer thread: cursor, save, advance,
//! changes, commit) and [`Reader`] (read-only: status, feed, search, export,
//! tail, search lag). Both keep their connection private: behind them sits
//! SQLite or PostgreSQL (`postgres/`), with the same operations, views and
//! store tests.

pub mod actions;
pub mod archive_read;
mod bulk;
pub(crate) mod changes;
mod checkpoint;
mod consumer;
mod gmail;
mod handle;
mod limits;
pub mod lock;
mod mailboxes;
mod messages;
mod migrate;
mod parsed;
mod postgres;
mod read;
mod reader;
mod search;
pub mod totals;
pub mod window;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::config::Synchronous;
use crate::imap::UidValidity;

pub use changes::canonical_flags;
pub use consumer::{ExportFilter, ExportMessage, FeedEntry};
pub use gmail::{GmailIds, Sighting};
pub use handle::{StoreHandle, WriterThread};
pub use messages::NewMessage;
pub use postgres::lease::{LeaseBook, LeaseKeeper, LeaseStatus, LeaseTick};
pub use read::{MailboxStatus, StoredMessage};
pub use reader::Reader;
pub use search::SearchLag;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("creating database file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("applying migration {name}: {source}")]
    Migration {
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "database is at schema version {found}, newer than this mailfeed ({known}); upgrade mailfeed"
    )]
    TooNew { found: i64, known: i64 },
    #[error("{doing}: {source}")]
    Sql {
        doing: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "another mailfeed (`run` or `sync`) is writing {database}: it holds {lock}. Stop it first, or give this one its own `store.path`"
    )]
    Locked { database: PathBuf, lock: PathBuf },
    #[error("the database writer has stopped after an earlier error")]
    WriterGone,
    #[error("database write failed: {0}")]
    Stopped(String),
    #[error("{0}")]
    PgConfig(String),
    #[error("connecting to {target}: {}", postgres::error_text(source))]
    PgConnect {
        /// The URL without its password.
        target: String,
        source: ::postgres::Error,
    },
    /// TLS to the database failed or was refused, with the fix.
    #[error("connecting to {target}: {message}")]
    PgTls {
        /// The URL without its password.
        target: String,
        message: String,
    },
    #[error(
        "applying PostgreSQL migration {name}: {}",
        postgres::error_text(source)
    )]
    PgMigration {
        name: &'static str,
        source: ::postgres::Error,
    },
    #[error("{doing}: {}", postgres::error_text(source))]
    Postgres {
        doing: &'static str,
        source: ::postgres::Error,
    },
    #[error(
        "the lease of account {account} is held by {holder} now, not by this instance ({instance}); nothing of this transaction was kept"
    )]
    LeaseLost {
        account: String,
        holder: String,
        instance: String,
    },
    /// This instance's lease on the account has less than a third of its
    /// period left: renewals are failing, and another instance may claim it
    /// soon.
    #[error(
        "the lease of account {account} runs out in less than a third of its period (renewals are not getting through); no command goes to its server until it is renewed"
    )]
    LeaseRunningOut { account: String },
    /// `sync` (no leases) on an account a running instance works.
    #[error(
        "account {account} is worked by the mailfeed instance {holder} (it holds the account's lease); this process does not act on its server meanwhile"
    )]
    LeaseHeld { account: String, holder: String },
    #[error("{0} is not supported on PostgreSQL yet")]
    Unsupported(&'static str),
    /// The raw bytes of a large attachment did not decode to the length the
    /// parse stage found in them: a bug, never a property of the mail.
    #[error("storing a large attachment: its base64 text no longer decodes as parsed")]
    AttachmentMismatch,
}

pub(crate) trait Context<T> {
    fn doing(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn doing(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql {
            doing: what,
            source,
        })
    }
}

/// Row id of a mailbox in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailboxId(pub i64);

/// Where a mailbox's sync stands: every UID up to `last_uid` of generation
/// `uidvalidity` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxCursor {
    pub uidvalidity: Option<UidValidity>,
    pub last_uid: u32,
    pub highest_modseq: Option<u64>,
}

/// Opens (creating if needed) the database file with restrictive permissions.
pub(crate) fn open(path: &Path, sync: Synchronous) -> Result<Connection, StoreError> {
    create_private(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    configure(&conn, sync).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    migrate::apply(&conn)?;
    Ok(conn)
}

/// Opens an existing database for reading only (tests look inside).
#[cfg(test)]
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })
}

/// An in-memory database with the full schema, for tests.
#[cfg(test)]
pub(crate) fn open_in_memory() -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
        path: ":memory:".into(),
        source,
    })?;
    configure(&conn, Synchronous::Normal).map_err(|source| StoreError::Open {
        path: ":memory:".into(),
        source,
    })?;
    migrate::apply(&conn)?;
    Ok(conn)
}

fn create_private(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
            path: path.to_owned(),
            source,
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map(drop)
        .map_err(|source| StoreError::Create {
            path: path.to_owned(),
            source,
        })
}

/// How long a connection waits for another's lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn configure(conn: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Before the first write only (a database keeps the size it was created
    // with): 64 KiB pages cut the per-page work of storing mail (WAL frames,
    // two syscalls each, checksums, overflow chains) sixteenfold.
    conn.pragma_update(None, "page_size", 65_536)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (checkpoint.rs); the writer's
    // autocheckpoint is raised to a backstop when that thread starts.
    conn.pragma_update(None, "cache_size", -16_000)?;
    Ok(())
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().into()
}

#[cfg(test)]
mod actions_tests;
#[cfg(test)]
mod parsed_tests;
#[cfg(test)]
mod tests;
