//! `auth = "oauth2"`: the token source of an account, and the provider's
//! endpoints filled in for `[accounts.oauth2]`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;

use super::ClientSecret;
use super::paths::resolve_path;
use super::raw::{AuthKind, RawOAuth2};

/// Where an OAuth2 access token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuth2Source {
    /// `oauth2_token_command`: prints an access token (oama, a proxy, ...).
    Command(String),
    /// `[accounts.oauth2]`: mailfeed asks the provider's token endpoint.
    Client(OAuth2Client),
}

/// Which OAuth2 provider's defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Microsoft,
    Google,
    Custom,
}

/// How mailfeed obtains access tokens without a person present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// A refresh token obtained once with `mailfeed auth`, kept in `token_file`.
    RefreshToken,
    /// The application's own identity (Microsoft's app-only IMAP access).
    ClientCredentials,
}

/// `[accounts.oauth2]`, with the provider's endpoints filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Client {
    pub provider: Provider,
    pub grant: Grant,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub token_url: String,
    /// Device authorization endpoint (RFC 8628), where the provider has one
    /// that allows the mail scope.
    pub device_url: Option<String>,
    /// Authorization endpoint for the loopback redirect with PKCE.
    pub auth_url: Option<String>,
    pub scope: String,
    /// The refresh token's file (mode 0600, replaced atomically).
    pub token_file: PathBuf,
}

/// Checks the OAuth2 keys of account `i`; `Some` when `auth = "oauth2"`.
pub(super) fn oauth2_settings(
    i: usize,
    name: &str,
    kind: AuthKind,
    command: Option<String>,
    raw: Option<RawOAuth2>,
    base: &Path,
) -> Result<Option<OAuth2Source>, String> {
    let k = |key: &str| format!("accounts[{i}].{key}");
    if kind == AuthKind::Password {
        if command.is_some() || raw.is_some() {
            return Err(format!(
                "account {name:?}: `{}` or `[accounts.oauth2]` needs `{}` = \"oauth2\"",
                k("oauth2_token_command"),
                k("auth")
            ));
        }
        return Ok(None);
    }
    let r = match (command, raw) {
        (Some(c), None) if !c.trim().is_empty() => return Ok(Some(OAuth2Source::Command(c))),
        (None, Some(r)) => r,
        (Some(_), Some(_)) => {
            return Err(format!(
                "account {name:?}: set either `{}` or `[accounts.oauth2]`, not both",
                k("oauth2_token_command")
            ));
        }
        _ => {
            return Err(format!(
                "account {name:?}: `{}` = \"oauth2\" needs a token source: `{}` (a command printing an access token) or an `[accounts.oauth2]` table with `provider` and `client_id`",
                k("auth"),
                k("oauth2_token_command")
            ));
        }
    };
    let provider = r.provider.ok_or_else(|| {
        format!(
            "`{}` is missing; use \"microsoft\", \"google\" or \"custom\"",
            k("oauth2.provider")
        )
    })?;
    let client_id = r
        .client_id
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "`{}` is missing; use the application (client) id registered with the provider",
                k("oauth2.client_id")
            )
        })?;
    let client_secret = match (r.client_secret, r.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "set only one of `{}` and `{}`",
                k("oauth2.client_secret"),
                k("oauth2.client_secret_file")
            ));
        }
        (Some(s), None) => Some(ClientSecret::Inline(Secret::new(s))),
        (None, Some(f)) => Some(ClientSecret::File(resolve_path(base, &f))),
        (None, None) => None,
    };
    let grant = r.grant.unwrap_or(Grant::RefreshToken);
    let url = |key: &str, v: Option<String>| -> Result<Option<String>, String> {
        match v {
            Some(u) if u.starts_with("https://") || is_loopback_http(&u) => Ok(Some(u)),
            Some(u) => Err(format!(
                "`{}` = {u:?} must be an https:// URL (http:// only for 127.0.0.1 or localhost)",
                k(key)
            )),
            None => Ok(None),
        }
    };
    let (token_url, device_url, auth_url, scope) = match provider {
        Provider::Microsoft => {
            let tenant = r.tenant.clone().unwrap_or_else(|| "common".into());
            if tenant.is_empty()
                || !tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                return Err(format!(
                    "`{}` = {tenant:?} is not a tenant; use \"common\", \"organizations\", \"consumers\", a tenant id or a domain",
                    k("oauth2.tenant")
                ));
            }
            if grant == Grant::ClientCredentials
                && matches!(tenant.as_str(), "common" | "organizations" | "consumers")
            {
                return Err(format!(
                    "`{}` must name your tenant (its id or domain) for grant = \"client_credentials\"",
                    k("oauth2.tenant")
                ));
            }
            let base_url = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            let scope = match grant {
                Grant::RefreshToken => {
                    "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
                }
                Grant::ClientCredentials => "https://outlook.office365.com/.default",
            };
            (
                url("oauth2.token_url", r.token_url)?.unwrap_or(format!("{base_url}/token")),
                url("oauth2.device_url", r.device_url)?.or(Some(format!("{base_url}/devicecode"))),
                url("oauth2.auth_url", r.auth_url)?.or(Some(format!("{base_url}/authorize"))),
                r.scope.unwrap_or_else(|| scope.into()),
            )
        }
        Provider::Google => {
            if grant == Grant::ClientCredentials {
                return Err(format!(
                    "`{}` = \"client_credentials\" is not offered by Google for IMAP; use \"refresh_token\"",
                    k("oauth2.grant")
                ));
            }
            (
                url("oauth2.token_url", r.token_url)?
                    .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
                // Google's device flow refuses the mail scope.
                url("oauth2.device_url", r.device_url)?,
                url("oauth2.auth_url", r.auth_url)?
                    .or_else(|| Some("https://accounts.google.com/o/oauth2/v2/auth".into())),
                r.scope.unwrap_or_else(|| "https://mail.google.com/".into()),
            )
        }
        Provider::Custom => (
            url("oauth2.token_url", r.token_url)?.ok_or_else(|| {
                format!(
                    "`{}` is missing; provider = \"custom\" needs the token endpoint's URL",
                    k("oauth2.token_url")
                )
            })?,
            url("oauth2.device_url", r.device_url)?,
            url("oauth2.auth_url", r.auth_url)?,
            r.scope.ok_or_else(|| {
                format!(
                    "`{}` is missing; provider = \"custom\" needs the scope to ask for",
                    k("oauth2.scope")
                )
            })?,
        ),
    };
    if provider != Provider::Microsoft && r.tenant.is_some() {
        return Err(format!(
            "`{}` is for provider = \"microsoft\" only",
            k("oauth2.tenant")
        ));
    }
    if grant == Grant::ClientCredentials && client_secret.is_none() {
        return Err(format!(
            "grant = \"client_credentials\" needs `{}` or `{}`",
            k("oauth2.client_secret"),
            k("oauth2.client_secret_file")
        ));
    }
    Ok(Some(OAuth2Source::Client(OAuth2Client {
        provider,
        grant,
        client_id,
        client_secret,
        token_url,
        device_url,
        auth_url,
        scope,
        // Empty means "beside the database", filled in by `from_raw`.
        token_file: r
            .token_file
            .map(|f| resolve_path(base, &f))
            .unwrap_or_default(),
    })))
}

/// `http://` is allowed for a token endpoint on this machine only.
fn is_loopback_http(u: &str) -> bool {
    [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://localhost/",
        "http://[::1]:",
    ]
    .iter()
    .any(|p| u.starts_with(p))
}
