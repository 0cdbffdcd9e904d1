//! Parsing tests: real-world and hostile messages, one behaviour each.

use sha2::{Digest, Sha256};

use super::attachments::hex;
use super::*;
use crate::testing::base64_lines;

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

fn names(p: &ParsedMessage, role: AddressRole) -> Vec<(Option<&str>, Option<&str>)> {
    p.addresses_with(role)
        .map(|a| (a.name.as_deref(), a.address.as_deref()))
        .collect()
}

#[test]
fn encoded_word_subjects_in_legacy_charsets_decode_to_utf8() {
    let cases: [(&[u8], &str); 4] = [
        // "こんにちは" in ISO-2022-JP, base64.
        (b"=?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "こんにちは"),
        // "Привет" in KOI8-R, base64.
        (b"=?KOI8-R?B?8NLJ18XU?=", "Привет"),
        // "日本" in Shift_JIS, quoted-printable form.
        (b"=?Shift_JIS?Q?=93=FA=96=7B?=", "日本"),
        (b"=?ISO-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème"),
    ];
    for (encoded, expected) in cases {
        let mut raw = b"From: a@example.com\r\nSubject: ".to_vec();
        raw.extend_from_slice(encoded);
        raw.extend_from_slice(b"\r\n\r\nbody\r\n");
        let p = parse(&raw);
        assert_eq!(p.subject.as_deref(), Some(expected), "{encoded:?}");
        assert_eq!(p.parse_error, None);
    }
}

#[test]
fn quoted_printable_and_base64_bodies_are_decoded() {
    let qp = parse(&crlf(
        "From: a@example.com\nContent-Type: text/plain; charset=iso-8859-1\n\
         Content-Transfer-Encoding: quoted-printable\n\nCaf=E9 soft=\n break\n",
    ));
    assert_eq!(
        qp.text_body.as_deref().map(str::trim),
        Some("Café soft break")
    );
    let b64 = parse(&crlf(
        "From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: base64\n\nw6nDqMOq\n",
    ));
    assert_eq!(b64.text_body.as_deref(), Some("éèê"));
    assert!(qp.attachments.is_empty() && b64.attachments.is_empty());
}

#[test]
fn multipart_alternative_gives_text_and_html_and_no_attachments() {
    let p = parse(&crlf(
        "From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: alt\n\
         Content-Type: multipart/alternative; boundary=XX\n\n--XX\n\
         Content-Type: text/plain; charset=utf-8\n\nplain words\n--XX\n\
         Content-Type: text/html; charset=utf-8\n\n<p>html <b>words</b></p>\n--XX--\n",
    ));
    assert_eq!(p.text_body.as_deref().map(str::trim), Some("plain words"));
    assert_eq!(
        p.html_body.as_deref().map(str::trim),
        Some("<p>html <b>words</b></p>")
    );
    assert!(p.attachments.is_empty());
    assert_eq!(
        names(&p, AddressRole::From),
        [(Some("Alice"), Some("alice@example.com"))]
    );
}

#[test]
fn html_only_message_derives_text() {
    let p = parse(&crlf(
        "From: a@example.com\nContent-Type: text/html; charset=utf-8\n\n\
         <html><body><p>Hello&nbsp;<b>world</b></p><script>x()</script></body></html>\n",
    ));
    let text = p.text_body.expect("text derived from HTML");
    assert!(text.contains("Hello") && text.contains("world"), "{text}");
    assert!(!text.contains('<'), "{text}");
    assert!(p.html_body.is_some());
    assert!(p.attachments.is_empty());
}

#[test]
fn nested_message_is_one_attachment_with_its_raw_bytes() {
    let inner = "From: inner@example.com\r\nSubject: inner\r\n\r\ninner body\r\n";
    let raw = crlf(&format!(
        "From: outer@example.com\nSubject: outer\nContent-Type: multipart/mixed; boundary=B\n\n\
         --B\nContent-Type: text/plain\n\nouter body\n--B\nContent-Type: message/rfc822\n\n{inner}\n--B--\n"
    ));
    let p = parse(&raw);
    assert_eq!(p.subject.as_deref(), Some("outer"));
    assert_eq!(p.text_body.as_deref().map(str::trim), Some("outer body"));
    assert_eq!(p.attachments.len(), 1);
    let a = &p.attachments[0];
    assert_eq!(a.content_type, "message/rfc822");
    let nested = parse(&a.data);
    assert_eq!(nested.subject.as_deref(), Some("inner"));
    assert_eq!(a.size, a.data.len() as u64);
    assert_eq!(a.sha256, hex(&Sha256::digest(&a.data)));
}

#[test]
fn attachments_keep_name_type_id_disposition_and_decoded_bytes() {
    let p = parse(&crlf(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=B\n\n--B\n\
         Content-Type: text/plain\n\nsee attached\n--B\n\
         Content-Type: application/PDF; name=\"x.pdf\"\n\
         Content-Disposition: attachment; filename=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?=\"\n\
         Content-ID: <part1@example.com>\nContent-Transfer-Encoding: base64\n\n\
         JVBERi0xLjQK\n--B--\n",
    ));
    assert_eq!(p.attachments.len(), 1, "{p:#?}");
    let a = &p.attachments[0];
    assert_eq!(a.filename.as_deref(), Some("résumé.pdf"));
    assert_eq!(a.content_type, "application/pdf");
    assert_eq!(a.content_id.as_deref(), Some("part1@example.com"));
    assert_eq!(a.disposition.as_deref(), Some("attachment"));
    assert_eq!(a.data, b"%PDF-1.4\n");
    assert_eq!(a.sha256, hex(&Sha256::digest(b"%PDF-1.4\n")));
    assert_eq!(p.attachment_names(), "résumé.pdf");
    assert!(p.search_text().contains("résumé.pdf"));
}

#[test]
fn a_single_part_marked_attachment_is_an_attachment_not_the_body() {
    let p = parse(&crlf(
        "Subject: notes\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Disposition: attachment; filename=notes.txt\n\n\
         line one\n",
    ));
    assert_eq!(p.attachments.len(), 1, "{p:#?}");
    let a = &p.attachments[0];
    assert_eq!(a.filename.as_deref(), Some("notes.txt"));
    assert_eq!(a.content_type, "text/plain");
    assert_eq!(a.disposition.as_deref(), Some("attachment"));
    assert_eq!(a.data, b"line one\r\n");
    assert_eq!(p.text_body, None);
}

#[test]
fn a_named_text_part_after_the_first_in_an_alternative_is_an_attachment() {
    let p = parse(&crlf(
        "Subject: s\n\
         Content-Type: multipart/alternative; boundary=b\n\n\
         --b\n\
         Content-Type: text/plain\n\n\
         body text\n\
         --b\n\
         Content-Type: text/plain; name=\"extra.txt\"\n\n\
         named text\n\
         --b\n\
         Content-Type: text/html\n\n\
         <p>body html</p>\n\
         --b--\n",
    ));
    let names: Vec<_> = p
        .attachments
        .iter()
        .map(|a| a.filename.as_deref())
        .collect();
    assert_eq!(names, [Some("extra.txt")], "{p:#?}");
    assert_eq!(p.attachments[0].data, b"named text");
    assert_eq!(p.text_body.as_deref(), Some("body text"));
    assert!(p.html_body.is_some_and(|h| h.contains("body html")));
}

#[test]
fn a_named_first_part_and_inline_text_stay_body() {
    // The first part of a mixed message is its body even when named, as in a client's
    // "forward inline"; an unnamed second text part is body text too.
    let p = parse(&crlf(
        "Subject: s\n\
         Content-Type: multipart/mixed; boundary=b\n\n\
         --b\n\
         Content-Type: text/plain; name=\"body.txt\"\n\n\
         first\n\
         --b\n\
         Content-Type: text/plain\n\n\
         second\n\
         --b\n\
         Content-Type: text/plain\n\
         Content-Disposition: attachment\n\n\
         third\n\
         --b--\n",
    ));
    assert_eq!(p.text_body.as_deref(), Some("first\n\nsecond"), "{p:#?}");
    assert_eq!(p.attachments.len(), 1);
    assert_eq!(p.attachments[0].data, b"third");
}

#[test]
fn invalid_content_types_are_read_as_plain_text_body() {
    for ct in [
        "text; charset=us-ascii",
        "multipart/mixed; boundary=\"NEVER\"",
        "multipart/alternative;",
    ] {
        let p =
            parse(format!("From: a@example.com\nContent-Type: {ct}\n\nHello there\n").as_bytes());
        assert_eq!(
            p.text_body.as_deref().map(str::trim),
            Some("Hello there"),
            "{ct}"
        );
        assert!(p.attachments.is_empty(), "{ct}: {:?}", p.attachments);
    }
}

#[test]
fn a_thousand_recipients_keep_their_order() {
    let to: Vec<String> = (0..1000)
        .map(|i| format!("\"User {i}\" <user{i}@example.com>"))
        .collect();
    let raw = crlf(&format!(
        "From: a@example.com\nTo: {}\nCc: undisclosed-recipients:;\n\nhi\n",
        to.join(",\n ")
    ));
    let p = parse(&raw);
    let got: Vec<&Address> = p.addresses_with(AddressRole::To).collect();
    assert_eq!(got.len(), 1000);
    for (i, a) in got.iter().enumerate() {
        assert_eq!(a.position as usize, i);
        assert_eq!(
            a.address.as_deref(),
            Some(format!("user{i}@example.com").as_str())
        );
        assert_eq!(a.name.as_deref(), Some(format!("User {i}").as_str()));
    }
    assert_eq!(p.addresses_with(AddressRole::Cc).count(), 0);
}

#[test]
fn groups_are_flattened_and_comment_names_kept() {
    let p = parse(&crlf(
        "From: bob@example.com (Bob Smith)\nTo: Team: a@example.com, B <b@example.com>;, c@example.com\n\nx\n",
    ));
    assert_eq!(
        names(&p, AddressRole::From),
        [(Some("Bob Smith"), Some("bob@example.com"))]
    );
    let to: Vec<_> = names(&p, AddressRole::To)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        to,
        [
            Some("a@example.com"),
            Some("b@example.com"),
            Some("c@example.com")
        ]
    );
}

#[test]
fn ids_dates_and_threading_headers() {
    let p = parse(&crlf(
        "From: a@example.com\nMessage-ID: <id1@example.com>\n\
         In-Reply-To: <id0@example.com>\nReferences: <r1@example.com> <r2@example.com>\n\
         Date: Tue, 1 Jul 2003 10:52:37 +0200\n\nbody\n",
    ));
    assert_eq!(p.message_id.as_deref(), Some("id1@example.com"));
    assert_eq!(p.in_reply_to, ["id0@example.com"]);
    assert_eq!(p.references, ["r1@example.com", "r2@example.com"]);
    assert_eq!(
        p.date_raw.as_deref(),
        Some("Tue, 1 Jul 2003 10:52:37 +0200")
    );
    assert_eq!(p.sent_at.as_deref(), Some("2003-07-01T08:52:37Z"));
}

#[test]
fn missing_message_id_and_date_are_none() {
    let p = parse(b"From: a@example.com\nSubject: s\n\nbody\n");
    assert_eq!(p.message_id, None);
    assert_eq!(p.date_raw, None);
    assert_eq!(p.sent_at, None);
    assert_eq!(p.parse_error, None);
    assert_eq!(p.text_body.as_deref().map(str::trim), Some("body"));
}

#[test]
fn unparseable_date_keeps_raw_text() {
    let p = parse(b"From: a@example.com\nDate: the day after tomorrow\n\nbody\n");
    assert_eq!(p.date_raw.as_deref(), Some("the day after tomorrow"));
    assert_eq!(p.sent_at, None);
}

#[test]
fn empty_input_is_an_error_not_a_panic() {
    for raw in [&b""[..], b"\r\n", b"   \n\n"] {
        let p = parse(raw);
        assert!(p.parse_error.is_some());
        assert_eq!(p.subject, None);
    }
}

#[test]
fn garbage_bytes_never_panic() {
    // A fixed pseudo-random byte stream (xorshift), plus adversarial MIME fragments.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut bytes = Vec::with_capacity(64 * 1024);
    for _ in 0..64 * 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.push(state as u8);
    }
    for len in [1, 7, 100, 4096, bytes.len()] {
        let _ = parse(&bytes[..len]);
    }
    let fragments: [&[u8]; 6] = [
        b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--\n",
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\n--a--",
        b"Subject: =?UTF-8?B?####?= =?x?Q?=ZZ?=\n\n",
        b"From: <<<@@@>>>, \"unterminated\n\n",
        b"Content-Transfer-Encoding: base64\nContent-Type: text/plain; charset=nonsense\n\n!!!!\n",
        b"\xff\xfe\x00\x00:\x00\n\n\x00",
    ];
    for f in fragments {
        let _ = parse(f);
    }
    let mut deep = Vec::new();
    for i in 0..200 {
        deep.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes(),
        );
    }
    let _ = parse(&deep);
}

#[test]
fn undecodable_bytes_become_replacement_characters() {
    let p =
        parse(b"From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\nok \xff\xfe end\n");
    let text = p.text_body.expect("body");
    assert!(text.contains('\u{fffd}') && text.contains("ok") && text.contains("end"));
}

#[test]
fn a_non_header_line_ends_the_header_block() {
    let p = parse(b"From: a@example.com\nSubject: s\nthis is the body\nmore\n");
    assert_eq!(p.subject.as_deref(), Some("s"));
    assert_eq!(
        p.text_body.as_deref().map(str::trim),
        Some("this is the body\nmore")
    );
    assert!(p.parse_error.is_some());
    let p = parse(b"just text, no headers\nat all\n");
    assert_eq!(p.subject, None);
    assert!(p.text_body.is_some_and(|t| t.contains("just text")));
    // Continuations, an mbox From_ line and a proper empty line are left alone.
    assert_eq!(
        repair_header_block(b"From x Mon\nSubject: a\n b\n\nbody: no\n"),
        None
    );
    assert_eq!(
        repair_header_block(b"A: 1\r\nbody\r\n").map(|r| r.bytes),
        Some(b"A: 1\r\n\r\nbody\r\n".to_vec())
    );
}

#[test]
fn a_misplaced_mbox_from_line_is_skipped_not_taken_for_the_body() {
    // mutt and MH put `Replied:` headers above the envelope line of a stored message.
    let raw = b"Replied: Mon, 26 Aug 2002 16:43:19 +0100\n\
        From list-admin@example.net  Mon Aug 26 15:41:16 2002\n\
        From: Luiz <luiz@example.com.br>\nTo: list@example.net\n\
        Subject: [SAtalk] help with postfix\n\nHi Folks,\nFrom now on: no.\n";
    let p = parse(raw);
    assert_eq!(p.subject.as_deref(), Some("[SAtalk] help with postfix"));
    assert_eq!(
        names(&p, AddressRole::From),
        vec![(Some("Luiz"), Some("luiz@example.com.br"))]
    );
    assert_eq!(
        p.text_body.as_deref().map(str::trim),
        Some("Hi Folks,\nFrom now on: no.")
    );
    assert_eq!(p.parse_error, None);
    let fixed = repair_header_block(raw).expect("repaired");
    assert!(!fixed.body_without_separator);
    assert!(
        fixed
            .bytes
            .starts_with(b"Replied: Mon, 26 Aug 2002 16:43:19 +0100\nFrom: Luiz")
    );
    // A `From ` line in the body is body text.
    assert_eq!(repair_header_block(b"Subject: a\n\nFrom here on\n"), None);
}

#[test]
fn headers_only_stops_after_the_blank_line() {
    assert_eq!(
        headers_only(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
        b"A: 1\r\nB: 2\r\n\r\n"
    );
    assert_eq!(headers_only(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n\n");
    assert_eq!(headers_only(b"A: 1\nB: 2"), b"A: 1\nB: 2");
    assert_eq!(headers_only(b"\r\nbody"), b"\r\n");
    assert_eq!(headers_only(b""), b"");
    // Mixed line ends: the first empty line ends the block, whatever ends it.
    assert_eq!(headers_only(b"A: 1\r\n\nbody\r\n\r\nmore"), b"A: 1\r\n\n");
    let head = headers_only(b"Subject: s\n\nbig body");
    assert_eq!(parse(head).subject.as_deref(), Some("s"));
}

#[test]
fn utc_formatting_handles_offsets_and_leap_days() {
    let p = parse(b"Date: Mon, 31 Dec 2001 23:30:00 -0500\n\nx\n");
    assert_eq!(p.sent_at.as_deref(), Some("2002-01-01T04:30:00Z"));
}

#[test]
fn sixty_megabyte_attachment() {
    const SIZE: usize = 60 * 1024 * 1024;
    let started = std::time::Instant::now();
    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let mut raw = crlf(
        "From: a@example.com\nSubject: big\nContent-Type: multipart/mixed; boundary=B\n\n\
         --B\nContent-Type: text/plain\n\nsee attached\n--B\n\
         Content-Type: application/octet-stream; name=big.bin\n\
         Content-Transfer-Encoding: base64\n\n",
    );
    raw.extend_from_slice(&base64_lines(&payload));
    raw.extend_from_slice(b"--B--\r\n");
    let built = started.elapsed();
    let started = std::time::Instant::now();
    let p = parse(&raw);
    let parsed = started.elapsed();
    eprintln!("60 MB attachment: built in {built:?}, parsed in {parsed:?}");
    assert_eq!(p.attachments.len(), 1);
    let a = &p.attachments[0];
    assert_eq!(a.size, SIZE as u64);
    assert_eq!(a.sha256, hex(&Sha256::digest(&payload)));
    assert_eq!(a.filename.as_deref(), Some("big.bin"));
    assert_eq!(a.content_type, "application/octet-stream");
    // Too large to hold decoded beside the raw bytes: left in the raw
    // message, where it decodes to the same bytes.
    assert!(a.data.is_empty());
    let range = a.in_raw.clone().expect("left in the raw message");
    let mut decoded = Vec::new();
    let n = decode_base64(&raw[range], |piece| {
        decoded.extend_from_slice(piece);
        Ok::<_, ()>(())
    });
    assert_eq!(n, Ok(Some(SIZE as u64)));
    assert!(decoded == payload);
    assert_eq!(p.text_body.as_deref().map(str::trim), Some("see attached"));
    assert_eq!(p.parse_error, None);
    // The same message parsed whole (an attachment below the size that is
    // cut out) gives the same fields.
    let small = &payload[..4096];
    let mut whole = raw[..raw.len() - base64_lines(&payload).len() - 7].to_vec();
    whole.extend_from_slice(&base64_lines(small));
    whole.extend_from_slice(b"--B--\r\n");
    let w = parse(&whole);
    assert_eq!(w.attachments[0].data, small);
    assert_eq!(w.attachments[0].in_raw, None);
    assert_eq!(
        (w.subject, w.text_body, w.attachments[0].filename.clone()),
        (p.subject, p.text_body, a.filename.clone())
    );
}
