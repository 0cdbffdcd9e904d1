//! The configuration file's serde shape: every key optional, unknown keys
//! refused. Checked and given defaults in `validate.rs`.

use serde::Deserialize;

use super::durations::DurationValue;
use super::oauth2::{Grant, Provider};
use super::sizes::SizeValue;
use super::{LogFormat, Security, Synchronous};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(super) store: Option<RawStore>,
    pub(super) sync: Option<RawSync>,
    pub(super) log: Option<RawLog>,
    pub(super) accounts: Option<Vec<RawAccount>>,
    pub(super) http: Option<crate::http::settings::RawHttp>,
    pub(super) alerts: Option<Vec<crate::alerts::settings::RawAlert>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(super) path: Option<String>,
    pub(super) url: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) synchronous: Option<Synchronous>,
    pub(super) lease_period: Option<DurationValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub(super) batch_size: Option<u32>,
    pub(super) max_message_size: Option<SizeValue>,
    pub(super) max_line_size: Option<SizeValue>,
    pub(super) timeout: Option<DurationValue>,
    pub(super) poll_interval: Option<DurationValue>,
    pub(super) idle_refresh: Option<DurationValue>,
    pub(super) max_buffered_bytes: Option<SizeValue>,
    pub(super) rescan_every: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(super) format: Option<LogFormat>,
    pub(super) level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccount {
    pub(super) name: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) security: Option<Security>,
    pub(super) allow_plaintext: Option<bool>,
    pub(super) ca_file: Option<String>,
    pub(super) tls_fingerprint: Option<String>,
    pub(super) username: Option<String>,
    pub(super) auth: Option<AuthKind>,
    pub(super) oauth2_token_command: Option<String>,
    pub(super) oauth2: Option<RawOAuth2>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) password_command: Option<String>,
    pub(super) folders: Option<Vec<String>>,
    pub(super) idle: Option<bool>,
    pub(super) max_connections: Option<u32>,
    pub(super) poll_interval: Option<DurationValue>,
    pub(super) compress: Option<bool>,
    pub(super) daily_download_limit: Option<SizeValue>,
    pub(super) after_store: Option<String>,
    pub(super) delete_after: Option<crate::actions::settings::RawDays>,
    pub(super) create_destination: Option<bool>,
    pub(super) folder: Option<Vec<crate::actions::settings::RawFolder>>,
    pub(super) since: Option<String>,
    pub(super) max_age: Option<crate::actions::settings::RawDays>,
    pub(super) search: Option<String>,
}

/// `auth`: how an account logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum AuthKind {
    Password,
    OAuth2,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth2 {
    pub(super) provider: Option<Provider>,
    pub(super) grant: Option<Grant>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) tenant: Option<String>,
    pub(super) token_url: Option<String>,
    pub(super) device_url: Option<String>,
    pub(super) auth_url: Option<String>,
    pub(super) scope: Option<String>,
    pub(super) token_file: Option<String>,
}
