//! The TLS client configuration: the system's roots, a `ca_file`, a pinned
//! certificate, and the handle on the certificate the server presents.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::{Fingerprint, Presented, TransportError, trust};

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

/// A TLS client stream over any byte stream, as [`handshake`] returns it.
pub type ClientTls<S> = tokio_rustls::client::TlsStream<S>;

/// The client handshake over an already connected byte stream (the
/// database's connection after its own TLS request), with `config`'s trust
/// rules and `host` checked against the certificate, within `timeout`.
/// `addr` names the server in errors.
pub async fn handshake<S>(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    addr: String,
    stream: S,
    timeout: std::time::Duration,
) -> Result<ClientTls<S>, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
        TransportError::ServerName {
            host: host.to_owned(),
        }
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(TransportError::from_handshake(addr, source)),
        Err(_) => Err(TransportError::ConnectTimeout {
            addr,
            after: timeout,
        }),
    }
}
