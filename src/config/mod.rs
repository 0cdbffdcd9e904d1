//! The configuration: TOML through the `config` crate with `MAILFEED__...`
//! environment overrides, parsed into typed structs (unknown keys refused),
//! defaults in code, and checks whose messages name the key and the fix.
//! Secrets are referenced (env var, file, command), resolved only when a
//! connection needs them, and held in [`Secret`](crate::secret::Secret).
//! Knows nothing of IMAP, the store or the network.
//!
//! `raw.rs` is the file's serde shape; `load.rs` reads it; `validate.rs`
//! turns it into [`Config`] (`account.rs` and `oauth2.rs` for accounts);
//! `store.rs` is `[store]` (a SQLite file or a PostgreSQL URL);
//! `durations.rs`, `sizes.rs`, `paths.rs` parse values; `secrets.rs`
//! resolves password and client-secret sources.

mod account;
mod durations;
mod gmail;
mod load;
mod oauth2;
mod paths;
mod raw;
mod secrets;
mod sizes;
mod store;
#[cfg(test)]
mod tests;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use account::{AccountConfig, Auth};
pub(crate) use durations::{DurationValue, parse_duration};
pub use oauth2::{Grant, OAuth2Client, OAuth2Source};
pub(crate) use paths::resolve_path;
pub use secrets::{ClientSecret, PasswordSource};
pub use store::{DEFAULT_LEASE_PERIOD, PostgresStore, StoreConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed. `message` is the parser's
    /// error without the quoted source line ([`load_error`]).
    #[error("reading configuration {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("account `{account}`: {message}")]
    Password { account: String, message: String },
}

/// How an account's connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain connect, then STARTTLS; never continues unencrypted.
    Starttls,
    /// No encryption at all; refused unless `allow_plaintext = true`.
    Plain,
}

/// SQLite's `synchronous` setting for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[sync]`: settings shared by every account.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    pub batch_size: u32,
    pub max_message_size: u64,
    /// Longest response line accepted (outside literals).
    pub max_line_size: u64,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub idle_refresh: Duration,
    /// Bytes of fetched mail that may wait for the database at once.
    pub max_buffered_bytes: u64,
    /// Without CONDSTORE, re-read every stored message's flags (and UIDs,
    /// for expunges) on every Nth pass; 0 never. With CONDSTORE/QRESYNC the
    /// server reports changes and no rescan is needed.
    pub rescan_every: u32,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub log: LogConfig,
    pub accounts: Vec<AccountConfig>,
    /// `[http]`: the operators' listener; `None` when not configured.
    pub http: Option<crate::http::HttpConfig>,
    /// `[[alerts]]`
    pub alerts: Vec<crate::alerts::AlertConfig>,
}
