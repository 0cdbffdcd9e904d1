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

impl Postgres {
    /// Starts a fresh instance.
    pub fn start() -> io::Result<Postgres> {
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
        let pg = Postgres {
            dir,
            bin,
            port,
            _port_lock: lock,
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
        pg.pg_ctl_start()?;
        Ok(pg)
    }

    fn pg_ctl_start(&self) -> io::Result<()> {
        let data = self.data_dir();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                self.log_path().as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "120".as_ref(),
                "start".as_ref(),
            ],
        )?;
        Ok(())
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
        self.pg_ctl_start()
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
