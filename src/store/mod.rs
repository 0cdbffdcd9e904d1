//! The only code that touches SQLite. Opens the database (WAL, busy timeout,
//! foreign keys, mode 0600), applies `migrations/*.sql` on `user_version`, and
//! offers typed operations: cursors, message batches, status. Writes go through
//! one writer thread ([`writer`]); reads open their own connection.

pub mod archive_read;
pub mod changes;
mod checkpoint;
pub mod consumer;
mod migrate;
mod parsed;
pub mod read;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::config::Synchronous;
use crate::imap::{UidValidity, mutf7};

pub use writer::{NewMessage, StoreHandle};

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
    #[error("the database writer has stopped after an earlier error")]
    WriterGone,
    #[error("database write failed: {0}")]
    Stopped(String),
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
pub fn open(path: &Path, sync: Synchronous) -> Result<Connection, StoreError> {
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

/// Opens an existing database for reading only (status, search, export).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
    Ok(conn)
}

/// An in-memory database with the full schema, for tests.
pub fn open_in_memory() -> Result<Connection, StoreError> {
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

fn configure(conn: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
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
    // Checkpoints run from the writer between transactions (see writer.rs),
    // so autocheckpoint stays at its default as a safety net only.
    conn.pragma_update(None, "cache_size", -16_000)?;
    Ok(())
}

/// Finds or creates the row for an account and returns its id.
pub(crate) fn ensure_account(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO accounts (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
        params![name],
    )
    .doing("recording account")?;
    conn.query_row(
        "SELECT id FROM accounts WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .doing("looking up account")
}

/// Finds or creates a mailbox row (by readable name) and returns its id and
/// cursor.
pub(crate) fn ensure_mailbox(
    conn: &Connection,
    account: &str,
    wire_name: &str,
) -> Result<(MailboxId, MailboxCursor), StoreError> {
    let account_id = ensure_account(conn, account)?;
    let name = mutf7::decode(wire_name);
    conn.execute(
        "INSERT INTO mailboxes (account_id, name, wire_name) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, name) DO UPDATE SET wire_name = excluded.wire_name",
        params![account_id, name, wire_name],
    )
    .doing("recording mailbox")?;
    let (id, uv, last, hms): (i64, Option<i64>, i64, Option<i64>) = conn
        .query_row(
            "SELECT id, uidvalidity, last_uid, highest_modseq FROM mailboxes
             WHERE account_id = ?1 AND name = ?2",
            params![account_id, name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .doing("reading mailbox cursor")?;
    Ok((
        MailboxId(id),
        MailboxCursor {
            uidvalidity: uv.and_then(|v| u32::try_from(v).ok()).map(UidValidity),
            last_uid: u32::try_from(last).unwrap_or(0),
            highest_modseq: hms.and_then(|v| u64::try_from(v).ok()),
        },
    ))
}

/// Reads a mailbox's cursor.
pub(crate) fn cursor(conn: &Connection, mailbox: MailboxId) -> Result<MailboxCursor, StoreError> {
    let row: Option<(Option<i64>, i64, Option<i64>)> = conn
        .query_row(
            "SELECT uidvalidity, last_uid, highest_modseq FROM mailboxes WHERE id = ?1",
            params![mailbox.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .doing("reading mailbox cursor")?;
    Ok(match row {
        Some((uv, last, hms)) => MailboxCursor {
            uidvalidity: uv.and_then(|v| u32::try_from(v).ok()).map(UidValidity),
            last_uid: u32::try_from(last).unwrap_or(0),
            highest_modseq: hms.and_then(|v| u64::try_from(v).ok()),
        },
        None => MailboxCursor::default(),
    })
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().into()
}

#[cfg(test)]
mod parsed_tests;
#[cfg(test)]
mod tests;
