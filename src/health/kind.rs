//! Which kind of failure an error is, as `/metrics` counts them: enough to
//! tell an operator where to look (credentials, certificates, the network,
//! the server, the local database), no more.

use crate::session::SessionError;
use crate::sync::SyncError;
use crate::transport::TransportError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Login refused, no usable login method, the password unavailable.
    Auth,
    /// TLS handshake or certificate, STARTTLS missing or refused.
    Tls,
    /// Resolve, connect, timeouts, a connection closed or reset.
    Network,
    /// The server answered NO or BAD, said BYE, or broke the protocol.
    Server,
    /// The database refused a write.
    Store,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Auth,
        ErrorKind::Tls,
        ErrorKind::Network,
        ErrorKind::Server,
        ErrorKind::Store,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::Network => "network",
            ErrorKind::Server => "server",
            ErrorKind::Store => "store",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn of_session(e: &SessionError) -> ErrorKind {
        match e {
            SessionError::Transport(t) => match t {
                TransportError::Tls { .. }
                | TransportError::Certificate { .. }
                | TransportError::ServerName { .. }
                | TransportError::CaFile { .. } => ErrorKind::Tls,
                _ => ErrorKind::Network,
            },
            SessionError::Password(_)
            | SessionError::Token(_)
            | SessionError::OAuthRefused(_)
            | SessionError::AuthRefused(_)
            | SessionError::LoginFailed(_) => ErrorKind::Auth,
            SessionError::StartTlsUnavailable
            | SessionError::StartTlsRefused(_)
            | SessionError::TlsSetup { .. } => ErrorKind::Tls,
            SessionError::Closed { .. } => ErrorKind::Network,
            SessionError::Protocol(_)
            | SessionError::GreetingBye(_)
            | SessionError::CommandFailed { .. }
            | SessionError::Bye(_)
            | SessionError::Unexpected(_) => ErrorKind::Server,
        }
    }

    pub fn of_sync(e: &SyncError) -> ErrorKind {
        match e {
            SyncError::Session(s) => Self::of_session(s),
            SyncError::Store(_) => ErrorKind::Store,
            _ => ErrorKind::Server,
        }
    }
}
