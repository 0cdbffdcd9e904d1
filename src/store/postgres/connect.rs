//! Where the PostgreSQL server is and how to log in: the `[store] url`
//! (`postgresql://user[:password]@host[:port]/database[?options]`), the
//! password from the URL, `password_file`, `PGPASSWORD` or the `.pgpass`
//! file (`PGPASSFILE`), in that order, and the connection itself. The
//! password is registered with the secret scrubber as soon as it is known
//! and never appears in what this module shows (`PgTarget::shown`).
//!
//! TLS to the database is not built in yet: a server on loopback or a Unix
//! socket is reached in plain text, and any other host only with an
//! explicit `sslmode=disable` (the choice of plain text is the user's,
//! never a silent fallback).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Config, NoTls};

use super::{Pg, PgContext};
use crate::secret::Secret;
use crate::store::StoreError;

/// A parsed, checked database address.
#[derive(Clone)]
pub(crate) struct PgTarget {
    config: Config,
    /// user@host:port/database, for messages.
    pub(crate) shown: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

fn bad(what: String) -> StoreError {
    StoreError::PgConfig(what)
}

impl PgTarget {
    /// Parses `url` and finds the password. Errors never contain it.
    pub(crate) fn parse(
        url: &Secret,
        password_file: Option<&Path>,
    ) -> Result<PgTarget, StoreError> {
        let mut config = Config::from_str(url.expose()).map_err(|e| {
            // The parser's message names the part it did not understand,
            // not the URL; the URL is not repeated (it may hold a password).
            bad(format!("`store.url` is not a PostgreSQL URL: {e}"))
        })?;
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .map_err(|_| bad("`store.url` names no user (postgresql://USER@host/db)".into()))?;
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            let db = config.get_user().unwrap_or_default().to_owned();
            config.dbname(&db);
        }
        let (host, port) = (
            config.get_hosts().first().cloned(),
            config.get_ports().first().copied().unwrap_or(5432),
        );
        let host_text = match &host {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => {
                return Err(bad(
                    "`store.url` names no host (postgresql://user@HOST/db)".into()
                ));
            }
        };
        let user = config.get_user().unwrap_or_default().to_owned();
        let db = config.get_dbname().unwrap_or_default().to_owned();
        let local = match &host {
            Some(Host::Tcp(h)) => matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1"),
            _ => true,
        };
        if !local && config.get_ssl_mode() != SslMode::Disable {
            return Err(bad(format!(
                "`store.url`: TLS to PostgreSQL on {host_text} is not supported yet; \
                 connect through loopback or a Unix socket, or add ?sslmode=disable to accept plain text"
            )));
        }
        if config.get_password().is_none() {
            if let Some(file) = password_file {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| bad(format!("`store.password_file` {}: {e}", file.display())))?;
                config.password(text.trim_end_matches(['\r', '\n']));
            } else if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            } else if let Some(p) = pgpass(&host_text, port, &db, &user) {
                config.password(p);
            }
        }
        if let Some(p) = config.get_password() {
            Secret::new(String::from_utf8_lossy(p).into_owned()).register();
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(30));
        }
        config.application_name("mailfeed");
        Ok(PgTarget {
            shown: format!("postgresql://{user}@{host_text}:{port}/{db}"),
            config,
        })
    }

    /// Opens a connection (no migrations).
    pub(crate) fn connect(&self) -> Result<Pg, StoreError> {
        let client = self
            .config
            .connect(NoTls)
            .map_err(|source| StoreError::PgConnect {
                target: self.shown.clone(),
                source,
            })?;
        Ok(Pg::new(client))
    }

    /// Opens a connection and brings the schema up to date.
    pub(crate) fn open(&self) -> Result<Pg, StoreError> {
        let mut pg = self.connect()?;
        super::migrate::apply(&mut pg)?;
        pg.client
            .batch_execute("SET statement_timeout = '10min'")
            .pg("setting the statement timeout")?;
        Ok(pg)
    }
}

/// The password for this server from the `.pgpass` file (libpq's format:
/// `host:port:database:user:password`, `*` matching anything, `\` escaping
/// `:` and `\`).
fn pgpass(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    let wanted = [host, port.as_str(), db, user];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(f, w)| f == "*" || f == w || (w == "127.0.0.1" && f == "localhost"));
            matches.then(|| fields[4].clone())
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_split_on_unescaped_colons() {
        assert_eq!(
            split_pgpass(r"db.example:5432:*:feed:pa\:ss\\x"),
            ["db.example", "5432", "*", "feed", r"pa:ss\x"]
        );
    }

    #[test]
    fn errors_do_not_show_the_password() {
        let url = Secret::new("postgresql://feed:hunter2-pw@db.example.org/mail");
        let e = PgTarget::parse(&url, None).expect_err("remote without TLS");
        let text = e.to_string();
        assert!(text.contains("db.example.org"), "{text}");
        assert!(!text.contains("hunter2-pw"), "{text}");
        let t = PgTarget::parse(
            &Secret::new("postgresql://feed:hunter2-pw@127.0.0.1:5999/mail"),
            None,
        )
        .expect("loopback");
        assert_eq!(t.shown, "postgresql://feed@127.0.0.1:5999/mail");
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
