//! WAL checkpoints on a thread of their own. Left to SQLite, a checkpoint
//! runs inside the writer's COMMIT whenever the WAL passes its threshold, and
//! the writer (the bottleneck of a sync) stalls while pages are copied into
//! the database and fsynced. Here the writer only nudges after a commit and a
//! second connection runs PASSIVE checkpoints, which never block the writer.
//! The writer keeps a high autocheckpoint threshold as a backstop in case
//! this thread falls behind or cannot start.

use std::path::Path;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// WAL pages after which the writer checkpoints by itself (64 KiB pages:
/// 1 GiB), should the checkpointer not keep up. At 256 MiB a first sync hit
/// it every few transactions, while the checkpointer was still fsyncing the
/// pages before: each time the writer stalled for half a second in its own
/// COMMIT, copying and fsyncing (benches/README.md). The WAL file keeps the
/// size it grew to until the last connection closes and removes it; cutting
/// it back at each restart (`journal_size_limit`) cost the writer 0.3-0.5 s
/// per 10,000 messages in the discards of a filesystem mounted `discard`.
pub(crate) const BACKSTOP_PAGES: i64 = 16_384;

/// Checkpoints start at most this often. A checkpoint that catches up lets
/// the next commit restart the WAL, and SQLite fsyncs the WAL header on every
/// restart, inside the writer's COMMIT; the checkpoint itself fsyncs twice.
/// Checkpointing after each commit made a pass over 50 folders with no new
/// mail (one commit each) cost 100 fsyncs, and their first sync 103; now 8
/// and 31 (`strace -f -e fsync`). Cheap on this machine's disk, not on a
/// spinning one or an SD card. Much longer, and a first sync leaves more WAL
/// for the last checkpoint at exit (at 1 s its tail grew by ~0.4 s).
const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// Handle to the checkpoint thread; nudging never blocks.
pub(crate) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts the thread; `None`
    /// when that is impossible (the writer then checkpoints as usual).
    pub(crate) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_millis(100)).ok()?;
        // One pending nudge is enough: a checkpoint covers every commit
        // made before it starts.
        let (tx, rx) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("mailfeed-checkpoint".into())
            .spawn(move || {
                let mut last: Option<Instant> = None;
                while rx.recv().is_ok() {
                    // Nudges that come within MIN_INTERVAL of the last
                    // checkpoint wait for its end; closing ends the wait at
                    // once (the last connection to close checkpoints anyway).
                    if let Some(at) = last {
                        while let Some(left) =
                            (at + MIN_INTERVAL).checked_duration_since(Instant::now())
                        {
                            if let Err(RecvTimeoutError::Disconnected) = rx.recv_timeout(left) {
                                return;
                            }
                        }
                    }
                    last = Some(Instant::now());
                    // BUSY (another checkpoint, a reader) only means later.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!("WAL checkpoint skipped: {e}");
                    }
                }
            })
            .ok()?;
        Some(Checkpointer {
            nudge: Some(tx),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint soon (after a commit).
    pub(crate) fn nudge(&self) {
        if let Some(tx) = &self.nudge {
            let _ = tx.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the thread after the checkpoint it may be running.
    fn drop(&mut self) {
        self.nudge.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
