//! Byte streams for protocols other than IMAP: the token endpoint's HTTP
//! over a link, and the loopback listener `mailfeed auth` waits on.

/// A byte stream for another protocol (the OAuth2 token endpoint's HTTP).
pub trait AsyncIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncIo for T {}

/// A listener on 127.0.0.1 only: where the browser comes back to
/// `mailfeed auth` after signing in (RFC 8252's loopback redirect).
pub struct LoopbackListener(tokio::net::TcpListener);

impl LoopbackListener {
    /// Binds a free port on 127.0.0.1; returns the listener and its port.
    pub async fn bind() -> std::io::Result<(LoopbackListener, u16)> {
        let l = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let port = l.local_addr()?.port();
        Ok((LoopbackListener(l), port))
    }

    /// The next connection (the caller bounds its reads and writes).
    pub async fn accept(&self) -> std::io::Result<Box<dyn AsyncIo>> {
        let (s, _) = self.0.accept().await?;
        Ok(Box::new(s))
    }
}
