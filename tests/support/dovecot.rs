//! A private Dovecot instance for one test: its own config, sockets, state,
//! log, TLS certificate, users and Maildirs under one temp dir, listening on
//! free high ports on 127.0.0.1.
//!
//! Must be run as root (Dovecot then serves mail as `nobody`). Parallel test
//! threads and parallel test binaries are safe: ports are reserved with a
//! lock file per port (held for the instance's lifetime) and chosen below the
//! kernel's ephemeral range, so outgoing connections cannot take them.
//!
//! Set `MAILFEED_TEST_KEEP=1` to keep the temp dir of every instance; the
//! Dovecot log is printed to stderr when an instance is dropped during a panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::imap_truth::ImapClient;

/// Ports are picked from this range: below Linux's default ephemeral range
/// (32768–60999), so no outgoing connection is ever given one of them.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

static INSTANCE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The capabilities Dovecot 2.3 announces after login.
const CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
    THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT \
    CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES \
    WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE \
    SAVEDATE LITERAL+ NOTIFY";

/// Configuration that hides `hidden` from the capabilities announced after
/// login (for [`Options::extra_config`]): Dovecot then stands in for a
/// server without NOTIFY, or without CONDSTORE and QRESYNC.
pub fn capabilities_without(hidden: &[&str]) -> String {
    let kept: Vec<&str> = CAPABILITIES
        .split_whitespace()
        .filter(|c| !hidden.iter().any(|h| h.eq_ignore_ascii_case(c)))
        .collect();
    format!("imap_capability = {}\n", kept.join(" "))
}

/// Extra knobs for [`Dovecot::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Users created before the server starts: (name, password).
    pub users: Vec<(String, String)>,
    /// Appended verbatim to the generated `dovecot.conf` (later settings win).
    pub extra_config: String,
}

/// A running (or stopped) private Dovecot. Dropping it stops the server and
/// removes its temp dir.
pub struct Dovecot {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    instance_name: String,
    plain_port: u16,
    tls_port: u16,
    // Held for the lifetime of the instance: the flock reserves the port
    // against other test threads and test binaries.
    _port_locks: Vec<File>,
    child: Option<Child>,
    users: BTreeMap<String, String>,
    extra_config: String,
    mail_uid: u32,
    mail_gid: u32,
}

impl Dovecot {
    /// Starts an instance with no users (add them with [`Dovecot::add_user`]).
    pub fn start() -> io::Result<Self> {
        Self::start_with(Options::default())
    }

    /// Starts an instance with the given users.
    pub fn start_with_users(users: &[(&str, &str)]) -> io::Result<Self> {
        Self::start_with(Options {
            users: super::server::owned_users(users),
            ..Options::default()
        })
    }

    /// Starts an instance with the given options. Retries with other ports
    /// if another program took a port between the check and Dovecot's bind.
    pub fn start_with(options: Options) -> io::Result<Self> {
        check_prerequisites()?;
        let dir = tempfile::Builder::new()
            .prefix("mailfeed-dovecot-")
            .tempdir()?;
        let path = dir.path().to_path_buf();
        // Dovecot's unprivileged processes (dovenull, dovecot, nobody) must
        // reach the sockets and Maildirs below this dir.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        let (mail_uid, mail_gid) = nobody_ids();
        let n = INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let instance_name = format!("mailfeed-test-{}-{n}", std::process::id());

        for sub in ["run", "state", "home"] {
            fs::create_dir_all(path.join(sub))?;
        }
        std::os::unix::fs::chown(path.join("home"), Some(mail_uid), Some(mail_gid))?;
        make_cert(&path)?;
        File::create(path.join("users"))?;

        let mut dc = Dovecot {
            dir: Some(dir),
            path,
            instance_name,
            plain_port: 0,
            tls_port: 0,
            _port_locks: Vec::new(),
            child: None,
            users: BTreeMap::new(),
            extra_config: options.extra_config,
            mail_uid,
            mail_gid,
        };
        for (user, password) in &options.users {
            dc.add_user(user, password)?;
        }

        let mut last_err = None;
        for _attempt in 0..5 {
            let (plain_port, plain_lock) = reserve_port()?;
            let (tls_port, tls_lock) = reserve_port()?;
            dc.plain_port = plain_port;
            dc.tls_port = tls_port;
            dc._port_locks = vec![plain_lock, tls_lock];
            dc.write_config()?;
            match dc.spawn_and_wait() {
                Ok(()) => return Ok(dc),
                Err(e) if dc.log().contains("Address already in use") => {
                    last_err = Some(e);
                    fs::write(dc.path.join("dovecot.log"), b"")?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not start Dovecot")))
    }

    /// Port of the plaintext IMAP listener (STARTTLS offered, plain login allowed).
    pub fn plain_port(&self) -> u16 {
        self.plain_port
    }

    /// Port of the implicit-TLS IMAP listener.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The self-signed certificate (SAN IP:127.0.0.1, DNS:localhost) in PEM.
    pub fn cert_path(&self) -> PathBuf {
        self.path.join("cert.pem")
    }

    /// The instance's temp dir (config, log, Maildirs under `home/USER/Maildir`).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The unique `instance_name` of this Dovecot.
    pub fn instance_name(&self) -> &str {
        &self.instance_name
    }

    /// Path of the generated config file.
    pub fn config_path(&self) -> PathBuf {
        self.path.join("dovecot.conf")
    }

    /// Path of the Dovecot log (master, login and mail processes).
    pub fn log_path(&self) -> PathBuf {
        self.path.join("dovecot.log")
    }

    /// The whole Dovecot log so far, plus anything Dovecot wrote to stderr.
    pub fn log(&self) -> String {
        let mut out = fs::read_to_string(self.log_path()).unwrap_or_default();
        if let Ok(stderr) = fs::read_to_string(self.path.join("dovecot.stderr"))
            && !stderr.trim().is_empty()
        {
            let _ = write!(out, "--- dovecot stderr ---\n{stderr}");
        }
        out
    }

    /// Prints the Dovecot log to stderr (captured by the test harness, so it
    /// shows only for failing tests).
    pub fn print_log(&self) {
        eprintln!(
            "===== Dovecot log of {} ({}) =====\n{}===== end of Dovecot log =====",
            self.instance_name,
            self.path.display(),
            self.log()
        );
    }

    /// The password given for `user`, if the user was added.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// Adds a user (passwd-file, PLAIN scheme); works while running, since
    /// Dovecot re-reads the passwd-file when it changes.
    pub fn add_user(&mut self, user: &str, password: &str) -> io::Result<()> {
        if user.contains([':', '\n', '/']) || password.contains([':', '\n']) {
            return Err(io::Error::other(format!(
                "user `{user}`: names and passwords may not contain ':' or newlines"
            )));
        }
        let home = self.path.join("home").join(user);
        fs::create_dir_all(&home)?;
        std::os::unix::fs::chown(&home, Some(self.mail_uid), Some(self.mail_gid))?;
        self.users.insert(user.to_string(), password.to_string());
        let mut text = String::new();
        for (u, p) in &self.users {
            let h = self.path.join("home").join(u);
            let _ = writeln!(text, "{u}:{{PLAIN}}{p}::::{}::", h.display());
        }
        // Write-then-rename so a running Dovecot never reads half a file.
        let tmp = self.path.join("users.tmp");
        fs::write(&tmp, text)?;
        fs::rename(tmp, self.path.join("users"))
    }

    /// A logged-in client on the plaintext port for a user added earlier.
    pub fn login(&self, user: &str) -> io::Result<ImapClient> {
        let password = self
            .password(user)
            .ok_or_else(|| io::Error::other(format!("no such test user `{user}`")))?;
        let mut client = ImapClient::connect(self.plain_port)?;
        client.login(user, password)?;
        Ok(client)
    }

    /// Creates a folder (and its parents) for `user`.
    pub fn create_folder(&self, user: &str, folder: &str) -> io::Result<()> {
        let mut c = self.login(user)?;
        c.create(folder)?;
        c.logout()
    }

    /// Deletes a folder of `user`. Creating it again gives a new UIDVALIDITY.
    pub fn delete_folder(&self, user: &str, folder: &str) -> io::Result<()> {
        let mut c = self.login(user)?;
        c.delete(folder)?;
        c.logout()
    }

    /// How many IMAP connections `user` has open now, as Dovecot counts
    /// them (`doveadm who`).
    pub fn connections(&self, user: &str) -> io::Result<usize> {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(self.config_path())
            .args(["who", "-1"])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "doveadm who: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(user))
            .count())
    }

    /// Appends one message; returns its UID.
    pub fn append(&self, user: &str, folder: &str, message: &[u8]) -> io::Result<u32> {
        let mut c = self.login(user)?;
        let uid = c.append(folder, &[], message)?;
        c.logout()?;
        uid.ok_or_else(|| io::Error::other("server sent no APPENDUID"))
    }

    /// Appends many messages over ONE connection (MULTIAPPEND with LITERAL+,
    /// in chunks); returns their UIDs in order.
    pub fn append_many<M: AsRef<[u8]>>(
        &self,
        user: &str,
        folder: &str,
        messages: &[M],
    ) -> io::Result<Vec<u32>> {
        let mut c = self.login(user)?;
        let uids = c.append_many(folder, messages)?;
        c.logout()?;
        Ok(uids)
    }

    /// Every message of a folder as the server sends BODY[]: (UID, bytes).
    pub fn fetch_all(&self, user: &str, folder: &str) -> io::Result<Vec<(u32, Vec<u8>)>> {
        let mut c = self.login(user)?;
        c.examine(folder)?;
        let all = c.fetch_all()?;
        c.logout()?;
        Ok(all)
    }

    /// UIDVALIDITY of a folder.
    pub fn uid_validity(&self, user: &str, folder: &str) -> io::Result<u32> {
        let mut c = self.login(user)?;
        let status = c.status(folder)?;
        c.logout()?;
        Ok(status.uid_validity)
    }

    /// True while the master process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the server (clients are disconnected); data and ports are kept
    /// for [`Dovecot::start_again`].
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // The master's children (login and mail processes) outlive it
        // briefly; "stopped" must mean no client can still be served.
        let children = descendants(child.id());
        if child.try_wait()?.is_none() {
            // SIGTERM lets the master stop its children and close the
            // listeners; SIGKILL would leave login processes holding them.
            // Signal the children too: left to the master, a mail process
            // with a connected client lingers for seconds.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .args(children.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let alive: Vec<u32> = children
                .iter()
                .copied()
                .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
                .collect();
            if alive.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for pid in alive {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Wait until nothing listens any more, so "stopped" means refused.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline
            && (port_accepts(self.plain_port) || port_accepts(self.tls_port))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the server again after [`Dovecot::stop`]: same ports, config,
    /// users and mail.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                // The old listeners may take a moment to be released.
                Err(e)
                    if Instant::now() < deadline
                        && self.log().contains("Address already in use") =>
                {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write_config(&self) -> io::Result<()> {
        let d = self.path.display();
        let mut conf = format!(
            r#"# Generated by tests/support/dovecot.rs
instance_name = {name}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes

ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes

mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = dovecot
default_login_user = dovenull

mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 50
# New mail is noticed by inotify; this is the fallback poll while in IDLE.
mailbox_idle_check_interval = 1 secs
# "* OK Still here" while in IDLE.
imap_idle_notify_interval = 2 mins

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {d}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls}
    ssl = yes
  }}
}}
"#,
            name = self.instance_name,
            uid = self.mail_uid,
            gid = self.mail_gid,
            plain = self.plain_port,
            tls = self.tls_port,
        );
        conf.push_str(&self.extra_config);
        conf.push('\n');
        fs::write(self.config_path(), conf)
    }

    /// Runs the master in the foreground as our child and waits until the
    /// plaintext port sends the real greeting and the TLS port accepts.
    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("dovecot.stderr"))?;
        let mut child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .spawn()
            .map_err(|e| io::Error::other(format!("running `dovecot`: {e}")))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "Dovecot exited during start-up ({status}); log:\n{}",
                    self.log()
                )));
            }
            if greeting_ready(self.plain_port) && port_accepts(self.tls_port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "Dovecot did not accept connections on 127.0.0.1:{} within {:?}; log:\n{}",
                    self.plain_port,
                    START_TIMEOUT,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log();
        }
        let _ = self.stop();
        super::server::keep_dir_if_asked("Dovecot", &mut self.dir);
    }
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("instance_name", &self.instance_name)
            .field("dir", &self.path)
            .field("plain_port", &self.plain_port)
            .field("tls_port", &self.tls_port)
            .finish()
    }
}

fn check_prerequisites() -> io::Result<()> {
    let euid = fs::metadata("/proc/self")?.uid();
    if euid != 0 {
        return Err(io::Error::other(
            "the Dovecot test harness must run as root (Dovecot then serves mail as `nobody`)",
        ));
    }
    for (tool, package) in [("dovecot", "dovecot-imapd"), ("openssl", "openssl")] {
        let found = Command::new(tool)
            .arg(if tool == "dovecot" {
                "--version"
            } else {
                "version"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(io::Error::other(format!(
                "`{tool}` not found: run scripts/test, or `apt-get install -y {package}`"
            )));
        }
    }
    Ok(())
}

/// uid of `nobody` and gid of `nogroup` (Debian) or `nobody`. Shared with the
/// other servers' harnesses (`cyrus`, `courier`), as are the helpers below.
pub fn nobody_ids() -> (u32, u32) {
    let field = |file: &str, names: &[&str]| -> Option<u32> {
        let text = fs::read_to_string(file).ok()?;
        names.iter().find_map(|name| {
            text.lines().find_map(|line| {
                let mut parts = line.split(':');
                (parts.next()? == *name).then_some(())?;
                parts.nth(1)?.parse().ok()
            })
        })
    };
    (
        field("/etc/passwd", &["nobody"]).unwrap_or(65534),
        field("/etc/group", &["nogroup", "nobody"]).unwrap_or(65534),
    )
}

/// Writes a self-signed `cert.pem` and `key.pem` (SAN IP:127.0.0.1,
/// DNS:localhost) into `dir`.
pub fn make_cert(dir: &Path) -> io::Result<()> {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "3650", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // openssl marks a self-signed cert CA:TRUE by default, and rustls
        // (webpki) refuses a CA cert as the server's own: CaUsedAsEndEntity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "keyUsage=critical,digitalSignature"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "openssl could not make a test certificate: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Picks a free port and holds an exclusive lock on `PORT.lock` in a shared
/// dir, so no other test thread or binary using this harness picks it too.
pub fn reserve_port() -> io::Result<(u16, File)> {
    let lock_dir = std::env::temp_dir().join("mailfeed-test-ports");
    fs::create_dir_all(&lock_dir)?;
    let _ = fs::set_permissions(&lock_dir, fs::Permissions::from_mode(0o1777));
    let mut rng = super::rng::Rng::from_state(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32)
            ^ u64::from(INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed)).wrapping_mul(0x9E37_79B9),
    );
    let span = u64::from(PORT_RANGE.end - PORT_RANGE.start);
    for _ in 0..500 {
        let port = PORT_RANGE.start + rng.below_u64(span) as u16;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_dir.join(format!("{port}.lock")))?;
        if lock.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok((port, lock));
        }
    }
    Err(io::Error::other("found no free port for a test server"))
}

/// All processes below `root`, found through /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the parenthesized command: state, ppid, ...
            let Some(ppid) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True once the server sends its real greeting. Right after start-up
/// Dovecot first sends `* OK Waiting for authentication process to respond..`
/// and the real greeting only once its auth process is up.
pub fn greeting_ready(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    for _ in 0..3 {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.starts_with("* OK Waiting for authentication") => continue,
            Ok(_) => {
                let ok = line.starts_with("* OK");
                let _ = (&stream).write_all(b"x LOGOUT\r\n");
                return ok;
            }
        }
    }
    false
}
