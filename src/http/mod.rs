//! The HTTP edge for operators: `/metrics` (Prometheus), `/healthz`,
//! `/readyz`, on the listener `[http]` configures, inside `mailfeed run` on
//! its runtime. Routes read the health board and, through the store
//! boundary, the database; they never write, never touch SQL themselves and
//! never wait for a watcher.
//!
//! Files: `settings.rs` (`[http]`), `listener.rs` (bind, bounded accept),
//! `auth.rs` (bearer token), `state.rs` (what routes read), `routes.rs`
//! (the table of routes), `metrics.rs`, `health.rs`.

pub mod auth;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod state;

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::HttpConfig;
pub use state::{Configured, Ops};

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

/// Binds now (so a port in use fails start-up) and serves on `tracker`
/// until `cancel`. Returns the bound address (port 0 picks a free one).
pub async fn start(
    config: &HttpConfig,
    ops: Ops,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Result<SocketAddr, HttpError> {
    let socket = listener::bind(config.listen).await?;
    let addr = socket.local_addr().map_err(|source| HttpError::Bind {
        addr: config.listen,
        source,
    })?;
    let bearer = config.token.as_ref().map(auth::Bearer::new);
    let app = routes::router(ops, bearer).into_make_service_with_connect_info::<listener::Peer>();
    let bounded = listener::Bounded::new(socket);
    tracker.spawn(async move {
        let served = axum::serve(bounded, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!("http: the listener stopped: {e}");
        }
    });
    tracing::info!(%addr, "http: serving /metrics, /healthz and /readyz");
    Ok(addr)
}
