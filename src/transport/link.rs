//! One connection to a server (`Link`): TCP connect with keepalive, the TLS
//! handshake, and reads and writes each within a timeout, through the
//! deflate layer once COMPRESS is on.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::deflate::{Deflate, MAX_DEFLATE_INPUT};
use super::{AsyncIo, TransportError};

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Moved out during a TLS upgrade; never read or written.
    Closed,
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "connection already closed",
    )
}

/// One connection to a server, encrypted or not.
pub struct Link {
    stream: Stream,
    addr: String,
    timeout: Duration,
    deflate: Option<Box<Deflate>>,
}

impl Link {
    /// Opens a TCP connection (keepalive on, Nagle off) within `timeout`.
    pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<Link, TransportError> {
        let addr = format!("{host}:{port}");
        let addrs: Vec<std::net::SocketAddr> =
            match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(a)) => a.collect(),
                Ok(Err(source)) => {
                    return Err(TransportError::Resolve {
                        host: host.to_owned(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(TransportError::ConnectTimeout {
                        addr,
                        after: timeout,
                    });
                }
            };
        // Every address is tried: a host whose first address (often IPv6)
        // leads nowhere must still be reached through the next one.
        let mut last_err = None;
        let mut timed_out = false;
        for sa in addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(sa)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    set_keepalive(&tcp);
                    return Ok(Link {
                        stream: Stream::Plain(tcp),
                        addr,
                        timeout,
                        deflate: None,
                    });
                }
                Ok(Err(e)) => last_err = Some(e),
                Err(_) => timed_out = true,
            }
        }
        if timed_out && last_err.is_none() {
            return Err(TransportError::ConnectTimeout {
                addr,
                after: timeout,
            });
        }
        Err(TransportError::Connect {
            addr,
            source: last_err.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "host has no addresses")
            }),
        })
    }

    /// Runs the TLS handshake on this connection (implicit TLS, or after the
    /// server accepted STARTTLS), verifying the certificate for `host`.
    pub async fn start_tls(
        self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<Link, TransportError> {
        let tcp = match self.stream {
            Stream::Plain(t) => t,
            Stream::Tls(_) => return Ok(self),
            Stream::Closed => return Err(TransportError::Io(closed())),
        };
        let name =
            ServerName::try_from(host.to_owned()).map_err(|_| TransportError::ServerName {
                host: host.to_owned(),
            })?;
        let connector = TlsConnector::from(config);
        let tls = match tokio::time::timeout(self.timeout, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(TransportError::from_handshake(self.addr, source)),
            Err(_) => {
                return Err(TransportError::ConnectTimeout {
                    addr: self.addr,
                    after: self.timeout,
                });
            }
        };
        Ok(Link {
            stream: Stream::Tls(Box::new(tls)),
            addr: self.addr,
            timeout: self.timeout,
            deflate: None,
        })
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts compressing both directions (after the server accepted
    /// `COMPRESS DEFLATE`).
    pub fn start_deflate(&mut self) {
        self.deflate = Some(Box::new(Deflate::new()));
    }

    /// Reads what has arrived, waiting at most `limit`; 0 when the server
    /// closed the connection.
    pub async fn read_within(
        &mut self,
        buf: &mut [u8],
        limit: Duration,
    ) -> Result<usize, TransportError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(d) = self.deflate.as_mut()
                && (d.end > d.start || d.maybe_more)
            {
                let n = d.inflate(buf)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (stream, deflate) = (&mut self.stream, &mut self.deflate);
            let target: &mut [u8] = match deflate.as_mut() {
                Some(d) => {
                    if d.end == d.input.len() {
                        if d.start > 0 {
                            d.input.copy_within(d.start..d.end, 0);
                            d.end -= d.start;
                            d.start = 0;
                        } else if d.input.len() < MAX_DEFLATE_INPUT {
                            // A full buffer that inflated to nothing: grow it.
                            d.input.resize(d.input.len() * 2, 0);
                        } else {
                            return Err(TransportError::Io(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "compressed data that inflates to nothing",
                            )));
                        }
                    }
                    &mut d.input[d.end..]
                }
                None => &mut *buf,
            };
            let fut = async {
                match stream {
                    Stream::Plain(s) => s.read(target).await,
                    Stream::Tls(s) => s.read(target).await,
                    Stream::Closed => Err(closed()),
                }
            };
            let n = match tokio::time::timeout(left, fut).await {
                Ok(r) => r?,
                Err(_) => return Err(TransportError::ReadTimeout { after: limit }),
            };
            match self.deflate.as_mut() {
                None => return Ok(n),
                Some(_) if n == 0 => return Ok(0),
                Some(d) => d.end += n,
            }
        }
    }

    /// Writes and flushes all of `data` within the timeout.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let bytes: &[u8] = match self.deflate.as_mut() {
            Some(d) => {
                d.deflate(data)?;
                &d.output
            }
            None => data,
        };
        let stream = &mut self.stream;
        let fut = async {
            match stream {
                Stream::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Closed => Err(closed()),
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(TransportError::WriteTimeout {
                after: self.timeout,
            }),
        }
    }

    /// Closes the connection politely (TLS close_notify), ignoring errors:
    /// the peer may already be gone.
    pub async fn shutdown(&mut self) {
        let fut = async {
            match &mut self.stream {
                Stream::Plain(s) => s.shutdown().await,
                Stream::Tls(s) => s.shutdown().await,
                Stream::Closed => Ok(()),
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), fut).await;
    }
}

/// TCP keepalive so a connection silently dropped by a NAT is noticed even
/// when mailfeed is only waiting (IDLE).
fn set_keepalive(tcp: &TcpStream) {
    let sock = socket2::SockRef::from(tcp);
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(15));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let ka = ka.with_retries(4);
    let _ = sock.set_tcp_keepalive(&ka);
}

impl Link {
    /// The connected stream itself, for a protocol that does its own
    /// framing (HTTP); reads and writes are then the caller's to bound.
    pub fn into_io(self) -> Result<Box<dyn AsyncIo>, TransportError> {
        match self.stream {
            Stream::Plain(s) => Ok(Box::new(s)),
            Stream::Tls(s) => Ok(s),
            Stream::Closed => Err(TransportError::Io(closed())),
        }
    }

    /// A link that is not connected, used only while a real one is moved out
    /// for a TLS upgrade; any IO on it fails.
    pub(crate) fn placeholder() -> Link {
        Link {
            stream: Stream::Closed,
            addr: String::new(),
            timeout: Duration::from_secs(1),
            deflate: None,
        }
    }
}
