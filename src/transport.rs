//! Moves bytes between a socket and the protocol core: TCP connect with
//! keepalive, implicit TLS or a STARTTLS upgrade (tokio-rustls, ring), and a
//! timeout on every connect, read and write. No IMAP logic and no SQL here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve host `{host}`: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
    #[error("reading CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("no read from the server for {after:?} (timeout)")]
    ReadTimeout { after: Duration },
    #[error("writing to the server timed out after {after:?}")]
    WriteTimeout { after: Duration },
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// True when the certificate is valid but names another host.
    pub fn is_wrong_host_certificate(&self) -> bool {
        match self {
            TransportError::Tls { source, .. } => {
                let text = source.to_string();
                text.contains("NotValidForName") || text.contains("not valid for name")
            }
            _ => false,
        }
    }

    /// True when the server's certificate was not trusted (a common setup
    /// mistake, which deserves its own hint).
    pub fn is_untrusted_certificate(&self) -> bool {
        match self {
            TransportError::Tls { source, .. } => {
                let text = source.to_string();
                text.contains("invalid peer certificate") || text.contains("UnknownIssuer")
            }
            _ => false,
        }
    }
}

/// Builds the TLS client configuration: the system's trust anchors plus, when
/// configured, the certificates of a PEM `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken system certificate must not stop the others from working.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| TransportError::CaFile {
                path: shown.clone(),
                message: e.to_string(),
            })?
            .collect::<Result<_, _>>()
            .map_err(|e| TransportError::CaFile {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TransportError::CaFile {
                path: shown,
                message: "no PEM certificate found in the file".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| TransportError::CaFile {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::CaFile {
            path: "(TLS setup)".into(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

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
        let mut last_err = None;
        for sa in addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(sa)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    set_keepalive(&tcp);
                    return Ok(Link {
                        stream: Stream::Plain(tcp),
                        addr,
                        timeout,
                    });
                }
                Ok(Err(e)) => last_err = Some(e),
                Err(_) => {
                    return Err(TransportError::ConnectTimeout {
                        addr,
                        after: timeout,
                    });
                }
            }
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
            Ok(Err(source)) => {
                return Err(TransportError::Tls {
                    addr: self.addr,
                    source,
                });
            }
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

    /// Reads what has arrived, waiting at most the configured timeout.
    /// Returns 0 when the server closed the connection.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let t = self.timeout;
        self.read_within(buf, t).await
    }

    /// Like [`Link::read`] with an explicit limit (IDLE waits longer).
    pub async fn read_within(
        &mut self,
        buf: &mut [u8],
        limit: Duration,
    ) -> Result<usize, TransportError> {
        let fut = async {
            match &mut self.stream {
                Stream::Plain(s) => s.read(buf).await,
                Stream::Tls(s) => s.read(buf).await,
                Stream::Closed => Err(closed()),
            }
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(TransportError::ReadTimeout { after: limit }),
        }
    }

    /// Writes and flushes all of `data` within the timeout.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let fut = async {
            match &mut self.stream {
                Stream::Plain(s) => {
                    s.write_all(data).await?;
                    s.flush().await
                }
                Stream::Tls(s) => {
                    s.write_all(data).await?;
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
    /// A link that is not connected, used only while a real one is moved out
    /// for a TLS upgrade; any IO on it fails.
    pub(crate) fn placeholder() -> Link {
        Link {
            stream: Stream::Closed,
            addr: String::new(),
            timeout: Duration::from_secs(1),
        }
    }
}
