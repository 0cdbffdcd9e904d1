//! A scripted Gmail on 127.0.0.1, following Google's documented IMAP
//! extensions (developers.google.com/gmail/imap/imap-extensions): it
//! announces X-GM-EXT-1 and CONDSTORE (no QRESYNC), answers the X-GM-MSGID,
//! X-GM-THRID and X-GM-LABELS FETCH items, shows labels as folders beside
//! `INBOX` and `[Gmail]/All Mail` — one message, one X-GM-MSGID, a
//! different UID in each folder it is in — and refuses a 16th simultaneous
//! connection as Gmail does. No Gmail is reachable from the tests, so this
//! double stands in for it; it counts the body FETCHes per message so a
//! test can prove each body was fetched once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Gmail's limit of simultaneous IMAP connections per account.
pub const MAX_CONNECTIONS: usize = 15;
pub const ALL_MAIL: &str = "[Gmail]/All Mail";

/// One message of the mailbox.
#[derive(Debug, Clone)]
pub struct Message {
    pub msgid: u64,
    pub thrid: u64,
    pub raw: Vec<u8>,
    /// `\Inbox` for INBOX, a user label's name for its folder.
    pub labels: BTreeSet<String>,
    pub modseq: u64,
}

#[derive(Debug, Default)]
struct Folder {
    uidvalidity: u32,
    next_uid: u32,
    /// UID → X-GM-MSGID, in UID order.
    uids: BTreeMap<u32, u64>,
}

#[derive(Default)]
struct State {
    messages: BTreeMap<u64, Message>,
    /// Folder name → contents; `[Gmail]/All Mail` holds every message.
    folders: BTreeMap<String, Folder>,
    highest_modseq: u64,
    body_fetches: HashMap<u64, u32>,
    /// Applied just before the body of this X-GM-MSGID is sent: the label
    /// to add (a label change while the message is being fetched).
    relabel_during_fetch: Option<(u64, String)>,
    /// Pause before each message of a body FETCH (to aim a kill into it).
    per_message_delay: Duration,
    active: usize,
    max_active: usize,
    refused: usize,
}

/// The folder a label is shown as.
fn folder_of(label: &str) -> &str {
    if label == "\\Inbox" { "INBOX" } else { label }
}

impl State {
    fn add_to_folder(&mut self, folder: &str, msgid: u64) {
        let f = self
            .folders
            .entry(folder.to_owned())
            .or_insert_with(|| Folder {
                uidvalidity: 600 + folder.len() as u32,
                next_uid: 1,
                uids: BTreeMap::new(),
            });
        if f.uids.values().any(|m| *m == msgid) {
            return;
        }
        // Gmail's UIDs in a label folder are not those of All Mail: leave a
        // gap now and then, so the folders' UIDs differ.
        let uid = f.next_uid;
        f.next_uid += 1 + (msgid % 3) as u32;
        f.uids.insert(uid, msgid);
    }

    fn bump(&mut self, msgid: u64) {
        self.highest_modseq += 1;
        let m = self.highest_modseq;
        if let Some(msg) = self.messages.get_mut(&msgid) {
            msg.modseq = m;
        }
    }

    fn add_label(&mut self, msgid: u64, label: &str) {
        if let Some(m) = self.messages.get_mut(&msgid) {
            m.labels.insert(label.to_owned());
        }
        self.add_to_folder(folder_of(label), msgid);
        self.bump(msgid);
    }
}

/// The running double.
pub struct Gmail {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Gmail {
    /// Starts with `messages`; each is in All Mail and in the folder of
    /// each of its labels (`\Inbox` → INBOX). Folders for `labels` exist
    /// even when empty.
    pub fn start(messages: Vec<Message>, labels: &[&str]) -> Gmail {
        let mut st = State::default();
        st.add_to_folder(ALL_MAIL, 0);
        st.folders.get_mut(ALL_MAIL).expect("all mail").uids.clear();
        for l in labels {
            let f = folder_of(l).to_owned();
            st.folders.entry(f.clone()).or_insert_with(|| Folder {
                uidvalidity: 600 + f.len() as u32,
                next_uid: 1,
                uids: BTreeMap::new(),
            });
        }
        for m in messages {
            let id = m.msgid;
            let labels: Vec<String> = m.labels.iter().cloned().collect();
            st.messages.insert(id, m);
            st.bump(id);
            st.add_to_folder(ALL_MAIL, id);
            for l in labels {
                st.add_to_folder(folder_of(&l), id);
            }
        }
        let state = Arc::new(Mutex::new(st));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s2, st2, c2) = (stop.clone(), state.clone(), connections.clone());
        let accept = std::thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c2.fetch_add(1, Ordering::SeqCst);
                        let st = st2.clone();
                        let stop = s2.clone();
                        std::thread::spawn(move || serve(stream, st, stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Gmail {
            port,
            state,
            stop,
            connections,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Body FETCHes served, per X-GM-MSGID.
    pub fn body_fetches(&self) -> HashMap<u64, u32> {
        self.with(|s| s.body_fetches.clone())
    }

    pub fn total_body_fetches(&self) -> u32 {
        self.with(|s| s.body_fetches.values().sum())
    }

    /// The labels of every message, as Gmail would report them.
    pub fn labels(&self) -> BTreeMap<u64, BTreeSet<String>> {
        self.with(|s| {
            s.messages
                .iter()
                .map(|(id, m)| (*id, m.labels.clone()))
                .collect()
        })
    }

    /// Adds `label` to a message (it appears in that label's folder under
    /// a new UID, and its MODSEQ rises).
    pub fn add_label(&self, msgid: u64, label: &str) {
        self.with(|s| s.add_label(msgid, label));
    }

    /// Adds `label` to `msgid` at the moment its body is being sent.
    pub fn relabel_during_fetch(&self, msgid: u64, label: &str) {
        self.with(|s| s.relabel_during_fetch = Some((msgid, label.to_owned())));
    }

    /// How many UIDs a folder holds now.
    pub fn folder_len(&self, folder: &str) -> usize {
        self.with(|s| s.folders.get(folder).map_or(0, |f| f.uids.len()))
    }

    pub fn set_per_message_delay(&self, d: Duration) {
        self.with(|s| s.per_message_delay = d);
    }

    /// Most connections open at once, and how many were refused.
    pub fn connection_counts(&self) -> (usize, usize) {
        self.with(|s| (s.max_active, s.refused))
    }

    pub fn accepted(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Gmail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

const CAPS: &str = "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE CONDSTORE UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584 AUTH=PLAIN SASL-IR";

fn serve(stream: TcpStream, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    {
        let mut s = lock();
        if s.active >= MAX_CONNECTIONS {
            s.refused += 1;
            drop(s);
            let _ = out
                .write_all(b"* BYE [UNAVAILABLE] Too many simultaneous connections. (Failure)\r\n");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        s.active += 1;
        s.max_active = s.max_active.max(s.active);
    }
    let _ = out.write_all(format!("* OK [CAPABILITY {CAPS}] Gimap ready\r\n").as_bytes());
    let mut reader = BufReader::new(stream);
    let mut selected: Option<String> = None;
    let mut line = String::new();
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        }
        let l = line.trim_end().to_owned();
        let (tag, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
        let upper = rest.to_ascii_uppercase();
        let reply = if upper.starts_with("CAPABILITY") {
            format!("* CAPABILITY {CAPS}\r\n{tag} OK Thats all she wrote!\r\n")
        } else if upper.starts_with("ID") {
            format!("* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\")\r\n{tag} OK Success\r\n")
        } else if upper.starts_with("AUTHENTICATE") || upper.starts_with("LOGIN") {
            format!("* CAPABILITY {CAPS}\r\n{tag} OK user@example.com authenticated (Success)\r\n")
        } else if upper.starts_with("LIST") {
            let s = lock();
            let mut r = String::new();
            for name in s.folders.keys() {
                let attrs = if name == ALL_MAIL {
                    "\\All \\HasNoChildren"
                } else {
                    "\\HasNoChildren"
                };
                r.push_str(&format!("* LIST ({attrs}) \"/\" \"{name}\"\r\n"));
            }
            r.push_str(&format!("{tag} OK Success\r\n"));
            r
        } else if upper.starts_with("EXAMINE") || upper.starts_with("SELECT") {
            let name = mailbox_arg(rest);
            let s = lock();
            match s.folders.get(&name) {
                Some(f) => {
                    selected = Some(name.clone());
                    format!(
                        "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)\r\n* OK [PERMANENTFLAGS ()] Flags permitted.\r\n* OK [UIDVALIDITY {}] UIDs valid.\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDNEXT {}] Predicted next UID.\r\n* OK [HIGHESTMODSEQ {}]\r\n{tag} OK [READ-ONLY] {} selected. (Success)\r\n",
                        f.uidvalidity,
                        f.uids.len(),
                        f.next_uid,
                        s.highest_modseq,
                        name
                    )
                }
                None => {
                    selected = None;
                    format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)\r\n")
                }
            }
        } else if upper.starts_with("UID FETCH") || upper.starts_with("FETCH") {
            match &selected {
                Some(folder) => {
                    let by_uid = upper.starts_with("UID ");
                    if fetch(&mut out, &state, folder, tag, rest, by_uid).is_err() {
                        break;
                    }
                    continue;
                }
                None => format!("{tag} BAD No mailbox selected\r\n"),
            }
        } else if upper.starts_with("NOOP") {
            format!("{tag} OK Success\r\n")
        } else if upper.starts_with("IDLE") {
            let _ = out.write_all(b"+ idling\r\n");
            // Wait for DONE.
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) if line.trim().eq_ignore_ascii_case("DONE") => break,
                    Ok(_) => {}
                    Err(_) if !stop.load(Ordering::SeqCst) => continue,
                    Err(_) => break,
                }
            }
            format!("{tag} OK IDLE terminated (Success)\r\n")
        } else if upper.starts_with("LOGOUT") {
            let _ = out.write_all(
                format!("* BYE LOGOUT Requested\r\n{tag} OK 73 good day (Success)\r\n").as_bytes(),
            );
            break;
        } else {
            format!("{tag} BAD Unknown command\r\n")
        };
        if out.write_all(reply.as_bytes()).is_err() {
            break;
        }
    }
    let _ = out.shutdown(Shutdown::Both);
    lock().active -= 1;
}

fn mailbox_arg(rest: &str) -> String {
    let arg = rest.split_once(' ').map_or("", |(_, a)| a);
    let arg = arg.split(" (").next().unwrap_or(arg);
    arg.trim().trim_matches('"').to_owned()
}

/// `a:b,c,d:*` against the folder's numbers (`*` is the largest; `n:*`
/// with n above it still names the largest, as RFC 3501 says).
fn in_set(set: &str, n: u32, max: u32) -> bool {
    set.split(',').any(|part| {
        let num = |s: &str| {
            if s == "*" {
                max
            } else {
                s.parse().unwrap_or(0)
            }
        };
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (num(a), num(b));
                let (lo, hi) = (a.min(b), a.max(b));
                n >= lo && n <= hi
            }
            None => num(part) == n,
        }
    })
}

fn quote_label(l: &str) -> String {
    if l.starts_with('\\')
        || l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        l.to_owned()
    } else {
        format!("\"{}\"", l.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn fetch(
    out: &mut TcpStream,
    state: &Arc<Mutex<State>>,
    folder: &str,
    tag: &str,
    rest: &str,
    by_uid: bool,
) -> std::io::Result<()> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let set = if by_uid { words.get(2) } else { words.get(1) }
        .copied()
        .unwrap_or("");
    let upper = rest.to_ascii_uppercase();
    let changed_since: Option<u64> = upper
        .split("CHANGEDSINCE ")
        .nth(1)
        .and_then(|s| {
            s.trim_end_matches(')')
                .trim()
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .and_then(|n| n.parse().ok());
    let body = upper.contains("BODY.PEEK[]") || upper.contains("BODY[]");
    let targets: Vec<(u32, u32, u64)> = {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = s.folders.get(folder) else {
            return out.write_all(format!("{tag} NO Mailbox gone\r\n").as_bytes());
        };
        let max_uid = f.uids.keys().next_back().copied().unwrap_or(0);
        let max_seq = f.uids.len() as u32;
        f.uids
            .iter()
            .enumerate()
            .map(|(i, (uid, id))| (i as u32 + 1, *uid, *id))
            .filter(|(seq, uid, _)| {
                if by_uid {
                    in_set(set, *uid, max_uid)
                } else {
                    in_set(set, *seq, max_seq)
                }
            })
            .collect()
    };
    for (seq, uid, id) in targets {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let delay = s.per_message_delay;
        if body
            && let Some((rid, label)) = s.relabel_during_fetch.clone()
            && rid == id
        {
            s.relabel_during_fetch = None;
            s.add_label(id, &label);
        }
        let Some(m) = s.messages.get(&id).cloned() else {
            continue;
        };
        if changed_since.is_some_and(|c| m.modseq <= c) {
            continue;
        }
        let mut r = format!("* {seq} FETCH (UID {uid}");
        if upper.contains("FLAGS") {
            r.push_str(" FLAGS ()");
        }
        if upper.contains("X-GM-MSGID") {
            r.push_str(&format!(" X-GM-MSGID {}", m.msgid));
        }
        if upper.contains("X-GM-THRID") {
            r.push_str(&format!(" X-GM-THRID {}", m.thrid));
        }
        if upper.contains("X-GM-LABELS") {
            let ls: Vec<String> = m.labels.iter().map(|l| quote_label(l)).collect();
            r.push_str(&format!(" X-GM-LABELS ({})", ls.join(" ")));
        }
        if changed_since.is_some() || upper.contains("MODSEQ") {
            r.push_str(&format!(" MODSEQ ({})", m.modseq));
        }
        if upper.contains("INTERNALDATE") {
            r.push_str(" INTERNALDATE \"01-Jan-2024 10:00:00 +0000\"");
        }
        if upper.contains("RFC822.SIZE") {
            r.push_str(&format!(" RFC822.SIZE {}", m.raw.len()));
        }
        let mut bytes = r.into_bytes();
        if body {
            *s.body_fetches.entry(id).or_insert(0) += 1;
            bytes.extend_from_slice(format!(" BODY[] {{{}}}\r\n", m.raw.len()).as_bytes());
            bytes.extend_from_slice(&m.raw);
        }
        bytes.extend_from_slice(b")\r\n");
        drop(s);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        out.write_all(&bytes)?;
    }
    out.write_all(format!("{tag} OK Success\r\n").as_bytes())
}

/// `n` test messages with X-GM-MSGIDs and thread ids like Gmail's (large,
/// increasing), spread over INBOX and `labels` by `pick`.
pub fn mailbox(n: u64, pick: impl Fn(u64) -> Vec<&'static str>) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let msgid = 1_278_455_344_230_000_000 + i * 7919;
            let raw = format!(
                "From: sender{i}@example.com\r\nTo: user@example.com\r\nSubject: message {i}\r\nMessage-ID: <gm{i}@example.com>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody of message {i}\r\n"
            )
            .into_bytes();
            Message {
                msgid,
                thrid: 1_266_894_439_000_000_000 + (i / 3),
                raw,
                labels: pick(i).into_iter().map(str::to_owned).collect(),
                modseq: 0,
            }
        })
        .collect()
}
