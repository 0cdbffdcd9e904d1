//! The pieces rows are written with: the well-behaved server's mailbox and
//! conversation, the row type and what a row expects, and the credentials
//! no row may leak.

use std::time::Duration;

use crate::support::fake_server::{Mailbox, Step, expect, send};
use crate::support::mailfeed::Mode;

pub(crate) const UIDVALIDITY: u32 = 7;
/// A run that takes longer than this is a hang (timeouts are 2 s).
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
/// Peak RSS allowed for a run, in KiB: no attack may make mailfeed hold
/// more than a bounded amount, whatever sizes the server claims.
pub(crate) const MAX_RSS_KB: u64 = 96 * 1024;

/// The three messages the server holds. The second has NUL bytes, a bare
/// CR, a bare LF and 8-bit bytes; the third's body looks like IMAP.
pub(crate) fn body(uid: u32) -> Vec<u8> {
    match uid {
        1 => b"From: a@example.org\r\nTo: b@example.org\r\nSubject: one\r\nMessage-ID: <one@fake.test>\r\n\r\nfirst body\r\n".to_vec(),
        2 => b"From: a@example.org\r\nSubject: two \xe9\xff\r\nMessage-ID: <two@fake.test>\r\n\r\nnul:\0\0 cr:\r lf:\n end\r\n".to_vec(),
        3 => b"From: a@example.org\r\nSubject: three\r\nMessage-ID: <three@fake.test>\r\n\r\n) * 3 FETCH (UID 9) {5}\r\na001 OK looks like protocol\r\n".to_vec(),
        _ => format!("Subject: {uid}\r\n\r\nunasked\r\n").into_bytes(),
    }
}

pub(crate) fn mailbox() -> Mailbox {
    Mailbox::new(UIDVALIDITY, (1..=3).map(|u| (u, body(u))).collect())
}

/// A correct FETCH response for a message.
pub(crate) fn fetch(seq: u32, uid: u32) -> Step {
    let b = body(uid);
    let mut out = format!(
        "* {seq} FETCH (UID {uid} RFC822.SIZE {n} FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[] {{{n}}}\r\n",
        n = b.len()
    )
    .into_bytes();
    out.extend_from_slice(&b);
    out.extend_from_slice(b")\r\n");
    Step::Send(out)
}

/// A FETCH response whose BODY[] literal header is `marker` followed by
/// `data` (for literals that lie about their size).
pub(crate) fn fetch_raw(uid: u32, marker: &str, data: &[u8], tail: &str) -> Step {
    let mut out = format!("* {uid} FETCH (UID {uid} BODY[] {marker}\r\n").into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(tail.as_bytes());
    Step::Send(out)
}

pub(crate) const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] fake ready\r\n";

/// Greeting and login.
pub(crate) fn login() -> Vec<Step> {
    vec![
        send(GREETING),
        expect("AUTHENTICATE PLAIN"),
        send("$T OK [CAPABILITY IMAP4rev1] logged in\r\n"),
    ]
}

/// Login, EXAMINE with `examine` as the untagged part, and the UID listing.
pub(crate) fn examined(examine: &'static str) -> Vec<Step> {
    let mut s = login();
    s.extend([
        expect("EXAMINE INBOX"),
        send(examine),
        send("$T OK [READ-ONLY] done\r\n"),
    ]);
    s
}

pub(crate) const GOOD_EXAMINE: &str =
    "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 4] n\r\n* FLAGS (\\Seen)\r\n";

/// Everything up to the point where mailfeed has asked for the bodies.
pub(crate) fn fetching() -> Vec<Step> {
    let mut s = examined(GOOD_EXAMINE);
    s.extend([
        expect("UID FETCH 1:* (UID)"),
        send("* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\n$T OK done\r\n"),
        expect("UID FETCH 1:3 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"),
    ]);
    s
}

pub(crate) fn with(mut a: Vec<Step>, b: impl IntoIterator<Item = Step>) -> Vec<Step> {
    a.extend(b);
    a
}

/// The rest of a good conversation after some FETCH responses.
pub(crate) fn ok_and_logout() -> [Step; 3] {
    [
        send("$T OK done\r\n"),
        expect("LOGOUT"),
        send("* BYE bye\r\n$T OK done\r\n"),
    ]
}

pub(crate) fn stall() -> Step {
    Step::Stall(Duration::from_secs(8))
}

/// What a case must end with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// `sync` exits 0 and has stored exactly these UIDs (correct bytes).
    Stores(&'static [u32]),
    /// `sync` exits 1 with one FAILED line that contains one of `any`
    /// (ASCII case ignored); exactly `stored` are in the database.
    Fails {
        any: &'static [&'static str],
        stored: &'static [u32],
    },
}
pub(crate) use Expect::{Fails, Stores};

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) mode: Mode,
    pub(crate) script: Vec<Step>,
    pub(crate) expect: Expect,
    /// Text mailfeed must never have sent (e.g. credentials before TLS).
    pub(crate) never_sent: &'static [&'static str],
    /// Text mailfeed must have shown (stdout or stderr).
    pub(crate) shows: &'static [&'static str],
    /// The case deletes a message for good, so the recovery run (which
    /// serves all three) would rightly not fetch it again: skip recovery.
    pub(crate) deletes: bool,
}

pub(crate) fn case(name: &'static str, script: Vec<Step>, expect: Expect) -> Case {
    Case {
        name,
        mode: Mode::Plain,
        script,
        expect,
        never_sent: &[],
        shows: &[],
        deletes: false,
    }
}

pub(crate) const NO_AUTH: &[&str] = &["AUTHENTICATE", "LOGIN"];

/// The account's password; no row may make it (in any form mailfeed sent
/// it in) appear on stdout, in the trace log, or in the database.
pub(crate) const PASSWORD: &str = "hostile-pw-Zq9";

/// Every form of the credentials mailfeed sends: the password, the SASL
/// PLAIN response, and the part of it that encodes the password.
pub(crate) fn secret_forms() -> Vec<String> {
    use base64::Engine;
    let sasl = base64::engine::general_purpose::STANDARD.encode(format!("\0hostile\0{PASSWORD}"));
    let part = sasl[12..].to_owned();
    vec![PASSWORD.to_owned(), sasl, part]
}

/// A server that answers login with `echo` (credentials in it) before its
/// OK, then serves the mailbox correctly: the sync succeeds, and the echo
/// shows nothing.
pub(crate) fn echoing(name: &'static str, echo: &'static str) -> Case {
    case(
        name,
        vec![
            send(GREETING),
            expect("AUTHENTICATE PLAIN"),
            send(echo),
            send("$T OK [CAPABILITY IMAP4rev1] logged in\r\n"),
            Step::Serve(mailbox()),
        ],
        Stores(&[1, 2, 3]),
    )
}
