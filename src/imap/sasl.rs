//! SASL for OAuth2 bearer tokens: choosing between OAUTHBEARER (RFC 7628)
//! and XOAUTH2 (Google's and Microsoft's older form), encoding the client's
//! response, and the one twist of both: a refused token is answered by the
//! server with a *continuation* carrying a JSON error, to which the client
//! must reply (an empty line for XOAUTH2, `AQ==` — a lone %x01 — for
//! OAUTHBEARER) before the tagged NO arrives. Pure: no IO, no clock.

use base64::Engine;

use super::capabilities::{AuthRefusal, Capabilities};
use super::command::Command;
use crate::secret::Secret;

/// The SASL mechanism carrying the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// RFC 7628, the standard.
    OAuthBearer,
    /// The form Microsoft 365 accepts (and Gmail too).
    XOAuth2,
}

impl OAuthMechanism {
    pub fn name(self) -> &'static str {
        match self {
            OAuthMechanism::OAuthBearer => "OAUTHBEARER",
            OAuthMechanism::XOAuth2 => "XOAUTH2",
        }
    }
}

/// Picks the mechanism: OAUTHBEARER when offered (the standard), else
/// XOAUTH2. A token is as good as a password for an hour, so a clear-text
/// link is refused unless plaintext is explicitly allowed.
pub fn choose_oauth(
    caps: &Capabilities,
    encrypted: bool,
    allow_plaintext: bool,
) -> Result<OAuthMechanism, AuthRefusal> {
    if !encrypted && !allow_plaintext {
        return Err(AuthRefusal::NotEncrypted);
    }
    if caps.has("AUTH=OAUTHBEARER") {
        Ok(OAuthMechanism::OAuthBearer)
    } else if caps.has("AUTH=XOAUTH2") {
        Ok(OAuthMechanism::XOAuth2)
    } else {
        Err(AuthRefusal::NoOAuthMechanism)
    }
}

/// RFC 5801 saslname: `,` and `=` escaped.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The client's first (and only) message, base64-encoded.
///
/// XOAUTH2: `user=U ^A auth=Bearer T ^A ^A`. OAUTHBEARER (RFC 7628 §3.1):
/// the GS2 header `n,a=U,` then `^A host=H ^A port=P ^A auth=Bearer T ^A ^A`.
pub fn initial_response(
    mechanism: OAuthMechanism,
    user: &str,
    token: &Secret,
    host: &str,
    port: u16,
) -> Secret {
    let raw = match mechanism {
        OAuthMechanism::XOAuth2 => Secret::new(format!(
            "user={user}\x01auth=Bearer {}\x01\x01",
            token.expose()
        )),
        OAuthMechanism::OAuthBearer => Secret::new(format!(
            "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {}\x01\x01",
            saslname(user),
            token.expose()
        )),
    };
    Secret::new(base64::engine::general_purpose::STANDARD.encode(raw.expose()))
}

/// One OAuth2 AUTHENTICATE exchange, fed the server's continuations.
#[derive(Debug)]
pub struct OAuthExchange {
    mechanism: OAuthMechanism,
    /// The response still to send after the first `+` (no SASL-IR).
    pending: Option<Secret>,
    /// What the server's error challenge said, once one came.
    failure: Option<String>,
}

impl OAuthExchange {
    /// Starts the exchange; returns it and the command to send. With
    /// SASL-IR the response rides on the command line (one round trip).
    pub fn start(
        mechanism: OAuthMechanism,
        response: Secret,
        sasl_ir: bool,
    ) -> (OAuthExchange, Command) {
        let cmd = Command::AuthenticateOAuth {
            mechanism,
            initial_response: sasl_ir.then(|| response.clone()),
        };
        let ex = OAuthExchange {
            mechanism,
            pending: (!sasl_ir).then_some(response),
            failure: None,
        };
        (ex, cmd)
    }

    /// The bytes to answer a continuation request with (`text` is what
    /// followed `+ `). The first `+` of an exchange without SASL-IR asks
    /// for the response; any later one is the server's error challenge,
    /// which is recorded and answered with the mechanism's dummy reply so
    /// the server can send its tagged NO.
    pub fn on_continuation(&mut self, text: &str) -> Secret {
        if let Some(r) = self.pending.take() {
            return Secret::new(format!("{}\r\n", r.expose()));
        }
        self.failure = Some(describe_error_challenge(text));
        Secret::new(match self.mechanism {
            OAuthMechanism::XOAuth2 => "\r\n",
            OAuthMechanism::OAuthBearer => "AQ==\r\n",
        })
    }

    /// What the server's error challenge said (`status 401, scope …`),
    /// when it sent one.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

/// The server's JSON error (`{"status":"401","schemes":"bearer","scope":…}`)
/// as a short phrase. Only the known fields are shown, bounded, so a hostile
/// server cannot fill a log line.
fn describe_error_challenge(text: &str) -> String {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(serde_json::Value::Object(map)) = decoded else {
        return "the server refused the token".into();
    };
    let mut parts = Vec::new();
    for key in ["status", "scope"] {
        if let Some(v) = map.get(key) {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let v: String = v.chars().filter(|c| !c.is_control()).take(200).collect();
            parts.push(format!("{key} {v}"));
        }
    }
    if parts.is_empty() {
        "the server refused the token".into()
    } else {
        format!("the server refused the token ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::{Limits, Response, ResponseReader, Status};

    const TOKEN: &str = "ya29.tok-Distinctive-42";

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn wire(cmd: &Command, tag: &str) -> Vec<u8> {
        cmd.encode(tag, false)
            .into_iter()
            .flat_map(|p| match p {
                crate::imap::Part::Text(t) => t,
                crate::imap::Part::Literal { data, .. } => data,
            })
            .collect()
    }

    /// Feeds server bytes to a reader and the exchange, collecting what the
    /// client sends back, until the tagged reply.
    fn run_script(ex: &mut OAuthExchange, server: &[u8], tag: &str) -> (Vec<u8>, Option<Status>) {
        let mut r = ResponseReader::new(Limits::default());
        r.feed(server).expect("valid server bytes");
        let mut sent = Vec::new();
        while let Some(rec) = r.pop() {
            match rec.response {
                Response::Continuation(text) => {
                    sent.extend_from_slice(ex.on_continuation(&text).expose().as_bytes())
                }
                Response::Tagged { tag: t, status, .. } if t == tag => {
                    return (sent, Some(status));
                }
                _ => {}
            }
        }
        (sent, None)
    }

    #[test]
    fn xoauth2_with_sasl_ir_is_one_line() {
        let ir = initial_response(
            OAuthMechanism::XOAuth2,
            "alice@example.org",
            &Secret::new(TOKEN),
            "imap.example.org",
            993,
        );
        let (mut ex, cmd) = OAuthExchange::start(OAuthMechanism::XOAuth2, ir, true);
        let expected = format!(
            "a1 AUTHENTICATE XOAUTH2 {}\r\n",
            b64(format!("user=alice@example.org\x01auth=Bearer {TOKEN}\x01\x01").as_bytes())
        );
        assert_eq!(String::from_utf8(wire(&cmd, "a1")).unwrap(), expected);
        assert_eq!(cmd.redacted("a1"), "a1 AUTHENTICATE XOAUTH2 ***");
        let (sent, st) = run_script(&mut ex, b"a1 OK Logged in\r\n", "a1");
        assert!(sent.is_empty());
        assert_eq!(st, Some(Status::Ok));
    }

    #[test]
    fn oauthbearer_carries_gs2_header_host_and_port() {
        let ir = initial_response(
            OAuthMechanism::OAuthBearer,
            "odd,user=x",
            &Secret::new(TOKEN),
            "mail.example.org",
            143,
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ir.expose())
            .expect("base64");
        assert_eq!(
            raw,
            format!(
                "n,a=odd=2Cuser=3Dx,\x01host=mail.example.org\x01port=143\x01auth=Bearer {TOKEN}\x01\x01"
            )
            .into_bytes()
        );
    }

    #[test]
    fn without_sasl_ir_the_response_follows_the_first_continuation() {
        let ir = Secret::new("UkVTUE9OU0U=");
        let (mut ex, cmd) = OAuthExchange::start(OAuthMechanism::OAuthBearer, ir, false);
        assert_eq!(wire(&cmd, "a2"), b"a2 AUTHENTICATE OAUTHBEARER\r\n");
        let (sent, st) = run_script(&mut ex, b"+ \r\na2 OK done\r\n", "a2");
        assert_eq!(sent, b"UkVTUE9OU0U=\r\n");
        assert_eq!(st, Some(Status::Ok));
        assert_eq!(ex.failure(), None);
    }

    /// RFC 7628 §3.2.2: on a bad token the server sends its error as a
    /// challenge; OAUTHBEARER answers `AQ==` (%x01), XOAUTH2 an empty line,
    /// and only then comes the tagged NO.
    #[test]
    fn the_error_challenge_is_answered_and_reported() {
        let json = br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        let server = format!(
            "+ {}\r\na3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
            b64(json)
        );
        for (mech, answer) in [
            (OAuthMechanism::OAuthBearer, &b"AQ==\r\n"[..]),
            (OAuthMechanism::XOAuth2, &b"\r\n"[..]),
        ] {
            let (mut ex, _) = OAuthExchange::start(mech, Secret::new("x"), true);
            // Split at every byte: the reader must hand over the same
            // continuation whatever the chunking.
            let (sent, st) = run_script(&mut ex, server.as_bytes(), "a3");
            assert_eq!(sent, answer, "{mech:?}");
            assert_eq!(st, Some(Status::No));
            assert_eq!(
                ex.failure(),
                Some("the server refused the token (status 401, scope https://mail.google.com/)")
            );
        }
        // Garbage instead of JSON is still answered, and said plainly.
        let (mut ex, _) = OAuthExchange::start(OAuthMechanism::XOAuth2, Secret::new("x"), true);
        let (sent, _) = run_script(&mut ex, b"+ %%%notbase64\r\na4 NO no\r\n", "a4");
        assert_eq!(sent, b"\r\n");
        assert_eq!(ex.failure(), Some("the server refused the token"));
    }

    #[test]
    fn mechanism_choice_follows_capabilities_and_encryption() {
        let both = Capabilities::new(["IMAP4rev1", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"]);
        assert_eq!(
            choose_oauth(&both, true, false),
            Ok(OAuthMechanism::OAuthBearer)
        );
        let ms = Capabilities::new(["IMAP4rev1", "AUTH=XOAUTH2", "SASL-IR"]);
        assert_eq!(choose_oauth(&ms, true, false), Ok(OAuthMechanism::XOAuth2));
        assert_eq!(
            choose_oauth(&ms, false, false),
            Err(AuthRefusal::NotEncrypted)
        );
        assert_eq!(choose_oauth(&ms, false, true), Ok(OAuthMechanism::XOAuth2));
        let none = Capabilities::new(["IMAP4rev1", "AUTH=PLAIN"]);
        assert_eq!(
            choose_oauth(&none, true, false),
            Err(AuthRefusal::NoOAuthMechanism)
        );
    }
}
