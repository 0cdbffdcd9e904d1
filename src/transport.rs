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

pub mod certificate;
pub mod trust;

pub use certificate::{CertificateInfo, Fingerprint};
pub use trust::Presented;

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
    /// A pinned or self-anchored certificate refused, in plain words.
    #[error("TLS handshake with {addr} failed: {message}")]
    Certificate { addr: String, message: String },
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

/// Compressed input held while looking for a complete deflate block. A
/// valid stream yields output long before this; a server that sends more
/// without any is broken or hostile.
const MAX_DEFLATE_INPUT: usize = 1 << 20;

impl TransportError {
    /// The handshake's error; the verifier's own refusals (pin mismatch,
    /// expired pin) keep their words instead of rustls's debug form.
    fn from_handshake(addr: String, source: std::io::Error) -> TransportError {
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) = source
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            && let Some(pin) = o.0.downcast_ref::<trust::PinError>()
        {
            return TransportError::Certificate {
                addr,
                message: pin.to_string(),
            };
        }
        TransportError::Tls { addr, source }
    }

    /// True when a pinned certificate (`tls_fingerprint`) was refused.
    pub fn is_pin_refused(&self) -> bool {
        matches!(self, TransportError::Certificate { .. })
    }

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
            TransportError::Certificate { .. } => true,
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
    Ok(tls_setup(ca_file, None)?.0)
}

/// Like [`tls_config`], with an optional pinned certificate
/// (`tls_fingerprint`), and a handle on the certificate the server presents
/// (for `check`). See [`trust`] for what is accepted.
pub fn tls_setup(
    ca_file: Option<&Path>,
    pin: Option<Fingerprint>,
) -> Result<(Arc<rustls::ClientConfig>, Presented), TransportError> {
    let setup_error = |message: String| TransportError::CaFile {
        path: "(TLS setup)".into(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken system certificate must not stop the others from working.
        let _ = roots.add(cert);
    }
    let mut anchors = Vec::new();
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
        for cert in &certs {
            // A server certificate that webpki cannot use as a root (no
            // CA:TRUE, or otherwise odd) is still trusted as itself.
            let _ = roots.add(cert.clone());
        }
        anchors = certs;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = if roots.is_empty() {
        None
    } else {
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| setup_error(e.to_string()))?,
        )
    };
    let presented = Presented::default();
    let verifier = trust::Verifier::new(
        webpki,
        provider.signature_verification_algorithms,
        anchors,
        pin,
        presented.clone(),
    );
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), presented))
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
    deflate: Option<Box<Deflate>>,
}

/// COMPRESS=DEFLATE (RFC 4978): raw deflate both ways, each write flushed
/// with a sync flush so the server sees whole commands.
struct Deflate {
    compress: flate2::Compress,
    decompress: flate2::Decompress,
    /// Compressed bytes read from the socket, not yet inflated.
    input: Vec<u8>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    /// The last inflate filled the caller's buffer: the inflater may hold
    /// more output even with no input left.
    maybe_more: bool,
}

impl Deflate {
    fn new() -> Deflate {
        Deflate {
            compress: flate2::Compress::new(flate2::Compression::fast(), false),
            decompress: flate2::Decompress::new(false),
            input: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            output: Vec::new(),
            maybe_more: false,
        }
    }

    /// Inflates buffered input into `buf`; returns bytes produced (0 when
    /// more input is needed).
    fn inflate(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let before_in = self.decompress.total_in();
        let before_out = self.decompress.total_out();
        let status = self
            .decompress
            .decompress(
                &self.input[self.start..self.end],
                buf,
                flate2::FlushDecompress::Sync,
            )
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        // RFC 4978 has the stream last as long as the connection: a final
        // block means nothing after it could ever be read, so say so now
        // rather than buffering the rest until a timeout.
        if status == flate2::Status::StreamEnd {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server ended its compressed stream",
            ));
        }
        self.start += (self.decompress.total_in() - before_in) as usize;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let n = (self.decompress.total_out() - before_out) as usize;
        self.maybe_more = n == buf.len();
        Ok(n)
    }

    /// Deflates `data` with a sync flush into `self.output`.
    fn deflate(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.output.clear();
        self.output.reserve(data.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if self.output.capacity() - self.output.len() < 64 {
                self.output.reserve(self.output.capacity().max(1024));
            }
            let before = self.compress.total_in();
            self.compress
                .compress_vec(
                    &data[consumed..],
                    &mut self.output,
                    flate2::FlushCompress::Sync,
                )
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            consumed += (self.compress.total_in() - before) as usize;
            // Done when all input is taken and the flush left room to spare
            // (a full buffer may hold more flushed output).
            if consumed == data.len() && self.output.capacity() - self.output.len() >= 64 {
                return Ok(());
            }
        }
    }
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

    /// Reads what has arrived, waiting at most the configured timeout.
    /// Returns 0 when the server closed the connection.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let t = self.timeout;
        self.read_within(buf, t).await
    }

    /// Starts compressing both directions (after the server accepted
    /// `COMPRESS DEFLATE`).
    pub fn start_deflate(&mut self) {
        self.deflate = Some(Box::new(Deflate::new()));
    }

    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Like [`Link::read`] with an explicit limit (IDLE waits longer).
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

#[cfg(test)]
mod tests {
    use super::Deflate;

    #[test]
    fn deflate_round_trips_in_pieces() {
        let mut a = Deflate::new();
        let mut b = Deflate::new();
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\r\n").into_bytes())
            .collect();
        let mut got = Vec::new();
        for chunk in text.chunks(70_000) {
            a.deflate(chunk).expect("deflate");
            // Feed the compressed bytes in small pieces, as a socket would.
            for piece in a.output.chunks(1000) {
                b.input[b.end..b.end + piece.len()].copy_from_slice(piece);
                b.end += piece.len();
                let mut out = vec![0u8; 4096];
                loop {
                    let n = b.inflate(&mut out).expect("inflate");
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&out[..n]);
                }
            }
        }
        assert!(got == text);
    }

    #[test]
    fn a_finished_deflate_stream_is_an_error_not_a_wait() {
        // A raw deflate stream with its final block: what a server sends if
        // it ends compression, after which nothing more can be read.
        let mut z = flate2::Compress::new(flate2::Compression::default(), false);
        let mut fin = Vec::with_capacity(256);
        z.compress_vec(b"* OK done\r\n", &mut fin, flate2::FlushCompress::Finish)
            .expect("compress");
        let mut b = Deflate::new();
        b.input[..fin.len()].copy_from_slice(&fin);
        b.end = fin.len();
        let mut out = vec![0u8; 4096];
        let err = b.inflate(&mut out).expect_err("stream end");
        assert!(
            err.to_string().contains("ended its compressed stream"),
            "{err}"
        );
    }
}
