//! A scripted IMAP server on 127.0.0.1 for what a real server will not do on
//! demand: each connection plays a list of [`Step`]s (expect a line, send
//! bytes, stall, close, reset), and may then hand over to a small
//! well-behaved server ([`Step::Serve`]) so a test can watch mailfeed recover
//! on the same database.
//!
//! Every line mailfeed sent is kept (`transcript`), so tests can check what
//! was — and was not — said (credentials before TLS, for instance).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One step of a script. In `SendTagged`, `$T` is replaced by the tag of
/// the last line read by `Expect`, `$A` by the credentials mailfeed sent
/// (the last word of its AUTHENTICATE or LOGIN line: a hostile server that
/// echoes them), and `$#` by the length of that word (for a literal).
#[derive(Debug, Clone)]
pub enum Step {
    /// Read one line from mailfeed; it must contain this text (ASCII case
    /// ignored), else the script stops and the mismatch is recorded.
    Expect(&'static str),
    /// Send these bytes.
    Send(Vec<u8>),
    /// Send these bytes, `$T`, `$A` and `$#` replaced.
    SendTagged(&'static str),
    /// Say nothing for this long.
    Stall(Duration),
    /// Close the connection (FIN).
    Close,
    /// Reset the connection (RST).
    Reset,
    /// Behave as a correct IMAP server for this mailbox from here on.
    Serve(Mailbox),
}

/// Shorthands for building scripts.
pub fn expect(s: &'static str) -> Step {
    Step::Expect(s)
}
pub fn send(s: &'static str) -> Step {
    Step::SendTagged(s)
}
pub fn send_bytes(b: impl Into<Vec<u8>>) -> Step {
    Step::Send(b.into())
}

/// A mailbox the well-behaved server serves.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub uidvalidity: u32,
    pub messages: Vec<(u32, Vec<u8>)>,
    /// Capabilities announced (in the greeting and on request).
    pub capabilities: &'static str,
}

impl Mailbox {
    pub fn new(uidvalidity: u32, messages: Vec<(u32, Vec<u8>)>) -> Mailbox {
        Mailbox {
            uidvalidity,
            messages,
            capabilities: "IMAP4rev1 AUTH=PLAIN SASL-IR",
        }
    }
}

/// The script of each connection: the i-th connection plays `scripts[i]`,
/// later ones the last script.
pub struct FakeServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU32>,
    transcript: Arc<Mutex<Vec<String>>>,
    problems: Arc<Mutex<Vec<String>>>,
    /// Clones of every connection (to end them on drop); a reset takes its
    /// own out, since RST goes only when the last descriptor closes.
    streams: Arc<Mutex<Vec<Option<TcpStream>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(scripts: Vec<Vec<Step>>) -> FakeServer {
        assert!(!scripts.is_empty(), "a fake server needs a script");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind fake server");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU32::new(0));
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, accepted, transcript, problems, streams) = (
                stop.clone(),
                accepted.clone(),
                transcript.clone(),
                problems.clone(),
                streams.clone(),
            );
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let i = accepted.fetch_add(1, Ordering::SeqCst) as usize;
                    let script = scripts[i.min(scripts.len() - 1)].clone();
                    let slot = {
                        let mut v = streams.lock().unwrap();
                        v.push(conn.try_clone().ok());
                        v.len() - 1
                    };
                    let player = Player {
                        index: i,
                        slot,
                        streams: streams.clone(),
                        reader: BufReader::new(conn.try_clone().expect("clone")),
                        conn,
                        tag: String::new(),
                        credentials: String::new(),
                        transcript: transcript.clone(),
                        problems: problems.clone(),
                        stop: stop.clone(),
                    };
                    std::thread::spawn(move || player.play(script));
                }
            })
        };
        FakeServer {
            port,
            stop,
            accepted,
            transcript,
            problems,
            streams,
            acceptor: Some(acceptor),
        }
    }

    /// One script for every connection.
    pub fn single(script: Vec<Step>) -> FakeServer {
        FakeServer::start(vec![script])
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every line mailfeed sent, as `conn N: line`.
    pub fn transcript(&self) -> Vec<String> {
        self.transcript.lock().unwrap().clone()
    }

    /// Lines that did not match an `Expect` (the script stopped there).
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().drain(..).flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

struct Player {
    index: usize,
    slot: usize,
    streams: Arc<Mutex<Vec<Option<TcpStream>>>>,
    conn: TcpStream,
    reader: BufReader<TcpStream>,
    tag: String,
    /// The last word of mailfeed's AUTHENTICATE or LOGIN line.
    credentials: String,
    transcript: Arc<Mutex<Vec<String>>>,
    problems: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

/// Longest client line the fake server reads (mailfeed's are short).
const MAX_CLIENT_LINE: u64 = 64 * 1024;

impl Player {
    fn play(mut self, script: Vec<Step>) {
        // A stuck client must not keep a test thread forever.
        let _ = self.conn.set_read_timeout(Some(Duration::from_secs(20)));
        for step in script {
            let ok = match step {
                Step::Expect(want) => match self.read_line() {
                    Some(line) => {
                        if line
                            .to_ascii_lowercase()
                            .contains(&want.to_ascii_lowercase())
                        {
                            true
                        } else {
                            self.problem(format!("expected `{want}`, got `{line}`"));
                            false
                        }
                    }
                    None => false,
                },
                Step::Send(b) => self.conn.write_all(&b).is_ok(),
                Step::SendTagged(s) => {
                    let text = s
                        .replace("$T", &self.tag)
                        .replace("$#", &self.credentials.len().to_string())
                        .replace("$A", &self.credentials);
                    self.conn.write_all(text.as_bytes()).is_ok()
                }
                Step::Stall(d) => {
                    let until = Instant::now() + d;
                    while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    true
                }
                Step::Close => {
                    let _ = self.conn.shutdown(Shutdown::Both);
                    return;
                }
                Step::Reset => {
                    // Linger 0: the close (of the last descriptor) sends RST.
                    let _ = socket2::SockRef::from(&self.conn).set_linger(Some(Duration::ZERO));
                    if let Some(s) = self.streams.lock().unwrap().get_mut(self.slot) {
                        s.take();
                    }
                    return;
                }
                Step::Serve(mb) => {
                    self.serve(&mb);
                    return;
                }
            };
            if !ok {
                break;
            }
        }
        // Script done: wait for mailfeed to hang up (it must, within its
        // own timeout), then close.
        let mut sink = [0u8; 4096];
        let _ = self.conn.set_read_timeout(Some(Duration::from_secs(20)));
        while matches!(self.reader.read(&mut sink), Ok(n) if n > 0) {}
        let _ = self.conn.shutdown(Shutdown::Both);
    }

    fn problem(&self, s: String) {
        self.problems
            .lock()
            .unwrap()
            .push(format!("conn {}: {s}", self.index));
    }

    /// One line from mailfeed, without CRLF; remembers its tag.
    fn read_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_CLIENT_LINE)
            .read_until(b'\n', &mut buf)
            .ok()?;
        if n == 0 {
            return None;
        }
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        self.transcript
            .lock()
            .unwrap()
            .push(format!("conn {}: {line}", self.index));
        if let Some(tag) = line.split(' ').next() {
            self.tag = tag.to_string();
        }
        let upper = line.to_ascii_uppercase();
        if (upper.contains(" AUTHENTICATE ") || upper.contains(" LOGIN "))
            && let Some(last) = line.split(' ').next_back()
        {
            self.credentials = last.to_string();
        }
        Some(line)
    }

    fn send(&mut self, s: &[u8]) -> bool {
        self.conn.write_all(s).is_ok()
    }

    /// A small, correct server: enough IMAP for `mailfeed sync` and `check`.
    fn serve(&mut self, mb: &Mailbox) {
        while let Some(line) = self.read_line() {
            let tag = self.tag.clone();
            let rest = line.get(tag.len() + 1..).unwrap_or("").to_string();
            let upper = rest.to_ascii_uppercase();
            let ok = |text: &str| format!("{tag} OK {text}\r\n");
            let reply = if upper.starts_with("CAPABILITY") {
                format!("* CAPABILITY {}\r\n{}", mb.capabilities, ok("done"))
            } else if upper.starts_with("AUTHENTICATE") || upper.starts_with("LOGIN") {
                format!("{tag} OK [CAPABILITY {}] logged in\r\n", mb.capabilities)
            } else if upper.starts_with("EXAMINE") || upper.starts_with("SELECT") {
                let next = mb.messages.iter().map(|m| m.0).max().unwrap_or(0) + 1;
                format!(
                    "* {} EXISTS\r\n* OK [UIDVALIDITY {}] ok\r\n* OK [UIDNEXT {next}] ok\r\n{tag} OK [READ-ONLY] done\r\n",
                    mb.messages.len(),
                    mb.uidvalidity
                )
            } else if upper.starts_with("UID FETCH") {
                let set = rest.split(' ').nth(2).unwrap_or("");
                let full = upper.contains("BODY.PEEK[]");
                let mut out = Vec::new();
                for (seq, (uid, body)) in select(&mb.messages, set) {
                    if full {
                        out.extend(
                            format!(
                                "* {seq} FETCH (UID {uid} FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" RFC822.SIZE {} BODY[] {{{}}}\r\n",
                                body.len(),
                                body.len()
                            )
                            .into_bytes(),
                        );
                        out.extend_from_slice(body);
                        out.extend_from_slice(b")\r\n");
                    } else {
                        out.extend(
                            format!("* {seq} FETCH (UID {uid} RFC822.SIZE {})\r\n", body.len())
                                .into_bytes(),
                        );
                    }
                }
                out.extend(ok("done").into_bytes());
                if !self.send(&out) {
                    return;
                }
                continue;
            } else if upper.starts_with("LOGOUT") {
                let _ = self.send(format!("* BYE bye\r\n{}", ok("done")).as_bytes());
                let _ = self.conn.shutdown(Shutdown::Both);
                return;
            } else if upper.starts_with("NOOP") || upper.starts_with("ENABLE") {
                ok("done")
            } else if upper.starts_with("LIST") {
                format!("* LIST () \"/\" INBOX\r\n{}", ok("done"))
            } else {
                format!("{tag} BAD unknown command\r\n")
            };
            if !self.send(reply.as_bytes()) {
                return;
            }
        }
    }
}

/// The messages a UID set names, with their sequence numbers. `n:*` with n
/// above every UID names the last message, as RFC 3501 says.
fn select<'a>(messages: &'a [(u32, Vec<u8>)], set: &str) -> Vec<(usize, &'a (u32, Vec<u8>))> {
    let max = messages.iter().map(|m| m.0).max().unwrap_or(0);
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let num = |s: &str| {
            if s == "*" {
                max
            } else {
                s.parse().unwrap_or(0)
            }
        };
        let (mut lo, mut hi) = (num(a), num(b));
        if lo > hi {
            std::mem::swap(&mut lo, &mut hi);
        }
        for (i, m) in messages.iter().enumerate() {
            if m.0 >= lo
                && m.0 <= hi
                && !out
                    .iter()
                    .any(|(_, x): &(usize, &(u32, Vec<u8>))| x.0 == m.0)
            {
                out.push((i + 1, m));
            }
        }
    }
    out
}
