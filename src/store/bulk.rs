//! The first sync's journal: a `sync` into a database that holds no mail yet,
//! with no other connection open, runs with a rollback journal instead of
//! WAL and switches back to WAL when its writer closes. A rollback journal
//! does not copy pages appended past the end of the file, so a first sync
//! (nearly all appends) writes each byte of mail once, where WAL writes it
//! twice (the log, then the checkpoint). Readers would wait on every commit
//! in this mode, so `run` never uses it. Not switched on yet: `sync` still
//! starts with [`super::StoreHandle::start`], because the one interleaved
//! A/B measured so far (synchronous FULL, benches/README.md) was slower.
//!
//! Crash-safe at every point: a kill mid-transaction leaves a hot journal
//! that SQLite rolls back at the next open, and every open sets WAL again
//! ([`super::open`]), so a database left in this mode by a crash is back in
//! WAL at its next use. Knows nothing of messages beyond "are there any".

use std::time::Duration;

use rusqlite::Connection;

/// Switches `conn` to a rollback journal when the database holds no
/// messages and no other connection has it open; returns whether it did.
/// Never waits: another connection (a reader, a `run`) makes this a no-op.
pub(crate) fn enter(conn: &Connection) -> bool {
    let empty = conn
        .query_row("SELECT NOT EXISTS (SELECT 1 FROM messages)", [], |r| {
            r.get::<_, bool>(0)
        })
        .unwrap_or(false);
    if !empty || conn.path().is_none_or(str::is_empty) {
        return false;
    }
    // Leaving WAL needs the only connection; with the usual busy timeout
    // this would wait 30 s for one that is open.
    let _ = conn.busy_timeout(Duration::ZERO);
    let switched = conn
        .query_row("PRAGMA journal_mode = TRUNCATE", [], |r| {
            r.get::<_, String>(0)
        })
        .is_ok_and(|m| m.eq_ignore_ascii_case("truncate"));
    let _ = conn.busy_timeout(super::BUSY_TIMEOUT);
    if !switched {
        return false;
    }
    // In rollback mode only FULL keeps a power cut from damaging the file;
    // the journal is small (appended pages are not in it), so the extra
    // sync per commit is cheap.
    if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
        tracing::debug!("first sync: keeping the configured synchronous: {e}");
    }
    tracing::info!("empty database: first sync with a rollback journal, WAL again at the end");
    true
}

/// Puts the database back in WAL mode (what every other open expects).
/// A failure is only logged: the next open sets WAL anyway.
pub(crate) fn leave(conn: &Connection, synchronous: &str) {
    if let Err(e) = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .and_then(|_| conn.pragma_update(None, "synchronous", synchronous))
    {
        tracing::warn!("first sync: switching back to WAL failed ({e}); the next start does it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    fn mode(c: &Connection) -> String {
        c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode")
    }

    #[test]
    fn an_empty_database_alone_switches_and_comes_back_to_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let c = super::super::open(&path, Synchronous::Normal).expect("open");
        assert_eq!(mode(&c), "wal");
        assert!(enter(&c));
        assert_eq!(mode(&c), "truncate");
        leave(&c, "NORMAL");
        assert_eq!(mode(&c), "wal");
        drop(c);

        // Another connection open: no switch, and no wait for it.
        let c = super::super::open(&path, Synchronous::Normal).expect("open");
        let other = super::super::open(&path, Synchronous::Normal).expect("open other");
        other
            .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .expect("read");
        let t = std::time::Instant::now();
        assert!(!enter(&c));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(mode(&c), "wal");
        drop(other);

        // A database left in rollback mode (a crash before `leave`) is in
        // WAL again at its next open.
        assert!(enter(&c));
        drop(c);
        let c = super::super::open(&path, Synchronous::Normal).expect("reopen");
        assert_eq!(mode(&c), "wal");
    }
}
