//! `[store]`: the SQLite file (`path`), or a PostgreSQL database (`url`,
//! with an optional `password_file`); exactly one of them.

use std::path::{Path, PathBuf};

use super::Synchronous;
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
                    }),
                }
            }
        })
    }
}
