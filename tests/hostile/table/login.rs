//! Rows before and during login: greetings, login answers, STARTTLS stripping.

use crate::script::*;
use crate::support::fake_server::{Step, expect, send, send_bytes};
use crate::support::mailfeed::Mode;

pub(crate) fn rows() -> Vec<Case> {
    vec![
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
    ]
}
