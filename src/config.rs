//! The configuration: TOML through the `config` crate with `MAILFEED__...`
//! environment overrides, parsed into typed structs (unknown keys refused),
//! defaults in code, and a `validate` step whose messages name the key and
//! the fix. Secrets are referenced (env var, file, command), resolved only
//! when a connection needs them, and held in [`Secret`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

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

/// Where an account's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Inline(Secret),
    Env(String),
    File(PathBuf),
    Command(String),
}

impl PasswordSource {
    /// Reads the password now (files and commands may change while running).
    pub fn resolve(&self, account: &str) -> Result<Secret, ConfigError> {
        let err = |message: String| ConfigError::Password {
            account: account.to_owned(),
            message,
        };
        match self {
            PasswordSource::Inline(s) => Ok(s.clone()),
            PasswordSource::Env(var) => std::env::var(var).map(Secret::new).map_err(|_| {
                err(format!(
                    "password_env names `{var}`, which is not set (or not UTF-8) in mailfeed's environment"
                ))
            }),
            PasswordSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    err(format!("password_file {}: {e}", path.display()))
                })?;
                Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
            }
            PasswordSource::Command(cmd) => {
                let out = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| err(format!("password_command could not start: {e}")))?;
                if !out.status.success() {
                    return Err(err(format!("password_command exited with {}", out.status)));
                }
                let text = String::from_utf8(out.stdout)
                    .map_err(|_| err("password_command printed non-UTF-8 output".into()))?;
                Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
            }
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// The SQLite file; empty when `postgres` is set.
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// `url = "postgresql://..."` instead of `path`.
    pub postgres: Option<PostgresStore>,
}

/// A PostgreSQL database as the store (`[store] url`).
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresStore {
    /// The URL as written; may hold the password, so it is a secret.
    pub url: crate::secret::Secret,
    /// A file holding the password, when the URL has none.
    pub password_file: Option<PathBuf>,
    /// How long an instance's claim on an account lasts unrenewed
    /// (`lease_period`): a dead instance's accounts move within it.
    pub lease_period: Duration,
}

/// `[store] lease_period` when not set.
pub const DEFAULT_LEASE_PERIOD: Duration = Duration::from_secs(30);

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

/// Gmail refuses a 16th simultaneous IMAP connection of an account (across
/// every client the user runs); mailfeed takes few of them by default.
pub const GMAIL_CONNECTION_LIMIT: u32 = 15;
const GMAIL_DEFAULT_CONNECTIONS: u32 = 3;

/// Google's IMAP hosts (Gmail and Workspace).
pub fn is_gmail_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "imap.gmail.com" || h == "imap.googlemail.com"
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    store: Option<RawStore>,
    sync: Option<RawSync>,
    log: Option<RawLog>,
    accounts: Option<Vec<RawAccount>>,
    http: Option<crate::http::settings::RawHttp>,
    alerts: Option<Vec<crate::alerts::settings::RawAlert>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    url: Option<String>,
    password_file: Option<String>,
    synchronous: Option<Synchronous>,
    lease_period: Option<DurationValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    batch_size: Option<u32>,
    max_message_size: Option<SizeValue>,
    max_line_size: Option<SizeValue>,
    timeout: Option<DurationValue>,
    poll_interval: Option<DurationValue>,
    idle_refresh: Option<DurationValue>,
    max_buffered_bytes: Option<SizeValue>,
    rescan_every: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    allow_plaintext: Option<bool>,
    ca_file: Option<String>,
    tls_fingerprint: Option<String>,
    username: Option<String>,
    auth: Option<AuthKind>,
    oauth2_token_command: Option<String>,
    oauth2: Option<RawOAuth2>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    password_command: Option<String>,
    folders: Option<Vec<String>>,
    idle: Option<bool>,
    max_connections: Option<u32>,
    poll_interval: Option<DurationValue>,
    compress: Option<bool>,
    daily_download_limit: Option<SizeValue>,
    after_store: Option<String>,
    delete_after: Option<crate::actions::settings::RawDays>,
    create_destination: Option<bool>,
    folder: Option<Vec<crate::actions::settings::RawFolder>>,
    since: Option<String>,
    max_age: Option<crate::actions::settings::RawDays>,
    search: Option<String>,
}

/// A duration written as `"90s"`, `"5m"`, `"1h"` or a number of seconds.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// A size written as `"100MB"`, `"64KiB"` or a number of bytes.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// `store.lease_period`: long enough that renewing it (every third of it)
/// survives a slow database, short enough that a dead instance's accounts
/// move soon.
fn lease_period(v: Option<&DurationValue>) -> Result<Duration, String> {
    let Some(v) = v else {
        return Ok(DEFAULT_LEASE_PERIOD);
    };
    let d = parse_duration("store.lease_period", v)?;
    if d < Duration::from_secs(3) || d > Duration::from_secs(3600) {
        return Err(format!(
            "`store.lease_period` = {:?} is out of range; use 3s to 1h (default \"30s\")",
            d
        ));
    }
    Ok(d)
}

pub(crate) fn parse_duration(key: &str, v: &DurationValue) -> Result<Duration, String> {
    let text = match v {
        DurationValue::Seconds(s) if Duration::from_secs(*s) <= MAX_DURATION => {
            return Ok(Duration::from_secs(*s));
        }
        DurationValue::Seconds(s) => {
            return Err(format!(
                "`{key}` = {s} is too large; durations go up to \"7d\" (604800 seconds)"
            ));
        }
        DurationValue::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("`{key}` = {text:?} is not a duration; write e.g. \"30s\", \"5m\" or \"1h\"")
    })?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        other => {
            return Err(format!(
                "`{key}` = {text:?}: unknown unit {other:?}; use ms, s, m, h or d"
            ));
        }
    };
    // A value no setting can use (and that `Duration` cannot hold) is
    // refused here; each key then checks its own range.
    let secs = n * mult;
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "`{key}` = {text:?} is too large; durations go up to \"7d\" (604800 seconds)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `sync.timeout`: long enough for a round trip, short enough that a dead
/// connection is noticed (the watchdog grace is a few timeouts).
const TIMEOUT_RANGE: ((Duration, &str), (Duration, &str)) = (
    (Duration::from_millis(100), "100ms"),
    (Duration::from_secs(3600), "1h"),
);
/// `sync.poll_interval` and `accounts[].poll_interval`: a poller that never
/// pauses would hammer the server; one that waits a week is not polling.
const POLL_RANGE: ((Duration, &str), (Duration, &str)) = (
    (Duration::from_millis(100), "100ms"),
    (Duration::from_secs(24 * 3600), "24h"),
);

/// The longest duration any key accepts.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks that a duration key lies in `min..=max`; the message names the
/// key, the range and the default.
fn check_range(
    key: &str,
    value: Duration,
    (min, min_text): (Duration, &str),
    (max, max_text): (Duration, &str),
    default: &str,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "`{key}` = {value:?} is out of range; use {min_text:?} to {max_text:?} (default {default})"
        ));
    }
    Ok(())
}

fn parse_size(key: &str, v: &SizeValue) -> Result<u64, String> {
    let text = match v {
        SizeValue::Bytes(b) => return Ok(*b),
        SizeValue::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{key}` = {text:?} is not a size; write e.g. \"100MB\" or \"512KiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" => 1024,
        "mb" | "m" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" | "g" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{key}` = {text:?}: unknown unit {other:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{key}` = {text:?} is too large"))
}

/// Resolves a path written in the config relative to the config's folder.
pub(crate) fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let expanded = expand_credentials_dir(p);
    let path = PathBuf::from(expanded);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Expands `$CREDENTIALS_DIRECTORY` (set by systemd's LoadCredential=).
fn expand_credentials_dir(p: &str) -> String {
    for var in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = p.strip_prefix(var)
            && let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY")
        {
            return format!("{dir}{rest}");
        }
    }
    p.to_owned()
}

/// The parser's error on one line, without the source excerpt it quotes:
/// that excerpt is the offending line of the file, which may be the one
/// holding a password (`password = hunter2`, unquoted, is a syntax error),
/// and errors are logged. Line and column stay, which is what the fix needs.
fn load_error(path: &Path, e: &config::ConfigError) -> ConfigError {
    let text = e.to_string();
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let rest = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit());
        if rest.trim_start().starts_with('|') {
            continue;
        }
        let line = line.trim();
        if !line.is_empty() {
            parts.push(line);
        }
    }
    // The `config` crate ends with " in FILE" (a path of its own making),
    // which the caller already says.
    if parts.len() > 1 && parts.last().is_some_and(|l| l.starts_with("in ")) {
        parts.pop();
    }
    ConfigError::Load {
        path: path.to_owned(),
        message: parts.join(": "),
    }
}

impl Config {
    /// Loads the file, applies `MAILFEED__...` overrides, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("MAILFEED")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| load_error(path, &e))?;
        let raw: RawFile = built.try_deserialize().map_err(|e| load_error(path, &e))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_raw(raw, path, &base).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text (for tests and `check`), paths relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let source = base.join("<inline>");
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| load_error(&source, &e))?;
        let raw: RawFile = built
            .try_deserialize()
            .map_err(|e| load_error(&source, &e))?;
        Self::from_raw(raw, &source, base).map_err(|message| ConfigError::Invalid {
            path: source.clone(),
            message,
        })
    }

    fn from_raw(raw: RawFile, source: &Path, base: &Path) -> Result<Config, String> {
        let rs = raw.store.unwrap_or_default();
        let store = match (rs.path.as_deref(), rs.url) {
            (Some(_), Some(_)) => {
                return Err(
                    "`store.path` and `store.url` are both set; keep `path` for SQLite or `url` for PostgreSQL, not both"
                        .into(),
                );
            }
            (None, None) => {
                return Err(
                    "`store.path` is missing; set it to the SQLite database file, e.g. path = \"mailfeed.db\" (or `store.url` = \"postgresql://user@host/db\" for PostgreSQL)"
                        .into(),
                );
            }
            (Some(path), None) => {
                if rs.password_file.is_some() {
                    return Err(
                        "`store.password_file` is for PostgreSQL; it needs `store.url`, not `store.path`"
                            .into(),
                    );
                }
                if rs.lease_period.is_some() {
                    return Err(
                        "`store.lease_period` is for PostgreSQL (instances sharing accounts); it needs `store.url`, not `store.path` (one process works a SQLite file)"
                            .into(),
                    );
                }
                StoreConfig {
                    path: resolve_path(base, path),
                    synchronous: rs.synchronous.unwrap_or_default(),
                    postgres: None,
                }
            }
            (None, Some(url)) => {
                let url = crate::secret::Secret::new(url);
                if !(url.expose().starts_with("postgresql://")
                    || url.expose().starts_with("postgres://"))
                {
                    return Err(
                        "`store.url` must start with postgresql:// (e.g. url = \"postgresql://mailfeed@db.example/mail\")"
                            .into(),
                    );
                }
                // A password in the URL is scrubbed from every log line.
                url.register();
                StoreConfig {
                    path: PathBuf::new(),
                    synchronous: rs.synchronous.unwrap_or_default(),
                    postgres: Some(PostgresStore {
                        url,
                        password_file: rs.password_file.map(|p| resolve_path(base, &p)),
                        lease_period: lease_period(rs.lease_period.as_ref())?,
                    }),
                }
            }
        };
        let sy = raw.sync.unwrap_or_default();
        let dur = |key: &str, v: &Option<DurationValue>, default: Duration| match v {
            Some(v) => parse_duration(key, v),
            None => Ok(default),
        };
        let sync = SyncConfig {
            batch_size: sy.batch_size.unwrap_or(500),
            max_message_size: match &sy.max_message_size {
                Some(v) => parse_size("sync.max_message_size", v)?,
                None => 100 * 1000 * 1000,
            },
            max_line_size: match &sy.max_line_size {
                Some(v) => parse_size("sync.max_line_size", v)?,
                None => crate::imap::DEFAULT_MAX_LINE as u64,
            },
            timeout: dur("sync.timeout", &sy.timeout, Duration::from_secs(60))?,
            poll_interval: dur(
                "sync.poll_interval",
                &sy.poll_interval,
                Duration::from_secs(300),
            )?,
            idle_refresh: dur(
                "sync.idle_refresh",
                &sy.idle_refresh,
                Duration::from_secs(25 * 60),
            )?,
            max_buffered_bytes: match &sy.max_buffered_bytes {
                Some(v) => parse_size("sync.max_buffered_bytes", v)?,
                // The writer is the bottleneck of a first sync, so a deeper
                // queue only holds more memory: 16 MiB instead of 32 cut the
                // peak RSS of a 20,000-message sync from 68.8 to 57.8 MiB at
                // the same speed (benches/README.md).
                None => 16 * 1024 * 1024,
            },
            rescan_every: sy.rescan_every.unwrap_or(10),
        };
        if sync.batch_size == 0 || sync.batch_size > 100_000 {
            return Err(format!(
                "`sync.batch_size` = {} is out of range; use 1 to 100000 (default 500)",
                sync.batch_size
            ));
        }
        if sync.max_message_size < 1024 || sync.max_message_size > u64::from(u32::MAX) {
            return Err(
                "`sync.max_message_size` must be between 1KB and 4GB (default \"100MB\")".into(),
            );
        }
        if sync.max_line_size < 64 * 1024 || sync.max_line_size > 1 << 30 {
            return Err(
                "`sync.max_line_size` must be between 64KiB and 1GiB (default \"16MiB\")".into(),
            );
        }
        if sync.timeout < Duration::from_millis(100) {
            return Err(
                "`sync.timeout` is too short; use at least \"1s\" (default \"60s\")".into(),
            );
        }
        check_range(
            "sync.timeout",
            sync.timeout,
            TIMEOUT_RANGE.0,
            TIMEOUT_RANGE.1,
            "\"60s\"",
        )?;
        if sync.idle_refresh < Duration::from_secs(1)
            || sync.idle_refresh > Duration::from_secs(29 * 60)
        {
            return Err("`sync.idle_refresh` must be between \"1s\" and \"29m\" (RFC 2177); default \"25m\"".into());
        }
        if sync.poll_interval < Duration::from_millis(100) {
            return Err("`sync.poll_interval` is too short; use at least \"1s\"".into());
        }
        check_range(
            "sync.poll_interval",
            sync.poll_interval,
            POLL_RANGE.0,
            POLL_RANGE.1,
            "\"5m\"",
        )?;
        let rl = raw.log.unwrap_or_default();
        let log = LogConfig {
            format: rl.format.unwrap_or_default(),
            level: rl.level.unwrap_or_else(|| "info".into()),
        };
        let raw_accounts = raw.accounts.unwrap_or_default();
        if raw_accounts.is_empty() {
            return Err(
                "no `[[accounts]]` configured; add at least one (see config/mailfeed.toml)".into(),
            );
        }
        let mut accounts = Vec::new();
        for (i, a) in raw_accounts.into_iter().enumerate() {
            let mut acc = Self::account(i, a, base, &sync)?;
            if let Auth::OAuth2(OAuth2Source::Client(c)) = &mut acc.auth
                && c.token_file.as_os_str().is_empty()
            {
                // Beside the database: the one place mailfeed is sure to
                // be allowed to write (systemd's StateDirectory).
                let dir = store.path.parent().unwrap_or(Path::new("."));
                c.token_file = dir.join(format!("{}.oauth2-token", acc.name));
            }
            if accounts.iter().any(|o: &AccountConfig| o.name == acc.name) {
                return Err(format!(
                    "`accounts[{i}].name` = {:?} is used twice; account names must be unique",
                    acc.name
                ));
            }
            accounts.push(acc);
        }
        let http = raw
            .http
            .map(|h| crate::http::settings::parse(h, base))
            .transpose()?;
        let alerts = crate::alerts::settings::parse(raw.alerts.unwrap_or_default(), base)?;
        Ok(Config {
            source: source.to_owned(),
            store,
            sync,
            log,
            accounts,
            http,
            alerts,
        })
    }

    fn account(
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

/// `auth`: how an account logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    Password,
    OAuth2,
}

/// How an account logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Password(PasswordSource),
    /// SASL OAUTHBEARER or XOAUTH2 with an access token from this source.
    OAuth2(OAuth2Source),
}

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

/// Where the OAuth2 client secret comes from (public clients have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecret {
    Inline(Secret),
    File(PathBuf),
}

impl ClientSecret {
    /// Reads the secret now (a credential file may be replaced while running).
    pub fn resolve(&self, account: &str) -> Result<Secret, ConfigError> {
        match self {
            ClientSecret::Inline(s) => Ok(s.clone().registered()),
            ClientSecret::File(path) => std::fs::read_to_string(path)
                .map(|t| Secret::new(t.trim_end_matches(['\r', '\n'])).registered())
                .map_err(|e| ConfigError::Password {
                    account: account.to_owned(),
                    message: format!("oauth2.client_secret_file {}: {e}", path.display()),
                }),
        }
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth2 {
    provider: Option<Provider>,
    grant: Option<Grant>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    tenant: Option<String>,
    token_url: Option<String>,
    device_url: Option<String>,
    auth_url: Option<String>,
    scope: Option<String>,
    token_file: Option<String>,
}

/// Checks the OAuth2 keys of account `i`; `Some` when `auth = "oauth2"`.
fn oauth2_settings(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_place_but_never_quote_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        for (text, line) in [
            ("password = hunter2secret\n", 7),
            ("password = \"hunter2secret\n", 7),
            ("password = 'hunter2secret\"\n", 7),
        ] {
            let file = format!(
                "[store]\npath = \"x.db\"\n[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n{text}folders = [\"INBOX\"]\n"
            );
            std::fs::write(&path, file).expect("write");
            let err = match Config::load(&path) {
                Ok(_) => panic!("a syntax error was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains(&format!("line {line}")), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert_eq!(err.matches("m.toml").count(), 1, "{err}");
        }
    }

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Path::new("/etc/mailfeed")).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"
        [store]
        path = "mail.db"
        [[accounts]]
        name = "work"
        host = "imap.example.org"
        username = "me"
        password_env = "PW"
        folders = ["INBOX"]
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.store.path, PathBuf::from("/etc/mailfeed/mail.db"));
        let a = &c.accounts[0];
        assert_eq!(
            (a.port, a.security, a.idle, a.max_connections),
            (993, Security::Tls, true, 5)
        );
        assert_eq!(c.sync.batch_size, 500);
        assert_eq!(c.sync.max_message_size, 100_000_000);
        assert_eq!(a.poll_interval, Duration::from_secs(300));
    }

    /// Gmail refuses a 16th connection (all clients together): fewer by
    /// default, more than 15 refused with the key named; the daily limit
    /// reads like other sizes.
    #[test]
    fn gmail_limits() {
        let gmail = MINIMAL.replace("imap.example.org", "imap.gmail.com");
        let c = parse(&gmail).expect("valid");
        assert_eq!(c.accounts[0].max_connections, 3);
        assert_eq!(c.accounts[0].daily_download_limit, None);
        let e = parse(&gmail.replace("username", "max_connections = 16\nusername"))
            .expect_err("over Gmail's limit")
            .to_string();
        assert!(
            e.contains("accounts[0].max_connections") && e.contains("15"),
            "{e}"
        );
        let c = parse(&gmail.replace("username", "max_connections = 15\nusername"))
            .expect("at the limit");
        assert_eq!(c.accounts[0].max_connections, 15);
        let c = parse(&MINIMAL.replace("username", "daily_download_limit = \"2500MB\"\nusername"))
            .expect("valid");
        assert_eq!(c.accounts[0].daily_download_limit, Some(2_500_000_000));
        let e = parse(&MINIMAL.replace("username", "daily_download_limit = \"0MB\"\nusername"))
            .expect_err("zero")
            .to_string();
        assert!(e.contains("accounts[0].daily_download_limit"), "{e}");
    }

    #[test]
    fn store_url_selects_postgresql() {
        let c = parse(&MINIMAL.replace(
            "path = \"mail.db\"",
            "url = \"postgresql://feed:pg-secret-93@db.example/mail\"\npassword_file = \"pw\"",
        ))
        .expect("parse");
        let pg = c.store.postgres.expect("postgres store");
        assert_eq!(
            pg.url.expose(),
            "postgresql://feed:pg-secret-93@db.example/mail"
        );
        assert!(pg.password_file.expect("file").ends_with("pw"));
        assert!(!format!("{:?}", c.store.path).contains("secret"));
        assert!(
            !crate::secret::scrub("x postgresql://feed:pg-secret-93@db.example/mail")
                .contains("pg-secret-93")
        );
    }

    #[test]
    fn lease_period_defaults_validates_and_is_postgresql_only() {
        let pg = |extra: &str| {
            parse(&MINIMAL.replace(
                "path = \"mail.db\"",
                &format!("url = \"postgresql://feed@db.example/mail\"\n{extra}"),
            ))
        };
        let c = pg("").expect("default");
        assert_eq!(
            c.store.postgres.expect("pg").lease_period,
            Duration::from_secs(30)
        );
        let c = pg("lease_period = \"1m\"").expect("1m");
        assert_eq!(
            c.store.postgres.expect("pg").lease_period,
            Duration::from_secs(60)
        );
        for bad in [
            "lease_period = \"1s\"",
            "lease_period = \"2h\"",
            "lease_period = \"soon\"",
        ] {
            let e = pg(bad).expect_err(bad);
            assert!(e.contains("store.lease_period"), "{e}");
        }
        let e = parse(&MINIMAL.replace(
            "path = \"mail.db\"",
            "path = \"mail.db\"\nlease_period = \"30s\"",
        ))
        .expect_err("sqlite");
        assert!(
            e.contains("store.lease_period") && e.contains("store.url"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        let cases = [
            (MINIMAL.replace("host =", "hots ="), "hots"),
            (
                MINIMAL.replace("password_env = \"PW\"", ""),
                "exactly one of",
            ),
            (
                MINIMAL.replace("folders = [\"INBOX\"]", "folders = []"),
                "accounts[0].folders",
            ),
            (
                MINIMAL.replace("username", "security = \"plain\"\nusername"),
                "allow_plaintext",
            ),
            (
                MINIMAL.replace("[store]", "[sync]\ntimeout = \"5 fortnights\"\n[store]"),
                "sync.timeout",
            ),
            (
                MINIMAL.replace("[store]", "[sync]\nmax_message_size = \"1PB\"\n[store]"),
                "max_message_size",
            ),
            (
                MINIMAL.replace("[store]", "[sync]\nmax_line_size = \"1KB\"\n[store]"),
                "sync.max_line_size",
            ),
            (MINIMAL.replace("path = \"mail.db\"", ""), "store.path"),
            (
                MINIMAL.replace(
                    "path = \"mail.db\"",
                    "path = \"mail.db\"\nurl = \"postgresql://u@h/d\"",
                ),
                "`store.path` and `store.url` are both set",
            ),
            (
                MINIMAL.replace(
                    "path = \"mail.db\"",
                    "path = \"mail.db\"\npassword_file = \"pw\"",
                ),
                "needs `store.url`",
            ),
            (
                MINIMAL.replace("path = \"mail.db\"", "url = \"mysql://u@h/d\""),
                "`store.url` must start with postgresql://",
            ),
            (
                MINIMAL
                    .replace("security", "x")
                    .replace("host =", "security = \"ssl\"\nhost ="),
                "security",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(&text).expect_err("should be refused");
            assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        let d = |s: &str| parse_duration("k", &DurationValue::Text(s.into()));
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert!(d("soon").is_err());
        assert_eq!(d("1d"), Ok(Duration::from_secs(86400)));
        assert!(d("8d").is_err());
        assert!(d("100000000000000000000s").is_err());
        assert!(parse_duration("k", &DurationValue::Seconds(u64::MAX)).is_err());
        let s = |t: &str| parse_size("k", &SizeValue::Text(t.into()));
        assert_eq!(s("100MB"), Ok(100_000_000));
        assert_eq!(s("64KiB"), Ok(65536));
        assert!(s("12 parsecs").is_err());
    }

    #[test]
    fn every_duration_key_has_a_range() {
        let with_sync =
            |line: &str| MINIMAL.replace("[store]", &format!("[sync]\n{line}\n[store]"));
        let with_account = |line: &str| MINIMAL.replace("username", &format!("{line}\nusername"));
        let refused = [
            // Values `Duration` cannot hold must be errors, not panics.
            (
                with_sync("timeout = \"100000000000000000000s\""),
                "`sync.timeout`",
            ),
            (
                with_sync("poll_interval = \"1e400s\""),
                "`sync.poll_interval`",
            ),
            (
                with_sync("idle_refresh = \"99999999999999999999h\""),
                "`sync.idle_refresh`",
            ),
            (
                with_account("poll_interval = \"100000000000000000000s\""),
                "`accounts[0].poll_interval`",
            ),
            // Integers that fit but would overflow deadlines built from them.
            (with_sync("timeout = 9223372036854775807"), "`sync.timeout`"),
            (with_sync("timeout = \"2h\""), "`sync.timeout`"),
            (
                with_sync("poll_interval = 9223372036854775807"),
                "`sync.poll_interval`",
            ),
            (with_sync("poll_interval = \"3d\""), "`sync.poll_interval`"),
            // A poller that never pauses.
            (
                with_account("poll_interval = 0"),
                "`accounts[0].poll_interval`",
            ),
            (
                with_account("poll_interval = \"0s\""),
                "`accounts[0].poll_interval`",
            ),
            (
                with_account("poll_interval = \"2d\""),
                "`accounts[0].poll_interval`",
            ),
            (with_sync("timeout = 0"), "`sync.timeout`"),
        ];
        for (text, key) in refused {
            let e = parse(&text).expect_err(&format!("{key} should be refused in {text}"));
            assert!(e.contains(key), "error {e:?} should name {key}");
            assert!(
                e.contains("use ") || e.contains("up to"),
                "error {e:?} should say what to write"
            );
        }
        let c = parse(&with_account("poll_interval = \"30s\"")).expect("valid");
        assert_eq!(c.accounts[0].poll_interval, Duration::from_secs(30));
        let c = parse(&with_sync("timeout = \"1h\"\npoll_interval = \"24h\"")).expect("valid");
        assert_eq!(c.sync.timeout, Duration::from_secs(3600));
        assert_eq!(c.accounts[0].poll_interval, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn oauth2_sources_are_exactly_one_and_mistakes_name_the_key() {
        let base = MINIMAL.replace("password_env = \"PW\"\n", "");
        let with = |lines: &str| base.replace("folders", &format!("{lines}\nfolders"));
        let table = |t: &str| format!("{}\n[accounts.oauth2]\n{t}\n", with("auth = \"oauth2\""));
        let refused = [
            (with("auth = \"oauth2\""), "needs a token source"),
            (
                with("auth = \"oauth2\"\npassword_env = \"PW\""),
                "takes no password",
            ),
            (
                with("oauth2_token_command = \"oama access x\""),
                "`accounts[0].auth` = \"oauth2\"",
            ),
            (
                table("client_id = \"c\""),
                "`accounts[0].oauth2.provider` is missing",
            ),
            (
                table("provider = \"google\""),
                "`accounts[0].oauth2.client_id` is missing",
            ),
            (
                table("provider = \"custom\"\nclient_id = \"c\"\nscope = \"s\""),
                "`accounts[0].oauth2.token_url` is missing",
            ),
            (
                table(
                    "provider = \"custom\"\nclient_id = \"c\"\nscope = \"s\"\ntoken_url = \"http://idp.example/token\"",
                ),
                "must be an https:// URL",
            ),
            (
                table(
                    "provider = \"microsoft\"\nclient_id = \"c\"\ngrant = \"client_credentials\"\nclient_secret = \"x\"",
                ),
                "must name your tenant",
            ),
            (
                table(
                    "provider = \"microsoft\"\nclient_id = \"c\"\ntenant = \"contoso.onmicrosoft.com\"\ngrant = \"client_credentials\"",
                ),
                "needs `accounts[0].oauth2.client_secret`",
            ),
            (
                table(
                    "provider = \"google\"\nclient_id = \"c\"\nclient_secret = \"a\"\nclient_secret_file = \"b\"",
                ),
                "set only one of",
            ),
            (
                table("provider = \"google\"\nclient_id = \"c\"\ntenant = \"common\""),
                "for provider = \"microsoft\" only",
            ),
            (
                MINIMAL.replace("folders", "tls_fingerprint = \"sha1:00\"\nfolders"),
                "`accounts[0].tls_fingerprint`",
            ),
        ];
        for (text, needle) in refused {
            let e = parse(&text).expect_err(&format!("should be refused: {text}"));
            assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
        }
    }

    #[test]
    fn oauth2_providers_fill_in_their_endpoints() {
        let base = MINIMAL.replace("password_env = \"PW\"\n", "auth = \"oauth2\"\n");
        let c = parse(&format!(
            "{base}\n[accounts.oauth2]\nprovider = \"microsoft\"\nclient_id = \"c\"\ntenant = \"contoso.com\"\nclient_secret_file = \"$CREDENTIALS_DIRECTORY/secret\"\n"
        ))
        .expect("valid");
        let Auth::OAuth2(OAuth2Source::Client(o)) = &c.accounts[0].auth else {
            panic!("not an OAuth2 client: {:?}", c.accounts[0].auth)
        };
        assert_eq!(
            o.token_url,
            "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
        );
        assert!(o.scope.contains("IMAP.AccessAsUser.All") && o.scope.contains("offline_access"));
        assert_eq!(o.grant, Grant::RefreshToken);
        // Beside the database, named after the account.
        assert_eq!(
            o.token_file,
            PathBuf::from("/etc/mailfeed/work.oauth2-token")
        );
        let c = parse(&format!(
            "{base}\n[accounts.oauth2]\nprovider = \"google\"\nclient_id = \"c\"\n"
        ))
        .expect("valid");
        let Auth::OAuth2(OAuth2Source::Client(o)) = &c.accounts[0].auth else {
            panic!("not an OAuth2 client")
        };
        assert_eq!(
            o.device_url, None,
            "Google's device flow refuses the mail scope"
        );
        assert_eq!(o.scope, "https://mail.google.com/");
        let c = parse(&base.replace(
            "auth = \"oauth2\"",
            "auth = \"oauth2\"\noauth2_token_command = \"oama access me\"",
        ))
        .expect("valid");
        assert_eq!(
            c.accounts[0].auth,
            Auth::OAuth2(OAuth2Source::Command("oama access me".into()))
        );
    }

    #[test]
    fn password_sources_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").expect("write");
        let s = PasswordSource::File(f).resolve("a").expect("file");
        assert_eq!(s.expose(), "s3cret");
        let s = PasswordSource::Command("printf 'from-cmd\\n'".into())
            .resolve("a")
            .expect("command");
        assert_eq!(s.expose(), "from-cmd");
        assert!(
            PasswordSource::Env("MAILFEED_TEST_SURELY_UNSET".into())
                .resolve("a")
                .is_err()
        );
    }
}
