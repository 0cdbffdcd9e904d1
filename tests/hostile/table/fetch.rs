//! Rows for the FETCH conversation, and servers that echo the credentials they were sent.

use crate::script::*;
use crate::support::fake_server::{Step, expect, send};

pub(crate) fn rows() -> Vec<Case> {
    vec![
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
    ]
}
