//! `[store]`: the SQLite file (`path`), or a PostgreSQL database (`url`,
//! with an optional `password_file`, the `ca_file` that trusts its TLS
//! certificate, and the `lease_period` of instances sharing it); exactly
//! one of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Synchronous;
use super::durations::{DurationValue, parse_duration};
use super::paths::resolve_path;
use super::raw::RawStore;

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
    /// PEM certificates trusted for the server's TLS certificate besides
    /// the system's roots (`ca_file`, as for an IMAP account): a CA, or
    /// the server's own self-signed certificate.
    pub ca_file: Option<PathBuf>,
    /// How long an instance's claim on an account lasts unrenewed
    /// (`lease_period`): a dead instance's accounts move within it.
    pub lease_period: Duration,
}

/// `[store] lease_period` when not set.
pub const DEFAULT_LEASE_PERIOD: Duration = Duration::from_secs(30);

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

/// The password part of `postgresql://user:PASSWORD@host/db`, as written
/// (percent-encoded, if it is; the store registers the decoded form when it
/// reads the URL).
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, pw)| pw)
}

impl StoreConfig {
    pub(super) fn from_raw(rs: RawStore, base: &Path) -> Result<StoreConfig, String> {
        Ok(match (rs.path.as_deref(), rs.url) {
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
                if rs.ca_file.is_some() {
                    return Err(
                        "`store.ca_file` is for TLS to PostgreSQL; it needs `store.url`, not `store.path`"
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
                // A password in the URL is scrubbed from every log line;
                // the rest of the URL is not secret (errors name it).
                if let Some(pw) = url_password(url.expose()) {
                    crate::secret::Secret::new(pw).register();
                }
                StoreConfig {
                    path: PathBuf::new(),
                    synchronous: rs.synchronous.unwrap_or_default(),
                    postgres: Some(PostgresStore {
                        url,
                        password_file: rs.password_file.map(|p| resolve_path(base, &p)),
                        ca_file: rs.ca_file.map(|p| resolve_path(base, &p)),
                        lease_period: lease_period(rs.lease_period.as_ref())?,
                    }),
                }
            }
        })
    }
}
