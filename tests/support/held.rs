//! What the database holds, read the same way on both store backends, so a
//! fault test writes its checks once and runs them on SQLite and on
//! PostgreSQL: [`Backend`] gives each test `Setup` a fresh database of its
//! kind, [`Held`] reads it back (feed rows, cursors, counts, the search
//! index) through rusqlite or the `postgres` client, never through
//! mailfeed's own store code.
//!
//! "Intact" means what each backend can promise after a crash: SQLite's
//! `integrity_check` and foreign key check; on PostgreSQL (whose server
//! keeps its own pages and constraints intact) that every committed row
//! was published with a feed position, positions are dense (1..=n, the
//! counter at n), and each message has its raw bytes and search document.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use super::mailfeed::Setup;
use super::postgres::Postgres;

/// The store backend a test runs on.
pub enum Backend {
    Sqlite,
    Postgres(Postgres),
}

impl Backend {
    /// A private PostgreSQL, started now.
    pub fn postgres() -> Backend {
        Backend::Postgres(Postgres::start().expect("starting a private PostgreSQL"))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The private PostgreSQL, if this is that backend.
    pub fn server(&self) -> Option<&Postgres> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    /// Points `setup`'s `[store]` at a fresh database of this backend (a
    /// new PostgreSQL database, the password in a `password_file`) and
    /// returns the reader of what it holds.
    pub fn attach(&self, setup: &Setup) -> Held {
        match self {
            Backend::Sqlite => Held::Sqlite(setup.db.clone()),
            Backend::Postgres(pg) => {
                let url = pg.create_database().expect("creating a database");
                on_postgres(setup, pg, &url);
                Held::Postgres {
                    url,
                    client: RefCell::new(None),
                }
            }
        }
    }
}

/// Rewrites `setup`'s `[store] path` into the PostgreSQL database at `url`,
/// the password given through `password_file` rather than the URL.
pub fn on_postgres(setup: &Setup, pg: &Postgres, url: &str) {
    let name = url.rsplit('/').next().expect("database name");
    let pw = setup.dir.path().join("pg.password");
    std::fs::write(&pw, format!("{}\n", super::postgres::PASSWORD)).expect("pw");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    assert!(text.contains("path = \"mail.db\""), "{text}");
    let store = format!(
        "url = \"{}\"\npassword_file = \"{}\"",
        pg.url_without_password(name),
        pw.display()
    );
    std::fs::write(&setup.config, text.replace("path = \"mail.db\"", &store)).expect("config");
}

/// (uidvalidity, uid, raw) of a feed row.
pub type Row = (u32, u32, Vec<u8>);

/// A reader of one test database.
pub enum Held {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        /// Kept between calls; dropped and opened again after an error (the
        /// server may have been restarted under it).
        client: RefCell<Option<Box<postgres::Client>>>,
    },
}

impl Held {
    /// Whether mailfeed has created its schema yet (on PostgreSQL: its
    /// first migration committed, the feed's tables and views with it).
    pub fn exists(&self) -> bool {
        match self {
            Held::Sqlite(path) => path.exists(),
            Held::Postgres { .. } => self
                .pg(|c| {
                    c.query_one("SELECT to_regclass('public.message_feed') IS NOT NULL", &[])
                        .map(|r| r.get::<_, bool>(0))
                })
                .unwrap_or(false),
        }
    }

    fn sqlite(&self) -> rusqlite::Connection {
        match self {
            Held::Sqlite(path) => rusqlite::Connection::open(path).expect("open db"),
            Held::Postgres { .. } => unreachable!("not SQLite"),
        }
    }

    /// Runs `f` on the PostgreSQL connection, opening it when needed.
    fn pg<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let Held::Postgres { url, client } = self else {
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

    /// One number from SQL both backends understand.
    pub fn count(&self, sql: &str) -> i64 {
        match self {
            Held::Sqlite(_) => self
                .sqlite()
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Held::Postgres { .. } => self
                .pg(|c| c.query_one(sql, &[]).map(|r| r.get::<_, i64>(0)))
                .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
        }
    }

    /// Every feed row of a mailbox, by generation and UID.
    pub fn feed(&self, account: &str, mailbox: &str) -> Vec<Row> {
        const SQL: &str = "SELECT uidvalidity, uid, raw FROM message_feed
                           WHERE account = $1 AND mailbox = $2 ORDER BY uidvalidity, uid";
        match self {
            Held::Sqlite(_) => {
                let conn = self.sqlite();
                let mut st = conn.prepare(SQL).expect("prepare");
                st.query_map([account, mailbox], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .expect("query")
                .collect::<Result<Vec<_>, _>>()
                .expect("rows")
            }
            Held::Postgres { .. } => self
                .pg(|c| c.query(SQL, &[&account, &mailbox]))
                .expect("feed rows")
                .iter()
                .map(|r| {
                    let (v, u): (i64, i64) = (r.get(0), r.get(1));
                    (v as u32, u as u32, r.get(2))
                })
                .collect(),
        }
    }

    /// (last_uid, uidvalidity) of the cursor of mailbox `name`.
    pub fn cursor(&self, name: &str) -> (u32, u32) {
        const SQL: &str = "SELECT last_uid, uidvalidity FROM mailboxes WHERE name = $1";
        match self {
            Held::Sqlite(_) => self
                .sqlite()
                .query_row(SQL, [name], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("cursor"),
            Held::Postgres { .. } => {
                let (last, uv): (i64, Option<i64>) = self
                    .pg(|c| c.query_one(SQL, &[&name]))
                    .map(|r| (r.get(0), r.get(1)))
                    .expect("cursor");
                (last as u32, uv.unwrap_or(0) as u32)
            }
        }
    }

    /// Bytes of mail stored so far (every generation, all folders); 0 while
    /// there is no schema yet.
    pub fn stored_bytes(&self) -> u64 {
        if !self.exists() {
            return 0;
        }
        match self {
            Held::Sqlite(_) => self
                .sqlite()
                .query_row(
                    "SELECT coalesce(sum(length(raw)), 0) FROM message_raw",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .unwrap_or(0),
            Held::Postgres { .. } => self
                .pg(|c| {
                    c.query_one(
                        "SELECT coalesce(sum(octet_length(raw)), 0)::bigint FROM message_raw",
                        &[],
                    )
                    .map(|r| r.get::<_, i64>(0))
                })
                .map(|n| n as u64)
                .unwrap_or(0),
        }
    }

    /// The database is intact, whatever moment a crash hit (see the module
    /// comment for what that means on each backend).
    pub fn assert_intact(&self, context: &str) {
        match self {
            Held::Sqlite(_) => {
                let conn = self.sqlite();
                let ok: String = conn
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .expect("integrity_check");
                assert_eq!(ok, "ok", "{context}: integrity_check");
                let fk: i64 = conn
                    .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    })
                    .expect("foreign_key_check");
                assert_eq!(fk, 0, "{context}: foreign key violations");
            }
            Held::Postgres { .. } => {
                let zero = |sql: &str, what: &str| {
                    assert_eq!(self.count(sql), 0, "{context}: {what}");
                };
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
                    let n = self.count(&format!("SELECT count(*) FROM {table}"));
                    let max = self.count(&format!(
                        "SELECT coalesce(max(position), 0)::bigint FROM {table}"
                    ));
                    let at = self.count(&format!("SELECT {counter} FROM feed_positions"));
                    assert_eq!(
                        (max, at),
                        (n, n),
                        "{context}: {table}' positions are 1..=n and the counter is at n"
                    );
                }
                zero(
                    "SELECT count(*) FROM messages m
                     WHERE NOT EXISTS (SELECT 1 FROM message_raw r WHERE r.message_id = m.id)",
                    "messages without raw bytes",
                );
            }
        }
    }

    /// The search index holds exactly the feed.
    ///
    /// SQLite: one FTS5 entry per `message_feed` row (none twice, none
    /// skipped), the watermark at the last message, and FTS5's own check
    /// that the index equals what its source view gives. PostgreSQL writes
    /// each message's document in the transaction that stores the message,
    /// so there is no watermark to trail: one document per message row.
    pub fn assert_index_exact(&self, context: &str) {
        match self {
            Held::Sqlite(_) => {
                let conn = self.sqlite();
                let ids = |sql: &str| -> Vec<i64> {
                    conn.prepare(sql)
                        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                        .expect(sql)
                };
                assert_eq!(
                    ids("SELECT id FROM message_search_docsize ORDER BY id"),
                    ids("SELECT id FROM message_feed ORDER BY id"),
                    "{context}: search index entries = feed rows"
                );
                let (through, last) = watermark(&conn);
                assert_eq!(through, last, "{context}: search watermark");
                conn.execute_batch(
                    "INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)",
                )
                .unwrap_or_else(|e| panic!("{context}: search index differs from its source: {e}"));
            }
            Held::Postgres { .. } => {
                assert_eq!(
                    self.count(
                        "SELECT count(*) FROM messages m
                         FULL JOIN message_search s ON s.message_id = m.id
                         WHERE m.id IS NULL OR s.message_id IS NULL"
                    ),
                    0,
                    "{context}: one search document per message"
                );
                assert_eq!(
                    self.count(
                        "SELECT (SELECT indexed_through FROM search_watermark)
                              - (SELECT coalesce(max(position), 0) FROM messages)"
                    ),
                    0,
                    "{context}: search watermark"
                );
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

impl Held {
    /// Opens a read transaction on a connection of its own (on
    /// PostgreSQL, REPEATABLE READ: one snapshot for the whole of it).
    pub fn snapshot(&self) -> Snapshot {
        match self {
            Held::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).expect("open db");
                c.execute_batch("BEGIN").expect("begin");
                Snapshot::Sqlite(c)
            }
            Held::Postgres { url, .. } => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .expect("begin");
                Snapshot::Postgres(Box::new(c))
            }
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
