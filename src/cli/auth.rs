//! `mailfeed auth ACCOUNT`: the one-time OAuth2 sign-in.

use anyhow::{Context, Result, bail};

use crate::config::Config;

use super::selected;

/// `mailfeed auth ACCOUNT`: signs in once and stores the refresh token.
pub(crate) async fn cmd_auth(config: &Config, account: &str) -> Result<i32> {
    let acc = selected(config, &Some(account.to_owned()))?[0];
    let client = match &acc.auth {
        crate::config::Auth::OAuth2(crate::config::OAuth2Source::Client(c)) => c,
        _ => bail!(
            "account `{account}` has no `[accounts.oauth2]` table; `mailfeed auth` is for the built-in OAuth2 sign-in"
        ),
    };
    let tls = crate::transport::tls_config(acc.ca_file.as_deref())
        .with_context(|| format!("account `{account}`: setting up TLS"))?;
    let http = crate::oauth2::http::HttpClient::new(tls, config.sync.timeout);
    let mut out = std::io::stdout();
    crate::oauth2::flow::sign_in(account, client, &http, &mut out).await?;
    Ok(0)
}
