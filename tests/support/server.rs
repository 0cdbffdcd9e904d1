//! What the tests need from any private IMAP server (Dovecot, Cyrus,
//! Courier): its ports, its certificate, its users, and the test's own IMAP
//! client on it (never mailfeed) to put mail in and read the truth back.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::dovecot::{descendants, port_accepts};

use super::imap_truth::ImapClient;

pub trait TestServer {
    /// "Dovecot", "Cyrus", "Courier": for messages.
    fn kind(&self) -> &'static str;
    /// The plaintext IMAP port (plain login allowed, STARTTLS where offered).
    fn plain_port(&self) -> u16;
    /// The implicit-TLS IMAP port.
    fn tls_port(&self) -> u16;
    /// The self-signed certificate (SAN IP:127.0.0.1, DNS:localhost) in PEM.
    fn cert_path(&self) -> PathBuf;
    /// The password given for `user`, if the user was added.
    fn password(&self, user: &str) -> Option<&str>;
    /// The server's own log, for failure messages.
    fn log(&self) -> String;

    /// A logged-in client on the plaintext port.
    fn login(&self, user: &str) -> io::Result<ImapClient> {
        let password = self
            .password(user)
            .ok_or_else(|| io::Error::other(format!("no such test user `{user}`")))?;
        ImapClient::connect_login(self.plain_port(), user, password)
    }

    /// Creates a folder for `user`.
    fn create_folder(&self, user: &str, folder: &str) -> io::Result<()> {
        let mut c = self.login(user)?;
        c.create(folder)?;
        c.logout()
    }

    /// Deletes a folder of `user`. Creating it again gives a new UIDVALIDITY
    /// (a second later: Cyrus and Courier derive it from the clock).
    fn delete_folder(&self, user: &str, folder: &str) -> io::Result<()> {
        let mut c = self.login(user)?;
        c.delete(folder)?;
        c.logout()
    }

    /// Appends messages over one connection; returns their UIDs in order.
    fn append_many<M: AsRef<[u8]>>(
        &self,
        user: &str,
        folder: &str,
        messages: &[M],
    ) -> io::Result<Vec<u32>>
    where
        Self: Sized,
    {
        let mut c = self.login(user)?;
        let uids = c.append_many(folder, messages)?;
        c.logout()?;
        Ok(uids)
    }

    /// Every message of a folder as the server sends BODY[]: (UID, bytes).
    fn fetch_all(&self, user: &str, folder: &str) -> io::Result<Vec<(u32, Vec<u8>)>> {
        let mut c = self.login(user)?;
        c.examine(folder)?;
        let all = c.fetch_all()?;
        c.logout()?;
        Ok(all)
    }

    /// UIDVALIDITY of a folder.
    fn uid_validity(&self, user: &str, folder: &str) -> io::Result<u32> {
        let mut c = self.login(user)?;
        let status = c.status(folder)?;
        c.logout()?;
        Ok(status.uid_validity)
    }
}

impl TestServer for super::dovecot::Dovecot {
    fn kind(&self) -> &'static str {
        "Dovecot"
    }
    fn plain_port(&self) -> u16 {
        super::dovecot::Dovecot::plain_port(self)
    }
    fn tls_port(&self) -> u16 {
        super::dovecot::Dovecot::tls_port(self)
    }
    fn cert_path(&self) -> PathBuf {
        super::dovecot::Dovecot::cert_path(self)
    }
    fn password(&self, user: &str) -> Option<&str> {
        super::dovecot::Dovecot::password(self, user)
    }
    fn log(&self) -> String {
        super::dovecot::Dovecot::log(self)
    }
}

/// Waits until a server started in its own PID namespace (`child`) serves:
/// `ready` (a socket its auth or idle daemon makes) exists, the plain port
/// sends a greeting and the TLS port accepts. On failure the server is
/// stopped and the error carries `log()`.
pub fn wait_serving(
    mut child: Child,
    kind: &str,
    ready: &std::path::Path,
    (plain_port, tls_port): (u16, u16),
    timeout: Duration,
    log: impl Fn() -> String,
) -> io::Result<Child> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "{kind} exited during start-up ({status}); log:\n{}",
                log()
            )));
        }
        if ready.exists() && super::dovecot::greeting_ready(plain_port) && port_accepts(tls_port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            stop_namespace(child, &[], "-KILL");
            return Err(io::Error::other(format!(
                "{kind} did not accept connections on 127.0.0.1:{plain_port} within {timeout:?}; log:\n{}",
                log()
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Stops a server started as `unshare --pid --fork ... ROOT` (Cyrus and
/// Courier run in their own PID namespace, since this machine's init does
/// not reap orphans). `signal` goes to ROOT, the namespace's init; if it has
/// not ended within 10 s, SIGKILL. When the init ends, the kernel kills and
/// reaps every process of the namespace, so nothing is left behind, not even
/// a zombie. Then waits until no port in `ports` accepts.
pub fn stop_namespace(mut child: Child, ports: &[u16], signal: &str) {
    const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    let kill = |sig: &str, pid: u32| {
        let _ = Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    };
    // `unshare --fork` has exactly one child: the namespace's init.
    let init = descendants(child.id()).first().copied();
    match init {
        Some(pid) => kill(signal, pid),
        None => kill("-KILL", child.id()),
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            // Still ours to signal: `unshare` has not been waited for.
            match init {
                Some(pid) if std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                    kill("-KILL", pid)
                }
                _ => {
                    let _ = child.kill();
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline && ports.iter().any(|p| port_accepts(*p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// At the end of a server's life: with `MAILFEED_TEST_KEEP` set, keeps its
/// directory (instead of removing it) and says where it is.
pub fn keep_dir_if_asked(kind: &str, dir: &mut Option<tempfile::TempDir>) {
    if std::env::var_os("MAILFEED_TEST_KEEP").is_some()
        && let Some(dir) = dir.take()
    {
        eprintln!("kept {kind} dir {}", dir.keep().display());
    }
}

/// Test users as given to `start_with_users`, owned, for the servers' options.
pub fn owned_users<C: FromIterator<(String, String)>>(users: &[(&str, &str)]) -> C {
    users
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect()
}
