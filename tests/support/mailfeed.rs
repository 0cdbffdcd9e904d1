//! Driving the real `mailfeed` binary from tests: a config file pointing at a
//! test Dovecot, running subcommands, and reading the database back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::dovecot::Dovecot;
use super::server::TestServer;

/// How the test account connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tls,
    StartTls,
    Plain,
}

/// A mailfeed config under a temp dir, for one or more accounts.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    /// The PostgreSQL database `[store] url` names instead of `db`
    /// ([`Setup::use_postgres`]).
    pub pg_url: Option<String>,
}

/// One `[[accounts]]` entry's essentials.
pub struct Account<'a> {
    pub name: &'a str,
    pub port: u16,
    pub mode: Mode,
    pub ca_file: Option<&'a Path>,
    pub user: &'a str,
    pub password: &'a str,
    pub folders: &'a [&'a str],
    pub extra: &'a str,
}

impl<'a> Account<'a> {
    /// An account for `user` on `dc` over implicit TLS, trusting its cert.
    pub fn tls(
        dc: &'a Dovecot,
        cert: &'a Path,
        user: &'a str,
        password: &'a str,
        folders: &'a [&'a str],
    ) -> Self {
        Account {
            name: "test",
            port: dc.tls_port(),
            mode: Mode::Tls,
            ca_file: Some(cert),
            user,
            password,
            folders,
            extra: "",
        }
    }

    /// Plain IMAP (allowed explicitly), for proxies and speed.
    pub fn plain(
        dc: &'a Dovecot,
        user: &'a str,
        password: &'a str,
        folders: &'a [&'a str],
    ) -> Self {
        Account {
            name: "test",
            port: dc.plain_port(),
            mode: Mode::Plain,
            ca_file: None,
            user,
            password,
            folders,
            extra: "",
        }
    }
}

impl Setup {
    /// Appends TOML to the configuration file.
    pub fn append_config(&self, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)
            .expect("config");
        writeln!(f, "\n{text}").expect("write config");
    }

    pub fn new(accounts: &[Account<'_>], sync_extra: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("mailfeed-test-")
            .tempdir()
            .expect("temp dir");
        let db = dir.path().join("mail.db");
        // `sync_extra` may set its own (shorter) timeout.
        let timeout = if sync_extra.contains("timeout") {
            ""
        } else {
            "timeout = \"10s\"\n"
        };
        let mut text = format!(
            "[store]\npath = \"mail.db\"\n\n[sync]\n{timeout}{sync_extra}\n\n[log]\nlevel = \"info\"\n"
        );
        for a in accounts {
            let (security, allow) = match a.mode {
                Mode::Tls => ("tls", false),
                Mode::StartTls => ("starttls", false),
                Mode::Plain => ("plain", true),
            };
            text.push_str(&format!(
                "\n[[accounts]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"{security}\"\nallow_plaintext = {allow}\nusername = \"{}\"\nfolders = [{}]\n",
                a.name,
                a.port,
                a.user,
                a.folders
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
            // An empty password: the account logs in another way (`extra`
            // says how, e.g. OAuth2).
            if !a.password.is_empty() {
                let pw_file = dir.path().join(format!("{}.password", a.name));
                std::fs::write(&pw_file, a.password).expect("password file");
                text.push_str(&format!("password_file = \"{}\"\n", pw_file.display()));
            }
            if let Some(ca) = a.ca_file {
                text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
            }
            // Last: `extra` may open a sub-table such as `[accounts.oauth2]`.
            text.push_str(a.extra);
            text.push('\n');
        }
        let config = dir.path().join("mailfeed.toml");
        std::fs::write(&config, text).expect("config");
        Setup {
            dir,
            config,
            db,
            pg_url: None,
        }
    }

    /// Moves `[store]` from the SQLite file to the database at `url` on
    /// `pg`, the password given through `password_file` rather than the
    /// URL, as users are told to; the test itself reads with `url`.
    pub fn use_postgres(&mut self, pg: &super::postgres::Postgres, url: &str) {
        let name = url.rsplit('/').next().expect("database name");
        let pw = self.dir.path().join("pg.password");
        std::fs::write(&pw, format!("{}\n", super::postgres::PASSWORD)).expect("pg password file");
        let text = std::fs::read_to_string(&self.config).expect("config");
        assert!(text.contains("path = \"mail.db\""), "{text}");
        let store = format!(
            "url = \"{}\"\npassword_file = \"{}\"",
            pg.url_without_password(name),
            pw.display()
        );
        std::fs::write(&self.config, text.replacen("path = \"mail.db\"", &store, 1))
            .expect("config");
        self.pg_url = Some(url.to_owned());
    }

    /// What the setup's store holds, whichever backend it is on.
    pub fn feed_db(&self) -> super::feed_db::FeedDb {
        super::feed_db::FeedDb::open(self)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailfeed"));
        c.arg("-c").arg(&self.config).args(args);
        c.env_remove("RUST_LOG");
        c
    }

    /// Runs a subcommand to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run mailfeed")
    }

    /// Runs `sync` and asserts it succeeded.
    pub fn sync_ok(&self) -> Output {
        let out = self.run(&["sync"]);
        assert!(
            out.status.success(),
            "mailfeed sync failed: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).expect("open db")
    }

    /// (uidvalidity, uid, raw) of every feed row of a mailbox, by UID.
    pub fn stored(&self, account: &str, mailbox: &str) -> Vec<(u32, u32, Vec<u8>)> {
        self.feed_rows(account, mailbox, "")
    }

    /// (uidvalidity, uid, raw) of the feed rows of a mailbox that are not
    /// marked expunged, by UID: what the server should still hold.
    pub fn live(&self, account: &str, mailbox: &str) -> Vec<(u32, u32, Vec<u8>)> {
        self.feed_rows(account, mailbox, "AND expunged_at IS NULL")
    }

    fn feed_rows(&self, account: &str, mailbox: &str, and: &str) -> Vec<(u32, u32, Vec<u8>)> {
        let conn = self.db();
        let mut st = conn
            .prepare(&format!(
                "SELECT uidvalidity, uid, raw FROM message_feed
                 WHERE account = ?1 AND mailbox = ?2 {and}
                 ORDER BY uidvalidity, uid"
            ))
            .expect("prepare");
        st.query_map([account, mailbox], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
    }

    /// Feed rows of a mailbox so far; 0 while there is no database yet (it
    /// is not created here, so a service that has not started yet is left
    /// to create it itself).
    pub fn feed_count(&self, mailbox: &str) -> i64 {
        if !self.db.exists() {
            return 0;
        }
        let Ok(conn) = rusqlite::Connection::open(&self.db) else {
            return 0;
        };
        conn.query_row(
            "SELECT count(*) FROM message_feed WHERE mailbox = ?1",
            [mailbox],
            |r| r.get(0),
        )
        .unwrap_or(0)
    }

    /// Number of rows in `messages` (all generations, duplicates included).
    pub fn message_rows(&self) -> i64 {
        self.db()
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .expect("count")
    }
}

/// Asserts that the database holds exactly what the server holds for a
/// folder: same UIDs under the server's UIDVALIDITY (rows marked expunged
/// aside), identical bytes.
pub fn assert_mirror(setup: &Setup, dc: &impl TestServer, user: &str, account: &str, folder: &str) {
    let truth = dc.fetch_all(user, folder).expect("truth");
    let uv = dc.uid_validity(user, folder).expect("uidvalidity");
    let stored: Vec<(u32, Vec<u8>)> = setup
        .live(account, folder)
        .into_iter()
        .filter(|(v, _, _)| *v == uv)
        .map(|(_, u, raw)| (u, raw))
        .collect();
    assert_eq!(
        stored.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        truth.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        "UIDs of {folder} differ between database and server"
    );
    for ((u, a), (_, b)) in stored.iter().zip(truth.iter()) {
        assert!(
            a == b,
            "UID {u} of {folder}: stored bytes differ from the server's BODY[]"
        );
    }
}
