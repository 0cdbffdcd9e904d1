//! The HTTP edge, one listener for `mailfeed run` and `mailfeed serve`: a
//! read-only JSON API under `/api/v1` ([`api`]), the web page at `/`
//! ([`web`]) and, inside `run`, the operators' `/metrics` (Prometheus),
//! `/healthz` and `/readyz`. Everything read comes through the store
//! boundary ([`archive`] for the API, [`state`] for the operators' routes);
//! the live conversation comes from [`crate::conversation`]. Must not write
//! to the database, run SQL itself, speak IMAP, wait for a watcher, or show
//! a secret.
//!
//! Files: `settings.rs` (`[http]`), `listener.rs` (bind, bounded accept,
//! idle and request-head timeouts), `auth.rs` (bearer token or the page's cookie; the
//! DNS-rebinding guard), `routes.rs` (the table of routes), `headers.rs`,
//! `state.rs` (what the operators' routes read), `metrics.rs`, `health.rs`,
//! `archive.rs`, `api/`, `web/`.

pub mod api;
pub mod archive;
pub mod auth;
mod headers;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod state;
pub mod web;

use std::net::SocketAddr;

use tokio_util::task::TaskTracker;

pub use api::{ApiState, api_router};
pub use archive::Archive;
pub use settings::HttpConfig;
pub use state::{Configured, Ops};
pub use web::web_router;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "cannot listen on {addr} (`http.listen`): {source}; is another mailfeed or program using that port? choose another port or stop it"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("background read failed: {0}")]
    Task(String),
}

/// Binds now (so a port in use fails start-up, before READY) and serves on
/// `tracker` until `api.cancel` fires, which also ends open event streams.
/// `ops` adds the operators' routes (`run` only). Returns the bound address
/// (port 0 picks a free one).
pub async fn start(
    config: &HttpConfig,
    ops: Option<Ops>,
    api: ApiState,
    tracker: &TaskTracker,
) -> Result<SocketAddr, HttpError> {
    let socket = listener::bind(config.listen).await?;
    let addr = socket.local_addr().map_err(|source| HttpError::Bind {
        addr: config.listen,
        source,
    })?;
    let with_ops = ops.is_some();
    let cancel = api.cancel.clone();
    let app = routes::router(ops, api, config.token.as_ref())
        .into_make_service_with_connect_info::<listener::Peer>();
    let bounded = listener::Bounded::new(socket);
    tracker.spawn(async move {
        let served = axum::serve(bounded, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!("http: the listener stopped: {e}");
        }
    });
    if with_ops {
        tracing::info!(%addr, token = config.token.is_some(), "http: serving the page, /api/v1, /metrics, /healthz and /readyz");
    } else {
        tracing::info!(%addr, token = config.token.is_some(), "http: serving the page and /api/v1");
    }
    Ok(addr)
}
