//! Which server certificates are trusted: the system's roots and a
//! `ca_file` checked by webpki as usual; *plus* a certificate that is
//! byte-identical to one in `ca_file` (the self-hosted server that is its
//! own trust anchor, whatever its basicConstraints say; its host name and
//! dates are still checked); *or*, with `tls_fingerprint`, exactly the one
//! pinned certificate (dates checked, no CA involved). The certificate the
//! server presented is kept for `check` to describe. No sockets here.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

use super::certificate::{CertificateInfo, Fingerprint, format_utc};

/// The end-entity certificate of the last handshake, for `check`.
#[derive(Clone, Default, Debug)]
pub struct Presented(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl Presented {
    /// The last certificate a server presented, described.
    pub fn last(&self) -> Option<CertificateInfo> {
        let guard = self.0.lock().ok()?;
        guard.as_ref().and_then(|c| CertificateInfo::parse(c))
    }

    fn record(&self, cert: &CertificateDer<'_>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(cert.clone().into_owned());
        }
    }
}

/// Why a pinned or self-anchored certificate was refused; shown after
/// "invalid peer certificate: ".
#[derive(Debug, thiserror::Error)]
pub(crate) enum PinError {
    #[error(
        "the server's certificate ({presented}) is not the one pinned by `tls_fingerprint` ({pinned})"
    )]
    Mismatch {
        presented: Fingerprint,
        pinned: Fingerprint,
    },
    #[error(
        "the certificate pinned by `tls_fingerprint` expired on {0}; the server needs a new one (and the pin its fingerprint)"
    )]
    Expired(String),
    #[error("the certificate is not valid before {0}")]
    NotYetValid(String),
    #[error("the server's certificate cannot be read")]
    Unreadable,
}

fn refuse(e: PinError) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Chain verification against the roots, built on its first use: the
/// system's roots are read only by a process that meets a certificate
/// neither pinned nor in `ca_file` (a plain-text `sync` reads none). `None`
/// when there are no roots at all.
pub(super) type Chain = Arc<dyn Fn() -> Option<Arc<WebPkiServerVerifier>> + Send + Sync>;

pub(super) struct Verifier {
    chain: Chain,
    algorithms: WebPkiSupportedAlgorithms,
    /// Certificates of `ca_file`, accepted as the server's own certificate.
    anchors: Vec<CertificateDer<'static>>,
    pin: Option<Fingerprint>,
    presented: Presented,
}

impl Verifier {
    pub(super) fn new(
        chain: Chain,
        algorithms: WebPkiSupportedAlgorithms,
        anchors: Vec<CertificateDer<'static>>,
        pin: Option<Fingerprint>,
        presented: Presented,
    ) -> Verifier {
        Verifier {
            chain,
            algorithms,
            anchors,
            pin,
            presented,
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("anchors", &self.anchors.len())
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// Checks the dates of a certificate accepted without webpki's chain
/// building (which would have checked them).
fn check_dates(end_entity: &[u8], now: UnixTime, pinned: bool) -> Result<(), Error> {
    let info = CertificateInfo::parse(end_entity).ok_or_else(|| refuse(PinError::Unreadable))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now > info.not_after {
        if pinned {
            return Err(refuse(PinError::Expired(format_utc(info.not_after))));
        }
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    if now < info.not_before {
        return Err(refuse(PinError::NotYetValid(format_utc(info.not_before))));
    }
    Ok(())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.presented.record(end_entity);
        if let Some(pin) = self.pin {
            // A pin names exactly one certificate: nothing else is trusted,
            // and no CA or host name is involved.
            let presented = Fingerprint::of(end_entity);
            if presented != pin {
                return Err(refuse(PinError::Mismatch {
                    presented,
                    pinned: pin,
                }));
            }
            check_dates(end_entity, now, true)?;
            return Ok(ServerCertVerified::assertion());
        }
        if self
            .anchors
            .iter()
            .any(|a| a.as_ref() == end_entity.as_ref())
        {
            // The server is its own trust anchor: what webpki would refuse
            // as "CA used as end entity" is what the user chose to trust.
            // The name must still match, so a stolen copy of the file
            // trusts nothing for another host.
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            check_dates(end_entity, now, false)?;
            return Ok(ServerCertVerified::assertion());
        }
        match (self.chain)() {
            Some(w) => {
                w.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
