//! What the server said it can do, and the choices that follow from it
//! (how to authenticate, whether to use LITERAL+, IDLE, QRESYNC, ...).

use std::collections::BTreeSet;

/// The server's capability atoms, upper-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    atoms: BTreeSet<String>,
}

impl Capabilities {
    pub fn new<S: AsRef<str>>(atoms: impl IntoIterator<Item = S>) -> Self {
        Capabilities {
            atoms: atoms
                .into_iter()
                .map(|a| a.as_ref().to_ascii_uppercase())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }

    pub fn has(&self, atom: &str) -> bool {
        self.atoms.contains(&atom.to_ascii_uppercase())
    }

    pub fn literal_plus(&self) -> bool {
        self.has("LITERAL+")
    }

    pub fn idle(&self) -> bool {
        self.has("IDLE")
    }

    /// RFC 5465: one connection can watch many mailboxes.
    pub fn notify(&self) -> bool {
        self.has("NOTIFY")
    }

    pub fn qresync(&self) -> bool {
        self.has("QRESYNC") && self.has("ENABLE")
    }

    pub fn condstore(&self) -> bool {
        self.has("CONDSTORE") || self.has("QRESYNC")
    }

    pub fn esearch(&self) -> bool {
        self.has("ESEARCH")
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.atoms.iter().map(String::as_str)
    }
}

/// How to log in, given what the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// AUTHENTICATE PLAIN, with the response on the command line (SASL-IR).
    PlainInitialResponse,
    /// AUTHENTICATE PLAIN, the response after a continuation request.
    Plain,
    Login,
}

/// Why mailfeed refuses to log in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    #[error("server advertises LOGINDISABLED: it refuses passwords on this connection")]
    LoginDisabled,
    #[error("the connection is not encrypted and the configuration does not allow plaintext")]
    NotEncrypted,
    #[error("`auth = \"oauth2\"` but the server offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2")]
    NoOAuthMechanism,
}

/// Prefers SASL PLAIN (no quoting pitfalls) and falls back to LOGIN; refuses
/// on `LOGINDISABLED`, and refuses on a clear-text link unless allowed.
pub fn choose_auth(
    caps: &Capabilities,
    encrypted: bool,
    allow_plaintext: bool,
) -> Result<AuthMethod, AuthRefusal> {
    if !encrypted && !allow_plaintext {
        return Err(AuthRefusal::NotEncrypted);
    }
    if caps.has("LOGINDISABLED") {
        return Err(AuthRefusal::LoginDisabled);
    }
    if caps.has("AUTH=PLAIN") {
        if caps.has("SASL-IR") {
            Ok(AuthMethod::PlainInitialResponse)
        } else {
            Ok(AuthMethod::Plain)
        }
    } else {
        Ok(AuthMethod::Login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_choice_follows_capabilities() {
        let c = Capabilities::new(["IMAP4rev1", "SASL-IR", "AUTH=PLAIN"]);
        assert_eq!(
            choose_auth(&c, true, false),
            Ok(AuthMethod::PlainInitialResponse)
        );
        let c = Capabilities::new(["IMAP4rev1", "AUTH=PLAIN"]);
        assert_eq!(choose_auth(&c, true, false), Ok(AuthMethod::Plain));
        let c = Capabilities::new(["IMAP4rev1"]);
        assert_eq!(choose_auth(&c, true, false), Ok(AuthMethod::Login));
        let c = Capabilities::new(["IMAP4rev1", "LOGINDISABLED"]);
        assert_eq!(choose_auth(&c, true, true), Err(AuthRefusal::LoginDisabled));
        assert_eq!(
            choose_auth(&Capabilities::default(), false, false),
            Err(AuthRefusal::NotEncrypted)
        );
        assert_eq!(
            choose_auth(&Capabilities::default(), false, true),
            Ok(AuthMethod::Login)
        );
    }
}
