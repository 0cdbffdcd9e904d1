//! The socket side of the HTTP edge: binding (before READY, so a port in
//! use fails start-up), and a listener that takes a permit *before* each
//! accept, so at most [`MAX_CONNECTIONS`] connections are served at once
//! and the rest wait in the kernel's backlog, costing the sync nothing. A
//! connection that goes quiet for [`IDLE_TIMEOUT`] is closed, so a silent
//! client cannot hold a permit for ever; and a request head must arrive
//! whole within [`HEAD_TIMEOUT`] of its first byte, so a client that
//! trickles a byte now and then (which the idle timeout alone would let
//! through) cannot hold one either.

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
/// How long a request head (request line and headers) may take to arrive,
/// counted from its first byte. Browsers, scrapers and scripts send a head
/// in one packet; this only ends clients that dribble.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Where a connection is in its request/response cycle, as far as the
/// bytes show: enough to time a request head without parsing HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first): only the idle timeout runs.
    Between,
    /// A head has begun and its blank line not yet arrived; `tail` holds
    /// how much of `\r\n\r\n` (or `\n\n`) the bytes so far end with.
    Head { tail: u8 },
    /// The head is complete: the body (bounded by the router) and the
    /// answer; the next byte written ends it.
    Answering,
}

impl Phase {
    /// The phase after `bytes` were read.
    fn read(self, bytes: &[u8]) -> Phase {
        let mut tail = match self {
            Phase::Answering => return Phase::Answering,
            Phase::Between if bytes.is_empty() => return Phase::Between,
            Phase::Between => 0,
            Phase::Head { tail } => tail,
        };
        for &b in bytes {
            // `tail` counts the line ends seen at the end, ignoring CRs: two
            // LFs with nothing but CRs between end the head.
            tail = match b {
                b'\n' if tail >= 1 => return Phase::Answering,
                b'\n' => 1,
                b'\r' => tail,
                _ => 0,
            };
        }
        Phase::Head { tail }
    }
}

/// An accepted connection holding its permit until it closes.
pub struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    quiet: Pin<Box<tokio::time::Sleep>>,
    phase: Phase,
    head_deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Connection {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit) -> Self {
        Connection {
            stream,
            _permit: permit,
            quiet: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
            phase: Phase::Between,
            head_deadline: Box::pin(tokio::time::sleep(HEAD_TIMEOUT)),
        }
    }

    fn heard(&mut self) {
        let next = tokio::time::Instant::now() + IDLE_TIMEOUT;
        self.quiet.as_mut().reset(next);
    }

    fn received(&mut self, bytes: &[u8]) {
        let next = self.phase.read(bytes);
        if self.phase == Phase::Between && matches!(next, Phase::Head { .. }) {
            let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
            self.head_deadline.as_mut().reset(deadline);
        }
        self.phase = next;
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if matches!(self.phase, Phase::Head { .. })
            && self.head_deadline.as_mut().poll(cx).is_ready()
        {
            return Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "http request head took too long",
            ));
        }
        self.quiet
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| io::Error::new(io::ErrorKind::TimedOut, "http connection idle too long"))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.heard();
                let this = &mut *self;
                this.received(&buf.filled()[before..]);
                Poll::Ready(r)
            }
            Poll::Pending => match self.timed_out(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
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
                if matches!(r, Ok(n) if n > 0) {
                    self.phase = Phase::Between;
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.timed_out(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_head_ends_at_its_blank_line_whatever_the_line_ends() {
        let whole = |bytes: &[u8]| Phase::Between.read(bytes);
        assert_eq!(
            whole(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Phase::Answering
        );
        assert_eq!(whole(b"GET / HTTP/1.1\nHost: a\n\n"), Phase::Answering);
        assert_eq!(
            whole(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Phase::Head { tail: 1 }
        );
        assert_eq!(whole(b""), Phase::Between);
        // Split at every byte, the same answer.
        let head = b"GET /api/v1/status HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..head.len() {
            let first = whole(&head[..cut]);
            let phase = if first == Phase::Answering {
                first
            } else {
                first.read(&head[cut..])
            };
            assert_eq!(phase, Phase::Answering, "cut at {cut}");
        }
        assert_eq!(Phase::Answering.read(b"body"), Phase::Answering);
    }

    async fn pair() -> (TcpStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let permit = Arc::new(Semaphore::new(1))
            .acquire_owned()
            .await
            .expect("permit");
        (client, Connection::new(server, permit))
    }

    /// A client that sends a byte of its head every few seconds keeps the
    /// idle timeout from firing, but not the head timeout.
    #[tokio::test(start_paused = true)]
    async fn a_dribbled_head_is_cut_off_after_the_head_timeout() {
        let (mut client, mut conn) = pair().await;
        let started = tokio::time::Instant::now();
        let dribble = tokio::spawn(async move {
            for b in b"GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if client.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            client
        });
        let mut buf = [0u8; 64];
        let err = loop {
            match conn.read(&mut buf).await {
                Ok(0) => panic!("the client did not close"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("head"), "{err}");
        let waited = started.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT + Duration::from_secs(3),
            "{waited:?}"
        );
        dribble.abort();
    }

    /// After an answer the connection may sit idle (keep-alive) and send
    /// its next head later: only the idle timeout counts between requests.
    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_may_wait_between_requests() {
        let (mut client, mut conn) = pair().await;
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .expect("send");
            let mut got = 0;
            while got < 27 {
                got += conn.read(&mut buf).await.expect("read head");
            }
            conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .expect("answer");
            tokio::time::sleep(HEAD_TIMEOUT + Duration::from_secs(5)).await;
        }
        assert_eq!(conn.phase, Phase::Between);
    }
}
