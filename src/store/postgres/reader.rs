//! The PostgreSQL side of [`crate::store::Reader`] and of
//! [`crate::store::archive_read::ArchiveReader`]: a thread that owns the
//! connection and runs the read queries (`read.rs`, `archive_read.rs`) it
//! is sent. The
//! synchronous client runs a small runtime of its own, which must not be
//! entered from async code (`mailfeed tail` reads from a tokio task); on a
//! thread of its own it never is, whoever calls.

use std::sync::mpsc;

use super::{Pg, PgTarget};
use crate::store::{ExportFilter, ExportMessage, StoreError};

type Task = Box<dyn FnOnce(&mut Pg) + Send>;

pub(crate) struct PgReader {
    tx: mpsc::Sender<Task>,
}

fn stopped() -> StoreError {
    StoreError::Stopped("the PostgreSQL reader has stopped".into())
}

impl PgReader {
    pub(crate) fn open(target: &PgTarget) -> Result<PgReader, StoreError> {
        let (tx, rx) = mpsc::channel::<Task>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let target = target.clone();
        std::thread::Builder::new()
            .name("mailfeed-pg-reader".into())
            .spawn(move || {
                let mut pg = match target.open() {
                    Ok(pg) => {
                        let _ = ready_tx.send(Ok(()));
                        pg
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(task) = rx.recv() {
                    task(&mut pg);
                }
            })
            .map_err(|e| StoreError::Stopped(format!("cannot start the reader thread: {e}")))?;
        ready_rx.recv().map_err(|_| stopped())??;
        Ok(PgReader { tx })
    }

    /// Runs `f` on the reader's connection and waits for its answer.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Pg) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move |pg| {
                let _ = tx.send(f(pg));
            }))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Hands the caller one exported message at a time: the query runs on
    /// the reader's thread, `each` on the caller's.
    pub(crate) fn for_each_export<E>(
        &self,
        filter: &ExportFilter,
        mut each: impl FnMut(ExportMessage) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        let (tx, rx) = mpsc::sync_channel::<ExportMessage>(1);
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let filter = filter.clone();
        self.tx
            .send(Box::new(move |pg| {
                // A send fails when the caller stopped early; that ends the
                // query too.
                let r = super::read::for_each_export(pg, &filter, |m| tx.send(m));
                drop(tx);
                let _ = done_tx.send(r.map(|_| ()));
            }))
            .map_err(|_| stopped())?;
        for m in rx.iter() {
            if let Err(e) = each(m) {
                drop(rx);
                let _ = done_rx.recv();
                return Ok(Err(e));
            }
        }
        done_rx.recv().map_err(|_| stopped())??;
        Ok(Ok(()))
    }
}
