//! The PostgreSQL backend behind [`super::StoreHandle`] and
//! [`super::Reader`]: the same operations and consumer views as SQLite's,
//! on a server several mailfeed instances may share. Owns its connection
//! (`connect.rs`), its migrations (`migrate.rs`, migrations/postgres/) and
//! its SQL; knows nothing of queues or threads (the writer thread in
//! `writer.rs` drives it exactly as it drives SQLite). Feed positions are
//! commit-ordered (`publish.rs`); TLS to the server is `tls.rs`.

pub(crate) mod actions;
pub(crate) mod archive_read;
pub(crate) mod changes;
pub(crate) mod connect;
pub(crate) mod gmail;
pub(crate) mod lease;
pub(crate) mod limits;
pub(crate) mod mailboxes;
pub(crate) mod messages;
pub(crate) mod migrate;
pub(crate) mod publish;
pub(crate) mod read;
pub(crate) mod reader;
mod tls;
pub(crate) mod window;

use std::collections::HashMap;

use postgres::{Client, Statement};

use super::StoreError;

pub(crate) use connect::PgTarget;

/// A connection with its prepared statements, keyed by their SQL.
pub(crate) struct Pg {
    pub(crate) client: Client,
    statements: HashMap<&'static str, Statement>,
    /// The writer's leases, when instances share the store: each commit
    /// checks the fences of the accounts it wrote (`lease::check`).
    pub(crate) leases: Option<std::sync::Arc<lease::LeaseBook>>,
    /// Mailboxes the open transaction wrote to.
    pub(crate) touched: std::collections::HashSet<i64>,
    /// Whether the last mailbox and UIDVALIDITY stored into has rows of
    /// another UIDVALIDITY, as read once in the open transaction (only
    /// this writer adds rows to its accounts' mailboxes meanwhile, and a
    /// new UIDVALIDITY is another key).
    pub(crate) generations: Option<(i64, i64, bool)>,
}

impl Pg {
    pub(crate) fn new(client: Client) -> Pg {
        Pg {
            client,
            statements: HashMap::new(),
            leases: None,
            touched: Default::default(),
            generations: None,
        }
    }

    /// Notes that the open transaction writes to `mailbox`.
    pub(crate) fn touch(&mut self, mailbox: crate::store::MailboxId) {
        self.touched.insert(mailbox.0);
    }

    /// The statement for `sql`, prepared once per connection.
    pub(crate) fn st(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).pg("preparing a statement")?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

/// Adds what was being done to a PostgreSQL error.
pub(crate) trait PgContext<T> {
    fn pg(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> PgContext<T> for Result<T, postgres::Error> {
    fn pg(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Postgres {
            doing: what,
            source,
        })
    }
}

/// A UID or UIDVALIDITY as stored (bigint).
pub(crate) fn big(v: u32) -> i64 {
    i64::from(v)
}

/// A stored bigint back as a UID (0 when out of range, which a row
/// written by mailfeed never is).
pub(crate) fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// The server's own message for a database error (the client's Display
/// says only "db error"), else the client's text. Neither holds the
/// password: the server never repeats it.
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        // The client's own text may already end with its cause's.
        None => match std::error::Error::source(e).map(|c| c.to_string()) {
            Some(cause) if !e.to_string().contains(&cause) => format!("{e}: {cause}"),
            _ => e.to_string(),
        },
    }
}

/// Text as PostgreSQL can store it: a `text` value cannot hold NUL, which
/// SQLite keeps; each becomes U+FFFD. The raw bytes (`bytea`) keep it.
pub(crate) fn text(s: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    s.map(|s| {
        if s.contains('\0') {
            std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
        } else {
            std::borrow::Cow::Borrowed(s)
        }
    })
}
