//! The HTTP edge's access to the database: a few read-only connections
//! (opened through the store boundary, kept for reuse) handed to store
//! functions on tokio's blocking threads, with a bound on how many run at
//! once, so a crowd of clients neither starves the sync of CPU nor opens a
//! connection each. Blob streams have their own bound: a slow download
//! holds a connection for as long as it lasts. The same on SQLite and
//! PostgreSQL: the store's [`ArchiveSource`] opens whichever it is.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::HttpError;
use crate::store::StoreError;
use crate::store::archive_read::{self, ArchiveReader as Connection, ArchiveSource};

/// Queries that may run at once: on a small machine the sync's writer
/// needs a core, so readers get at most the other one (and wait in turn).
const READERS: usize = 2;
/// Blob downloads that may stream at once.
const STREAMS: usize = 8;
/// Chunks a stream may read ahead of a slow client (64 KiB each).
const AHEAD: usize = 4;

#[derive(Clone)]
pub struct Archive {
    inner: Arc<Inner>,
}

struct Inner {
    source: ArchiveSource,
    idle: Mutex<Vec<Connection>>,
    readers: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

impl Inner {
    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.source.open(),
        }
    }

    /// Keeps `conn` for the next read, unless the pool is full or the
    /// connection is gone (a restarted database server): the next read
    /// then opens a new one.
    fn put(&self, conn: Connection) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < READERS + STREAMS {
            idle.push(conn);
        }
    }
}

impl Archive {
    /// Opens one read-only connection to check that the store is there
    /// (SQLite: the file; PostgreSQL: the server, with its schema).
    pub fn open(source: ArchiveSource) -> Result<Archive, StoreError> {
        let first = source.open()?;
        Ok(Archive {
            inner: Arc::new(Inner {
                source,
                idle: Mutex::new(vec![first]),
                readers: Arc::new(Semaphore::new(READERS)),
                streams: Arc::new(Semaphore::new(STREAMS)),
            }),
        })
    }

    /// Runs `f` with a read-only connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, HttpError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> T + Send + 'static,
    {
        let permit = self
            .inner
            .readers
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HttpError::Task(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = inner.take()?;
            let out = f(&conn);
            inner.put(conn);
            Ok(out)
        })
        .await
        .map_err(|e| HttpError::Task(e.to_string()))?
    }

    /// A blob's description and a body that streams its bytes, read a
    /// chunk at a time as the client takes them (SQLite's incremental BLOB
    /// I/O, PostgreSQL's `substring`); `None` when no feed message has it.
    pub async fn stream(
        &self,
        blob: archive_read::Blob,
    ) -> Result<Option<(archive_read::BlobInfo, Body)>, HttpError> {
        let permit = self
            .inner
            .streams
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HttpError::Task(e.to_string()))?;
        let inner = self.inner.clone();
        let (info_tx, info_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel::<Bytes>(AHEAD);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match inner.take() {
                Ok(c) => c,
                Err(e) => {
                    let _ = info_tx.send(Err(e));
                    return;
                }
            };
            match conn.blob_info(&blob) {
                Ok(Some(info)) => {
                    let _ = info_tx.send(Ok(Some(info)));
                }
                other => {
                    let _ = info_tx.send(other);
                    inner.put(conn);
                    return;
                }
            }
            let copied = conn.copy_blob(&blob, &mut |chunk| {
                // Fails once the client has gone: stop reading.
                match tx.blocking_send(Bytes::copy_from_slice(chunk)) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            });
            if let Err(e) = copied {
                tracing::warn!("HTTP: streaming a blob stopped: {e}");
            }
            inner.put(conn);
        });
        let info = info_rx
            .await
            .map_err(|e| HttpError::Task(e.to_string()))??;
        let Some(info) = info else {
            return Ok(None);
        };
        let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        });
        Ok(Some((info, Body::from_stream(chunks))))
    }
}
