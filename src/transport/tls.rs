//! The TLS client configuration: the system's roots, a `ca_file`, a pinned
//! certificate, and the handle on the certificate the server presents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

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
    let base = trust_base(ca_file)?;
    let provider = base.provider.clone();
    let anchors = base.anchors.clone();
    let chain: trust::Chain = Arc::new(move || base.webpki());
    let presented = Presented::default();
    let verifier = trust::Verifier::new(
        chain,
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

/// What every account naming the same `ca_file` (or none) trusts: built once
/// and shared. The system's roots parse into some 70 KiB, and a process that
/// watches two thousand accounts would otherwise hold two copies per account
/// (the IMAP server's and the token endpoint's).
struct TrustBase {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The chain verifier over the system's roots and `anchors`, built on
    /// first use (reading the system's roots takes milliseconds, a
    /// noticeable part of a short `sync` over plain text or to a
    /// self-signed server that never needs them).
    webpki: OnceLock<Option<Arc<rustls::client::WebPkiServerVerifier>>>,
    /// The `ca_file`'s certificates, also trusted as themselves.
    anchors: Vec<CertificateDer<'static>>,
}

impl TrustBase {
    fn webpki(&self) -> Option<Arc<rustls::client::WebPkiServerVerifier>> {
        self.webpki
            .get_or_init(|| {
                let mut roots = system_roots().clone();
                for cert in &self.anchors {
                    // A server certificate that webpki cannot use as a root
                    // (no CA:TRUE, or otherwise odd) is still trusted as
                    // itself, by the verifier's own check.
                    let _ = roots.add(cert.clone());
                }
                if roots.is_empty() {
                    return None;
                }
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .inspect_err(|e| tracing::warn!("TLS chain verification unavailable: {e}"))
                .ok()
            })
            .clone()
    }
}

/// A `ca_file` as last read: a reload after the file changed reads it again.
type FileStamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The system's trust anchors, read once per process (as a daemon reads
/// them at start; a CA bundle update takes a restart).
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A broken system certificate must not stop the others from working.
            let _ = roots.add(cert);
        }
        roots
    })
}

fn trust_base(ca_file: Option<&Path>) -> Result<Arc<TrustBase>, TransportError> {
    type Bases = HashMap<Option<PathBuf>, (FileStamp, Arc<TrustBase>)>;
    static BASES: OnceLock<Mutex<Bases>> = OnceLock::new();
    let key = ca_file.map(Path::to_path_buf);
    let now = ca_file.and_then(stamp);
    let bases = BASES.get_or_init(Mutex::default);
    if let Some((seen, base)) = bases.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
        && *seen == now
    {
        return Ok(base.clone());
    }
    let base = Arc::new(build_trust_base(ca_file)?);
    bases
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, (now, base.clone()));
    Ok(base)
}

fn build_trust_base(ca_file: Option<&Path>) -> Result<TrustBase, TransportError> {
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
        anchors = certs;
    }
    Ok(TrustBase {
        provider: Arc::new(rustls::crypto::ring::default_provider()),
        webpki: OnceLock::new(),
        anchors,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> PathBuf {
        let out = dir.join(name);
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        out
    }

    #[test]
    fn accounts_naming_the_same_trust_share_it_until_the_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = self_signed(dir.path(), "one");
        let a = trust_base(Some(&ca)).expect("first");
        let b = trust_base(Some(&ca)).expect("second");
        assert!(Arc::ptr_eq(&a, &b), "one trust base per ca_file");
        // Nothing read the roots yet: only a chain to verify does.
        let _config = tls_setup(Some(&ca), None).expect("setup");
        assert!(
            a.webpki.get().is_none(),
            "the chain verifier is built lazily"
        );
        assert!(a.webpki().is_some(), "the ca_file alone is a root");
        assert!(a.webpki.get().is_some());
        assert!(Arc::ptr_eq(
            &trust_base(None).expect("system"),
            &trust_base(None).expect("system again")
        ));

        // A reload after the CA file was replaced reads the new one.
        let other = self_signed(dir.path(), "other-and-longer");
        std::fs::copy(&other, &ca).expect("replace");
        let c = trust_base(Some(&ca)).expect("after the change");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.anchors.len(), 1);
        assert_ne!(a.anchors[0], c.anchors[0]);
    }
}
