//! The database a test's `mailfeed` writes, on either backend: the
//! setup's SQLite file, or a fresh database on a private PostgreSQL
//! (`postgres`) that the setup's `[store]` is pointed at. Tests write
//! their SQL once, with `$1`, `$2`, ... in order of first use (SQLite binds
//! those by position too), and read it back the same way on both.

use std::path::PathBuf;

use super::mailfeed::Setup;
use super::postgres::{PASSWORD, Postgres};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub enum P<'a> {
    T(&'a str),
    I(i64),
}

/// A value read back.
pub trait FromBoth: Sized {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    fn pg(r: &postgres::Row, i: usize) -> Self;
}

impl FromBoth for i64 {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        r.get(i)
    }
}

impl FromBoth for u32 {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        u32::try_from(r.get::<_, i64>(i)).expect("a u32")
    }
}

impl FromBoth for String {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        r.get(i)
    }
}

impl FromBoth for Vec<u8> {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        r.get(i)
    }
}

/// A row of up to three values.
pub trait RowBoth: Sized {
    fn sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
    fn pg(r: &postgres::Row) -> Self;
}

impl<A: FromBoth> RowBoth for (A,) {
    fn sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((A::sqlite(r, 0)?,))
    }
    fn pg(r: &postgres::Row) -> Self {
        (A::pg(r, 0),)
    }
}

impl<A: FromBoth, B: FromBoth> RowBoth for (A, B) {
    fn sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((A::sqlite(r, 0)?, B::sqlite(r, 1)?))
    }
    fn pg(r: &postgres::Row) -> Self {
        (A::pg(r, 0), B::pg(r, 1))
    }
}

impl<A: FromBoth, B: FromBoth, C: FromBoth> RowBoth for (A, B, C) {
    fn sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((A::sqlite(r, 0)?, B::sqlite(r, 1)?, C::sqlite(r, 2)?))
    }
    fn pg(r: &postgres::Row) -> Self {
        (A::pg(r, 0), B::pg(r, 1), C::pg(r, 2))
    }
}

/// The feed database of one setup.
pub enum FeedDb {
    Sqlite(PathBuf),
    /// The server lives as long as this value.
    Postgres {
        url: String,
        server: Postgres,
    },
}

impl FeedDb {
    /// The database of `setup` on `backend`; for PostgreSQL, starts a
    /// private server, creates a database and points the setup's `[store]`
    /// at it (password through `password_file`).
    pub fn attach(setup: &Setup, backend: Backend) -> FeedDb {
        match backend {
            Backend::Sqlite => FeedDb::Sqlite(setup.db.clone()),
            Backend::Postgres => {
                let server = Postgres::start().expect("starting a private PostgreSQL");
                let url = server.create_database().expect("database");
                let name = url.rsplit('/').next().expect("database name").to_owned();
                let pw = setup.dir.path().join("pg.password");
                std::fs::write(&pw, format!("{PASSWORD}\n")).expect("pg password file");
                let text = std::fs::read_to_string(&setup.config).expect("config");
                let store = format!(
                    "url = \"{}\"\npassword_file = \"{}\"",
                    server.url_without_password(&name),
                    pw.display()
                );
                assert!(text.contains("path = \"mail.db\""), "{text}");
                std::fs::write(&setup.config, text.replace("path = \"mail.db\"", &store))
                    .expect("config");
                FeedDb::Postgres { url, server }
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            FeedDb::Sqlite(_) => Backend::Sqlite,
            FeedDb::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Whether `mailfeed` has created the schema yet.
    pub fn exists(&self) -> bool {
        match self {
            FeedDb::Sqlite(path) => path.exists(),
            FeedDb::Postgres { .. } => self
                .try_rows::<(i64,)>(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = 'actions'",
                    &[],
                )
                .is_some_and(|r| r.first().is_some_and(|(n,)| *n > 0)),
        }
    }

    fn pg(url: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(url, postgres::NoTls)
    }

    /// Every row of `sql`, or `None` if the database cannot answer (not
    /// created yet, a table missing).
    pub fn try_rows<R: RowBoth>(&self, sql: &str, params: &[P<'_>]) -> Option<Vec<R>> {
        match self {
            FeedDb::Sqlite(path) => {
                if !path.exists() {
                    return None;
                }
                let c = rusqlite::Connection::open(path).ok()?;
                let mut st = c.prepare(sql).ok()?;
                let values: Vec<rusqlite::types::Value> = params
                    .iter()
                    .map(|p| match p {
                        P::T(s) => rusqlite::types::Value::Text((*s).to_owned()),
                        P::I(i) => rusqlite::types::Value::Integer(*i),
                    })
                    .collect();
                st.query_map(rusqlite::params_from_iter(values), |r| R::sqlite(r))
                    .ok()?
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
            }
            FeedDb::Postgres { url, .. } => {
                let mut c = Self::pg(url).ok()?;
                let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                        match p {
                            P::T(s) => Box::new((*s).to_owned()),
                            P::I(i) => Box::new(*i),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                let rows = c.query(sql, &refs).ok()?;
                Some(rows.iter().map(R::pg).collect())
            }
        }
    }

    /// Every row of `sql`; panics if the database cannot answer.
    pub fn rows<R: RowBoth>(&self, sql: &str, params: &[P<'_>]) -> Vec<R> {
        self.try_rows(sql, params)
            .unwrap_or_else(|| panic!("query failed: {sql}"))
    }

    /// The one number `sql` answers.
    pub fn count(&self, sql: &str, params: &[P<'_>]) -> i64 {
        self.rows::<(i64,)>(sql, params)
            .first()
            .map(|(n,)| *n)
            .unwrap_or_else(|| panic!("no row: {sql}"))
    }

    /// Runs a statement.
    pub fn execute(&self, sql: &str, params: &[P<'_>]) {
        match self {
            FeedDb::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).expect("open db");
                let values: Vec<rusqlite::types::Value> = params
                    .iter()
                    .map(|p| match p {
                        P::T(s) => rusqlite::types::Value::Text((*s).to_owned()),
                        P::I(i) => rusqlite::types::Value::Integer(*i),
                    })
                    .collect();
                c.execute(sql, rusqlite::params_from_iter(values))
                    .expect("execute");
            }
            FeedDb::Postgres { url, .. } => {
                let mut c = Self::pg(url).expect("connect");
                let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                        match p {
                            P::T(s) => Box::new((*s).to_owned()),
                            P::I(i) => Box::new(*i),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                c.execute(sql, &refs).expect("execute");
            }
        }
    }

    /// SQLite's own consistency check; PostgreSQL keeps its files
    /// consistent itself (a killed client cannot corrupt them).
    pub fn assert_intact(&self) {
        if let FeedDb::Sqlite(path) = self
            && path.exists()
        {
            let c = rusqlite::Connection::open(path).expect("open db");
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity");
            assert_eq!(ok, "ok");
        }
    }

    /// (uidvalidity, uid, raw) of every feed row of a mailbox, by UID.
    pub fn stored(&self, account: &str, mailbox: &str) -> Vec<(u32, u32, Vec<u8>)> {
        self.rows(
            "SELECT uidvalidity, uid, raw FROM message_feed
             WHERE account = $1 AND mailbox = $2 ORDER BY uidvalidity, uid",
            &[P::T(account), P::T(mailbox)],
        )
    }

    /// Feed rows of a mailbox so far (0 before the schema exists).
    pub fn feed_count(&self, mailbox: &str) -> i64 {
        self.try_rows::<(i64,)>(
            "SELECT count(*) FROM message_feed WHERE mailbox = $1",
            &[P::T(mailbox)],
        )
        .and_then(|r| r.first().map(|(n,)| *n))
        .unwrap_or(0)
    }

    /// Rows in `messages` (all generations, duplicates included).
    pub fn message_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM messages", &[])
    }
}
