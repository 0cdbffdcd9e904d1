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
    pub path: PathBuf,
    pub synchronous: Synchronous,
}

/// `[sync]`: settings shared by every account.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    pub batch_size: u32,
    pub max_message_size: u64,
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
    pub username: String,
    pub password: PasswordSource,
    pub folders: Vec<String>,
    pub idle: bool,
    pub max_connections: u32,
    pub poll_interval: Duration,
    /// Use COMPRESS=DEFLATE (RFC 4978) when the server offers it.
    pub compress: bool,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub log: LogConfig,
    pub accounts: Vec<AccountConfig>,
    /// `[http]`: the listener for the API and web page; `None` when absent.
    pub http: Option<HttpConfig>,
}

/// `[http]`: where the HTTP listener binds, and the bearer token it asks
/// for (required unless it listens on loopback only).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: std::net::SocketAddr,
    pub token: Option<Secret>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
}

/// Default `[http] listen`: loopback only, so no token is needed.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9925";

impl HttpConfig {
    fn from_raw(raw: RawHttp, base: &Path) -> Result<HttpConfig, String> {
        let text = raw.listen.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN);
        let listen = text.parse().map_err(|_| {
            format!(
                "`http.listen` = {text:?} is not an address and port; write e.g. \"127.0.0.1:9925\" or \"[::1]:9925\""
            )
        })?;
        let token = match (raw.token, raw.token_file) {
            (Some(_), Some(_)) => {
                return Err("`http.token` and `http.token_file` are both set; keep one".into());
            }
            (Some(t), None) => Some(t),
            (None, Some(f)) => {
                let path = resolve_path(base, &f);
                let t = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "`http.token_file` = {}: cannot read it ({e}); create it (mode 0600) holding the token",
                        path.display()
                    )
                })?;
                Some(t.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        if token.as_deref().is_some_and(|t| t.trim().len() < 16) {
            return Err("`http.token` is shorter than 16 characters; use a long random one, e.g. from `openssl rand -hex 32`".into());
        }
        HttpConfig::check(listen, token.map(Secret::new))
    }

    /// The rule for every listener: beyond loopback, a token is required.
    pub fn check(
        listen: std::net::SocketAddr,
        token: Option<Secret>,
    ) -> Result<HttpConfig, String> {
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(format!(
                "`http.listen` = \"{listen}\" is reachable beyond this machine, so it needs a bearer token: set `http.token_file` (or `http.token`), or listen on 127.0.0.1"
            ));
        }
        Ok(HttpConfig { listen, token })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    store: Option<RawStore>,
    sync: Option<RawSync>,
    log: Option<RawLog>,
    accounts: Option<Vec<RawAccount>>,
    http: Option<RawHttp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    synchronous: Option<Synchronous>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    batch_size: Option<u32>,
    max_message_size: Option<SizeValue>,
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
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    password_command: Option<String>,
    folders: Option<Vec<String>>,
    idle: Option<bool>,
    max_connections: Option<u32>,
    poll_interval: Option<DurationValue>,
    compress: Option<bool>,
}

/// A duration written as `"90s"`, `"5m"`, `"1h"` or a number of seconds.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum DurationValue {
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

fn parse_duration(key: &str, v: &DurationValue) -> Result<Duration, String> {
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
fn resolve_path(base: &Path, p: &str) -> PathBuf {
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
        let store = StoreConfig {
            path: resolve_path(
                base,
                rs.path.as_deref().ok_or(
                    "`store.path` is missing; set it to the SQLite database file, e.g. path = \"mailfeed.db\"",
                )?,
            ),
            synchronous: rs.synchronous.unwrap_or_default(),
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
            let acc = Self::account(i, a, base, &sync)?;
            if accounts.iter().any(|o: &AccountConfig| o.name == acc.name) {
                return Err(format!(
                    "`accounts[{i}].name` = {:?} is used twice; account names must be unique",
                    acc.name
                ));
            }
            accounts.push(acc);
        }
        let http = match raw.http {
            Some(h) => Some(HttpConfig::from_raw(h, base)?),
            None => None,
        };
        Ok(Config {
            source: source.to_owned(),
            store,
            sync,
            log,
            accounts,
            http,
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
        if sources.len() != 1 {
            return Err(format!(
                "account {name:?}: set exactly one of `{k}password`, `{k}password_env`, `{k}password_file`, `{k}password_command` (found {})",
                sources.len(),
                k = format!("accounts[{i}].")
            ));
        }
        let password = sources.remove(0);
        let folders = a.folders.unwrap_or_default();
        if folders.is_empty() || folders.iter().any(|f| f.trim().is_empty()) {
            return Err(format!(
                "`{}` must list at least one folder, e.g. folders = [\"INBOX\"]",
                key("folders")
            ));
        }
        let max_connections = a.max_connections.unwrap_or(5);
        if max_connections == 0 || max_connections > 100 {
            return Err(format!(
                "`{}` must be 1 to 100 (default 5)",
                key("max_connections")
            ));
        }
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
        Ok(AccountConfig {
            name,
            host,
            port,
            security,
            allow_plaintext,
            ca_file: a.ca_file.map(|f| resolve_path(base, &f)),
            username,
            password,
            folders,
            idle: a.idle.unwrap_or(true),
            max_connections,
            poll_interval,
            compress: a.compress.unwrap_or(false),
        })
    }
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
            (MINIMAL.replace("path = \"mail.db\"", ""), "store.path"),
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
