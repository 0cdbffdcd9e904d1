//! A tiny blocking IMAP client for tests only (std::net, no TLS). It is the
//! "truth" that integration tests compare the database with, so it does as
//! little as possible: one command at a time, responses kept as raw bytes,
//! literals returned exactly as the server sent them.
//!
//! It must not share code with the product's IMAP implementation.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;

const TIMEOUT: Duration = Duration::from_secs(60);
/// MULTIAPPEND chunk limits: one command per this many messages or bytes.
const APPEND_CHUNK_MESSAGES: usize = 1000;
const APPEND_CHUNK_BYTES: usize = 64 << 20;

/// One untagged response (or the tagged completion), literals cut out.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// The response text without the final CRLF; every literal is left in
    /// place as its `{N}` announcement.
    pub text: Vec<u8>,
    /// The literals: (offset of their `{` in `text`, the bytes).
    pub literals: Vec<(usize, Vec<u8>)>,
}

impl Line {
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    /// The literal announced right after `item` (e.g. `BODY[]`), if any.
    pub fn literal_after(&self, item: &str) -> Option<&[u8]> {
        let needle = format!("{item} {{");
        let at = find(&self.text, needle.as_bytes())? + needle.len() - 1;
        self.literals
            .iter()
            .find(|(pos, _)| *pos == at)
            .map(|(_, bytes)| bytes.as_slice())
    }

    /// The number following `key ` (e.g. `UID`, `UIDVALIDITY`), if any.
    pub fn number_after(&self, key: &str) -> Option<u64> {
        number_after(&self.text, key)
    }
}

/// The result of one command.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub untagged: Vec<Line>,
    /// The tagged line, without the tag: `OK [APPENDUID 1 2] Append completed.`
    pub completion: String,
}

/// What SELECT/EXAMINE reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selected {
    pub exists: u32,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: Option<u64>,
}

/// What STATUS reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub uid_next: u32,
    pub uid_validity: u32,
    pub highest_modseq: Option<u64>,
}

/// A blocking IMAP client over plain TCP to 127.0.0.1.
pub struct ImapClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    /// The greeting line the client acted on.
    pub greeting: String,
    literal_plus: bool,
    /// What the server offers after login; until then, assumed like Dovecot
    /// (CONDSTORE, MULTIAPPEND), so an unauthenticated use behaves as before.
    condstore: bool,
    multiappend: bool,
}

impl ImapClient {
    /// Connects to 127.0.0.1:`port` and reads the greeting.
    pub fn connect(port: u16) -> io::Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut client = ImapClient {
            reader: BufReader::with_capacity(256 << 10, stream.try_clone()?),
            writer: stream,
            next_tag: 1,
            greeting: String::new(),
            literal_plus: false,
            condstore: true,
            multiappend: true,
        };
        loop {
            let line = client.read_line()?;
            let text = line.text_lossy();
            // Dovecot sends this before its real greeting while auth starts.
            if text.starts_with("* OK Waiting for authentication") {
                continue;
            }
            if !text.starts_with("* OK") {
                return Err(io::Error::other(format!("unexpected greeting: {text}")));
            }
            client.literal_plus = text.contains("LITERAL+");
            client.greeting = text;
            return Ok(client);
        }
    }

    /// Connects and logs in with LOGIN.
    pub fn connect_login(port: u16, user: &str, password: &str) -> io::Result<Self> {
        let mut client = Self::connect(port)?;
        client.login(user, password)?;
        Ok(client)
    }

    pub fn login(&mut self, user: &str, password: &str) -> io::Result<()> {
        self.run(&format!("LOGIN {} {}", quote(user), quote(password)))?;
        let caps = self.capabilities()?;
        let has = |name: &str| caps.iter().any(|c| c.eq_ignore_ascii_case(name));
        self.literal_plus = has("LITERAL+");
        // Servers without them (Courier) refuse `SELECT x (CONDSTORE)` and
        // get one APPEND per message.
        self.condstore = has("CONDSTORE");
        self.multiappend = has("MULTIAPPEND");
        Ok(())
    }

    /// The CAPABILITY list, upper-case as sent.
    pub fn capabilities(&mut self) -> io::Result<Vec<String>> {
        let resp = self.run("CAPABILITY")?;
        Ok(resp
            .untagged
            .iter()
            .map(Line::text_lossy)
            .filter_map(|t| t.strip_prefix("* CAPABILITY ").map(str::to_string))
            .flat_map(|t| t.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect())
    }

    pub fn select(&mut self, mailbox: &str) -> io::Result<Selected> {
        let resp = self.run(&format!(
            "SELECT {}{}",
            mailbox_arg(mailbox),
            self.condstore_arg()
        ))?;
        Ok(selected(&resp))
    }

    pub fn examine(&mut self, mailbox: &str) -> io::Result<Selected> {
        let resp = self.run(&format!(
            "EXAMINE {}{}",
            mailbox_arg(mailbox),
            self.condstore_arg()
        ))?;
        Ok(selected(&resp))
    }

    fn condstore_arg(&self) -> &'static str {
        if self.condstore { " (CONDSTORE)" } else { "" }
    }

    pub fn status(&mut self, mailbox: &str) -> io::Result<Status> {
        let modseq = if self.condstore { " HIGHESTMODSEQ" } else { "" };
        let resp = self.run(&format!(
            "STATUS {} (MESSAGES UIDNEXT UIDVALIDITY{modseq})",
            mailbox_arg(mailbox)
        ))?;
        let line = resp
            .untagged
            .iter()
            .find(|l| l.text.starts_with(b"* STATUS "))
            .ok_or_else(|| io::Error::other("no STATUS response"))?;
        Ok(Status {
            messages: line.number_after("MESSAGES").unwrap_or(0) as u32,
            uid_next: line.number_after("UIDNEXT").unwrap_or(0) as u32,
            uid_validity: line.number_after("UIDVALIDITY").unwrap_or(0) as u32,
            highest_modseq: line.number_after("HIGHESTMODSEQ"),
        })
    }

    /// `UID FETCH 1:* (UID BODY.PEEK[])` on the selected mailbox: every
    /// message as (UID, BODY[] exactly as sent), sorted by UID.
    pub fn fetch_all(&mut self) -> io::Result<Vec<(u32, Vec<u8>)>> {
        self.fetch_bodies("1:*")
    }

    /// `UID FETCH <set> (UID BODY.PEEK[])`, sorted by UID.
    pub fn fetch_bodies(&mut self, uid_set: &str) -> io::Result<Vec<(u32, Vec<u8>)>> {
        let resp = self.run(&format!("UID FETCH {uid_set} (UID BODY.PEEK[])"))?;
        let mut out = Vec::new();
        for mut line in resp.untagged {
            if !is_fetch(&line) {
                continue;
            }
            let Some(uid) = line.number_after("UID") else {
                continue;
            };
            let needle = b"BODY[] {";
            let Some(at) = find(&line.text, needle).map(|i| i + needle.len() - 1) else {
                continue;
            };
            if let Some(i) = line.literals.iter().position(|(pos, _)| *pos == at) {
                out.push((uid as u32, line.literals.swap_remove(i).1));
            }
        }
        out.sort_by_key(|(uid, _)| *uid);
        Ok(out)
    }

    /// Flags of every message in the selected mailbox: (UID, sorted flags
    /// without the session-only `\Recent`), sorted by UID.
    pub fn fetch_flags(&mut self) -> io::Result<Vec<(u32, Vec<String>)>> {
        let resp = self.run("UID FETCH 1:* (UID FLAGS)")?;
        let mut out = Vec::new();
        for line in &resp.untagged {
            if !is_fetch(line) {
                continue;
            }
            let (Some(uid), Some(flags)) =
                (line.number_after("UID"), parenthesized(&line.text, "FLAGS"))
            else {
                continue;
            };
            let mut flags: Vec<String> = flags
                .split_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_string)
                .collect();
            flags.sort();
            out.push((uid as u32, flags));
        }
        out.sort_by_key(|(uid, _)| *uid);
        Ok(out)
    }

    /// UIDs of every message in the selected mailbox (UID SEARCH ALL), sorted.
    pub fn uids(&mut self) -> io::Result<Vec<u32>> {
        let resp = self.run("UID SEARCH ALL")?;
        let mut uids: Vec<u32> = resp
            .untagged
            .iter()
            .map(Line::text_lossy)
            .filter_map(|t| t.strip_prefix("* SEARCH").map(str::to_string))
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// APPEND one message; returns the UID from APPENDUID.
    pub fn append(
        &mut self,
        mailbox: &str,
        flags: &[&str],
        message: &[u8],
    ) -> io::Result<Option<u32>> {
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("({}) ", flags.join(" "))
        };
        let tag = self.tag();
        let head = format!("{tag} APPEND {} {flags}", mailbox_arg(mailbox));
        self.writer.write_all(head.as_bytes())?;
        self.send_literal(message)?;
        self.writer.write_all(b"\r\n")?;
        let resp = self.read_response(&tag)?;
        Ok(appenduid(&resp.completion).and_then(|uids| uids.first().copied()))
    }

    /// APPEND one message with an INTERNALDATE (`"01-Jan-2020 10:00:00 +0000"`);
    /// returns the UID from APPENDUID.
    pub fn append_dated(
        &mut self,
        mailbox: &str,
        date: &str,
        message: &[u8],
    ) -> io::Result<Option<u32>> {
        let tag = self.tag();
        let head = format!("{tag} APPEND {} \"{date}\" ", mailbox_arg(mailbox));
        self.writer.write_all(head.as_bytes())?;
        self.send_literal(message)?;
        self.writer.write_all(b"\r\n")?;
        let resp = self.read_response(&tag)?;
        Ok(appenduid(&resp.completion).and_then(|uids| uids.first().copied()))
    }

    /// Appends many messages with MULTIAPPEND (one command per chunk of up to
    /// 1000 messages / 64 MB) over this one connection; returns their UIDs.
    /// Without MULTIAPPEND, one APPEND per message.
    pub fn append_many<M: AsRef<[u8]>>(
        &mut self,
        mailbox: &str,
        messages: &[M],
    ) -> io::Result<Vec<u32>> {
        let mut uids = Vec::with_capacity(messages.len());
        if !self.multiappend {
            for message in messages {
                let uid = self.append(mailbox, &[], message.as_ref())?;
                uids.push(uid.ok_or_else(|| io::Error::other("server sent no APPENDUID"))?);
            }
            return Ok(uids);
        }
        let mut start = 0;
        while start < messages.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < messages.len()
                && end - start < APPEND_CHUNK_MESSAGES
                && (end == start || bytes + messages[end].as_ref().len() <= APPEND_CHUNK_BYTES)
            {
                bytes += messages[end].as_ref().len();
                end += 1;
            }
            let tag = self.tag();
            let head = format!("{tag} APPEND {}", mailbox_arg(mailbox));
            self.writer.write_all(head.as_bytes())?;
            for message in &messages[start..end] {
                self.writer.write_all(b" ")?;
                self.send_literal(message.as_ref())?;
            }
            self.writer.write_all(b"\r\n")?;
            let resp = self.read_response(&tag)?;
            let got = appenduid(&resp.completion).unwrap_or_default();
            if got.len() != end - start {
                return Err(io::Error::other(format!(
                    "APPEND of {} messages gave {} UIDs: {}",
                    end - start,
                    got.len(),
                    resp.completion
                )));
            }
            uids.extend(got);
            start = end;
        }
        Ok(uids)
    }

    /// `UID STORE <uids> <op> (<flags>)`, op being `+FLAGS`, `-FLAGS` or `FLAGS`.
    pub fn uid_store(&mut self, uids: &[u32], op: &str, flags: &[&str]) -> io::Result<()> {
        self.run(&format!(
            "UID STORE {} {op} ({})",
            uid_set(uids),
            flags.join(" ")
        ))
        .map(drop)
    }

    pub fn add_flags(&mut self, uids: &[u32], flags: &[&str]) -> io::Result<()> {
        self.uid_store(uids, "+FLAGS", flags)
    }

    pub fn remove_flags(&mut self, uids: &[u32], flags: &[&str]) -> io::Result<()> {
        self.uid_store(uids, "-FLAGS", flags)
    }

    /// EXPUNGE every message flagged \Deleted in the selected mailbox.
    pub fn expunge(&mut self) -> io::Result<()> {
        self.run("EXPUNGE").map(drop)
    }

    /// Flags the given UIDs \Deleted and expunges exactly them (UID EXPUNGE).
    pub fn delete_uids(&mut self, uids: &[u32]) -> io::Result<()> {
        self.add_flags(uids, &["\\Deleted"])?;
        self.run(&format!("UID EXPUNGE {}", uid_set(uids)))
            .map(drop)
    }

    pub fn create(&mut self, mailbox: &str) -> io::Result<()> {
        self.run(&format!("CREATE {}", mailbox_arg(mailbox)))
            .map(drop)
    }

    pub fn delete(&mut self, mailbox: &str) -> io::Result<()> {
        self.run(&format!("DELETE {}", mailbox_arg(mailbox)))
            .map(drop)
    }

    /// LIST "" "*": the raw untagged LIST lines.
    pub fn list(&mut self) -> io::Result<Vec<String>> {
        let resp = self.run("LIST \"\" \"*\"")?;
        Ok(resp.untagged.iter().map(Line::text_lossy).collect())
    }

    /// Enters IDLE on the selected mailbox and waits up to `timeout` for an
    /// untagged response containing `EXISTS` (or `EXPUNGE`), then sends DONE.
    /// Returns the untagged lines seen while idling (empty on timeout).
    pub fn idle_wait(&mut self, timeout: Duration) -> io::Result<Vec<String>> {
        let tag = self.tag();
        self.writer
            .write_all(format!("{tag} IDLE\r\n").as_bytes())?;
        let cont = self.read_line()?;
        if !cont.text.starts_with(b"+") {
            return Err(io::Error::other(format!(
                "IDLE refused: {}",
                cont.text_lossy()
            )));
        }
        self.writer.set_read_timeout(Some(timeout))?;
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match self.read_line() {
                Ok(line) => {
                    let text = line.text_lossy();
                    let done = text.ends_with(" EXISTS") || text.ends_with(" EXPUNGE");
                    seen.push(text);
                    if done {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        self.writer.set_read_timeout(Some(TIMEOUT))?;
        self.writer.write_all(b"DONE\r\n")?;
        let resp = self.read_response(&tag)?;
        seen.extend(resp.untagged.iter().map(Line::text_lossy));
        Ok(seen)
    }

    pub fn logout(&mut self) -> io::Result<()> {
        self.run("LOGOUT").map(drop)
    }

    /// Sends `<tag> <command>\r\n` and reads up to the tagged completion.
    /// A NO or BAD completion is an error naming the command.
    pub fn run(&mut self, command: &str) -> io::Result<Response> {
        let tag = self.tag();
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())?;
        self.read_response(&tag).map_err(|e| {
            let shown = if command.starts_with("LOGIN ") {
                "LOGIN ..."
            } else {
                command
            };
            io::Error::new(e.kind(), format!("`{shown}`: {e}"))
        })
    }

    fn tag(&mut self) -> String {
        let tag = format!("T{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    fn send_literal(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.literal_plus {
            self.writer
                .write_all(format!("{{{}+}}\r\n", bytes.len()).as_bytes())?;
        } else {
            self.writer
                .write_all(format!("{{{}}}\r\n", bytes.len()).as_bytes())?;
            let line = self.read_line()?;
            if !line.text.starts_with(b"+") {
                return Err(io::Error::other(format!(
                    "literal refused: {}",
                    line.text_lossy()
                )));
            }
        }
        self.writer.write_all(bytes)
    }

    fn read_response(&mut self, tag: &str) -> io::Result<Response> {
        let mut resp = Response::default();
        let prefix = format!("{tag} ");
        loop {
            let line = self.read_line()?;
            if let Some(rest) = line.text.strip_prefix(prefix.as_bytes()) {
                resp.completion = String::from_utf8_lossy(rest).into_owned();
                return if resp.completion.starts_with("OK") {
                    Ok(resp)
                } else {
                    Err(io::Error::other(format!("server said {}", resp.completion)))
                };
            }
            resp.untagged.push(line);
        }
    }

    /// Reads one response line, following any literals it announces.
    fn read_line(&mut self) -> io::Result<Line> {
        let mut line = Line::default();
        loop {
            let start = line.text.len();
            let n = self.reader.read_until(b'\n', &mut line.text)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            if line.text.ends_with(b"\r\n") {
                line.text.truncate(line.text.len() - 2);
            } else if line.text.ends_with(b"\n") {
                line.text.truncate(line.text.len() - 1);
            }
            match literal_announcement(&line.text[start..]) {
                Some((offset, len)) => {
                    let mut bytes = vec![0; len];
                    self.reader.read_exact(&mut bytes)?;
                    line.literals.push((start + offset, bytes));
                }
                None => return Ok(line),
            }
        }
    }
}

/// `{N}` at the end of a line chunk: (offset of `{`, N).
fn literal_announcement(chunk: &[u8]) -> Option<(usize, usize)> {
    let body = chunk.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((open, std::str::from_utf8(digits).ok()?.parse().ok()?))
}

fn is_fetch(line: &Line) -> bool {
    line.text.starts_with(b"* ") && find(&line.text, b" FETCH (").is_some()
}

fn selected(resp: &Response) -> Selected {
    let mut s = Selected::default();
    for line in &resp.untagged {
        let text = line.text_lossy();
        if let Some(n) = text
            .strip_prefix("* ")
            .and_then(|t| t.strip_suffix(" EXISTS"))
        {
            s.exists = n.parse().unwrap_or(0);
        }
        if let Some(n) = line.number_after("[UIDVALIDITY") {
            s.uid_validity = n as u32;
        }
        if let Some(n) = line.number_after("[UIDNEXT") {
            s.uid_next = n as u32;
        }
        if let Some(n) = line.number_after("[HIGHESTMODSEQ") {
            s.highest_modseq = Some(n);
        }
    }
    s
}

/// UIDs from `[APPENDUID <validity> <uid-set>]`, in order.
fn appenduid(completion: &str) -> Option<Vec<u32>> {
    let rest = &completion[completion.find("[APPENDUID ")? + 11..];
    let set = rest.split([' ', ']']).nth(1)?;
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                out.extend(a.min(b)..=a.max(b));
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A compact UID set: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if i == j {
            out.push_str(&sorted[i].to_string());
        } else {
            out.push_str(&format!("{}:{}", sorted[i], sorted[j]));
        }
        i = j + 1;
    }
    out
}

/// A quoted string, or a literal-free error for CR/LF (tests never need it).
pub fn quote(s: &str) -> String {
    assert!(!s.contains(['\r', '\n']), "cannot quote CR/LF in {s:?}");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A mailbox name as an IMAP argument: modified UTF-7 (RFC 3501 5.1.3), quoted.
pub fn mailbox_arg(name: &str) -> String {
    quote(&modified_utf7(name))
}

/// Encodes a mailbox name in IMAP's modified UTF-7.
pub fn modified_utf7(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
        out.push('&');
        out.push_str(&b64.replace('/', ","));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn number_after(text: &[u8], key: &str) -> Option<u64> {
    let mut from = 0;
    let needle = format!("{key} ");
    while let Some(i) = find(&text[from..], needle.as_bytes()) {
        let at = from + i;
        // Match whole words only: `UID` must not match inside `UIDNEXT`.
        let word_start = at == 0 || matches!(text[at - 1], b' ' | b'(' | b'[');
        let digits: Vec<u8> = text[at + needle.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if (word_start || key.starts_with('[')) && !digits.is_empty() {
            return std::str::from_utf8(&digits).ok()?.parse().ok();
        }
        from = at + 1;
    }
    None
}

/// The text inside `KEY (` ... `)`.
fn parenthesized(text: &[u8], key: &str) -> Option<String> {
    let needle = format!("{key} (");
    let start = find(text, needle.as_bytes())? + needle.len();
    let end = start + text[start..].iter().position(|&b| b == b')')?;
    Some(String::from_utf8_lossy(&text[start..end]).into_owned())
}
