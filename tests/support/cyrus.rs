//! A private Cyrus IMAP 3.x for one test: its own imapd.conf, cyrus.conf,
//! sasldb, spool, sockets and certificate under one temp dir, listening on
//! free high ports on 127.0.0.1 (plain with STARTTLS, and implicit TLS).
//!
//! Debian's `cyrus-imapd` conflicts with `dovecot-imapd`, so
//! `scripts/install-deps-interop` installs the rest of Cyrus with apt and
//! unpacks `cyrus-imapd` into [`interop_dir`]; this harness runs the installed
//! `master` with that `imapd` and `idled`, in its own PID namespace (see
//! [`stop_namespace`]). Must run as root (master drops to user `cyrus`). Users get their INBOX on first login (`autocreate_quota`).
//!
//! Cyrus rejects messages with NUL bytes or bare LF and replaces 8-bit bytes
//! in headers with `X`; [`cyrus_safe`] makes test mail acceptable. It logs
//! only to syslog, so [`Cyrus::log`] has master's own output only.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::dovecot::{make_cert, reserve_port};
use super::server::{TestServer, stop_namespace};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const MASTER: &str = "/usr/lib/cyrus/bin/master";
/// The SASL realm users are created in: Cyrus looks users up under its
/// `servername`.
const REALM: &str = "mailfeed-test";

/// Where `scripts/install-deps-interop` unpacked the Cyrus and Courier IMAP
/// daemons: `$MAILFEED_INTEROP_DIR`, default `/opt/mailfeed-interop`.
pub fn interop_dir() -> PathBuf {
    std::env::var_os("MAILFEED_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mailfeed-interop"))
}

/// Fails (never skips) with the fix when a prerequisite is missing.
pub fn require(paths: &[PathBuf], what: &str) -> io::Result<()> {
    if fs::metadata("/proc/self")?.uid() != 0 {
        return Err(io::Error::other(format!(
            "the {what} test harness must run as root"
        )));
    }
    for p in paths {
        if !p.exists() {
            return Err(io::Error::other(format!(
                "{what}: {} is missing: run scripts/install-deps-interop (scripts/test does)",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Message bytes Cyrus accepts unchanged in the body: bare LF (and bare CR)
/// become CRLF, NUL bytes are dropped. 8-bit header bytes are left: Cyrus
/// rewrites them itself, and the tests compare with what it serves.
pub fn cyrus_safe(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            0 => {}
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A running private Cyrus. Dropping it stops the server and removes its
/// temp dir (kept with `MAILFEED_TEST_KEEP=1`).
pub struct Cyrus {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    plain_port: u16,
    tls_port: u16,
    _port_locks: Vec<File>,
    child: Option<Child>,
    users: BTreeMap<String, String>,
}

impl Cyrus {
    /// Starts an instance with the given users.
    pub fn start_with_users(users: &[(&str, &str)]) -> io::Result<Self> {
        let bin = interop_dir().join("usr/lib/cyrus/bin");
        require(
            &[
                PathBuf::from(MASTER),
                PathBuf::from("/usr/sbin/saslpasswd2"),
                bin.join("imapd"),
                bin.join("idled"),
            ],
            "Cyrus",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("mailfeed-cyrus-")
            .tempdir()?;
        let path = dir.path().to_path_buf();
        for sub in ["conf/socket", "conf/proc", "conf/lock", "conf/log", "spool"] {
            fs::create_dir_all(path.join(sub))?;
        }
        make_cert(&path)?;
        let mut cy = Cyrus {
            dir: Some(dir),
            path,
            plain_port: 0,
            tls_port: 0,
            _port_locks: Vec::new(),
            child: None,
            users: BTreeMap::new(),
        };
        for (user, password) in users {
            cy.add_user(user, password)?;
        }
        let mut last_err = None;
        for _attempt in 0..5 {
            let (plain_port, plain_lock) = reserve_port()?;
            let (tls_port, tls_lock) = reserve_port()?;
            cy.plain_port = plain_port;
            cy.tls_port = tls_port;
            cy._port_locks = vec![plain_lock, tls_lock];
            cy.write_config(&bin)?;
            // Everything below the temp dir belongs to the user master
            // drops to.
            let status = Command::new("chown")
                .args(["-R", "cyrus:mail"])
                .arg(&cy.path)
                .status()?;
            if !status.success() {
                return Err(io::Error::other("chown -R cyrus:mail failed"));
            }
            match cy.spawn_and_wait() {
                Ok(()) => return Ok(cy),
                Err(e) if cy.log().contains("address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not start Cyrus")))
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    fn add_user(&mut self, user: &str, password: &str) -> io::Result<()> {
        let mut child = Command::new("/usr/sbin/saslpasswd2")
            .args(["-p", "-c", "-f"])
            .arg(self.path.join("sasldb2"))
            .args(["-u", REALM, user])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        io::Write::write_all(child.stdin.as_mut().expect("stdin"), password.as_bytes())?;
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "saslpasswd2 for `{user}`: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        self.users.insert(user.to_string(), password.to_string());
        Ok(())
    }

    fn write_config(&self, bin: &Path) -> io::Result<()> {
        let d = self.path.display();
        let imapd_conf = format!(
            "# Generated by tests/support/cyrus.rs
configdirectory: {d}/conf
proc_path: {d}/conf/proc
mboxname_lockpath: {d}/conf/lock
partition-default: {d}/spool
defaultpartition: default
servername: {REALM}
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
autocreate_quota: 0
tls_server_cert: {d}/cert.pem
tls_server_key: {d}/key.pem
idlesocket: {d}/conf/socket/idle
notifysocket: {d}/conf/socket/notify
lmtpsocket: {d}/conf/socket/lmtp
"
        );
        fs::write(self.path.join("imapd.conf"), imapd_conf)?;
        let c = self.path.join("imapd.conf");
        let c = c.display();
        let b = bin.display();
        let cyrus_conf = format!(
            "# Generated by tests/support/cyrus.rs
START {{
  recover cmd=\"ctl_cyrusdb -C {c} -r\"
}}
SERVICES {{
  imap cmd=\"{b}/imapd -C {c}\" listen=\"127.0.0.1:{plain}\" prefork=0
  imaps cmd=\"{b}/imapd -s -C {c}\" listen=\"127.0.0.1:{tls}\" prefork=0
}}
DAEMON {{
  idled cmd=\"{b}/idled -C {c}\"
}}
",
            plain = self.plain_port,
            tls = self.tls_port,
        );
        fs::write(self.path.join("cyrus.conf"), cyrus_conf)
    }

    /// Runs master in the foreground as our child and waits until the plain
    /// port greets, the TLS port accepts and idled is up.
    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("master.log"))?;
        // Its own process group: on shutdown master signals its whole
        // process group, which would stop the other tests' instances too.
        // Its own PID namespace, so stopping it leaves nothing behind.
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", MASTER])
            .arg("-C")
            .arg(self.path.join("imapd.conf"))
            .arg("-M")
            .arg(self.path.join("cyrus.conf"))
            .arg("-p")
            .arg(self.path.join("master.pid"))
            .arg("-D")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| io::Error::other(format!("running unshare {MASTER}: {e}")))?;
        let child = super::server::wait_serving(
            child,
            "Cyrus",
            &self.path.join("conf/socket/idle"),
            (self.plain_port, self.tls_port),
            START_TIMEOUT,
            || self.log(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// Stops master and every process below it.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_namespace(child, &[self.plain_port, self.tls_port], "-TERM");
        }
    }
}

impl TestServer for Cyrus {
    fn kind(&self) -> &'static str {
        "Cyrus"
    }
    fn plain_port(&self) -> u16 {
        self.plain_port
    }
    fn tls_port(&self) -> u16 {
        self.tls_port
    }
    fn cert_path(&self) -> PathBuf {
        self.path.join("cert.pem")
    }
    fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }
    fn log(&self) -> String {
        fs::read_to_string(self.path.join("master.log")).unwrap_or_default()
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let state = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => "running".to_string(),
                Some(Ok(Some(status))) => format!("exited: {status}"),
                Some(Err(e)) => format!("unknown: {e}"),
                None => "stopped".to_string(),
            };
            eprintln!(
                "===== Cyrus master ({}), {state}; its output =====\n{}===== end =====",
                self.path.display(),
                self.log()
            );
        }
        self.stop();
        super::server::keep_dir_if_asked("Cyrus", &mut self.dir);
    }
}
