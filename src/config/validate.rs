//! From the raw shape to [`Config`]: defaults, ranges and the messages
//! that name the key and the fix (accounts in `account.rs`).

use std::path::Path;
use std::time::Duration;

use super::durations::{POLL_RANGE, TIMEOUT_RANGE, check_range, parse_duration};
use super::raw::RawFile;
use super::sizes::parse_size;
use super::{
    AccountConfig, Auth, Config, DurationValue, LogConfig, OAuth2Source, StoreConfig, SyncConfig,
};

impl Config {
    pub(super) fn from_raw(raw: RawFile, source: &Path, base: &Path) -> Result<Config, String> {
        let rs = raw.store.unwrap_or_default();
        let store = StoreConfig::from_raw(rs, base)?;
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
}
