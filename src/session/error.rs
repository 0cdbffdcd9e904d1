//! What can go wrong in a session, and the policy the service and `check`
//! read from it: permanent or not, the server asking to wait, a hint for
//! people.

use crate::config::ConfigError;
use crate::imap::{AuthRefusal, Code, ProtocolError};
use crate::oauth2::OAuth2Error;
use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Password(#[from] ConfigError),
    #[error(transparent)]
    Token(#[from] OAuth2Error),
    #[error("login failed: {0}")]
    OAuthRefused(String),
    #[error("server refused the connection: {0}")]
    GreetingBye(String),
    #[error("server does not offer STARTTLS; refusing to continue unencrypted")]
    StartTlsUnavailable,
    #[error("server refused STARTTLS ({0}); refusing to continue unencrypted")]
    StartTlsRefused(String),
    #[error("not logging in: {0}")]
    AuthRefused(#[from] AuthRefusal),
    #[error("login failed: {0}")]
    LoginFailed(String),
    #[error("{command} failed: {status} {text}")]
    CommandFailed {
        command: &'static str,
        status: &'static str,
        text: String,
        code: Option<Code>,
    },
    #[error("server closed the connection{}", if *.mid_response { " in the middle of a response" } else { "" })]
    Closed { mid_response: bool },
    #[error("server said BYE: {0}")]
    Bye(String),
    #[error("server violated the protocol: {0}")]
    Unexpected(String),
    #[error("account `{account}`: setting up TLS")]
    TlsSetup {
        account: String,
        #[source]
        source: TransportError,
    },
}

impl SessionError {
    /// Errors that will not go away by retrying soon (bad credentials, a
    /// refused security setting): the service backs off much longer.
    pub fn is_permanent(&self) -> bool {
        if self.server_asks_to_wait() {
            return false;
        }
        matches!(
            self,
            SessionError::LoginFailed(_)
                | SessionError::AuthRefused(_)
                | SessionError::StartTlsUnavailable
                | SessionError::StartTlsRefused(_)
                | SessionError::Password(_)
                | SessionError::OAuthRefused(_)
        ) || matches!(self, SessionError::Token(t) if t.is_permanent())
            || matches!(self, SessionError::Transport(t) if t.is_untrusted_certificate())
    }

    /// True when the server asked clients to stay away for a while
    /// (`[UNAVAILABLE]`, `[THROTTLED]`, `[LIMIT]`, `[OVERQUOTA]` on a BYE or
    /// NO, or Exchange Online's wordings without a code): a reason to back
    /// off, not a fault of the account or the folder.
    pub fn server_asks_to_wait(&self) -> bool {
        const CODES: [&str; 4] = ["UNAVAILABLE", "THROTTLED", "LIMIT", "OVERQUOTA"];
        const PHRASES: [&str; 2] = [
            "request is throttled",
            "user is authenticated but not connected",
        ];
        let worded = |t: &str| {
            let t = t.to_ascii_lowercase();
            PHRASES.iter().any(|p| t.contains(p))
        };
        match self {
            SessionError::Bye(text)
            | SessionError::GreetingBye(text)
            | SessionError::LoginFailed(text)
            | SessionError::OAuthRefused(text) => {
                CODES.iter().any(|c| text.starts_with(&format!("[{c}]"))) || worded(text)
            }
            SessionError::CommandFailed { code, text, .. } => {
                matches!(code, Some(Code::Other(c, _)) if CODES.contains(&c.as_str()))
                    || worded(text)
            }
            _ => false,
        }
    }

    /// A short hint for the common failures, shown by `check`.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            SessionError::LoginFailed(_) => {
                "check `username` and the password source; the server rejected them"
            }
            SessionError::OAuthRefused(_) => {
                "the server refused a fresh access token: check `username`, the scope the token was granted for, and that IMAP is enabled for the mailbox"
            }
            SessionError::Token(
                OAuth2Error::InvalidGrant { .. } | OAuth2Error::NoRefreshToken { .. },
            ) => "run `mailfeed auth ACCOUNT` to sign in again",
            SessionError::Transport(t) if t.is_wrong_host_certificate() => {
                "the certificate is for another host name: set `host` to a name the certificate lists"
            }
            SessionError::Transport(t) if t.is_pin_refused() => {
                "the server's certificate is not the pinned one (or has expired): if it was renewed, confirm the new fingerprint `mailfeed check` shows and update `tls_fingerprint`"
            }
            SessionError::Transport(t) if t.is_untrusted_certificate() => {
                "the server's certificate is not trusted: install its CA in the system store, set `ca_file` to its PEM, or pin it with the `tls_fingerprint` line `mailfeed check` prints"
            }
            SessionError::Transport(TransportError::Resolve { .. }) => {
                "check `host`: the name does not resolve"
            }
            SessionError::Transport(TransportError::Connect { .. }) => {
                "check `host` and `port`, and that the server is running and reachable"
            }
            SessionError::Transport(TransportError::Tls { .. }) => {
                "TLS failed: check `security` (\"tls\" for port 993, \"starttls\" for 143) and the certificate"
            }
            SessionError::StartTlsUnavailable | SessionError::StartTlsRefused(_) => {
                "the server will not encrypt this port: use `security = \"tls\"` with port 993, or fix the server"
            }
            SessionError::AuthRefused(AuthRefusal::NotEncrypted) => {
                "use `security = \"tls\"` or \"starttls\"; plaintext needs `allow_plaintext = true`"
            }
            SessionError::CommandFailed {
                command: "EXAMINE", ..
            } => {
                "the folder does not exist or cannot be opened: compare `folders` with the LIST output"
            }
            _ => return None,
        })
    }
}
