//! OAuth2 access tokens for IMAP logins: from the user's command, or from
//! the provider's token endpoint (refresh-token and client-credentials
//! grants; `mailfeed auth` obtains the first refresh token). Owns the token
//! cache, the refresh token's file and the token endpoint's HTTP client.
//! Knows nothing of IMAP (the SASL encoding is in `imap::sasl`) or the
//! database; tokens stay in [`Secret`] and never reach an error or a log.

pub mod cache;
pub mod command;
pub mod flow;
pub mod grants;
pub mod http;
pub mod token_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{AccountConfig, Auth, Grant, OAuth2Client, OAuth2Source};
use crate::secret::Secret;
use cache::TokenCache;
use grants::GrantError;
use http::HttpClient;

#[derive(Debug, thiserror::Error)]
pub enum OAuth2Error {
    #[error("account `{account}`: {message}")]
    Command { account: String, message: String },
    #[error(
        "account `{account}`: the refresh token was refused (invalid_grant: it expired or was revoked); run `mailfeed auth {account}` to sign in again"
    )]
    InvalidGrant { account: String },
    #[error(
        "account `{account}`: no refresh token in {} yet; run `mailfeed auth {account}` once to sign in", path.display()
    )]
    NoRefreshToken { account: String, path: PathBuf },
    #[error(
        "account `{account}`: the token endpoint refused the client ({source}); check `oauth2.client_id`, the client secret and `oauth2.tenant`"
    )]
    Client { account: String, source: GrantError },
    #[error("account `{account}`: getting an access token: {source}")]
    Endpoint { account: String, source: GrantError },
    #[error("account `{account}`: refresh token file {}: {source}", path.display())]
    TokenFile {
        account: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
}

impl OAuth2Error {
    /// Errors that need a person (sign in again, fix the registration):
    /// retrying soon only hammers the endpoint.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            OAuth2Error::InvalidGrant { .. }
                | OAuth2Error::NoRefreshToken { .. }
                | OAuth2Error::Client { .. }
                | OAuth2Error::Secret(_)
        )
    }
}

/// An account's source of access tokens, shared by its connections.
pub struct Tokens {
    account: String,
    source: Source,
    http: HttpClient,
    timeout: Duration,
    /// Held while a token is fetched, so parallel connections of one
    /// account make one refresh (a rotated refresh token must be used once).
    cache: tokio::sync::Mutex<TokenCache>,
}

enum Source {
    Command(String),
    Client(OAuth2Client),
}

impl Tokens {
    /// The token source of an OAuth2 account; `None` for a password account.
    pub fn for_account(
        account: &AccountConfig,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Option<Arc<Tokens>> {
        let source = match &account.auth {
            Auth::Password(_) => return None,
            Auth::OAuth2(OAuth2Source::Command(c)) => Source::Command(c.clone()),
            Auth::OAuth2(OAuth2Source::Client(c)) => Source::Client(c.clone()),
        };
        Some(Arc::new(Tokens {
            account: account.name.clone(),
            source,
            http: HttpClient::new(tls, timeout),
            timeout,
            cache: tokio::sync::Mutex::new(TokenCache::default()),
        }))
    }

    /// An access token for the next login: the cached one while it is
    /// good, else a new one. A token command runs at every call.
    pub async fn access_token(&self) -> Result<Secret, OAuth2Error> {
        let client = match &self.source {
            Source::Command(cmd) => {
                return command::run(cmd, self.timeout).await.map_err(|message| {
                    OAuth2Error::Command {
                        account: self.account.clone(),
                        message,
                    }
                });
            }
            Source::Client(c) => c,
        };
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.get(Instant::now()) {
            return Ok(t);
        }
        let granted = self.grant(client).await?;
        let token = granted.access_token.clone();
        cache.put(granted.access_token, granted.expires_in, Instant::now());
        Ok(token)
    }

    /// Forgets the cached token after the server refused it, so the next
    /// [`Tokens::access_token`] asks the endpoint again.
    pub async fn forget(&self) {
        self.cache.lock().await.forget();
    }

    async fn grant(&self, c: &OAuth2Client) -> Result<grants::Granted, OAuth2Error> {
        let secret = match &c.client_secret {
            Some(s) => Some(s.resolve(&self.account)?),
            None => None,
        };
        let result = match c.grant {
            Grant::ClientCredentials => grants::client_credentials(&self.http, c, &secret).await,
            Grant::RefreshToken => {
                let file_error = |source| OAuth2Error::TokenFile {
                    account: self.account.clone(),
                    path: c.token_file.clone(),
                    source,
                };
                let Some(rt) = token_file::read(&c.token_file).map_err(file_error)? else {
                    return Err(OAuth2Error::NoRefreshToken {
                        account: self.account.clone(),
                        path: c.token_file.clone(),
                    });
                };
                let granted = grants::refresh(&self.http, c, &secret, &rt)
                    .await
                    .map_err(|e| self.classify(e))?;
                if let Some(new_rt) = &granted.refresh_token
                    && new_rt != &rt
                {
                    // The endpoint rotated it: the old one is dead from
                    // now on, so the new one must be on disk before use.
                    token_file::write(&c.token_file, new_rt).map_err(file_error)?;
                    tracing::info!(account = %self.account, "stored the rotated refresh token");
                }
                return Ok(granted);
            }
        };
        result.map_err(|e| self.classify(e))
    }

    fn classify(&self, e: GrantError) -> OAuth2Error {
        let account = self.account.clone();
        match e.code() {
            Some("invalid_grant") => OAuth2Error::InvalidGrant { account },
            // invalid_request covers a wrong tenant ("AADSTS90002: Tenant
            // not found"): a configuration to fix, not a moment to wait.
            Some(
                "invalid_client" | "unauthorized_client" | "invalid_scope" | "invalid_request",
            ) => OAuth2Error::Client { account, source: e },
            _ => OAuth2Error::Endpoint { account, source: e },
        }
    }
}
