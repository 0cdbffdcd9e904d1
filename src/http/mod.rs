//! The HTTP edge: a read-only JSON API under `/api/v1` ([`api`]), the web
//! page at `/` ([`web`]), bearer-token auth ([`auth`]) and the listener that
//! serves them inside `run` or `serve` ([`listener`]). Everything read comes
//! through the store boundary ([`archive`] hands store functions a pooled
//! read-only connection on a blocking thread); the live conversation comes
//! from [`crate::conversation`]. Must not write to the database, speak IMAP,
//! or show a secret.

pub mod api;
pub mod archive;
pub mod auth;
mod headers;
pub mod listener;
pub mod web;

pub use api::{ApiState, api_router};
pub use archive::Archive;
pub use listener::{Listening, app, start};
pub use web::web_router;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "HTTP listener: cannot listen on {addr}: {source} (is another program using the port? change `http.listen`)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: opening the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("HTTP: a database reader stopped: {0}")]
    Reader(String),
}
