//! What the tests need from any private IMAP server (Dovecot, Cyrus,
//! Courier): its ports, its certificate, its users, and the test's own IMAP
//! client on it (never mailfeed) to put mail in and read the truth back.

use std::io;
use std::path::PathBuf;

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
