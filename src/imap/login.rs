//! The way in, as pure flows: the greeting, and the login exchange (LOGIN,
//! AUTHENTICATE PLAIN with or without SASL-IR, and the OAuth2 AUTHENTICATE
//! of [`OAuthExchange`]). Fed the responses that arrive, they say what
//! happened and what bytes to answer with. No IO, no clock; where a secret
//! is registered for scrubbing is the driver's business.

use super::capabilities::{AuthMethod, Capabilities};
use super::command::Command;
use super::response::{Code, Response, Status, StatusText, Untagged, UntaggedStatus};
use super::sasl::{OAuthExchange, OAuthMechanism};
use crate::secret::Secret;

/// What the first response of a connection said.
#[derive(Debug, PartialEq, Eq)]
pub enum Greeted {
    /// `* OK`: log in next. Capabilities when the greeting carried them.
    LoginNeeded(Option<Capabilities>),
    /// `* PREAUTH`: already logged in.
    Preauthenticated(Option<Capabilities>),
    /// `* BYE`: the server refuses the connection (its text, with any code).
    Refused(String),
    /// Anything else: a protocol violation, described.
    Unexpected(String),
}

/// Reads the greeting.
pub fn greeting(r: Response) -> Greeted {
    match r {
        Response::Untagged(Untagged::Status(st, text)) => {
            let caps = match &text.code {
                Some(Code::Capability(c)) => Some(Capabilities::new(c)),
                _ => None,
            };
            match st {
                UntaggedStatus::Ok => Greeted::LoginNeeded(caps),
                UntaggedStatus::Preauth => Greeted::Preauthenticated(caps),
                UntaggedStatus::Bye => Greeted::Refused(text.shown()),
                _ => Greeted::Unexpected(format!(
                    "greeting was not OK, PREAUTH or BYE: {}",
                    text.text
                )),
            }
        }
        other => Greeted::Unexpected(format!("expected a greeting, got {other:?}")),
    }
}

/// What one response meant to a login in progress.
#[derive(Debug)]
pub enum LoginEvent {
    /// The server asked to continue: send `bytes` (they may hold a secret;
    /// `shown` is what observers may see, `None` for nothing).
    AnswerReady {
        bytes: Secret,
        shown: Option<&'static str>,
    },
    /// The server listed its capabilities on the way.
    CapabilitiesReceived(Capabilities),
    /// The server said BYE: the connection is about to close.
    ByeReceived(String),
    /// Logged in; the capabilities now valid, or `None` when they must be
    /// asked for again (RFC 3501: they may change after login).
    Succeeded(Option<Capabilities>),
    /// Refused, in the server's words (and the OAuth2 error challenge's).
    Refused(String),
    /// Nothing the login needs to act on.
    Ignored,
}

enum Method {
    Password {
        /// Answer a `+` with the PLAIN response (AUTHENTICATE PLAIN
        /// without SASL-IR); otherwise a `+` is cancelled.
        answer_plain: bool,
        username: String,
        password: Secret,
    },
    OAuth(OAuthExchange),
}

/// One login exchange, from the command it starts with to its tagged reply.
pub struct Login {
    method: Method,
}

impl Login {
    /// A password login by `method`; returns the flow and its command.
    pub fn password(method: AuthMethod, username: &str, password: &Secret) -> (Login, Command) {
        let cmd = match method {
            AuthMethod::PlainInitialResponse | AuthMethod::Plain => Command::AuthenticatePlain {
                username: username.to_owned(),
                password: password.clone(),
                initial_response: method == AuthMethod::PlainInitialResponse,
            },
            AuthMethod::Login => Command::Login {
                username: username.to_owned(),
                password: password.clone(),
            },
        };
        let flow = Login {
            method: Method::Password {
                answer_plain: method == AuthMethod::Plain,
                username: username.to_owned(),
                password: password.clone(),
            },
        };
        (flow, cmd)
    }

    /// An OAuth2 login with the SASL `response` already built; with SASL-IR
    /// it rides on the command.
    pub fn oauth(mechanism: OAuthMechanism, response: Secret, sasl_ir: bool) -> (Login, Command) {
        let (exchange, cmd) = OAuthExchange::start(mechanism, response, sasl_ir);
        (
            Login {
                method: Method::OAuth(exchange),
            },
            cmd,
        )
    }

    /// Feeds one response; `tag` is the tag the command went out with.
    pub fn received(&mut self, tag: &str, r: Response) -> LoginEvent {
        match r {
            Response::Continuation(text) => match &mut self.method {
                Method::Password {
                    answer_plain: true,
                    username,
                    password,
                } => LoginEvent::AnswerReady {
                    bytes: Secret::new(
                        String::from_utf8_lossy(&Command::sasl_plain(username, password))
                            .into_owned(),
                    ),
                    shown: Some("*** (SASL PLAIN response)"),
                },
                // Cancel an exchange that cannot be continued.
                Method::Password { .. } => LoginEvent::AnswerReady {
                    bytes: Secret::new("*\r\n"),
                    shown: None,
                },
                Method::OAuth(ex) => LoginEvent::AnswerReady {
                    bytes: ex.on_continuation(&text),
                    shown: Some("*** (SASL response)"),
                },
            },
            Response::Tagged {
                tag: t,
                status,
                text,
            } if t == tag => {
                if status != Status::Ok {
                    return LoginEvent::Refused(match &self.method {
                        Method::OAuth(ex) => match ex.failure() {
                            Some(f) => format!("{f}: {}", text.shown()),
                            None => text.shown(),
                        },
                        Method::Password { .. } => text.shown(),
                    });
                }
                LoginEvent::Succeeded(match text.code {
                    Some(Code::Capability(c)) => Some(Capabilities::new(c)),
                    _ => None,
                })
            }
            Response::Untagged(Untagged::Capability(c)) => {
                LoginEvent::CapabilitiesReceived(Capabilities::new(c))
            }
            Response::Untagged(Untagged::Status(UntaggedStatus::Bye, StatusText { text, .. })) => {
                LoginEvent::ByeReceived(text)
            }
            _ => LoginEvent::Ignored,
        }
    }
}
