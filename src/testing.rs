//! Helpers for unit tests that need a server: a loopback listener and a
//! scripted peer speaking IMAP lines, so session and service behaviour can be
//! checked under tokio's paused clock (loopback bytes arrive at once, so only
//! the timers the test sets decide what happens when). Also test mail's
//! base64 body lines.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{AccountConfig, Auth, PasswordSource, Security};
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
        tls_fingerprint: None,
        auth: Auth::Password(PasswordSource::Inline(Secret::new("p"))),
        folders: vec!["INBOX".into()],
        idle: true,
        max_connections: 1,
        poll_interval: Duration::from_secs(300),
        compress: false,
        daily_download_limit: None,
        actions: Default::default(),
    }
}

pub fn options(timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        timeout,
        limits: Limits::default(),
        tls: crate::transport::tls_config(None).expect("tls config"),
        oauth2: None,
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

    /// A connection not yet greeted (the test sends its own greeting).
    pub fn from_stream(tcp: TcpStream) -> Peer {
        Peer {
            reader: BufReader::new(tcp),
        }
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

/// How the [`MiniServer`] answers IDLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleReply {
    /// `+`, then the tagged OK after DONE.
    Accept,
    /// A tagged NO: this server does not let clients IDLE.
    Refuse,
    /// `* BYE` and the connection closed, instead of `+`.
    Bye,
    /// `+`, then silence: DONE and LOGOUT are never answered.
    Deaf,
}

/// What the [`MiniServer`] serves: one folder (INBOX) with these UIDs.
#[derive(Clone, Debug)]
pub struct Script {
    pub uids: Vec<u32>,
    pub idle: IdleReply,
    /// Pause before each message of a body FETCH.
    pub body_delay: Duration,
    /// Sent right after the tagged reply to the first UID listing (an
    /// unsolicited `* n EXISTS`, say), on the first connection only.
    pub after_first_listing: Option<&'static str>,
}

impl Script {
    pub fn new(uids: Vec<u32>, idle: IdleReply) -> Script {
        Script {
            uids,
            idle,
            body_delay: Duration::ZERO,
            after_first_listing: None,
        }
    }
}

/// A small IMAP server on loopback for service tests: PREAUTH, EXAMINE,
/// UID listings and body fetches of INBOX, IDLE as the script says. It logs
/// what happened (`connect`, the command names, `DONE`) for assertions.
pub struct MiniServer {
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MiniServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn body(uid: u32) -> Vec<u8> {
    format!("Subject: {uid}\r\nMessage-ID: <{uid}@mini.test>\r\n\r\nbody {uid}\r\n").into_bytes()
}

impl MiniServer {
    pub async fn start(script: Script) -> MiniServer {
        let (listener, port) = listen().await;
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l2 = log.clone();
        let task = tokio::spawn(async move {
            let mut first = true;
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                l2.lock().expect("log").push("connect".into());
                let (script, log, is_first) = (script.clone(), l2.clone(), first);
                first = false;
                tokio::spawn(async move {
                    let mut p = Peer {
                        reader: BufReader::new(tcp),
                    };
                    p.send(GREETING.into()).await;
                    serve(&mut p, &script, &log, is_first).await;
                });
            }
        });
        MiniServer { port, log, task }
    }

    pub fn events(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    pub fn count(&self, what: &str) -> usize {
        self.events().iter().filter(|e| *e == what).count()
    }
}

async fn serve(p: &mut Peer, script: &Script, log: &std::sync::Mutex<Vec<String>>, first: bool) {
    let mut listed = false;
    let max = script.uids.iter().copied().max().unwrap_or(0);
    while let Some(line) = p.line().await {
        let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let upper = rest.to_ascii_uppercase();
        let name = if upper.starts_with("UID FETCH") {
            "UID FETCH"
        } else {
            upper.split(' ').next().unwrap_or("")
        };
        log.lock().expect("log").push(name.to_owned());
        if upper.starts_with("EXAMINE") {
            p.send(format!(
                "* {} EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n* OK [UIDNEXT {}] n\r\n{tag} OK [READ-ONLY] done\r\n",
                script.uids.len(),
                max + 1
            ))
            .await;
        } else if upper.starts_with("UID FETCH") && upper.ends_with("(UID)") {
            let from: u32 = upper[10..]
                .split(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let mut out = String::new();
            for (i, u) in script.uids.iter().enumerate() {
                if *u >= from {
                    out.push_str(&format!("* {} FETCH (UID {u})\r\n", i + 1));
                }
            }
            out.push_str(&format!("{tag} OK done\r\n"));
            if first
                && !listed
                && let Some(extra) = script.after_first_listing
            {
                out.push_str(extra);
            }
            listed = true;
            p.send(out).await;
        } else if upper.starts_with("UID FETCH") && upper.contains("BODY.PEEK[]") {
            let range = upper[10..].split(' ').next().unwrap_or("");
            let (a, b) = range.split_once(':').unwrap_or((range, range));
            let (a, b): (u32, u32) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
            for (i, u) in script.uids.iter().enumerate() {
                if *u >= a && *u <= b {
                    tokio::time::sleep(script.body_delay).await;
                    let m = body(*u);
                    let mut out = format!(
                        "* {} FETCH (UID {u} FLAGS () BODY[] {{{}}}\r\n",
                        i + 1,
                        m.len()
                    )
                    .into_bytes();
                    out.extend_from_slice(&m);
                    out.extend_from_slice(b")\r\n");
                    p.send_bytes(&out).await;
                }
            }
            p.send(format!("{tag} OK done\r\n")).await;
        } else if upper.starts_with("UID FETCH") {
            // Flags of stored messages.
            let mut out = String::new();
            for (i, u) in script.uids.iter().enumerate() {
                out.push_str(&format!("* {} FETCH (UID {u} FLAGS ())\r\n", i + 1));
            }
            out.push_str(&format!("{tag} OK done\r\n"));
            p.send(out).await;
        } else if upper == "IDLE" {
            match script.idle {
                IdleReply::Accept => {
                    p.send("+ idling\r\n".into()).await;
                    let done = p.line().await;
                    log.lock().expect("log").push("DONE".into());
                    if done.is_none() {
                        return;
                    }
                    p.send(format!("{tag} OK idle done\r\n")).await;
                }
                IdleReply::Refuse => {
                    p.send(format!("{tag} NO IDLE is not allowed here\r\n"))
                        .await;
                }
                IdleReply::Bye => {
                    p.send("* BYE going away\r\n".into()).await;
                    return;
                }
                IdleReply::Deaf => {
                    p.send("+ idling\r\n".into()).await;
                    // Read and ignore everything, answer nothing.
                    while p.line().await.is_some() {}
                    return;
                }
            }
        } else if upper == "LOGOUT" {
            p.send(format!("* BYE bye\r\n{tag} OK done\r\n")).await;
            return;
        } else {
            p.send(format!("{tag} OK done\r\n")).await;
        }
    }
}

/// Base64 in 76-column CRLF lines, as a mail program writes a part body.
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38);
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}
