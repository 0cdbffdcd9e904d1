//! One test, two store backends: [`Store`] is where a test's `[store]`
//! points (a SQLite file, or a fresh database on a private PostgreSQL),
//! and [`FeedDb`] reads the consumer views back from either, so a test
//! written once compares the same answers on both. SQL given to
//! [`FeedDb`] uses `$1`, `$2`… for parameters, which both accept.

use serde_json::{Map, Value, json};

use super::mailfeed::Setup;
use super::postgres::Postgres;

/// The backend a test runs on.
pub enum Store {
    Sqlite,
    Postgres(Postgres),
}

impl Store {
    pub fn sqlite() -> Store {
        Store::Sqlite
    }

    /// A private PostgreSQL, started now, stopped on drop.
    pub fn postgres() -> Store {
        Store::Postgres(Postgres::start().expect("starting a private PostgreSQL"))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Store::Sqlite => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Points `setup`'s `[store]` at this backend (a new database on
    /// PostgreSQL).
    pub fn apply(&self, setup: &mut Setup) {
        if let Store::Postgres(pg) = self {
            let url = pg.create_database().expect("database");
            setup.use_postgres(&url);
        }
    }
}

/// A parameter of a [`FeedDb`] query.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

/// A connection to a test's store, either backend.
pub enum FeedDb {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl FeedDb {
    pub fn open(setup: &Setup) -> FeedDb {
        match &setup.pg_url {
            None => FeedDb::Sqlite(rusqlite::Connection::open(&setup.db).expect("open db")),
            Some(url) => {
                FeedDb::Postgres(postgres::Client::connect(url, postgres::NoTls).expect("connect"))
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, FeedDb::Postgres(_))
    }

    /// Rows as JSON objects by column name: integers as numbers, text as
    /// strings, bytes as arrays of numbers, NULL as null.
    pub fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Vec<Map<String, Value>> {
        match self {
            FeedDb::Sqlite(c) => {
                let mut st = c.prepare(sql).expect("prepare");
                let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
                let params: Vec<Box<dyn rusqlite::ToSql>> = args
                    .iter()
                    .map(|a| -> Box<dyn rusqlite::ToSql> {
                        match a {
                            Arg::Int(i) => Box::new(*i),
                            Arg::Text(t) => Box::new(t.to_string()),
                        }
                    })
                    .collect();
                let rows = st
                    .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                        let mut o = Map::new();
                        for (i, n) in names.iter().enumerate() {
                            use rusqlite::types::Value as V;
                            let v = match r.get::<_, V>(i)? {
                                V::Null => Value::Null,
                                V::Integer(i) => json!(i),
                                V::Real(f) => json!(f),
                                V::Text(s) => json!(s),
                                V::Blob(b) => json!(b),
                            };
                            o.insert(n.clone(), v);
                        }
                        Ok(o)
                    })
                    .expect("query");
                rows.collect::<Result<Vec<_>, _>>().expect("rows")
            }
            FeedDb::Postgres(c) => {
                let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> = args
                    .iter()
                    .map(|a| -> Box<dyn postgres::types::ToSql + Sync> {
                        match a {
                            Arg::Int(i) => Box::new(*i),
                            Arg::Text(t) => Box::new(t.to_string()),
                        }
                    })
                    .collect();
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                let rows = c.query(sql, &params).expect("query");
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The one integer a query answers.
    pub fn int(&mut self, sql: &str, args: &[Arg<'_>]) -> i64 {
        let rows = self.rows(sql, args);
        let row = rows.first().expect("a row");
        row.values()
            .next()
            .and_then(Value::as_i64)
            .expect("an integer")
    }

    /// The first column of every row, as integers.
    pub fn ints(&mut self, sql: &str, args: &[Arg<'_>]) -> Vec<i64> {
        self.rows(sql, args)
            .iter()
            .map(|r| {
                r.values()
                    .next()
                    .and_then(Value::as_i64)
                    .expect("an integer")
            })
            .collect()
    }

    /// The bytes the one row's first column holds.
    pub fn bytes(&mut self, sql: &str, args: &[Arg<'_>]) -> Vec<u8> {
        let rows = self.rows(sql, args);
        let v = rows
            .first()
            .and_then(|r| r.values().next())
            .expect("a value");
        v.as_array()
            .expect("bytes")
            .iter()
            .map(|b| b.as_u64().expect("a byte") as u8)
            .collect()
    }
}

fn pg_row(r: &postgres::Row) -> Map<String, Value> {
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
