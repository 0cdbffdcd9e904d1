//! The listener: binds the configured address (before `run` reports READY,
//! so a port clash stops start-up with a clear error), serves the API and
//! the page on the process's tokio runtime behind [`super::auth`] with at
//! most [`MAX_CONNECTIONS`] connections open, and stops
//! with the process: open event streams end when it is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::auth::{self, Auth};
use super::{ApiState, HttpError, api_router, headers, web_router};
use crate::config::HttpConfig;
use crate::secret::Secret;

/// Connections served at once; further clients wait in the kernel's
/// backlog. Every connection is a file descriptor the IMAP side needs too.
pub const MAX_CONNECTIONS: usize = 256;

/// A TCP listener that takes a permit before accepting, so at most
/// [`MAX_CONNECTIONS`] are open; the permit goes with the connection.
struct Bounded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl axum::serve::Listener for Bounded {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        let permit = loop {
            // The semaphore is never closed; should it be, stop accepting.
            match self.permits.clone().acquire_owned().await {
                Ok(p) => break p,
                Err(_) => std::future::pending::<()>().await,
            }
        };
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            Counted {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A running listener.
pub struct Listening {
    pub addr: SocketAddr,
    state: ApiState,
    task: JoinHandle<()>,
}

/// The whole application: API and page behind the token check, with the
/// security headers on every answer (the 404 of unknown paths included).
pub fn app(state: ApiState, token: Option<&Secret>) -> Router {
    api_router(state.clone())
        .merge(web_router(state))
        .fallback(|| async {
            super::api::error_response(axum::http::StatusCode::NOT_FOUND, "no such page".into())
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Auth::new(token)),
            auth::require,
        ))
        .layer(axum::middleware::map_response(headers::security_headers))
}

/// Binds `config.listen` and starts serving.
pub async fn start(config: &HttpConfig, state: ApiState) -> Result<Listening, HttpError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| HttpError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: config.listen,
        source,
    })?;
    let router = app(state.clone(), config.token.as_ref());
    let cancel = state.cancel.clone();
    let listener = Bounded {
        inner: listener,
        permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!("HTTP listener stopped: {e}");
        }
    });
    tracing::info!(
        token = config.token.is_some(),
        "HTTP: serving the API and the page on http://{addr}/"
    );
    Ok(Listening { addr, state, task })
}

impl Listening {
    /// Ends event streams and stops accepting; waits a moment for answers
    /// in flight.
    pub async fn stop(self) {
        self.state.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// `run`'s listener, when `[http]` is configured: installs the process's
/// live conversation (so every connection opened from now on feeds it),
/// then binds — before READY, so a port clash fails start-up.
pub async fn start_for_run(config: &crate::config::Config) -> Result<Option<Listening>, HttpError> {
    let Some(http) = &config.http else {
        return Ok(None);
    };
    let conversation = crate::conversation::install(crate::conversation::Conversation::new());
    let archive = super::Archive::open(&config.store.path)?;
    start(http, ApiState::new(archive, Some(conversation)))
        .await
        .map(Some)
}
