//! The socket side of the HTTP edge: binding (before READY, so a port in
//! use fails start-up), and a listener that takes a permit *before* each
//! accept, so at most [`MAX_CONNECTIONS`] connections are served at once
//! and the rest wait in the kernel's backlog, costing the sync nothing. A
//! connection that goes quiet for [`IDLE_TIMEOUT`] is closed, so a silent
//! client cannot hold a permit for ever.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::HttpError;

/// Connections served at once: room for the page's live event streams
/// ([`super::api::MAX_STREAMS`]) plus the API's and the scrapers' requests
/// beside them; every connection is a file descriptor the IMAP side needs
/// too, so the rest wait in the backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection may send and receive nothing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections the kernel may hold waiting for an accept (capped by
/// `net.core.somaxconn`): a burst of scrapes waits there for a permit.
const BACKLOG: u32 = 4096;

/// Binds `addr` now; the error names the address and says what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    let err = |source| HttpError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)
}

/// A listener that serves at most [`MAX_CONNECTIONS`] at once.
pub struct Bounded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl Bounded {
    pub fn new(inner: TcpListener) -> Self {
        Bounded {
            inner,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            // The semaphore is never closed, so this only waits.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                std::future::pending::<()>().await;
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return (Connection::new(stream, permit), peer);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("http: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection holding its permit until it closes.
pub struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    quiet: Pin<Box<tokio::time::Sleep>>,
}

impl Connection {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit) -> Self {
        Connection {
            stream,
            _permit: permit,
            quiet: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
        }
    }

    fn heard(&mut self) {
        let next = tokio::time::Instant::now() + IDLE_TIMEOUT;
        self.quiet.as_mut().reset(next);
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.quiet.as_mut().poll(cx).is_ready()
    }
}

fn quiet_too_long() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "http connection idle too long")
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.heard();
                Poll::Ready(r)
            }
            Poll::Pending if self.timed_out(cx) => Poll::Ready(Err(quiet_too_long())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.heard();
                Poll::Ready(r)
            }
            Poll::Pending if self.timed_out(cx) => Poll::Ready(Err(quiet_too_long())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The peer's address, for handlers and logs.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Bounded>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Bounded>) -> Self {
        Peer(*stream.remote_addr())
    }
}
