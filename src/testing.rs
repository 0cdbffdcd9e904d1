//! Helpers for unit tests that need a server: a loopback listener and a
//! scripted peer speaking IMAP lines, so session and service behaviour can be
//! checked under tokio's paused clock (loopback bytes arrive at once, so only
//! the timers the test sets decide what happens when).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{AccountConfig, PasswordSource, Security};
use crate::imap::Limits;
use crate::secret::Secret;
use crate::session::{ConnectOptions, Session};

pub async fn listen() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

pub fn account(port: u16) -> AccountConfig {
    AccountConfig {
        name: "t".into(),
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        allow_plaintext: true,
        ca_file: None,
        username: "u".into(),
        password: PasswordSource::Inline(Secret::new("p")),
        folders: vec!["INBOX".into()],
        idle: true,
        max_connections: 1,
        poll_interval: Duration::from_secs(300),
        compress: false,
    }
}

pub fn options(timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        timeout,
        limits: Limits::default(),
        tls: crate::transport::tls_config(None).expect("tls config"),
    }
}

/// Connects to a [`Peer`] that greets with PREAUTH (see [`Peer::accept`]).
pub async fn session_on(port: u16, timeout: Duration) -> Session {
    Session::connect(&account(port), &options(timeout), None)
        .await
        .expect("connect")
}

/// The server side of one connection.
pub struct Peer {
    reader: BufReader<TcpStream>,
}

pub const GREETING: &str = "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] test server\r\n";

impl Peer {
    /// Accepts a connection and greets it with PREAUTH (no login needed).
    pub async fn accept(l: &TcpListener) -> Peer {
        let (tcp, _) = l.accept().await.expect("accept");
        let mut p = Peer {
            reader: BufReader::new(tcp),
        };
        p.send(GREETING.into()).await;
        p
    }

    /// The next line from the client, without CRLF; None when it closed.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    }

    /// Reads a line that must contain `what`; returns its tag.
    pub async fn expect(&mut self, what: &str) -> String {
        let line = self.line().await.unwrap_or_default();
        assert!(
            line.contains(what),
            "expected {what:?}, client sent {line:?}"
        );
        line.split(' ').next().unwrap_or_default().to_owned()
    }

    pub async fn send(&mut self, s: String) {
        self.send_bytes(s.as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        let _ = self.reader.get_mut().write_all(b).await;
    }
}
