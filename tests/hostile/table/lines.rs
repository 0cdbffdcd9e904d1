//! Rows for response lines: unterminated, unbalanced, too deep, too long.

use crate::script::*;
use crate::support::fake_server::{Step, expect, send, send_bytes};

pub(crate) fn rows() -> Vec<Case> {
    let line_1mb = {
        let mut v = b"* 1 FETCH (UID 1 FLAGS (".to_vec();
        v.resize(1024 * 1024, b'x');
        v
    };
    vec![
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
    ]
}
