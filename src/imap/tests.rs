//! Byte-script tests of the protocol core: every script is fed whole and
//! split at every byte boundary, and must give the same responses.

use super::*;

fn limits() -> Limits {
    Limits {
        max_line: 1024,
        max_literal: 64,
        truncated_keep: 8,
    }
}

fn feed_all(chunks: &[&[u8]]) -> Result<Vec<Response>, ProtocolError> {
    let mut r = ResponseReader::new(limits());
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c)?;
        while let Some(rec) = r.pop() {
            out.push(rec.response);
        }
    }
    Ok(out)
}

/// Parses `script` whole, then split in two at every byte and byte by byte;
/// all must agree.
fn parse_split(script: &[u8]) -> Result<Vec<Response>, ProtocolError> {
    let whole = feed_all(&[script]);
    for i in 0..=script.len() {
        let (a, b) = script.split_at(i);
        assert_eq!(feed_all(&[a, b]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    assert_eq!(feed_all(&bytes), whole, "byte by byte");
    whole
}

fn one(script: &[u8]) -> Response {
    let mut v = parse_split(script).expect("parses");
    assert_eq!(v.len(), 1, "exactly one response in {script:?}");
    v.remove(0)
}

#[test]
fn greeting_with_capability_code() {
    let r = one(b"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] Dovecot ready.\r\n");
    match r {
        Response::Untagged(Untagged::Status(UntaggedStatus::Ok, t)) => {
            assert_eq!(
                t.code,
                Some(Code::Capability(vec![
                    "IMAP4rev1".into(),
                    "IDLE".into(),
                    "LITERAL+".into()
                ]))
            );
            assert_eq!(t.text, "Dovecot ready.");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn preauth_and_bye() {
    assert!(matches!(
        one(b"* PREAUTH welcome\r\n"),
        Response::Untagged(Untagged::Status(UntaggedStatus::Preauth, _))
    ));
    assert!(matches!(
        one(b"* BYE [UNAVAILABLE] later\r\n"),
        Response::Untagged(Untagged::Status(UntaggedStatus::Bye, StatusText { code: Some(Code::Other(ref n, None)), .. })) if n == "UNAVAILABLE"
    ));
}

#[test]
fn tagged_replies_and_codes() {
    let r = one(b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    assert_eq!(
        r,
        Response::Tagged {
            tag: "a2".into(),
            status: Status::No,
            text: StatusText {
                code: Some(Code::Other("AUTHENTICATIONFAILED".into(), None)),
                text: "Authentication failed.".into()
            }
        }
    );
    let r = one(b"a3 OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).\r\n");
    assert!(matches!(
        r,
        Response::Tagged {
            status: Status::Ok,
            text: StatusText {
                code: Some(Code::ReadOnly),
                ..
            },
            ..
        }
    ));
    let r = one(b"a4 bad what?\r\n");
    assert!(matches!(
        r,
        Response::Tagged {
            status: Status::Bad,
            ..
        }
    ));
}

#[test]
fn select_data() {
    let script = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n\
* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n\
* 1843 EXISTS\r\n* 0 RECENT\r\n\
* OK [UIDVALIDITY 1700000000] UIDs valid\r\n\
* OK [UIDNEXT 1844] Predicted next UID\r\n\
* OK [HIGHESTMODSEQ 9000000000] Highest\r\n";
    let v = parse_split(script).expect("parses");
    assert_eq!(v.len(), 7);
    assert_eq!(
        v[0],
        Response::Untagged(Untagged::Flags(vec![
            "\\Answered".into(),
            "\\Flagged".into(),
            "\\Deleted".into(),
            "\\Seen".into(),
            "\\Draft".into(),
            "$Forwarded".into()
        ]))
    );
    assert_eq!(v[2], Response::Untagged(Untagged::Exists(1843)));
    assert_eq!(v[4].uidvalidity_code(), Some(UidValidity(1700000000)));
    assert!(matches!(
        &v[5],
        Response::Untagged(Untagged::Status(
            _,
            StatusText {
                code: Some(Code::UidNext(1844)),
                ..
            }
        ))
    ));
    assert!(matches!(
        &v[6],
        Response::Untagged(Untagged::Status(
            _,
            StatusText {
                code: Some(Code::HighestModSeq(9000000000)),
                ..
            }
        ))
    ));
}

#[test]
fn fetch_with_literal_body_any_item_order() {
    let script = b"* 12 FETCH (FLAGS (\\Seen) BODY[] {12}\r\nHello\r\nWorld UID 42 RFC822.SIZE 12 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" MODSEQ (7))\r\n";
    match one(script) {
        Response::Untagged(Untagged::Fetch(seq, d)) => {
            assert_eq!(seq, SeqNum(12));
            assert_eq!(d.uid, Some(Uid(42)));
            assert_eq!(d.flags, Some(vec!["\\Seen".into()]));
            assert_eq!(d.rfc822_size, Some(12));
            assert_eq!(d.modseq, Some(ModSeq(7)));
            assert_eq!(
                d.internal_date.as_deref(),
                Some("17-Jul-1996 02:44:25 -0700")
            );
            assert_eq!(d.body, Some(Body::Full(b"Hello\r\nWorld".to_vec())));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fetch_body_quoted_nil_and_literal_plus() {
    let r = one(b"* 1 FETCH (UID 1 BODY[] \"a \\\"b\\\"\")\r\n");
    assert!(
        matches!(r, Response::Untagged(Untagged::Fetch(_, ref d)) if d.body == Some(Body::Full(b"a \"b\"".to_vec())))
    );
    let r = one(b"* 1 FETCH (UID 1 BODY[] NIL)\r\n");
    assert!(
        matches!(r, Response::Untagged(Untagged::Fetch(_, ref d)) if d.body == Some(Body::Nil))
    );
    let r = one(b"* 1 FETCH (UID 1 BODY[] {3+}\r\nabc)\r\n");
    assert!(
        matches!(r, Response::Untagged(Untagged::Fetch(_, ref d)) if d.body == Some(Body::Full(b"abc".to_vec())))
    );
    let r = one(b"* 1 FETCH (UID 1 BODY[] {0}\r\n)\r\n");
    assert!(
        matches!(r, Response::Untagged(Untagged::Fetch(_, ref d)) if d.body == Some(Body::Full(Vec::new())))
    );
}

#[test]
fn unknown_fetch_items_are_skipped() {
    let script = b"* 3 FETCH (X-GM-MSGID 1278455344230334865 X-GM-LABELS (\\Inbox \"a b\") BODY[HEADER.FIELDS (FROM TO)] {4}\r\nab\r\n BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0) UID 9 X-WEIRD {2}\r\nzz)\r\n";
    match one(script) {
        Response::Untagged(Untagged::Fetch(_, d)) => {
            assert_eq!(d.uid, Some(Uid(9)));
            assert_eq!(d.body, None);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Google's X-GM-EXT-1 FETCH items, as its IMAP extension page shows
/// them: 64-bit ids, labels as astrings (quoted, literal, atom) or system
/// labels written like flags, the empty list, any item order.
#[test]
fn gmail_ids_and_labels() {
    let script = b"* 4 FETCH (X-GM-THRID 1266894439832287888 X-GM-MSGID 1278455344230334865 UID 120 X-GM-LABELS (\\Inbox \\Important \"Muy Importante\" foo {4}\r\n[a]b) FLAGS ())\r\n";
    match one(script) {
        Response::Untagged(Untagged::Fetch(seq, d)) => {
            assert_eq!(seq, SeqNum(4));
            assert_eq!(d.uid, Some(Uid(120)));
            assert_eq!(d.gm_msgid, Some(1_278_455_344_230_334_865));
            assert_eq!(d.gm_thrid, Some(1_266_894_439_832_287_888));
            assert_eq!(
                d.gm_labels,
                Some(vec![
                    "\\Inbox".to_owned(),
                    "\\Important".to_owned(),
                    "Muy Importante".to_owned(),
                    "foo".to_owned(),
                    "[a]b".to_owned(),
                ])
            );
            assert_eq!(d.flags, Some(vec![]));
        }
        other => panic!("unexpected {other:?}"),
    }
    let r = one(b"* 1 FETCH (X-GM-LABELS () UID 3 X-GM-MSGID 18446744073709551615)\r\n");
    match r {
        Response::Untagged(Untagged::Fetch(_, d)) => {
            assert_eq!(d.gm_labels, Some(vec![]));
            assert_eq!(d.gm_msgid, Some(u64::MAX));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn malformed_gmail_items_are_errors_not_panics() {
    for bad in [
        &b"* 1 FETCH (X-GM-MSGID 18446744073709551616)\r\n"[..],
        b"* 1 FETCH (X-GM-MSGID abc)\r\n",
        b"* 1 FETCH (X-GM-LABELS (\\Inbox\r\n",
        b"* 1 FETCH (X-GM-LABELS \\Inbox)\r\n",
        b"* 1 FETCH (X-GM-LABELS (\\ foo))\r\n",
    ] {
        assert!(
            parse_split(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn oversized_literal_is_truncated_not_buffered() {
    let mut script = b"* 1 FETCH (UID 5 BODY[] {100}\r\n".to_vec();
    script.extend(std::iter::repeat_n(b'x', 100));
    script.extend_from_slice(b")\r\n");
    match one(&script) {
        Response::Untagged(Untagged::Fetch(_, d)) => assert_eq!(
            d.body,
            Some(Body::Truncated {
                prefix: b"xxxxxxxx".to_vec(),
                declared: 100
            })
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn many_oversized_literals_keep_no_more_than_the_budget() {
    // 40 literals of 100 bytes, each over max_literal (64): each keeps a head
    // of at most 8 bytes, and all of them together at most 64.
    let mut r = ResponseReader::new(limits());
    r.feed(b"* 1 FETCH (UID 5").expect("start");
    for i in 0..40 {
        r.feed(format!(" X-PART{i} {{100}}\r\n").as_bytes())
            .expect("marker");
        r.feed(&[b'y'; 100]).expect("literal");
        assert!(r.kept() <= 64, "kept {} after {} literals", r.kept(), i + 1);
    }
    r.feed(b")\r\n").expect("end");
    assert!(r.pop().is_some());
    assert_eq!(r.kept(), 0);
}

#[test]
fn huge_literal_claims_allocate_nothing() {
    let mut r = ResponseReader::new(limits());
    // 2^40 is beyond the protocol's 32-bit literal sizes.
    let e = r
        .feed(b"* 1 FETCH (BODY[] {1099511627776}\r\n")
        .unwrap_err();
    assert!(matches!(e, ProtocolError::LiteralTooLarge { .. }));
    // Within 32 bits but far beyond the limit: accepted, kept as a prefix.
    let mut r = ResponseReader::new(limits());
    r.feed(b"* 1 FETCH (BODY[] {4294967295}\r\nabc")
        .expect("accepted");
    assert_eq!(r.literal_remaining(), Some(4294967292));
}

#[test]
fn line_without_crlf_is_bounded() {
    let mut r = ResponseReader::new(limits());
    let e = r.feed(&[b'a'; 2000]).unwrap_err();
    assert_eq!(
        e,
        ProtocolError::LineTooLong {
            limit: 1024,
            kind: "tagged".into()
        }
    );
    // The reader stays failed.
    assert!(r.feed(b"\r\n").is_err());
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    for script in [
        &b"* 1 FETCH (UID 1 BODY[] \"unterminated)\r\n"[..],
        b"* 1 FETCH (UID 1 FLAGS (\\Seen)\r\n",
        b"* 1 FETCH (UID -1)\r\n",
        b"* 1 FETCH (UID 0)\r\n",
        b"* 1 FETCH (UID 99999999999)\r\n",
        b"* 1 FETCH (BODY[] {-5}\r\n",
        b"* 1 FETCH (BODY[] {abc}\r\n",
        b"* 1 FETCH UID 1\r\n",
        b"* 1 FETCH (UID 1 FLAGS (\\Seen))) RFC822.SIZE 5)\r\n",
        b"* 1 FETCH (UID 1 BODY[] {3}\r\nabc) X)\r\n",
        b"a1 MAYBE\r\n",
        b"\r\n",
        b"* OK [UIDVALIDITY abc] x\r\n",
        b"* OK [UIDVALIDITY 1 x\r\n",
        b"* LIST (\\HasNoChildren \"/\" INBOX\r\n",
        b"* VANISHED (EARLIER) 1:*\r\n",
    ] {
        let r = parse_split(script);
        assert!(
            r.is_err(),
            "{:?} should fail, got {r:?}",
            String::from_utf8_lossy(script)
        );
    }
}

#[test]
fn deep_nesting_is_refused() {
    let mut s = b"* 1 FETCH (X ".to_vec();
    s.extend(std::iter::repeat_n(b'(', 500));
    s.extend(std::iter::repeat_n(b')', 501));
    s.extend_from_slice(b"\r\n");
    assert!(feed_all(&[&s]).is_err());
}

#[test]
fn unknown_untagged_is_skipped() {
    assert_eq!(
        one(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"),
        Response::Untagged(Untagged::Other("NAMESPACE".into()))
    );
    assert_eq!(
        one(b"* 5 WEIRD stuff\r\n"),
        Response::Untagged(Untagged::Other("WEIRD".into()))
    );
}

#[test]
fn list_status_search_esearch_vanished_enabled() {
    let v = parse_split(
        b"* LIST (\\HasNoChildren) \"/\" \"Sent Items\"\r\n\
* LIST (\\Noselect) NIL {5}\r\nA/B c\r\n\
* STATUS INBOX (MESSAGES 3 UIDNEXT 44 UIDVALIDITY 7 HIGHESTMODSEQ 12)\r\n\
* SEARCH 2 3 5\r\n\
* ESEARCH (TAG \"a5\") UID ALL 1:3,7 COUNT 4\r\n\
* VANISHED (EARLIER) 3,5:6\r\n\
* ENABLED QRESYNC\r\n",
    )
    .expect("parses");
    assert_eq!(
        v[0],
        Response::Untagged(Untagged::List(ListEntry {
            attributes: vec!["\\HasNoChildren".into()],
            delimiter: Some('/'),
            name: "Sent Items".into()
        }))
    );
    match &v[1] {
        Response::Untagged(Untagged::List(e)) => {
            assert_eq!(e.name, "A/B c");
            assert_eq!(e.delimiter, None);
            assert!(!e.is_selectable());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        v[2],
        Response::Untagged(Untagged::MailboxStatus {
            mailbox: "INBOX".into(),
            items: vec![
                ("MESSAGES".into(), 3),
                ("UIDNEXT".into(), 44),
                ("UIDVALIDITY".into(), 7),
                ("HIGHESTMODSEQ".into(), 12)
            ]
        })
    );
    assert_eq!(v[3], Response::Untagged(Untagged::Search(vec![2, 3, 5])));
    match &v[4] {
        Response::Untagged(Untagged::ESearch(e)) => {
            assert_eq!(e.tag.as_deref(), Some("a5"));
            assert!(e.uid);
            assert_eq!(
                e.all.as_ref().map(|s| s.to_string()).as_deref(),
                Some("1:3,7")
            );
            assert_eq!(e.count, Some(4));
        }
        other => panic!("unexpected {other:?}"),
    }
    match &v[5] {
        Response::Untagged(Untagged::Vanished { earlier, uids }) => {
            assert!(*earlier);
            assert_eq!(uids.to_string(), "3,5:6");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        v[6],
        Response::Untagged(Untagged::Enabled(vec!["QRESYNC".into()]))
    );
}

#[test]
fn continuation_and_bare_lf() {
    let v = parse_split(b"+ idling\n+\r\n").expect("parses");
    assert_eq!(
        v,
        vec![
            Response::Continuation("idling".into()),
            Response::Continuation(String::new())
        ]
    );
}

#[test]
fn brace_in_text_that_is_not_a_literal() {
    assert!(matches!(
        one(b"* OK hello {world}\r\n"),
        Response::Untagged(Untagged::Status(UntaggedStatus::Ok, _))
    ));
}

#[test]
fn many_literals_in_one_response_share_one_budget() {
    // Two literals of 40 bytes each against a 64-byte budget: the second is
    // truncated, so the response holds at most budget + keep bytes.
    let mut s = b"* 1 FETCH (X {40}\r\n".to_vec();
    s.extend(std::iter::repeat_n(b'a', 40));
    s.extend_from_slice(b" BODY[] {40}\r\n");
    s.extend(std::iter::repeat_n(b'b', 40));
    s.extend_from_slice(b")\r\n");
    match one(&s) {
        Response::Untagged(Untagged::Fetch(_, d)) => {
            assert!(matches!(d.body, Some(Body::Truncated { declared: 40, .. })))
        }
        other => panic!("unexpected {other:?}"),
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any byte stream, split anywhere, yields the same responses (or the
        /// same error) and never panics.
        #[test]
        fn any_split_same_result(data in proptest::collection::vec(any::<u8>(), 0..400),
                                 cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let whole = feed_all(&[&data]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&data[last..p]);
                last = p;
            }
            chunks.push(&data[last..]);
            prop_assert_eq!(feed_all(&chunks), whole);
        }

        /// Streams made of plausible IMAP pieces, to reach deep states.
        #[test]
        fn imapish_streams_never_panic(parts in proptest::collection::vec(prop_oneof![
            Just(&b"* "[..]), Just(&b"a1 "[..]), Just(&b"OK "[..]), Just(&b"FETCH "[..]), Just(&b"("[..]), Just(&b")"[..]),
            Just(&b"UID "[..]), Just(&b"1 "[..]), Just(&b"BODY[] "[..]), Just(&b"{3}\r\n"[..]), Just(&b"{0}\r\n"[..]),
            Just(&b"\"q\" "[..]), Just(&b"NIL "[..]), Just(&b"\r\n"[..]), Just(&b"[UIDVALIDITY 3] "[..]), Just(&b"\\Seen "[..]),
            Just(&b"FLAGS "[..]), Just(&b"LIST "[..]), Just(&b"ESEARCH "[..]), Just(&b"VANISHED "[..]), Just(&b"{99999999}\r\n"[..]),
        ], 0..60)) {
            let data: Vec<u8> = parts.concat();
            let _ = feed_all(&[&data]);
        }
    }
}
