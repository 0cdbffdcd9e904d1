//! Moves bytes between a socket and the protocol core: TCP connect with
//! keepalive, implicit TLS or a STARTTLS upgrade (tokio-rustls, ring), and a
//! timeout on every connect, read and write. No IMAP logic and no SQL here.
//!
//! `link.rs` is one connection (`Link`), `deflate.rs` its COMPRESS=DEFLATE
//! layer, `tls.rs` the client configuration and the handshake over any
//! byte stream (the database's too), `trust.rs` which certificates
//! are trusted, `certificate.rs` what a certificate says, `loopback.rs` the
//! listener of `mailfeed auth`, `error.rs` what fails.

pub mod certificate;
mod deflate;
mod error;
mod link;
mod loopback;
mod tls;
pub mod trust;

pub use certificate::Fingerprint;
pub use error::TransportError;
pub use link::Link;
pub use loopback::{AsyncIo, LoopbackListener};
pub use tls::{ClientTls, handshake, tls_config, tls_setup};
pub use trust::Presented;
