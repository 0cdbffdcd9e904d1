//! Hostile servers: a scripted fake server plays byte streams no sane server
//! sends, and `mailfeed sync` must answer each with no panic, no hang (every
//! run is bounded by `[sync] timeout = "2s"` and a hard deadline here),
//! bounded memory (peak RSS measured), a clear error or a correct recovery,
//! and an intact database. After every case a second run against a
//! well-behaved server (on the same database) must end with exactly the
//! server's three messages, each stored once.
//!
//! The table is [`cases`]: one row per attack, with the behaviour expected.
//! Byte-level attacks on the response reader (allocation bounds) follow it.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::fake_server::{FakeServer, Mailbox, Step, expect, send, send_bytes};
use support::mailfeed::{Account, Mode, Setup};

const UIDVALIDITY: u32 = 7;
/// A run that takes longer than this is a hang (timeouts are 2 s).
const DEADLINE: Duration = Duration::from_secs(30);
/// Peak RSS allowed for a run, in KiB: no attack may make mailfeed hold
/// more than a bounded amount, whatever sizes the server claims.
const MAX_RSS_KB: u64 = 96 * 1024;

/// The three messages the server holds. The second has NUL bytes, a bare
/// CR, a bare LF and 8-bit bytes; the third's body looks like IMAP.
fn body(uid: u32) -> Vec<u8> {
    match uid {
        1 => b"From: a@example.org\r\nTo: b@example.org\r\nSubject: one\r\nMessage-ID: <one@fake.test>\r\n\r\nfirst body\r\n".to_vec(),
        2 => b"From: a@example.org\r\nSubject: two \xe9\xff\r\nMessage-ID: <two@fake.test>\r\n\r\nnul:\0\0 cr:\r lf:\n end\r\n".to_vec(),
        3 => b"From: a@example.org\r\nSubject: three\r\nMessage-ID: <three@fake.test>\r\n\r\n) * 3 FETCH (UID 9) {5}\r\na001 OK looks like protocol\r\n".to_vec(),
        _ => format!("Subject: {uid}\r\n\r\nunasked\r\n").into_bytes(),
    }
}

fn mailbox() -> Mailbox {
    Mailbox::new(UIDVALIDITY, (1..=3).map(|u| (u, body(u))).collect())
}

/// A correct FETCH response for a message.
fn fetch(seq: u32, uid: u32) -> Step {
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
fn fetch_raw(uid: u32, marker: &str, data: &[u8], tail: &str) -> Step {
    let mut out = format!("* {uid} FETCH (UID {uid} BODY[] {marker}\r\n").into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(tail.as_bytes());
    Step::Send(out)
}

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] fake ready\r\n";

/// Greeting and login.
fn login() -> Vec<Step> {
    vec![
        send(GREETING),
        expect("AUTHENTICATE PLAIN"),
        send("$T OK [CAPABILITY IMAP4rev1] logged in\r\n"),
    ]
}

/// Login, EXAMINE with `examine` as the untagged part, and the UID listing.
fn examined(examine: &'static str) -> Vec<Step> {
    let mut s = login();
    s.extend([
        expect("EXAMINE INBOX"),
        send(examine),
        send("$T OK [READ-ONLY] done\r\n"),
    ]);
    s
}

const GOOD_EXAMINE: &str =
    "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 4] n\r\n* FLAGS (\\Seen)\r\n";

/// Everything up to the point where mailfeed has asked for the bodies.
fn fetching() -> Vec<Step> {
    let mut s = examined(GOOD_EXAMINE);
    s.extend([
        expect("UID FETCH 1:* (UID)"),
        send("* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\n$T OK done\r\n"),
        expect("UID FETCH 1:3 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"),
    ]);
    s
}

fn with(mut a: Vec<Step>, b: impl IntoIterator<Item = Step>) -> Vec<Step> {
    a.extend(b);
    a
}

/// The rest of a good conversation after some FETCH responses.
fn ok_and_logout() -> [Step; 3] {
    [
        send("$T OK done\r\n"),
        expect("LOGOUT"),
        send("* BYE bye\r\n$T OK done\r\n"),
    ]
}

fn stall() -> Step {
    Step::Stall(Duration::from_secs(8))
}

/// What a case must end with.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `sync` exits 0 and has stored exactly these UIDs (correct bytes).
    Stores(&'static [u32]),
    /// `sync` exits 1 with one FAILED line that contains one of `any`
    /// (ASCII case ignored); exactly `stored` are in the database.
    Fails {
        any: &'static [&'static str],
        stored: &'static [u32],
    },
}
use Expect::{Fails, Stores};

struct Case {
    name: &'static str,
    mode: Mode,
    script: Vec<Step>,
    expect: Expect,
    /// Text mailfeed must never have sent (e.g. credentials before TLS).
    never_sent: &'static [&'static str],
    /// Text mailfeed must have shown (stdout or stderr).
    shows: &'static [&'static str],
    /// The case deletes a message for good, so the recovery run (which
    /// serves all three) would rightly not fetch it again: skip recovery.
    deletes: bool,
}

fn case(name: &'static str, script: Vec<Step>, expect: Expect) -> Case {
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

const NO_AUTH: &[&str] = &["AUTHENTICATE", "LOGIN"];

/// The account's password; no row may make it (in any form mailfeed sent
/// it in) appear on stdout, in the trace log, or in the database.
const PASSWORD: &str = "hostile-pw-Zq9";

/// Every form of the credentials mailfeed sends: the password, the SASL
/// PLAIN response, and the part of it that encodes the password.
fn secret_forms() -> Vec<String> {
    use base64::Engine;
    let sasl = base64::engine::general_purpose::STANDARD.encode(format!("\0hostile\0{PASSWORD}"));
    let part = sasl[12..].to_owned();
    vec![PASSWORD.to_owned(), sasl, part]
}

/// A server that answers login with `echo` (credentials in it) before its
/// OK, then serves the mailbox correctly: the sync succeeds, and the echo
/// shows nothing.
fn echoing(name: &'static str, echo: &'static str) -> Case {
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

/// The table: every hostile stream and the behaviour expected of mailfeed.
fn cases() -> Vec<Case> {
    let line_1mb = {
        let mut v = b"* 1 FETCH (UID 1 FLAGS (".to_vec();
        v.resize(1024 * 1024, b'x');
        v
    };
    let b2 = body(2);
    let mut v = vec![
        // ---- before login -------------------------------------------------
        case(
            "http-on-the-port",
            vec![
                send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                Step::Close,
            ],
            Fails {
                any: &["malformed", "greeting"],
                stored: &[],
            },
        ),
        case(
            "garbage-without-newline",
            vec![
                send_bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\xff".to_vec()),
                Step::Close,
            ],
            Fails {
                any: &["closed the connection in the middle"],
                stored: &[],
            },
        ),
        case(
            "silence-instead-of-greeting",
            vec![stall()],
            Fails {
                any: &["timeout"],
                stored: &[],
            },
        ),
        case(
            "closed-before-greeting",
            vec![Step::Close],
            Fails {
                any: &["closed the connection"],
                stored: &[],
            },
        ),
        case(
            "bye-greeting",
            vec![send("* BYE too many connections\r\n"), Step::Close],
            Fails {
                any: &["refused the connection: too many connections"],
                stored: &[],
            },
        ),
        case(
            "reset-after-greeting",
            vec![send(GREETING), Step::Reset],
            Fails {
                any: &["reset", "closed the connection", "broken pipe"],
                stored: &[],
            },
        ),
        case(
            "greeting-is-a-tagged-reply",
            vec![send("a001 OK hello\r\n"), stall()],
            Fails {
                any: &["expected a greeting"],
                stored: &[],
            },
        ),
        // ---- login -----------------------------------------------------------
        case(
            "login-no",
            vec![
                send(GREETING),
                expect("AUTHENTICATE"),
                send("$T NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
            ],
            Fails {
                any: &["login failed: [AUTHENTICATIONFAILED] Authentication failed."],
                stored: &[],
            },
        ),
        case(
            "login-bad",
            vec![
                send(GREETING),
                expect("AUTHENTICATE"),
                send("$T BAD what?\r\n"),
            ],
            Fails {
                any: &["login failed"],
                stored: &[],
            },
        ),
        Case {
            shows: &[
                "server alert: maintenance at midnight",
                "server alert: your password expires soon",
            ],
            ..case(
                "alert-everywhere",
                vec![
                    send("* OK [ALERT] maintenance at midnight\r\n"),
                    expect("LOGIN"),
                    send("* OK [ALERT] your password expires soon\r\n$T OK logged in\r\n"),
                    Step::Serve(mailbox()),
                ],
                Stores(&[1, 2, 3]),
            )
        },
        Case {
            never_sent: NO_AUTH,
            ..case(
                "preauth",
                vec![
                    send("* PREAUTH [CAPABILITY IMAP4rev1] welcome back\r\n"),
                    Step::Serve(mailbox()),
                ],
                Stores(&[1, 2, 3]),
            )
        },
        Case {
            never_sent: NO_AUTH,
            ..case(
                "logindisabled",
                vec![send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] no\r\n")],
                Fails {
                    any: &["not logging in"],
                    stored: &[],
                },
            )
        },
        // ---- STARTTLS stripping (security = "starttls") ----------------------
        Case {
            mode: Mode::StartTls,
            never_sent: NO_AUTH,
            ..case(
                "starttls-not-offered",
                vec![send(GREETING)],
                Fails {
                    any: &["does not offer STARTTLS"],
                    stored: &[],
                },
            )
        },
        Case {
            mode: Mode::StartTls,
            never_sent: NO_AUTH,
            ..case(
                "starttls-refused",
                vec![
                    send("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
                    expect("STARTTLS"),
                    send("$T NO not today\r\n"),
                ],
                Fails {
                    any: &["refused STARTTLS"],
                    stored: &[],
                },
            )
        },
        Case {
            mode: Mode::StartTls,
            never_sent: NO_AUTH,
            ..case(
                "starttls-bad",
                vec![
                    send("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
                    expect("STARTTLS"),
                    send("$T BAD unknown command\r\n"),
                ],
                Fails {
                    any: &["refused STARTTLS"],
                    stored: &[],
                },
            )
        },
        Case {
            mode: Mode::StartTls,
            never_sent: NO_AUTH,
            ..case(
                "starttls-after-preauth",
                vec![send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")],
                Fails {
                    any: &["does not offer STARTTLS"],
                    stored: &[],
                },
            )
        },
        Case {
            mode: Mode::StartTls,
            never_sent: NO_AUTH,
            ..case(
                "starttls-plaintext-injection",
                vec![
                    send("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
                    expect("STARTTLS"),
                    send("$T OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
                ],
                // Both lines go out in one write, so they arrive together and
                // the injected one is already parsed when the OK is seen.
                Fails {
                    any: &["after accepting STARTTLS"],
                    stored: &[],
                },
            )
        },
        // ---- EXAMINE ---------------------------------------------------------
        case(
            "uidvalidity-zero",
            examined("* 3 EXISTS\r\n* OK [UIDVALIDITY 0] v\r\n* OK [UIDNEXT 4] n\r\n"),
            Fails {
                any: &["no usable UIDVALIDITY"],
                stored: &[],
            },
        ),
        case(
            "uidvalidity-missing",
            examined("* 3 EXISTS\r\n* OK [UIDNEXT 4] n\r\n"),
            Fails {
                any: &["no usable UIDVALIDITY"],
                stored: &[],
            },
        ),
        case(
            "uidvalidity-beyond-32-bits",
            examined("* 3 EXISTS\r\n* OK [UIDVALIDITY 4294967296] v\r\n"),
            Fails {
                any: &["beyond 32 bits"],
                stored: &[],
            },
        ),
        case(
            "examine-no",
            with(
                login(),
                [
                    expect("EXAMINE"),
                    send("$T NO [NONEXISTENT] Mailbox doesn't exist\r\n"),
                    expect("LOGOUT"),
                    send("$T OK bye\r\n"),
                ],
            ),
            Fails {
                any: &["EXAMINE failed: NO Mailbox doesn't exist"],
                stored: &[],
            },
        ),
        case(
            "listing-empty-although-exists",
            with(
                examined(GOOD_EXAMINE),
                [
                    expect("UID FETCH 1:*"),
                    send("$T OK nothing\r\n"),
                    expect("LOGOUT"),
                    send("$T OK bye\r\n"),
                ],
            ),
            Stores(&[]),
        ),
        // ---- literals ------------------------------------------------------
        case(
            "literal-size-not-a-number",
            with(fetching(), [fetch_raw(1, "{abc}", &body(1), ")\r\n")]),
            Fails {
                any: &["malformed"],
                stored: &[],
            },
        ),
        case(
            "literal-size-negative",
            with(fetching(), [fetch_raw(1, "{-5}", &body(1), ")\r\n")]),
            Fails {
                any: &["malformed"],
                stored: &[],
            },
        ),
        case(
            "literal-size-beyond-2^32",
            with(
                fetching(),
                [fetch_raw(1, "{4294967296}", b"abc", ""), stall()],
            ),
            Fails {
                any: &["beyond the protocol's 4294967295"],
                stored: &[],
            },
        ),
        case(
            "literal-size-2^40",
            with(
                fetching(),
                [fetch_raw(1, "{1099511627776}", b"abc", ""), stall()],
            ),
            Fails {
                any: &["beyond the protocol's 4294967295"],
                stored: &[],
            },
        ),
        case(
            "literal-size-absurd-digits",
            with(
                fetching(),
                [
                    fetch_raw(1, "{99999999999999999999999999999}", b"abc", ""),
                    stall(),
                ],
            ),
            Fails {
                any: &["beyond the protocol's 4294967295"],
                stored: &[],
            },
        ),
        case(
            "literal-claims-4GiB-then-closes",
            with(
                fetching(),
                [
                    fetch_raw(1, "{4294967295}", &vec![b'y'; 600 * 1024], ""),
                    Step::Close,
                ],
            ),
            Fails {
                any: &["closed the connection in the middle"],
                stored: &[],
            },
        ),
        case(
            "literal-longer-than-data",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch_raw(2, &format!("{{{}}}", b2.len() + 100), &b2, ")\r\n"),
                    send("$T OK done\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["timeout"],
                stored: &[1],
            },
        ),
        case(
            "literal-shorter-than-data",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch_raw(2, "{5}", &b2, ")\r\n"),
                    send("$T OK done\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["malformed"],
                stored: &[1],
            },
        ),
        case(
            "closed-mid-literal",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch_raw(2, &format!("{{{}}}", b2.len()), &b2[..20], ""),
                    Step::Close,
                ],
            ),
            Fails {
                any: &["closed the connection in the middle"],
                stored: &[1],
            },
        ),
        case(
            "reset-mid-literal",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch_raw(2, &format!("{{{}}}", b2.len()), &b2[..20], ""),
                    Step::Reset,
                ],
            ),
            Fails {
                any: &["reset", "closed the connection", "broken pipe"],
                stored: &[1],
            },
        ),
        case(
            "stall-mid-literal",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch_raw(2, &format!("{{{}}}", b2.len()), &b2[..20], ""),
                    stall(),
                ],
            ),
            Fails {
                any: &["timeout"],
                stored: &[1],
            },
        ),
        case(
            "body-nil",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    send("* 2 FETCH (UID 2 BODY[] NIL)\r\n"),
                    fetch(3, 3),
                    send("$T OK done\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["sent no content (NIL) for UID 2"],
                stored: &[1],
            },
        ),
        case(
            "size-mismatch",
            with(
                fetching(),
                [
                    fetch_raw(
                        1,
                        &format!("{{{}}}", body(1).len()),
                        &body(1),
                        " RFC822.SIZE 999999)\r\n",
                    ),
                    fetch(2, 2),
                    fetch(3, 3),
                ],
            )
            .into_iter()
            .chain(ok_and_logout())
            .collect(),
            Stores(&[1, 2, 3]),
        ),
        // ---- lines -----------------------------------------------------------
        case(
            "unterminated-quoted-string",
            with(
                fetching(),
                [
                    send("* 1 FETCH (UID 1 INTERNALDATE \"01-Jan-2024 10:00:00 +0000)\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["unterminated quoted string"],
                stored: &[],
            },
        ),
        case(
            "nul-in-status-text",
            with(
                fetching(),
                [
                    send_bytes(b"* OK hello\0world\r\n".to_vec()),
                    fetch(1, 1),
                    fetch(2, 2),
                    fetch(3, 3),
                ],
            )
            .into_iter()
            .chain(ok_and_logout())
            .collect(),
            Stores(&[1, 2, 3]),
        ),
        case(
            "nul-in-fetch-syntax",
            with(
                fetching(),
                [
                    send_bytes(b"* 1 FETCH (UID 1\0 BODY[] NIL)\r\n".to_vec()),
                    stall(),
                ],
            ),
            Fails {
                any: &["malformed"],
                stored: &[],
            },
        ),
        case(
            "line-of-1MB-without-crlf",
            with(fetching(), [Step::Send(line_1mb), stall()]),
            Fails {
                any: &["longer than 65536 bytes"],
                stored: &[],
            },
        ),
        case(
            "unbalanced-open-parenthesis",
            with(
                fetching(),
                [
                    send("* 1 FETCH (UID 1 FLAGS (\\Seen INTERNALDATE \"x\"\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["malformed"],
                stored: &[],
            },
        ),
        case(
            "unbalanced-close-parenthesis",
            with(
                fetching(),
                [
                    send("* 1 FETCH (UID 1 FLAGS (\\Seen))) RFC822.SIZE 5)\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["malformed"],
                stored: &[],
            },
        ),
        case(
            "nesting-too-deep",
            with(
                fetching(),
                [
                    Step::Send(
                        format!(
                            "* 1 FETCH (UID 1 X-JUNK {}{})\r\n",
                            "(".repeat(5000),
                            ")".repeat(5000)
                        )
                        .into_bytes(),
                    ),
                    stall(),
                ],
            ),
            Fails {
                any: &["nesting too deep"],
                stored: &[],
            },
        ),
        case(
            "bare-lf-line-endings",
            with(
                fetching(),
                [
                    send("* OK fine\n"),
                    fetch(1, 1),
                    fetch(2, 2),
                    fetch(3, 3),
                    send("$T OK done\n"),
                    expect("LOGOUT"),
                    send("$T OK bye\n"),
                ],
            ),
            Stores(&[1, 2, 3]),
        ),
        // ---- the FETCH conversation ----------------------------------------
        case(
            "uidvalidity-changes-mid-fetch",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    send("* OK [UIDVALIDITY 8] changed\r\n"),
                    fetch(2, 2),
                    stall(),
                ],
            ),
            Fails {
                any: &["UIDVALIDITY changed during the session (from 7 to 8)"],
                stored: &[1],
            },
        ),
        case(
            "uids-going-backwards",
            with(fetching(), [fetch(3, 3), fetch(2, 2), fetch(1, 1)])
                .into_iter()
                .chain(ok_and_logout())
                .collect(),
            Stores(&[1, 2, 3]),
        ),
        case(
            "uid-never-requested",
            with(
                fetching(),
                [fetch(1, 1), fetch(9, 99), fetch(2, 2), fetch(3, 3)],
            )
            .into_iter()
            .chain(ok_and_logout())
            .collect(),
            Stores(&[1, 2, 3]),
        ),
        case(
            "same-uid-twice",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch(1, 1),
                    fetch(2, 2),
                    fetch(3, 3),
                    fetch(2, 2),
                ],
            )
            .into_iter()
            .chain(ok_and_logout())
            .collect(),
            Stores(&[1, 2, 3]),
        ),
        case(
            "fetch-without-uid",
            with(
                fetching(),
                [
                    send("* 1 FETCH (FLAGS (\\Seen) BODY[] {4}\r\nabcd)\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["without its UID"],
                stored: &[],
            },
        ),
        case(
            "bye-mid-fetch",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    send("* BYE server shutting down\r\n"),
                    Step::Close,
                ],
            ),
            Fails {
                any: &["BYE: server shutting down"],
                stored: &[1],
            },
        ),
        // A listed UID left out of the FETCH answer must not be passed by the
        // cursor while it still exists; one expunged meanwhile may be.
        case(
            "listed-uid-not-sent-but-exists",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    fetch(3, 3),
                    send("$T OK done\r\n"),
                    expect("UID FETCH 2 (UID)"),
                    send("* 2 FETCH (UID 2)\r\n$T OK done\r\n"),
                    expect("LOGOUT"),
                    send("$T OK bye\r\n"),
                ],
            ),
            Fails {
                any: &["listed UID 2 but did not send it"],
                stored: &[1, 3],
            },
        ),
        Case {
            deletes: true,
            ..case(
                "listed-uid-expunged-before-fetch",
                with(
                    fetching(),
                    [
                        fetch(1, 1),
                        fetch(2, 3),
                        send("$T OK done\r\n"),
                        expect("UID FETCH 2 (UID)"),
                        send("$T OK done\r\n"),
                        expect("LOGOUT"),
                        send("$T OK bye\r\n"),
                    ],
                ),
                Stores(&[1, 3]),
            )
        },
        case(
            "unknown-tag",
            with(
                fetching(),
                [fetch(1, 1), send("zz99 OK surprise\r\n"), stall()],
            ),
            Fails {
                any: &["unknown tag `zz99`"],
                stored: &[1],
            },
        ),
        case(
            "fetch-no",
            with(
                fetching(),
                [
                    fetch(1, 1),
                    send("$T NO [SERVERBUG] internal error\r\n"),
                    expect("LOGOUT"),
                    send("$T OK bye\r\n"),
                ],
            ),
            Fails {
                any: &["UID FETCH failed: NO internal error"],
                stored: &[1],
            },
        ),
        case(
            "fetch-bad",
            with(
                fetching(),
                [
                    send("$T BAD no such thing\r\n"),
                    expect("LOGOUT"),
                    send("$T OK bye\r\n"),
                ],
            ),
            Fails {
                any: &["UID FETCH failed: BAD"],
                stored: &[],
            },
        ),
        case(
            "continuation-mid-fetch",
            with(fetching(), [fetch(1, 1), send("+ go on\r\n"), stall()]),
            Fails {
                any: &["unexpected continuation"],
                stored: &[1],
            },
        ),
        case(
            "tagged-reply-not-ok-no-bad",
            with(fetching(), [send("$T MAYBE later\r\n"), stall()]),
            Fails {
                any: &["malformed"],
                stored: &[],
            },
        ),
        // ---- a server that echoes the credentials it was sent --------------
        case(
            "echoed-credentials-in-a-tag",
            with(
                login(),
                [
                    expect("EXAMINE INBOX"),
                    send("$A OK [READ-ONLY] done\r\n"),
                    stall(),
                ],
            ),
            Fails {
                any: &["tagged reply for unknown tag `***`"],
                stored: &[],
            },
        ),
        echoing(
            "echoed-credentials-in-an-untagged-bad",
            "* BAD $A: unknown command\r\n",
        ),
        echoing(
            "echoed-credentials-in-an-alert",
            "* OK [ALERT] you sent $A, that is hostile-pw-Zq9\r\n",
        ),
        echoing(
            "echoed-credentials-in-a-literal",
            "* LIST () \"/\" {$#}\r\n$A\r\n* LIST () \"/\" {14}\r\nhostile-pw-Zq9\r\n",
        ),
    ];
    v.sort_by_key(|c| c.name);
    v
}

/// Runs `mailfeed sync` with a hard deadline, measuring its peak RSS.
fn run_bounded(setup: &Setup, args: &[&str]) -> (Output, u64, Duration) {
    let t = Instant::now();
    let mut child = setup
        .command(args)
        .env("RUST_LOG", "mailfeed=trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailfeed");
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let so = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let se = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut peak_kb = 0;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if t.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mailfeed {args:?} hung for {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: so.join().expect("stdout thread"),
        stderr: se.join().expect("stderr thread"),
    };
    (output, peak_kb, t.elapsed())
}

fn stored(setup: &Setup) -> Vec<(u32, u32, Vec<u8>)> {
    setup.stored("test", "INBOX")
}

/// Where a form of the credentials appears, if anywhere: stdout, the
/// trace log on stderr, or any file of the database (WAL included; not
/// the configuration, which holds the password by design).
fn leaked(setup: &Setup, stdout: &str, stderr: &str) -> Option<String> {
    for form in secret_forms() {
        if stdout.contains(&form) {
            return Some(format!("stdout (`{form}`)"));
        }
        if stderr.contains(&form) {
            return Some(format!("the log (`{form}`)"));
        }
        let db_name = setup.db.file_name()?.to_string_lossy().into_owned();
        let dir = setup.db.parent()?;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&db_name) {
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            if bytes.windows(form.len()).any(|w| w == form.as_bytes()) {
                return Some(format!("{} (`{form}`)", entry.path().display()));
            }
        }
    }
    None
}

/// Runs one case; returns a description of what went wrong, if anything.
fn run_case(c: Case) -> Result<String, String> {
    let name = c.name;
    let recover = c.mode == Mode::Plain && !c.deletes;
    let recovery = vec![send(GREETING), Step::Serve(mailbox())];
    let server = FakeServer::start(vec![c.script, recovery]);
    let acc = Account {
        name: "test",
        port: server.port(),
        mode: c.mode,
        ca_file: None,
        user: "hostile",
        password: PASSWORD,
        folders: &["INBOX"],
        extra: "",
    };
    // A line bound below the default, so the 1 MB line without CRLF is
    // refused quickly.
    let setup = Setup::new(&[acc], "timeout = \"2s\"\nmax_line_size = \"64KiB\"");
    let (out, peak_kb, took) = run_bounded(&setup, &["sync"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ctx = || {
        format!(
            "exit {:?} after {took:?}\n--- stdout\n{stdout}--- stderr\n{stderr}--- sent by mailfeed\n{}\n--- script problems\n{:?}",
            out.status.code(),
            server.transcript().join("\n"),
            server.problems()
        )
    };
    if stderr.contains("panicked") || stdout.contains("panicked") {
        return Err(format!("{name}: panicked\n{}", ctx()));
    }
    if let Some(leak) = leaked(&setup, &stdout, &stderr) {
        return Err(format!("{name}: a secret appeared in {leak}\n{}", ctx()));
    }
    if peak_kb > MAX_RSS_KB {
        return Err(format!("{name}: peak RSS {peak_kb} KiB\n{}", ctx()));
    }
    let want_stored: &[u32] = match c.expect {
        Stores(uids) => {
            if !out.status.success() {
                return Err(format!("{name}: expected success\n{}", ctx()));
            }
            uids
        }
        Fails { any, stored } => {
            if out.status.code() != Some(1) {
                return Err(format!("{name}: expected exit 1\n{}", ctx()));
            }
            let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAILED")).collect();
            if failed.len() != 1 {
                return Err(format!("{name}: expected one FAILED line\n{}", ctx()));
            }
            let line = failed[0].to_ascii_lowercase();
            if !any.iter().any(|a| line.contains(&a.to_ascii_lowercase())) {
                return Err(format!(
                    "{name}: FAILED line should say one of {any:?}\n{}",
                    ctx()
                ));
            }
            stored
        }
    };
    for shown in c.shows {
        if !stdout.contains(shown) && !stderr.contains(shown) {
            return Err(format!(
                "{name}: mailfeed did not show `{shown}`\n{}",
                ctx()
            ));
        }
    }
    for secret in c.never_sent {
        if server.transcript().iter().any(|l| l.contains(secret)) {
            return Err(format!("{name}: mailfeed sent `{secret}`\n{}", ctx()));
        }
    }
    if setup.db.exists() {
        let db = setup.db();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| format!("{name}: integrity_check: {e}"))?;
        if ok != "ok" {
            return Err(format!("{name}: integrity_check says {ok}"));
        }
        let got = stored(&setup);
        let uids: Vec<u32> = got.iter().map(|(_, u, _)| *u).collect();
        if uids != want_stored {
            return Err(format!(
                "{name}: stored {uids:?}, expected {want_stored:?}\n{}",
                ctx()
            ));
        }
        if let Some((v, u, _)) = got
            .iter()
            .find(|(v, u, raw)| *v != UIDVALIDITY || *raw != body(*u))
        {
            return Err(format!(
                "{name}: UID {u} (UIDVALIDITY {v}) stored wrong\n{}",
                ctx()
            ));
        }
    } else if !want_stored.is_empty() {
        return Err(format!("{name}: no database, expected {want_stored:?}"));
    }
    if !recover {
        return Ok(format!("{name}: ok in {took:?}, {peak_kb} KiB"));
    }
    // Recovery on the same database, from a well-behaved server.
    let (out2, _, _) = run_bounded(&setup, &["sync"]);
    if !out2.status.success() {
        return Err(format!(
            "{name}: recovery run failed\n{}\n{}",
            String::from_utf8_lossy(&out2.stdout),
            String::from_utf8_lossy(&out2.stderr)
        ));
    }
    let got = stored(&setup);
    let expected: Vec<(u32, u32, Vec<u8>)> = (1..=3).map(|u| (UIDVALIDITY, u, body(u))).collect();
    if got != expected {
        return Err(format!(
            "{name}: after recovery the database holds {:?}",
            got.iter().map(|(v, u, _)| (v, u)).collect::<Vec<_>>()
        ));
    }
    let db = setup.db();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let events: i64 = db
        .query_row("SELECT count(*) FROM events WHERE kind = 'new'", [], |r| {
            r.get(0)
        })
        .map_err(|e| e.to_string())?;
    if (rows, events) != (3, 3) {
        return Err(format!(
            "{name}: {rows} rows and {events} new events after recovery"
        ));
    }
    Ok(format!("{name}: ok in {took:?}, {peak_kb} KiB, recovered"))
}

#[test]
fn hostile_servers_table() {
    let all = cases();
    assert!(all.len() >= 30, "the table has {} rows", all.len());
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names must be unique");
    // Most cases wait on a 2 s timeout: run them a few at a time.
    let queue = std::sync::Mutex::new(all);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some(c) = next else { break };
                    let r = run_case(c);
                    results.lock().unwrap().push(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    for r in results.iter().flatten() {
        eprintln!("{r}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n\n{}",
        failures.len(),
        results.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

// ---- byte level: what the reader allocates for what a server claims --------

/// Counts the bytes allocated by the current thread (live and peak), so a
/// test can show that a claim allocates nothing.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| {
            let n = l.get() + layout.size();
            l.set(n);
            let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(layout.size())));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|l| {
            let n = (l.get() + new_size).saturating_sub(layout.size());
            l.set(n);
            let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
        });
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated on this thread by `f` beyond what was live before.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

fn reader(max_literal: u64) -> mailfeed::imap::ResponseReader {
    mailfeed::imap::ResponseReader::new(mailfeed::imap::Limits {
        max_literal,
        ..Default::default()
    })
}

#[test]
fn literal_claim_of_2_pow_40_allocates_nothing() {
    let mut r = reader(100 * 1000 * 1000);
    let peak = peak_of(|| {
        let e = r
            .feed(b"* 1 FETCH (UID 1 BODY[] {1099511627776}\r\n")
            .expect_err("refused");
        assert!(e.to_string().contains("beyond the protocol"), "{e}");
    });
    assert!(peak < 4096, "a 2^40 claim allocated {peak} bytes");
}

#[test]
fn literal_claim_of_4_gib_allocates_only_what_arrives() {
    // The largest legal claim: the reader must not reserve it, and beyond
    // max_literal it keeps only the head.
    let mut r = reader(1024 * 1024);
    let peak = peak_of(|| {
        r.feed(b"* 1 FETCH (UID 1 BODY[] {4294967295}\r\n")
            .expect("legal");
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            r.feed(&chunk).expect("data"); // 4 MiB arrive
        }
        assert_eq!(r.literal_remaining(), Some(4294967295 - 4 * 1024 * 1024));
    });
    assert!(
        peak < 512 * 1024,
        "holding a 4 GiB claim after 4 MiB allocated {peak} bytes"
    );
}

#[test]
fn line_without_crlf_is_bounded() {
    let mut r = mailfeed::imap::ResponseReader::new(mailfeed::imap::Limits {
        max_line: 128 * 1024,
        ..Default::default()
    });
    let peak = peak_of(|| {
        let chunk = vec![b'x'; 4096];
        let mut failed = None;
        for _ in 0..256 {
            if let Err(e) = r.feed(&chunk) {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("a 1 MiB line must be refused");
        assert!(e.to_string().contains("longer than 131072 bytes"), "{e}");
        assert!(e.to_string().contains("sync.max_line_size"), "{e}");
    });
    assert!(peak < 512 * 1024, "a long line allocated {peak} bytes");
}

/// Legal long lines within the default bound are read, holding a small
/// multiple of the line: a 1 MB CAPABILITY and a QRESYNC `VANISHED
/// (EARLIER)` of 200,000 scattered UIDs (1.3 MB).
#[test]
fn long_legal_lines_are_read_within_a_multiple_of_their_size() {
    use mailfeed::imap::{Response, Untagged};
    let mut caps = b"* CAPABILITY IMAP4rev1".to_vec();
    let mut n = 0;
    while caps.len() < 1024 * 1024 {
        caps.extend_from_slice(format!(" X-LONG-CAPABILITY-{n}").as_bytes());
        n += 1;
    }
    caps.extend_from_slice(b"\r\n");
    let mut vanished = b"* VANISHED (EARLIER) 1".to_vec();
    for uid in (3..400_000).step_by(2) {
        vanished.extend_from_slice(format!(",{uid}").as_bytes());
    }
    vanished.extend_from_slice(b"\r\n");
    for (line, what) in [(&caps, "CAPABILITY"), (&vanished, "VANISHED")] {
        let mut r = reader(100 * 1000 * 1000);
        let mut got = None;
        let peak = peak_of(|| {
            for chunk in line.chunks(64 * 1024) {
                r.feed(chunk).expect(what);
            }
            got = r.pop().map(|x| x.response);
        });
        match got {
            Some(Response::Untagged(Untagged::Capability(c))) => {
                assert_eq!(c.len(), n + 1, "{what}");
            }
            Some(Response::Untagged(Untagged::Vanished { earlier, uids })) => {
                assert!(earlier);
                assert_eq!(uids.len(), 200_000, "{what}");
                assert!(uids.contains(399_999) && !uids.contains(2));
            }
            other => panic!("{what}: {other:?}"),
        }
        eprintln!(
            "{what}: {} bytes read, peak {peak} bytes allocated",
            line.len()
        );
        assert!(
            peak < 6 * line.len(),
            "{what} of {} bytes allocated {peak} bytes",
            line.len()
        );
    }
}

/// `check` prints the conversation: a server that echoes the credentials
/// in an ALERT, an untagged BAD and a literal shows them masked there too.
#[test]
fn check_transcript_masks_echoed_credentials() {
    let script = vec![
        send(GREETING),
        expect("AUTHENTICATE PLAIN"),
        send(
            "* OK [ALERT] you sent $A\r\n* BAD $A hostile-pw-Zq9\r\n* LIST () \"/\" {$#}\r\n$A\r\n$T OK [CAPABILITY IMAP4rev1] logged in\r\n",
        ),
        Step::Serve(mailbox()),
    ];
    let server = FakeServer::start(vec![script]);
    let acc = Account {
        name: "test",
        port: server.port(),
        mode: Mode::Plain,
        ca_file: None,
        user: "hostile",
        password: PASSWORD,
        folders: &["INBOX"],
        extra: "",
    };
    let setup = Setup::new(&[acc], "timeout = \"2s\"");
    let (out, _, _) = run_bounded(&setup, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(leaked(&setup, &stdout, &stderr), None, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("S: * OK [ALERT] you sent ***"),
        "the echo is shown, masked:\n{stdout}"
    );
}
