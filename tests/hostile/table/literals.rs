//! Rows for EXAMINE answers and for literals: sizes that lie, cuts inside them.

use crate::script::*;
use crate::support::fake_server::{Step, expect, send};

pub(crate) fn rows() -> Vec<Case> {
    let b2 = body(2);
    vec![
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
    ]
}
