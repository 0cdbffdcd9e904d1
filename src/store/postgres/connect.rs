//! Where the PostgreSQL server is, how to log in and how the connection is
//! protected: the `[store] url`
//! (`postgresql://user[:password]@host[:port]/database[?options]`), the
//! password from the URL, `password_file`, `PGPASSWORD` or the `.pgpass`
//! file (`PGPASSFILE`), in that order, and the connection itself. The
//! password is registered with the secret scrubber as soon as it is known
//! and never appears in what this module shows (`PgTarget::shown`).
//!
//! TLS (`sslmode` in the URL, `[store] ca_file`): a server on another host
//! is reached over verified TLS only — the certificate must chain to the
//! system's roots or to `ca_file` (a self-signed certificate in `ca_file`
//! is its own anchor) and name the host, as libpq's `verify-full` demands,
//! whatever `sslmode` says short of `disable`; a server that offers no TLS
//! is refused, never used in plain text. Plain text is used only when
//! chosen: `sslmode=disable`, or a loopback address or Unix socket with no
//! `sslmode` and no `ca_file` (the bytes never leave the machine). On
//! loopback `sslmode=prefer` means verified TLS if the server offers it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Config, NoTls};

use super::tls::VerifiedTls;
use super::{Pg, PgContext};
use crate::config::PostgresStore;
use crate::secret::Secret;
use crate::store::StoreError;
use crate::transport::TransportError;

/// How long connecting may take, TCP and TLS each, unless the URL says
/// `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed, checked database address.
#[derive(Clone)]
pub(crate) struct PgTarget {
    config: Config,
    /// Verified TLS, when the connection uses it (`None`: plain text).
    tls: Option<VerifiedTls>,
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

/// `sslmode` as libpq spells it; the client parses only three of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Disable,
    Prefer,
    /// `require`, `verify-ca` or `verify-full`: all verified in full here.
    Require,
}

/// The TLS options of the URL's query (`sslmode`, `sslrootcert`), taken
/// out: the client knows neither `verify-*` nor `sslrootcert`, and this
/// module decides TLS itself. Returns the URL without them.
fn take_tls_options(url: &str) -> Result<(String, Option<Requested>, Option<PathBuf>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" => Requested::Disable,
                    "prefer" => Requested::Prefer,
                    "require" | "verify-ca" | "verify-full" => Requested::Require,
                    other => {
                        return Err(format!(
                            "`store.url`: sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full (TLS is always verified)"
                        ));
                    }
                })
            }
            // libpq's `system` means the system's roots, used anyway.
            "sslrootcert" if value == "system" => {}
            "sslrootcert" => root = Some(PathBuf::from(percent_decode(value)?)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode, root))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("`store.url`: a `%` in sslrootcert is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "`store.url`: sslrootcert is not UTF-8".to_owned())
}

/// Loopback addresses and Unix sockets: traffic that never leaves the host.
fn is_local(host: &Host) -> bool {
    match host {
        Host::Tcp(h) => {
            h == "localhost"
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    }
}

impl PgTarget {
    /// Parses `store.url`, decides TLS and finds the password. Errors
    /// never contain the password.
    pub(crate) fn parse(store: &PostgresStore) -> Result<PgTarget, StoreError> {
        let (url, requested, root) = take_tls_options(store.url.expose()).map_err(bad)?;
        // Its password (the only secret in it) is registered below, once
        // parsed: masking the whole URL would hide the server's address in
        // every error.
        let mut config = Config::from_str(&url).map_err(|e| {
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
        let shown = format!("postgresql://{user}@{host_text}:{port}/{db}");
        let local = config.get_hosts().iter().all(is_local);
        let unix = config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
        let ca_file = match (&store.ca_file, root) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "`store.ca_file` and sslrootcert in `store.url` are both set; keep one".into(),
                ));
            }
            (Some(f), None) => Some(f.clone()),
            (None, r) => r,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mode = match requested {
            Some(Requested::Disable) if ca_file.is_some() => {
                return Err(bad(
                    "`store.ca_file` is set but `store.url` says sslmode=disable (plain text); drop one of them".into(),
                ));
            }
            Some(Requested::Disable) => SslMode::Disable,
            // A Unix socket has no TLS; libpq ignores sslmode there too.
            _ if unix => SslMode::Disable,
            // Verified TLS if offered: only where plain text stays local.
            Some(Requested::Prefer) if local => SslMode::Prefer,
            None if local && ca_file.is_none() => SslMode::Disable,
            _ => SslMode::Require,
        };
        config.ssl_mode(mode);
        let tls = if mode == SslMode::Disable {
            None
        } else {
            let tls_config = crate::transport::tls_config(ca_file.as_deref())
                .map_err(|e| bad(format!("`store.ca_file`: {e}")))?;
            Some(VerifiedTls {
                config: tls_config,
                timeout: config
                    .get_connect_timeout()
                    .copied()
                    .unwrap_or(CONNECT_TIMEOUT),
                addr: format!("{host_text}:{port}"),
            })
        };
        if config.get_password().is_none() {
            if let Some(file) = &store.password_file {
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
        config.application_name("mailfeed");
        Ok(PgTarget { shown, config, tls })
    }

    /// Whether the connection is made over TLS (required, or on loopback
    /// when the server offers it).
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection (no migrations).
    pub(crate) fn connect(&self) -> Result<Pg, StoreError> {
        let connected = match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        };
        let client = connected.map_err(|source| self.connect_error(source))?;
        Ok(Pg::new(client))
    }

    /// A failed connection in one line with the fix: a refused
    /// certificate names the key that trusts one, a server that insists
    /// on TLS names `sslmode=disable`, a server without TLS says so.
    fn connect_error(&self, source: postgres::Error) -> StoreError {
        let target = self.shown.clone();
        let transport =
            std::error::Error::source(&source).and_then(|e| e.downcast_ref::<TransportError>());
        if let Some(t) = transport {
            let message = if t.is_wrong_host_certificate() {
                format!(
                    "{t}; the server's certificate does not name this host: use in `store.url` a host name the certificate lists, or have a certificate made for this one"
                )
            } else if t.is_pin_refused() || t.is_untrusted_certificate() {
                format!(
                    "{t}; the server's certificate is not trusted (its issuer is unknown here): set `store.ca_file` to the PEM of the CA that signed it (or of the server's own self-signed certificate), or install that CA in the system store"
                )
            } else {
                t.to_string()
            };
            return StoreError::PgTls { target, message };
        }
        let text = super::error_text(&source);
        if text.contains("server does not support TLS") {
            return StoreError::PgTls {
                target,
                message: "the server does not offer TLS; enable ssl on the server, or add sslmode=disable to `store.url` to accept plain text".into(),
            };
        }
        if !self.uses_tls()
            && source.as_db_error().is_some_and(|d| {
                d.code() == &postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    && d.message().contains("no encryption")
            })
        {
            return StoreError::PgTls {
                target,
                message: format!(
                    "{text}; the server accepts this login over TLS only: put sslmode=require in `store.url` instead of plain text (and set `store.ca_file` if its certificate is self-signed)"
                ),
            };
        }
        StoreError::PgConnect { target, source }
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

    fn store(url: &str, ca_file: Option<&str>) -> PostgresStore {
        PostgresStore {
            url: Secret::new(url),
            password_file: None,
            ca_file: ca_file.map(PathBuf::from),
            lease_period: crate::config::DEFAULT_LEASE_PERIOD,
        }
    }

    #[test]
    fn errors_do_not_show_the_password() {
        let e = PgTarget::parse(&store(
            "postgresql://feed:hunter2-pw@db.example.org/mail?sslmode=verify-full",
            Some("/nonexistent/ca.pem"),
        ))
        .expect_err("missing CA file");
        let text = e.to_string();
        assert!(text.contains("`store.ca_file`"), "{text}");
        assert!(!text.contains("hunter2-pw"), "{text}");
        let e = PgTarget::parse(&store(
            "postgresql://feed:hunter2-pw@db.example.org/mail?sslmode=allow",
            None,
        ))
        .expect_err("allow");
        assert!(!e.to_string().contains("hunter2-pw"), "{e}");
        let t = PgTarget::parse(&store(
            "postgresql://feed:hunter2-pw@127.0.0.1:5999/mail",
            None,
        ))
        .expect("loopback");
        assert_eq!(t.shown, "postgresql://feed@127.0.0.1:5999/mail");
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn tls_is_verified_off_the_machine_and_plain_only_when_chosen() {
        let mode = |url: &str| {
            let t = PgTarget::parse(&store(url, None)).expect(url);
            (t.config.get_ssl_mode(), t.uses_tls())
        };
        // Another host: verified TLS, required, whatever short of disable.
        for q in [
            "",
            "?sslmode=prefer",
            "?sslmode=require",
            "?sslmode=verify-ca",
        ] {
            let url = format!("postgresql://feed@db.example.org/mail{q}");
            assert_eq!(mode(&url), (SslMode::Require, true), "{url}");
        }
        assert_eq!(
            mode("postgresql://feed@db.example.org/mail?sslmode=disable"),
            (SslMode::Disable, false)
        );
        // Loopback: plain unless TLS is asked for; prefer is verified too.
        assert_eq!(
            mode("postgresql://feed@127.0.0.1/mail"),
            (SslMode::Disable, false)
        );
        assert_eq!(
            mode("postgresql://feed@[::1]/mail"),
            (SslMode::Disable, false)
        );
        assert_eq!(
            mode("postgresql://feed@localhost/mail?sslmode=prefer"),
            (SslMode::Prefer, true)
        );
        assert_eq!(
            mode("postgresql://feed@localhost/mail?sslmode=verify-full&connect_timeout=5"),
            (SslMode::Require, true)
        );
        // A Unix socket has no TLS.
        assert_eq!(
            mode("postgresql://feed@%2Frun%2Fpostgresql/mail?sslmode=require"),
            (SslMode::Disable, false)
        );
        // Plain text and a CA file contradict each other.
        let e = PgTarget::parse(&store(
            "postgresql://feed@db.example.org/mail?sslmode=disable",
            Some("/etc/ssl/certs/ca-certificates.crt"),
        ))
        .expect_err("disable with a CA");
        assert!(e.to_string().contains("sslmode=disable"), "{e}");
    }

    #[test]
    fn tls_options_leave_the_url_and_sslrootcert_decodes() {
        let (url, mode, root) = take_tls_options(
            "postgresql://u@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fpg%20ca.pem&application_name=x",
        )
        .expect("options");
        assert_eq!(url, "postgresql://u@h/d?application_name=x");
        assert_eq!(mode, Some(Requested::Require));
        assert_eq!(root, Some(PathBuf::from("/etc/pg ca.pem")));
        assert!(take_tls_options("postgresql://u@h/d?sslrootcert=%zz").is_err());
    }
}
