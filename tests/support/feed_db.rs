//! What a test's database holds, read the same way on both store
//! backends, so a test writes its checks once and runs them on SQLite and
//! on PostgreSQL. [`Backend`] is the one way a test chooses its store (a
//! private PostgreSQL lives as long as the value); [`Backend::attach`]
//! points a `Setup`'s `[store]` at a fresh database of that kind and gives
//! the [`FeedDb`] that reads it back — through rusqlite or the `postgres`
//! client, never through mailfeed's own store code.
//!
//! SQL is written once, with `$1`, `$2`, … in order of first use (SQLite
//! binds those by position too); parameters are [`P`], rows are tuples of
//! [`FromBoth`] values ([`RowBoth`]), or JSON objects by column name
//! ([`FeedDb::json_rows`]) where a test compares with the HTTP API.
//!
//! "Intact" ([`FeedDb::assert_intact`]) is what a store promises after any
//! crash: every message has its raw bytes; on SQLite, `integrity_check`
//! and the foreign key check pass; on PostgreSQL (whose server keeps its
//! own pages and constraints intact) every committed row was published
//! with a feed position, positions are dense (1..=n, the counter at n).

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::mailfeed::Setup;
use super::postgres::Postgres;

/// The store backend a test runs on.
pub enum Backend {
    Sqlite,
    /// The server lives as long as this value.
    Postgres(Postgres),
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite
    }

    /// A private PostgreSQL, started now, stopped on drop.
    pub fn postgres() -> Backend {
        Backend::Postgres(Postgres::start().expect("starting a private PostgreSQL"))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// The private PostgreSQL, if this is that backend.
    pub fn server(&self) -> Option<&Postgres> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    /// Points `setup`'s `[store]` at a fresh database of this backend (on
    /// PostgreSQL a new database, the password in a `password_file`) and
    /// returns the reader of what it holds.
    pub fn attach(&self, setup: &mut Setup) -> FeedDb {
        if let Backend::Postgres(pg) = self {
            let url = pg.create_database().expect("creating a database");
            setup.use_postgres(pg, &url);
        }
        FeedDb::open(setup)
    }
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub enum P<'a> {
    T(&'a str),
    I(i64),
}

impl P<'_> {
    fn sqlite(&self) -> rusqlite::types::Value {
        match self {
            P::T(s) => rusqlite::types::Value::Text((*s).to_owned()),
            P::I(i) => rusqlite::types::Value::Integer(*i),
        }
    }

    fn pg(&self) -> Box<dyn postgres::types::ToSql + Sync> {
        match self {
            P::T(s) => Box::new((*s).to_owned()),
            P::I(i) => Box::new(*i),
        }
    }
}

/// A value read back.
pub trait FromBoth: Sized {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    fn pg(r: &postgres::Row, i: usize) -> Self;
}

/// Any integer column (PostgreSQL's `octet_length` is an `int4`, `count`
/// an `int8`); a NULL panics (read `Option<i64>` where one may come).
impl FromBoth for i64 {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        use postgres::types::Type;
        let t = r.columns()[i].type_().clone();
        if t == Type::INT4 {
            i64::from(r.get::<_, i32>(i))
        } else if t == Type::INT2 {
            i64::from(r.get::<_, i16>(i))
        } else {
            r.get(i)
        }
    }
}

impl FromBoth for Option<i64> {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        r.get::<_, Option<i64>>(i)
    }
}

impl FromBoth for u32 {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Self {
        u32::try_from(i64::pg(r, i)).expect("a u32")
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

impl FromBoth for Option<String> {
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

/// (uidvalidity, uid, raw) of a feed row.
pub type Row = (u32, u32, Vec<u8>);

/// A reader of one test database.
pub enum FeedDb {
    /// Opened per call: the file may not exist yet, or be replaced.
    Sqlite(PathBuf),
    Postgres {
        url: String,
        /// Kept between calls; dropped and opened again after an error (the
        /// server may have been restarted under it).
        client: RefCell<Option<Box<postgres::Client>>>,
    },
}

impl FeedDb {
    /// The database `setup`'s `[store]` names (see [`Backend::attach`]).
    pub fn open(setup: &Setup) -> FeedDb {
        match &setup.pg_url {
            None => FeedDb::Sqlite(setup.db.clone()),
            Some(url) => FeedDb::Postgres {
                url: url.clone(),
                client: RefCell::new(None),
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, FeedDb::Postgres { .. })
    }

    /// Whether mailfeed has created its schema yet (on PostgreSQL: its
    /// first migration committed, the feed's tables and views with it).
    pub fn exists(&self) -> bool {
        match self {
            FeedDb::Sqlite(path) => path.exists(),
            FeedDb::Postgres { .. } => self
                .pg(|c| {
                    c.query_one("SELECT to_regclass('public.message_feed') IS NOT NULL", &[])
                        .map(|r| r.get::<_, bool>(0))
                })
                .unwrap_or(false),
        }
    }

    fn sqlite(&self) -> Option<rusqlite::Connection> {
        match self {
            FeedDb::Sqlite(path) if path.exists() => rusqlite::Connection::open(path).ok(),
            _ => None,
        }
    }

    /// Runs `f` on the PostgreSQL connection, opening it when needed.
    fn pg<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let FeedDb::Postgres { url, client } = self else {
            unreachable!("not PostgreSQL")
        };
        let mut slot = client.borrow_mut();
        // A connection the server cut (a restart) is opened again.
        if slot
            .as_mut()
            .is_none_or(|c| c.is_valid(Duration::from_secs(10)).is_err())
        {
            *slot = Some(Box::new(postgres::Client::connect(url, postgres::NoTls)?));
        }
        let result = f(slot.as_mut().expect("connected"));
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Every row of `sql`, or the error that kept the database from
    /// answering (not created yet, a table missing, the server away).
    fn query<T>(
        &self,
        sql: &str,
        params: &[P<'_>],
        sqlite: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        pg: impl Fn(&postgres::Row) -> T,
    ) -> Result<Vec<T>, String> {
        match self {
            FeedDb::Sqlite(path) => {
                let c = self
                    .sqlite()
                    .ok_or_else(|| format!("no database at {}", path.display()))?;
                let mut st = c.prepare(sql).map_err(|e| e.to_string())?;
                let values: Vec<_> = params.iter().map(P::sqlite).collect();
                st.query_map(rusqlite::params_from_iter(values), |r| sqlite(r))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| e.to_string())
            }
            FeedDb::Postgres { .. } => {
                let owned: Vec<_> = params.iter().map(P::pg).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                self.pg(|c| c.query(sql, &refs))
                    .map(|rows| rows.iter().map(pg).collect())
                    .map_err(|e| format!("{e:?}"))
            }
        }
    }

    /// Every row of `sql`, or `None` if the database cannot answer (not
    /// created yet, a table missing).
    pub fn try_rows<R: RowBoth>(&self, sql: &str, params: &[P<'_>]) -> Option<Vec<R>> {
        self.query(sql, params, R::sqlite, R::pg).ok()
    }

    /// Every row of `sql`; panics if the database cannot answer.
    pub fn rows<R: RowBoth>(&self, sql: &str, params: &[P<'_>]) -> Vec<R> {
        self.query(sql, params, R::sqlite, R::pg)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row of `sql`.
    pub fn column<T: FromBoth>(&self, sql: &str, params: &[P<'_>]) -> Vec<T> {
        self.rows::<(T,)>(sql, params)
            .into_iter()
            .map(|(v,)| v)
            .collect()
    }

    /// The one value `sql` answers (its first row's first column).
    pub fn one<T: FromBoth>(&self, sql: &str, params: &[P<'_>]) -> T {
        self.column(sql, params)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no row: {sql}"))
    }

    /// The one number `sql` answers.
    pub fn count(&self, sql: &str, params: &[P<'_>]) -> i64 {
        self.one(sql, params)
    }

    /// Rows as JSON objects by column name (integers as numbers, text as
    /// strings, bytes as arrays of numbers, NULL as null), to compare with
    /// what the HTTP API answers.
    pub fn json_rows(&self, sql: &str, params: &[P<'_>]) -> Vec<Map<String, Value>> {
        self.query(
            sql,
            params,
            |r| {
                let st = r.as_ref();
                let cols: Vec<String> = (0..st.column_count())
                    .map(|i| st.column_name(i).expect("column name").to_owned())
                    .collect();
                let mut o = Map::new();
                for (i, n) in cols.into_iter().enumerate() {
                    use rusqlite::types::Value as V;
                    let v = match r.get::<_, V>(i)? {
                        V::Null => Value::Null,
                        V::Integer(i) => json!(i),
                        V::Real(f) => json!(f),
                        V::Text(s) => json!(s),
                        V::Blob(b) => json!(b),
                    };
                    o.insert(n, v);
                }
                Ok(o)
            },
            pg_json,
        )
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a statement.
    pub fn execute(&self, sql: &str, params: &[P<'_>]) {
        match self {
            FeedDb::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).expect("open db");
                let values: Vec<_> = params.iter().map(P::sqlite).collect();
                c.execute(sql, rusqlite::params_from_iter(values))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            FeedDb::Postgres { .. } => {
                let owned: Vec<_> = params.iter().map(P::pg).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                self.pg(|c| c.execute(sql, &refs))
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            }
        }
    }

    /// Every feed row of a mailbox, by generation and UID.
    pub fn feed(&self, account: &str, mailbox: &str) -> Vec<Row> {
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

    /// (last_uid, uidvalidity) of the cursor of mailbox `name`.
    pub fn cursor(&self, name: &str) -> (u32, u32) {
        let (last, uv): (i64, Option<i64>) = self
            .rows(
                "SELECT last_uid, uidvalidity FROM mailboxes WHERE name = $1",
                &[P::T(name)],
            )
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no cursor for {name}"));
        (
            u32::try_from(last).expect("a UID"),
            u32::try_from(uv.unwrap_or(0)).expect("a UIDVALIDITY"),
        )
    }

    /// Bytes of mail stored so far (every generation, all folders); 0 while
    /// there is no schema yet.
    pub fn stored_bytes(&self) -> u64 {
        if !self.exists() {
            return 0;
        }
        let sql = if self.is_postgres() {
            "SELECT coalesce(sum(octet_length(raw)), 0)::bigint FROM message_raw"
        } else {
            "SELECT coalesce(sum(length(raw)), 0) FROM message_raw"
        };
        self.try_rows::<(i64,)>(sql, &[])
            .and_then(|r| r.first().map(|(n,)| *n as u64))
            .unwrap_or(0)
    }

    /// The database is intact, whatever moment a crash hit (see the module
    /// comment for what that means on each backend). A database mailfeed
    /// has not created yet has nothing to check; one whose schema is not
    /// there yet only SQLite's own checks.
    pub fn assert_intact(&self, context: &str) {
        if !self.exists() {
            return;
        }
        let zero = |sql: &str, what: &str| {
            assert_eq!(self.count(sql, &[]), 0, "{context}: {what}");
        };
        match self {
            FeedDb::Sqlite(_) => {
                let ok: String = self.one("PRAGMA integrity_check", &[]);
                assert_eq!(ok, "ok", "{context}: integrity_check");
                zero(
                    "SELECT count(*) FROM pragma_foreign_key_check",
                    "foreign key violations",
                );
                if !self.has_feed() {
                    return;
                }
            }
            FeedDb::Postgres { .. } => {
                zero(
                    "SELECT count(*) FROM messages WHERE position IS NULL",
                    "committed messages without a feed position",
                );
                zero(
                    "SELECT count(*) FROM events WHERE position IS NULL",
                    "committed events without a position",
                );
                // Positions are unique and at least 1, so max = count means
                // exactly 1..=n.
                for (table, counter) in [("messages", "last_message"), ("events", "last_event")] {
                    let n = self.count(&format!("SELECT count(*) FROM {table}"), &[]);
                    let max = self.count(
                        &format!("SELECT coalesce(max(position), 0)::bigint FROM {table}"),
                        &[],
                    );
                    let at = self.count(&format!("SELECT {counter} FROM feed_positions"), &[]);
                    assert_eq!(
                        (max, at),
                        (n, n),
                        "{context}: {table}' positions are 1..=n and the counter is at n"
                    );
                }
            }
        }
        zero(
            "SELECT count(*) FROM messages m
             WHERE NOT EXISTS (SELECT 1 FROM message_raw r WHERE r.message_id = m.id)",
            "messages without raw bytes",
        );
    }

    /// Whether the SQLite file holds the feed's schema yet (the file is
    /// made before its first migration commits).
    fn has_feed(&self) -> bool {
        self.count(
            "SELECT count(*) FROM sqlite_master WHERE name = 'message_feed'",
            &[],
        ) > 0
    }

    /// The search index holds exactly the feed.
    ///
    /// SQLite: one FTS5 entry per `message_feed` row (none twice, none
    /// skipped), the watermark at the last message, and FTS5's own check
    /// that the index equals what its source view gives. PostgreSQL writes
    /// each message's document in the transaction that stores the message:
    /// one document per message row, the watermark at the last position.
    pub fn assert_index_exact(&self, context: &str) {
        match self {
            FeedDb::Sqlite(_) => {
                assert_eq!(
                    self.column::<i64>("SELECT id FROM message_search_docsize ORDER BY id", &[]),
                    self.column::<i64>("SELECT id FROM message_feed ORDER BY id", &[]),
                    "{context}: search index entries = feed rows"
                );
                let conn = self.sqlite().expect("open db");
                let (through, last) = watermark(&conn);
                assert_eq!(through, last, "{context}: search watermark");
                conn.execute_batch(
                    "INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)",
                )
                .unwrap_or_else(|e| panic!("{context}: search index differs from its source: {e}"));
            }
            FeedDb::Postgres { .. } => {
                assert_eq!(
                    self.count(
                        "SELECT count(*) FROM messages m
                         FULL JOIN message_search s ON s.message_id = m.id
                         WHERE m.id IS NULL OR s.message_id IS NULL",
                        &[]
                    ),
                    0,
                    "{context}: one search document per message"
                );
                assert_eq!(
                    self.count(
                        "SELECT (SELECT indexed_through FROM search_watermark)
                              - (SELECT coalesce(max(position), 0) FROM messages)",
                        &[]
                    ),
                    0,
                    "{context}: search watermark"
                );
            }
        }
    }

    /// Opens a read transaction on a connection of its own (on
    /// PostgreSQL, REPEATABLE READ: one snapshot for the whole of it).
    pub fn snapshot(&self) -> Snapshot {
        match self {
            FeedDb::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).expect("open db");
                c.execute_batch("BEGIN").expect("begin");
                Snapshot::Sqlite(c)
            }
            FeedDb::Postgres { url, .. } => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .expect("begin");
                Snapshot::Postgres(Box::new(c))
            }
        }
    }
}

/// A consumer's read transaction, held open: its first read fixes what it
/// sees until [`Snapshot::end`].
pub enum Snapshot {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Snapshot {
    /// One number, read inside the transaction.
    pub fn count(&mut self, sql: &str) -> i64 {
        match self {
            Snapshot::Sqlite(c) => c
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Snapshot::Postgres(c) => c
                .query_one(sql, &[])
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
        }
    }

    /// Ends the transaction; later reads see the latest commit.
    pub fn end(&mut self) {
        match self {
            Snapshot::Sqlite(c) => c.execute_batch("COMMIT").expect("commit"),
            Snapshot::Postgres(c) => c.batch_execute("COMMIT").expect("commit"),
        }
    }
}

/// SQLite's search watermark and the last message id.
pub fn watermark(conn: &rusqlite::Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT (SELECT indexed_through FROM search_watermark),
                (SELECT coalesce(max(id), 0) FROM messages)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("watermark")
}

/// A PostgreSQL row as a JSON object by column name.
fn pg_json(r: &postgres::Row) -> Map<String, Value> {
    use postgres::types::Type;
    let mut o = Map::new();
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            json!(r.get::<_, Option<i64>>(i))
        } else if *t == Type::INT4 {
            json!(r.get::<_, Option<i32>>(i))
        } else if *t == Type::INT2 {
            json!(r.get::<_, Option<i16>>(i))
        } else if *t == Type::BOOL {
            json!(r.get::<_, Option<bool>>(i))
        } else if *t == Type::FLOAT8 {
            json!(r.get::<_, Option<f64>>(i))
        } else if *t == Type::BYTEA {
            json!(r.get::<_, Option<Vec<u8>>>(i))
        } else {
            json!(r.get::<_, Option<String>>(i))
        };
        o.insert(col.name().to_owned(), v);
    }
    o
}

/// `$case(Backend)` as two tests, one per backend, named as given.
#[allow(unused_macros)]
macro_rules! on_both {
    ($case:ident, $sqlite:ident, $postgres:ident) => {
        #[test]
        fn $sqlite() {
            $case($crate::support::feed_db::Backend::sqlite());
        }
        #[test]
        fn $postgres() {
            $case($crate::support::feed_db::Backend::postgres());
        }
    };
}

/// Each test body runs as `<body>::sqlite` and `<body>::postgres`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[test]
            fn sqlite() {
                super::$body($crate::support::feed_db::Backend::sqlite())
            }
            #[test]
            fn postgres() {
                super::$body($crate::support::feed_db::Backend::postgres())
            }
        }
    )*};
}

#[allow(unused_imports)]
pub(crate) use {on_both, on_both_backends};
