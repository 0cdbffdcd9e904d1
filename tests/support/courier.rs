//! A private Courier-IMAP 5 for one test, under one temp dir, on free high
//! ports on 127.0.0.1: `couriertcpd` in front of `imaplogin`/`imapd` on the
//! plain port (with STARTTLS), and in front of `couriertls` for implicit TLS.
//!
//! Courier's auth library has compiled-in paths (`/etc/courier` for
//! `authdaemonrc` and the userdb, `/run/courier/authdaemon` for the auth
//! daemon's socket), so each instance runs inside its own mount namespace
//! (`unshare -m`) with private folders bind-mounted over those two: parallel
//! instances never see each other, and nothing outside changes. It is also
//! its own PID namespace, so stopping it (SIGKILL to the namespace's init)
//! ends and reaps every process of the instance at once. `imapd`
//! comes from `courier-imap` unpacked by `scripts/install-deps-interop` into
//! [`interop_dir`] (it conflicts with `dovecot-imapd` as a package). Must run
//! as root; mail is served as `nobody`.
//!
//! Courier has no CONDSTORE, QRESYNC, LITERAL+ or MULTIAPPEND; its folders
//! live under `INBOX.` with `.` as separator; its IDLE re-reads the folder
//! every `IMAP_IDLE_TIMEOUT` seconds (see [`Options::idle_timeout_secs`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use super::cyrus::interop_dir;
use super::cyrus::require;
use super::dovecot::{make_cert, nobody_ids, reserve_port};
use super::server::{TestServer, stop_namespace};

const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Options {
    /// Users created before the server starts: (name, password).
    pub users: Vec<(String, String)>,
    /// How often IDLE re-reads the folder (Courier's default is 60).
    pub idle_timeout_secs: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: Vec::new(),
            idle_timeout_secs: 60,
        }
    }
}

/// A running private Courier. Dropping it stops every process of the
/// instance and removes its temp dir (kept with `MAILFEED_TEST_KEEP=1`).
pub struct Courier {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    plain_port: u16,
    tls_port: u16,
    _port_locks: Vec<File>,
    child: Option<Child>,
    users: BTreeMap<String, String>,
}

impl Courier {
    pub fn start_with_users(users: &[(&str, &str)]) -> io::Result<Self> {
        Self::start_with(Options {
            users: super::server::owned_users(users),
            ..Options::default()
        })
    }

    pub fn start_with(options: Options) -> io::Result<Self> {
        let unpacked = interop_dir();
        require(
            &[
                PathBuf::from("/usr/sbin/couriertcpd"),
                PathBuf::from("/usr/bin/couriertls"),
                PathBuf::from("/usr/sbin/makeuserdb"),
                PathBuf::from("/usr/lib/courier/courier-authlib/authdaemond"),
                PathBuf::from("/usr/lib/courier-authlib/libauthuserdb.so"),
                PathBuf::from("/etc/courier/authdaemonrc"),
                unpacked.join("usr/bin/imapd"),
                unpacked.join("usr/lib/courier/courier/imaplogin"),
                unpacked.join("etc/courier/imapd"),
            ],
            "Courier",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("mailfeed-courier-")
            .tempdir()?;
        let path = dir.path().to_path_buf();
        // imapd runs as `nobody`, couriertls as `courier`: both must get in.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        for sub in ["etc", "authdaemon", "home"] {
            fs::create_dir_all(path.join(sub))?;
        }
        make_cert(&path)?;
        let mut pem = fs::read(path.join("key.pem"))?;
        pem.extend(fs::read(path.join("cert.pem"))?);
        let pem_path = path.join("etc/imapd.pem");
        fs::write(&pem_path, pem)?;
        // couriertls reads the key as group `courier`.
        chown(&pem_path, "root:courier")?;
        fs::set_permissions(&pem_path, fs::Permissions::from_mode(0o640))?;

        // authdaemonrc: the installed one, reduced to the userdb module.
        let rc = fs::read_to_string("/etc/courier/authdaemonrc")?;
        let mut text = String::new();
        for line in rc.lines() {
            if line.starts_with("authmodulelist=") {
                text.push_str("authmodulelist=\"authuserdb\"\n");
            } else if line.starts_with("daemons=") {
                text.push_str("daemons=2\n");
            } else if line.starts_with("DEBUG_LOGIN=") {
                text.push_str("DEBUG_LOGIN=1\n");
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
        fs::write(path.join("etc/authdaemonrc"), text)?;

        let (uid, gid) = nobody_ids();
        let mut userdb = String::new();
        let mut users = BTreeMap::new();
        for (user, password) in &options.users {
            let home = path.join("home").join(user);
            let maildir = home.join("Maildir");
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(maildir.join(sub))?;
            }
            let hash = crypt_md5(password)?;
            let _ = writeln!(
                userdb,
                "{user}\tuid={uid}|gid={gid}|home={}|mail={}|systempw={hash}",
                home.display(),
                maildir.display()
            );
            users.insert(user.clone(), password.clone());
        }
        let userdb_path = path.join("etc/userdb");
        fs::write(&userdb_path, userdb)?;
        fs::set_permissions(&userdb_path, fs::Permissions::from_mode(0o600))?;
        let status = Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(path.join("home"))
            .status()?;
        if !status.success() {
            return Err(io::Error::other("chown of the Maildirs failed"));
        }
        chown(&path.join("authdaemon"), "courier:courier")?;
        fs::set_permissions(path.join("authdaemon"), fs::Permissions::from_mode(0o750))?;

        let mut co = Courier {
            dir: Some(dir),
            path,
            plain_port: 0,
            tls_port: 0,
            _port_locks: Vec::new(),
            child: None,
            users,
        };
        let mut last_err = None;
        for _attempt in 0..5 {
            let (plain_port, plain_lock) = reserve_port()?;
            let (tls_port, tls_lock) = reserve_port()?;
            co.plain_port = plain_port;
            co.tls_port = tls_port;
            co._port_locks = vec![plain_lock, tls_lock];
            co.write_script(&unpacked, options.idle_timeout_secs)?;
            match co.spawn_and_wait() {
                Ok(()) => return Ok(co),
                Err(e) if co.log().contains("in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not start Courier")))
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    fn write_script(&self, unpacked: &Path, idle_timeout: u32) -> io::Result<()> {
        let d = self.path.display();
        let u = unpacked.display();
        let script = format!(
            r#"# Generated by tests/support/courier.rs; runs inside `unshare -m`.
set -e
mount --bind {d}/etc /etc/courier
mkdir -p /run/courier/authdaemon
mount --bind {d}/authdaemon /run/courier/authdaemon
makeuserdb
set -a
. /etc/courier/authdaemonrc
/usr/lib/courier/courier-authlib/authdaemond &
. {u}/etc/courier/imapd
. {u}/etc/courier/imapd-ssl
IMAP_IDLE_TIMEOUT={idle_timeout}
IMAP_STARTTLS=YES
IMAP_ULIMITD=
TLS_CERTFILE=/etc/courier/imapd.pem
TLS_CACHEFILE=
TLS_DHPARAMS=
set +a
opts="-address=127.0.0.1 -nodnslookup -noidentlookup -maxprocs=40 -maxperip=40 -stderr={d}/imapd.log"
/usr/sbin/couriertcpd $opts {plain} {u}/usr/lib/courier/courier/imaplogin {u}/usr/bin/imapd Maildir &
IMAP_TLS=1 /usr/sbin/couriertcpd $opts {tls} /usr/bin/couriertls -server -tcpd -user=courier {u}/usr/lib/courier/courier/imaplogin {u}/usr/bin/imapd Maildir &
wait
"#,
            plain = self.plain_port,
            tls = self.tls_port,
        );
        fs::write(self.path.join("run.sh"), script)?;
        fs::write(self.path.join("imapd.log"), b"")?;
        chown(&self.path.join("imapd.log"), "courier:courier")
    }

    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let out = File::create(self.path.join("run.log"))?;
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--kill-child", "sh"])
            .arg(self.path.join("run.sh"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| io::Error::other(format!("running unshare: {e}")))?;
        let child = super::server::wait_serving(
            child,
            "Courier",
            &self.path.join("authdaemon/socket"),
            (self.plain_port, self.tls_port),
            START_TIMEOUT,
            || self.log(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_namespace(child, &[self.plain_port, self.tls_port], "-KILL");
        }
    }
}

fn chown(path: &Path, owner: &str) -> io::Result<()> {
    let status = Command::new("chown").arg(owner).arg(path).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "chown {owner} {} failed",
            path.display()
        )))
    }
}

/// An MD5-crypt hash for the userdb's `systempw`.
fn crypt_md5(password: &str) -> io::Result<String> {
    let out = Command::new("openssl")
        .args(["passwd", "-1", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            io::Write::write_all(c.stdin.as_mut().expect("stdin"), password.as_bytes())?;
            drop(c.stdin.take());
            c.wait_with_output()
        })?;
    if !out.status.success() {
        return Err(io::Error::other("openssl passwd failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl TestServer for Courier {
    fn kind(&self) -> &'static str {
        "Courier"
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
        let mut out = fs::read_to_string(self.path.join("run.log")).unwrap_or_default();
        out.push_str(&fs::read_to_string(self.path.join("imapd.log")).unwrap_or_default());
        out
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== Courier log ({}) =====\n{}===== end =====",
                self.path.display(),
                self.log()
            );
        }
        self.stop();
        super::server::keep_dir_if_asked("Courier", &mut self.dir);
    }
}
