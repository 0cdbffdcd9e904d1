//! Schema migrations: `migrations/NNNN_name.sql`, compiled in, applied in
//! order inside one transaction each, tracked with `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

/// Every migration, in order; the position (from 1) is its version.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_core", include_str!("../../migrations/0001_core.sql")),
    (
        "0002_parsed",
        include_str!("../../migrations/0002_parsed.sql"),
    ),
    (
        "0003_search_automerge",
        include_str!("../../migrations/0003_search_automerge.sql"),
    ),
    (
        "0004_search_hashsize",
        include_str!("../../migrations/0004_search_hashsize.sql"),
    ),
    (
        "0005_visible_rows",
        include_str!("../../migrations/0005_visible_rows.sql"),
    ),
    (
        "0006_search_watermark",
        include_str!("../../migrations/0006_search_watermark.sql"),
    ),
    (
        "0007_actions",
        include_str!("../../migrations/0007_actions.sql"),
    ),
    (
        "0008_gmail",
        include_str!("../../migrations/0008_gmail.sql"),
    ),
];

pub fn apply(conn: &Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| StoreError::Migration {
            name: "reading user_version",
            source,
        })?;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let run = || -> rusqlite::Result<()> {
            // IMMEDIATE: two processes opening a new database at once must
            // not both apply the same migration.
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let now: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if now >= version {
                conn.execute_batch("COMMIT")?;
                return Ok(());
            }
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", version)?;
            conn.execute_batch("COMMIT")
        };
        if let Err(source) = run() {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Migration { name, source });
        }
    }
    Ok(())
}
