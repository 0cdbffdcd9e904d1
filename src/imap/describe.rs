//! Plain-words descriptions of what was said, for `mailfeed check` and for
//! trace logs: "tagged reply to a02 LOGIN: OK, logged in". Pure formatting.

use super::response::{Body, Code, Response, Status, Untagged, UntaggedStatus};

/// Renders a server line for people: literals shown by size, control and
/// 8-bit bytes escaped, long lines shortened.
pub fn render_line(line: &[u8]) -> String {
    const MAX: usize = 300;
    let mut out = String::new();
    for &b in line.iter().take(MAX) {
        match b {
            0x20..=0x7e => out.push(b as char),
            b'\t' => out.push(' '),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if line.len() > MAX {
        out.push_str(&format!(" … ({} bytes in all)", line.len()));
    }
    out
}

fn code_words(code: &Code) -> String {
    match code {
        Code::Alert => "an ALERT for the user".into(),
        Code::Capability(c) => format!("capabilities: {}", c.join(" ")),
        Code::UidValidity(v) => format!("UIDVALIDITY is {v}"),
        Code::UidNext(n) => format!("the next UID will be {n}"),
        Code::Unseen(n) => format!("first unseen message is #{n}"),
        Code::HighestModSeq(m) => format!("highest modification sequence {m}"),
        Code::NoModSeq => "this folder keeps no modification sequences".into(),
        Code::ReadOnly => "opened read-only".into(),
        Code::ReadWrite => "opened read-write".into(),
        Code::Closed => "previous folder closed".into(),
        Code::Other(name, _) => match name.as_str() {
            "AUTHENTICATIONFAILED" => "authentication failed (wrong user name or password)".into(),
            "AUTHORIZATIONFAILED" => "not authorised".into(),
            "UNAVAILABLE" => "server temporarily unavailable".into(),
            "NONEXISTENT" => "no such folder".into(),
            "LIMIT" => "a server limit was reached".into(),
            "PRIVACYREQUIRED" => "server requires an encrypted connection".into(),
            "INUSE" => "in use by another session".into(),
            "SERVERBUG" => "server reports an internal error".into(),
            "THROTTLED" => "server is throttling this client".into(),
            "PERMANENTFLAGS" => "flags that may be changed".into(),
            other => format!("response code {other}"),
        },
    }
}

/// One line saying what a response means. `command` is the name of the
/// command the tag belongs to, when known.
pub fn describe(response: &Response, command: Option<&str>) -> String {
    match response {
        Response::Continuation(_) => "continuation: server is ready for more".into(),
        Response::Tagged { tag, status, text } => {
            let what = match command {
                Some(c) => format!("tagged reply to {tag} {c}"),
                None => format!("tagged reply to {tag}"),
            };
            let verdict = match (status, command) {
                (Status::Ok, Some("LOGIN" | "AUTHENTICATE")) => "OK, logged in".to_owned(),
                (Status::Ok, Some("EXAMINE")) => "OK, folder opened read-only".to_owned(),
                (Status::Ok, Some("STARTTLS")) => "OK, starting TLS".to_owned(),
                (Status::Ok, _) => "OK".to_owned(),
                (Status::No, _) => "NO, the server refused".to_owned(),
                (Status::Bad, _) => "BAD, the server did not understand the command".to_owned(),
            };
            match &text.code {
                // The verdict already says it.
                Some(Code::ReadOnly) if command == Some("EXAMINE") => format!("{what}: {verdict}"),
                Some(code) => format!("{what}: {verdict} ({})", code_words(code)),
                None => format!("{what}: {verdict}"),
            }
        }
        Response::Untagged(u) => format!("untagged: {}", describe_untagged(u)),
    }
}

fn describe_untagged(u: &Untagged) -> String {
    match u {
        Untagged::Status(st, text) => {
            let word = match st {
                UntaggedStatus::Ok => "OK",
                UntaggedStatus::No => "warning (NO)",
                UntaggedStatus::Bad => "error (BAD)",
                UntaggedStatus::Preauth => "already logged in (PREAUTH)",
                UntaggedStatus::Bye => "server is closing the connection (BYE)",
            };
            match &text.code {
                Some(code) => format!("{word}, {}", code_words(code)),
                None => word.to_owned(),
            }
        }
        Untagged::Capability(c) => format!("capabilities: {}", c.join(" ")),
        Untagged::Enabled(c) => format!("enabled: {}", c.join(" ")),
        Untagged::Flags(f) => format!("{} flags defined", f.len()),
        Untagged::Exists(n) => format!("{n} messages exist"),
        Untagged::Recent(n) => format!("{n} recent"),
        Untagged::Expunge(n) => format!("message #{} expunged", n.0),
        Untagged::Fetch(seq, d) => {
            let mut s = format!("message #{}", seq.0);
            if let Some(uid) = d.uid {
                s.push_str(&format!(" UID {uid}"));
            }
            match &d.body {
                Some(Body::Full(b)) => s.push_str(&format!(", {} bytes of content", b.len())),
                Some(Body::Truncated { declared, .. }) => s.push_str(&format!(
                    ", {declared} bytes of content (over the size limit)"
                )),
                Some(Body::Nil) => s.push_str(", no content (NIL)"),
                None => {}
            }
            s
        }
        Untagged::List(e) => format!(
            "folder {:?}{}",
            super::mutf7::decode(&e.name),
            if e.is_selectable() {
                ""
            } else {
                " (cannot be opened)"
            }
        ),
        Untagged::MailboxStatus { mailbox, items } => format!(
            "status of {:?}: {}",
            super::mutf7::decode(mailbox),
            items
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Untagged::Search(uids) => format!("search found {} messages", uids.len()),
        Untagged::ESearch(e) => match &e.all {
            Some(set) => format!("search found {} messages", set.len()),
            None => "search found nothing".into(),
        },
        Untagged::Vanished { uids, .. } => format!("{} messages were expunged", uids.len()),
        Untagged::Other(word) => format!("{word} (not used by mailfeed)"),
    }
}
