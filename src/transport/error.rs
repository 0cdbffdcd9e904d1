//! What can fail while moving bytes: resolving, connecting, the TLS
//! handshake (a refused pin in plain words), reading and writing in time.

use std::time::Duration;

use super::trust;

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

impl TransportError {
    /// The handshake's error; the verifier's own refusals (pin mismatch,
    /// expired pin) keep their words instead of rustls's debug form.
    pub(super) fn from_handshake(addr: String, source: std::io::Error) -> TransportError {
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
