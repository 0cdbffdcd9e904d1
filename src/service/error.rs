//! Why `mailfeed run` could not start (or start an account): each variant
//! keeps the typed error of the part that failed, which already names the
//! key or the server to fix; `cli` prints the chain and picks the exit code.

use crate::session::SessionError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("installing the signal handlers (SIGTERM, SIGINT, SIGHUP)")]
    Signals(#[source] std::io::Error),
    /// The database, its lock or the lease keeper.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP listener, its archive reader or the alerts.
    #[error(transparent)]
    Edges(#[from] super::edges::EdgesError),
    /// An account's connection settings (its certificate file, say).
    #[error(transparent)]
    Connect(#[from] SessionError),
}
