//! One `[[accounts]]` entry: its checked settings and how it logs in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

use super::durations::{POLL_RANGE, check_range, parse_duration};
use super::gmail::{GMAIL_CONNECTION_LIMIT, GMAIL_DEFAULT_CONNECTIONS, is_gmail_host};
use super::oauth2::oauth2_settings;
use super::paths::resolve_path;
use super::raw::{AuthKind, RawAccount};
use super::sizes::parse_size;
use super::{Config, OAuth2Source, PasswordSource, Security, SyncConfig};

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub allow_plaintext: bool,
    pub ca_file: Option<PathBuf>,
    /// `tls_fingerprint`: trust exactly this certificate, no CA needed.
    pub tls_fingerprint: Option<crate::transport::Fingerprint>,
    pub username: String,
    /// Password (the default) or OAuth2 (`auth = "oauth2"`).
    pub auth: Auth,
    pub folders: Vec<String>,
    pub idle: bool,
    pub max_connections: u32,
    pub poll_interval: Duration,
    /// Use COMPRESS=DEFLATE (RFC 4978) when the server offers it.
    pub compress: bool,
    /// Bytes of mail downloaded per UTC day at most (Gmail's own limit is
    /// 2500 MB); the account pauses until the next day, then resumes.
    pub daily_download_limit: Option<u64>,
    /// What mailfeed does on the server after storing (see `actions`).
    pub actions: crate::actions::AccountActions,
}

/// How an account logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Password(PasswordSource),
    /// SASL OAUTHBEARER or XOAUTH2 with an access token from this source.
    OAuth2(OAuth2Source),
}

impl Config {
    pub(super) fn account(
        i: usize,
        a: RawAccount,
        base: &Path,
        sync: &SyncConfig,
    ) -> Result<AccountConfig, String> {
        let key = |k: &str| format!("accounts[{i}].{k}");
        let name = a.name.ok_or_else(|| {
            format!(
                "`{}` is missing; give each account a short name",
                key("name")
            )
        })?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(format!(
                "`{}` = {name:?}: use letters, digits, `-`, `_`, `.` or `@`",
                key("name")
            ));
        }
        let host = a.host.filter(|h| !h.trim().is_empty()).ok_or_else(|| {
            format!(
                "`{}` is missing; set the IMAP server's host name",
                key("host")
            )
        })?;
        let security = a.security.unwrap_or(Security::Tls);
        let allow_plaintext = a.allow_plaintext.unwrap_or(false);
        if security == Security::Plain && !allow_plaintext {
            return Err(format!(
                "`{}` = \"plain\" sends the password unencrypted; use \"tls\" or \"starttls\", or set `{}` = true if you really mean it",
                key("security"),
                key("allow_plaintext")
            ));
        }
        let port = a.port.unwrap_or(match security {
            Security::Tls => 993,
            _ => 143,
        });
        if port == 0 {
            return Err(format!("`{}` must be 1 to 65535", key("port")));
        }
        let username = a
            .username
            .filter(|u| !u.is_empty())
            .ok_or_else(|| format!("`{}` is missing", key("username")))?;
        let mut sources = Vec::new();
        if let Some(p) = a.password {
            sources.push(PasswordSource::Inline(Secret::new(p)));
        }
        if let Some(v) = a.password_env {
            sources.push(PasswordSource::Env(v));
        }
        if let Some(f) = a.password_file {
            sources.push(PasswordSource::File(resolve_path(base, &f)));
        }
        if let Some(c) = a.password_command {
            sources.push(PasswordSource::Command(c));
        }
        let auth_kind = a.auth.unwrap_or(AuthKind::Password);
        if auth_kind == AuthKind::OAuth2 && !sources.is_empty() {
            return Err(format!(
                "account {name:?}: `accounts[{i}].auth` = \"oauth2\" takes no password; remove the `password*` key or set auth = \"password\""
            ));
        }
        let oauth2 = oauth2_settings(i, &name, auth_kind, a.oauth2_token_command, a.oauth2, base)?;
        if auth_kind == AuthKind::Password && sources.len() != 1 {
            return Err(format!(
                "account {name:?}: set exactly one of `{k}password`, `{k}password_env`, `{k}password_file`, `{k}password_command` (found {})",
                sources.len(),
                k = format!("accounts[{i}].")
            ));
        }
        let auth = match oauth2 {
            Some(o) => Auth::OAuth2(o),
            None => Auth::Password(sources.remove(0)),
        };
        let tls_fingerprint = match &a.tls_fingerprint {
            Some(f) => Some(crate::transport::Fingerprint::parse(f).map_err(|e| {
                format!(
                    "`{}`: {e}; copy the line `mailfeed check` prints for this server",
                    key("tls_fingerprint")
                )
            })?),
            None => None,
        };
        let folders = a.folders.unwrap_or_default();
        if folders.is_empty() || folders.iter().any(|f| f.trim().is_empty()) {
            return Err(format!(
                "`{}` must list at least one folder, e.g. folders = [\"INBOX\"]",
                key("folders")
            ));
        }
        let gmail = is_gmail_host(&host);
        let max_connections =
            a.max_connections
                .unwrap_or(if gmail { GMAIL_DEFAULT_CONNECTIONS } else { 5 });
        if max_connections == 0 || max_connections > 100 {
            return Err(format!(
                "`{}` must be 1 to 100 (default 5)",
                key("max_connections")
            ));
        }
        if gmail && max_connections > GMAIL_CONNECTION_LIMIT {
            return Err(format!(
                "`{}` = {max_connections}: Gmail refuses more than {GMAIL_CONNECTION_LIMIT} simultaneous connections per account (all clients together); use at most {GMAIL_CONNECTION_LIMIT} (default {GMAIL_DEFAULT_CONNECTIONS} for Gmail)",
                key("max_connections")
            ));
        }
        let daily_download_limit = match &a.daily_download_limit {
            Some(v) => match parse_size(&key("daily_download_limit"), v)? {
                0 => {
                    return Err(format!(
                        "`{}` must be above 0, e.g. \"2500MB\" (Gmail's own daily limit); leave it out for no limit",
                        key("daily_download_limit")
                    ));
                }
                n => Some(n),
            },
            None => None,
        };
        let poll_interval = match &a.poll_interval {
            Some(v) => parse_duration(&key("poll_interval"), v)?,
            None => sync.poll_interval,
        };
        check_range(
            &key("poll_interval"),
            poll_interval,
            POLL_RANGE.0,
            POLL_RANGE.1,
            "`sync.poll_interval`",
        )?;
        let actions = crate::actions::settings::build(
            &format!("accounts[{i}]."),
            crate::actions::settings::RawAccountActions {
                after_store: a.after_store,
                delete_after: a.delete_after,
                create_destination: a.create_destination,
                folder: a.folder,
                since: a.since,
                max_age: a.max_age,
                search: a.search,
            },
            &folders,
        )?;
        Ok(AccountConfig {
            name,
            host,
            port,
            security,
            allow_plaintext,
            ca_file: a.ca_file.map(|f| resolve_path(base, &f)),
            tls_fingerprint,
            username,
            auth,
            folders,
            idle: a.idle.unwrap_or(true),
            max_connections,
            poll_interval,
            compress: a.compress.unwrap_or(false),
            daily_download_limit,
            actions,
        })
    }
}
