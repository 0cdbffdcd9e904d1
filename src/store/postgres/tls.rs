//! TLS to the database server: adapts the project's own TLS client
//! (`transport::handshake`, with the trust rules IMAP uses — system roots,
//! `store.ca_file`, a self-signed certificate as its own anchor, the host
//! name always checked) to the `postgres` client's `MakeTlsConnect`. Owns
//! no trust decision and no socket of its own: the client hands over its
//! connection after PostgreSQL's TLS request, and this wraps it. No
//! channel binding is offered (SCRAM runs without `-PLUS`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use postgres::Socket;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::{ClientTls, TransportError, handshake};

/// Makes a verified TLS connector for each host the client connects to.
#[derive(Clone)]
pub(crate) struct VerifiedTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// Bounds the handshake (the client's connect timeout covers only
    /// the TCP connect).
    pub(crate) timeout: Duration,
    /// `host:port`, for errors.
    pub(crate) addr: String,
}

/// One handshake with `host`.
pub(crate) struct HostTls {
    tls: VerifiedTls,
    host: String,
}

impl MakeTlsConnect<Socket> for VerifiedTls {
    type Stream = PgTlsStream;
    type TlsConnect = HostTls;
    type Error = TransportError;

    fn make_tls_connect(&mut self, host: &str) -> Result<HostTls, TransportError> {
        Ok(HostTls {
            tls: self.clone(),
            host: host.to_owned(),
        })
    }
}

impl TlsConnect<Socket> for HostTls {
    type Stream = PgTlsStream;
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream, TransportError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let HostTls { tls, host } = self;
            let s = handshake(tls.config, &host, tls.addr, stream, tls.timeout).await?;
            Ok(PgTlsStream(Box::new(s)))
        })
    }
}

/// The database connection inside TLS.
pub(crate) struct PgTlsStream(Box<ClientTls<Socket>>);

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}
