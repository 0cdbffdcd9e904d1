//! Drives the login flow of `crate::imap::login` over the link: the
//! password (SASL PLAIN preferred, LOGIN otherwise) or an OAuth2 access
//! token, with one retry on a fresh token after a refusal. Registers every
//! form a secret is sent in before it is sent, so an echo is scrubbed.

use super::{Session, SessionError};
use crate::config::{AccountConfig, PasswordSource};
use crate::imap::{AuthMethod, Login, LoginEvent, choose_auth, choose_oauth, sasl};
use crate::oauth2::Tokens;

impl Session {
    pub(super) async fn login(
        &mut self,
        account: &AccountConfig,
        source: &PasswordSource,
    ) -> Result<(), SessionError> {
        let method = choose_auth(
            &self.caps,
            self.link.is_encrypted(),
            account.allow_plaintext,
        )?;
        let password = source.resolve(&account.name)?;
        // Before anything is sent: whatever the server echoes of it from
        // now on is masked wherever it would leave the process.
        password.register();
        if matches!(method, AuthMethod::PlainInitialResponse | AuthMethod::Plain) {
            crate::secret::register_sasl_plain(&account.username, &password);
        }
        let (flow, cmd) = Login::password(method, &account.username, &password);
        self.drive_login(flow, &cmd)
            .await
            .map_err(|refused| refused.map_or_else(|e| e, SessionError::LoginFailed))
    }

    /// Logs in with an OAuth2 access token. A refused token is dropped and
    /// a fresh one tried once (it may have been revoked or expired early);
    /// a second refusal is the account's problem, not the token's age.
    pub(super) async fn login_oauth(
        &mut self,
        account: &AccountConfig,
        tokens: Option<&Tokens>,
    ) -> Result<(), SessionError> {
        let mechanism = choose_oauth(
            &self.caps,
            self.link.is_encrypted(),
            account.allow_plaintext,
        )?;
        let tokens = tokens.ok_or_else(|| {
            SessionError::Unexpected("no OAuth2 token source for this account".into())
        })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = tokens.access_token().await?;
            let response = sasl::initial_response(
                mechanism,
                &account.username,
                &token,
                &account.host,
                account.port,
            );
            // The token is registered where it was obtained; the SASL form is
            // registered too, so an echo of the line is masked wherever it goes.
            crate::secret::register_sent(response.expose());
            let (flow, cmd) = Login::oauth(mechanism, response, self.caps.has("SASL-IR"));
            match self.drive_login(flow, &cmd).await {
                Ok(()) => return Ok(()),
                Err(Ok(why)) if attempt == 1 => {
                    tracing::info!(account = %account.name, "{why}; trying a fresh access token");
                    tokens.forget().await;
                }
                Err(Ok(why)) => return Err(SessionError::OAuthRefused(why)),
                Err(Err(e)) => return Err(e),
            }
        }
    }

    /// Runs one login exchange. `Err(Ok(words))` when the server refused.
    async fn drive_login(
        &mut self,
        mut flow: Login,
        cmd: &crate::imap::Command,
    ) -> Result<(), Result<String, SessionError>> {
        let tag = self.send(cmd).await.map_err(Err)?;
        loop {
            let r = self.next_response().await.map_err(Err)?;
            match flow.received(&tag, r.response) {
                LoginEvent::AnswerReady { bytes, shown } => self
                    .send_answer(bytes.expose().as_bytes(), shown)
                    .await
                    .map_err(Err)?,
                LoginEvent::CapabilitiesReceived(c) => self.caps = c,
                LoginEvent::ByeReceived(text) => self.bye = Some(text),
                LoginEvent::Succeeded(caps) => {
                    self.caps = caps.unwrap_or_default();
                    return Ok(());
                }
                LoginEvent::Refused(words) => return Err(Ok(words)),
                LoginEvent::Ignored => {}
            }
        }
    }
}
