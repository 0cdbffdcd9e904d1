//! Applies migrations/postgres/*.sql in order, each in its own transaction,
//! and records each in `mailfeed_schema` (the version table SQLite keeps
//! in `user_version`). An advisory lock makes instances starting together
//! apply them once; a schema newer than this binary is refused.

use super::{Pg, PgContext};
use crate::store::StoreError;

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_schema",
        include_str!("../../../migrations/postgres/0001_schema.sql"),
    ),
    (
        "0002_windows",
        include_str!("../../../migrations/postgres/0002_windows.sql"),
    ),
    (
        "0003_download_days",
        include_str!("../../../migrations/postgres/0003_download_days.sql"),
    ),
    (
        "0004_leases",
        include_str!("../../../migrations/postgres/0004_leases.sql"),
    ),
    (
        "0005_gmail",
        include_str!("../../../migrations/postgres/0005_gmail.sql"),
    ),
    (
        "0006_actions",
        include_str!("../../../migrations/postgres/0006_actions.sql"),
    ),
];

/// Any constant key, the same in every instance.
const LOCK_KEY: i64 = 0x6d61_696c_6665_6564;

pub(crate) fn known() -> i64 {
    MIGRATIONS.len() as i64
}

pub(crate) fn apply(pg: &mut Pg) -> Result<(), StoreError> {
    // The lock first: CREATE TABLE IF NOT EXISTS is not safe against
    // another session creating the same table at the same moment (two
    // instances started together on a new database).
    pg.client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .pg("waiting for other instances' migrations")?;
    let result = pg
        .client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS mailfeed_schema (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .pg("creating the schema version table")
        .and_then(|()| apply_locked(pg));
    let _ = pg
        .client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    result
}

fn apply_locked(pg: &mut Pg) -> Result<(), StoreError> {
    let c = &mut pg.client;
    let found: i32 = c
        .query_one("SELECT coalesce(max(version), 0) FROM mailfeed_schema", &[])
        .pg("reading the schema version")?
        .get(0);
    let found = i64::from(found);
    if found > known() {
        return Err(StoreError::TooNew {
            found,
            known: known(),
        });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i32 + 1;
        let mut tx = c.transaction().pg("starting a migration")?;
        tx.batch_execute(sql)
            .map_err(|source| StoreError::PgMigration { name, source })?;
        tx.execute(
            "INSERT INTO mailfeed_schema (version, name) VALUES ($1, $2)",
            &[&version, name],
        )
        .map_err(|source| StoreError::PgMigration { name, source })?;
        tx.commit()
            .map_err(|source| StoreError::PgMigration { name, source })?;
    }
    Ok(())
}
