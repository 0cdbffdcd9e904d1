//! What a command needs to connect to an account: TLS set-up, token source,
//! limits and timeouts from the configuration, and the warning for plaintext.

use anyhow::{Context, Result};

use crate::config::{AccountConfig, Config, Security};
use crate::imap::Limits;
use crate::session::ConnectOptions;

pub(crate) fn connect_options(config: &Config, account: &AccountConfig) -> Result<ConnectOptions> {
    Ok(connect_options_observed(config, account)?.0)
}

/// [`connect_options`], and the handle on the certificate the server
/// presents (for `check`).
pub(super) fn connect_options_observed(
    config: &Config,
    account: &AccountConfig,
) -> Result<(ConnectOptions, crate::transport::Presented)> {
    let (tls, presented) =
        crate::transport::tls_setup(account.ca_file.as_deref(), account.tls_fingerprint)
            .with_context(|| format!("account `{}`: setting up TLS", account.name))?;
    // The token endpoint is trusted through the system's roots (and the
    // same `ca_file`), never through the IMAP server's pin.
    let endpoint_tls = crate::transport::tls_config(account.ca_file.as_deref())
        .with_context(|| format!("account `{}`: setting up TLS", account.name))?;
    let oauth2 = crate::oauth2::Tokens::for_account(account, endpoint_tls, config.sync.timeout);
    Ok((
        ConnectOptions {
            timeout: config.sync.timeout,
            limits: Limits {
                max_literal: config.sync.max_message_size,
                max_line: usize::try_from(config.sync.max_line_size).unwrap_or(usize::MAX),
                ..Limits::default()
            },
            tls,
            oauth2,
        },
        presented,
    ))
}

pub(super) fn warn_plaintext(account: &AccountConfig) {
    if account.security == Security::Plain {
        tracing::warn!(
            account = %account.name,
            "security = \"plain\": the password and all mail travel unencrypted"
        );
    }
}
