//! A private PostgreSQL for tests: `initdb` into a temp dir, `pg_ctl start`
//! on a free high port of 127.0.0.1 (password authentication, a superuser
//! `mailfeed`), stopped and removed on drop. Run as the `postgres` user when
//! the tests run as root (the server refuses root), as the current user
//! otherwise. Binaries come from Debian's `postgresql` package
//! (/usr/lib/postgresql/<major>/bin; scripts/install-deps installs it).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use super::dovecot::reserve_port;

/// The superuser and its password in every private instance.
pub const USER: &str = "mailfeed";
pub const PASSWORD: &str = "pg-test-secret-4711";

static DATABASES: AtomicU32 = AtomicU32::new(0);

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    _port_lock: File,
    /// Started with `ssl = on` (and restarted so).
    tls: bool,
}

fn bin_dir() -> io::Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        io::Error::other("no PostgreSQL under /usr/lib/postgresql (run scripts/install-deps)")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// TLS for a private instance: the server's certificate and key (PEM),
/// and whether TCP logins without TLS are refused (`hostssl` alone in
/// pg_hba.conf).
pub struct ServerTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub tls_only: bool,
}

impl Postgres {
    /// Starts a fresh instance.
    pub fn start() -> io::Result<Postgres> {
        Postgres::start_with(None)
    }

    /// Starts a fresh instance with `ssl = on` and the given certificate.
    pub fn start_tls(tls: &ServerTls<'_>) -> io::Result<Postgres> {
        Postgres::start_with(Some(tls))
    }

    fn start_with(tls: Option<&ServerTls<'_>>) -> io::Result<Postgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("mailfeed-pg-").tempdir()?;
        if is_root() {
            let owner = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()?;
            if !owner.success() {
                return Err(io::Error::other("chown of the PostgreSQL temp dir failed"));
            }
        }
        let pwfile = dir.path().join("pw");
        fs::write(&pwfile, PASSWORD)?;
        let (port, lock) = reserve_port()?;
        let mut pg = Postgres {
            dir,
            bin,
            port,
            _port_lock: lock,
            tls: false,
        };
        if is_root() {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&pwfile)
                .status()?;
        }
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "--auth=scram-sha-256".as_ref(),
                format!("--pwfile={}", pwfile.display()).as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        if let Some(tls) = tls {
            // The server reads its key only when the postgres user alone
            // may: copies in the data directory, owned by it, mode 0600.
            let (cert, key) = (data.join("server.crt"), data.join("server.key"));
            fs::copy(tls.cert, &cert)?;
            fs::copy(tls.key, &key)?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
            if is_root() {
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&cert)
                    .arg(&key)
                    .status()?;
            }
            if tls.tls_only {
                let hba = data.join("pg_hba.conf");
                let text = fs::read_to_string(&hba)?;
                let only: String = text
                    .lines()
                    .map(|l| match l.strip_prefix("host ") {
                        Some(rest) => format!("hostssl {rest}\n"),
                        None => format!("{l}\n"),
                    })
                    .collect();
                fs::write(&hba, only)?;
            }
            pg.tls = true;
        }
        pg.pg_ctl("start")?;
        Ok(pg)
    }

    /// `pg_ctl start|restart` with this instance's settings, waiting
    /// until it accepts connections.
    fn pg_ctl(&self, action: &str) -> io::Result<Output> {
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                self.log_path().as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "120".as_ref(),
                action.as_ref(),
            ],
        )
    }

    /// Restarts the server: every open connection is cut; new ones work
    /// once this returns.
    pub fn restart(&self) -> io::Result<()> {
        self.pg_ctl("restart").map(drop)
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`: every
    /// connection cut, no shutdown checkpoint, like a crash); [`start_again`]
    /// brings it back with crash recovery.
    ///
    /// [`start_again`]: Postgres::start_again
    pub fn stop_immediate(&self) -> io::Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "120".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        Ok(())
    }

    /// Starts a stopped server again on the same port and data.
    pub fn start_again(&self) -> io::Result<()> {
        self.pg_ctl("start").map(drop)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> io::Result<Output> {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let out = cmd.args(args).current_dir("/").output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{tool} failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            )));
        }
        Ok(out)
    }

    /// Creates a new, empty database and returns its URL (with the
    /// password in it).
    pub fn create_database(&self) -> io::Result<String> {
        let name = format!(
            "feed_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .arg(&name)
            .env("PGPASSWORD", PASSWORD)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "createdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(self.url(&name))
    }

    /// The URL of database `name`, password included.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgresql://{USER}:{PASSWORD}@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// The URL of database `name` without a password.
    pub fn url_without_password(&self, name: &str) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- PostgreSQL log ---\n{}", self.log());
        }
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }
}
