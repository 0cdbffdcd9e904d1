//! Deterministic test mail. The same (n, seed) always gives the same bytes,
//! so a failing test can be rerun exactly; nothing here reads a clock or the
//! environment, except [`mail_parser_samples`] which reads the real-world
//! messages the mail-parser crate ships.

use super::rng::Rng;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

/// One generated message and what a parser should find in it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// What the message exercises, e.g. `"koi8r-subject"`.
    pub kind: &'static str,
    pub bytes: Vec<u8>,
    /// The decoded Subject a correct parser yields.
    pub subject: String,
    /// The Message-ID without angle brackets, if the message has one.
    pub message_id: Option<String>,
}

/// The kinds [`varied_samples`] cycles through, in order.
pub const KINDS: &[&str] = &[
    "ascii",
    "utf8-subject",
    "latin1-qp",
    "koi8r-base64",
    "shift-jis",
    "iso-2022-jp",
    "alternative-html",
    "attachment",
    "nested-rfc822",
    "bare-lf",
    "no-message-id",
    "no-date",
    "raw-8bit-headers",
    "long-headers",
    "large",
];

/// `n` varied messages (see [`KINDS`]), every kind present once n ≥ 15.
pub fn varied(n: usize, seed: u64) -> Vec<Vec<u8>> {
    varied_samples(n, seed)
        .into_iter()
        .map(|s| s.bytes)
        .collect()
}

/// Like [`varied`], with the kind and the expected subject of each message.
pub fn varied_samples(n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    // A few attachments shared between messages, so some are byte-identical.
    let shared: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            let n = 2_000 + rng.below(20_000);
            rng.bytes(n)
        })
        .collect();
    (0..n)
        .map(|i| generate(i, KINDS[i % KINDS.len()], seed, &mut rng, &shared))
        .collect()
}

/// `n` plain-text messages whose sizes are spread evenly at random over
/// `min..=max` bytes (min is raised to fit the headers), for bulk loads.
pub fn sized(n: usize, seed: u64, min: usize, max: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed ^ 0x5151_5151);
    (0..n)
        .map(|i| {
            let target = min + rng.below(max.saturating_sub(min) + 1);
            let head = format!(
                "From: Bulk Sender <bulk@example.org>\r\nTo: alice@example.org\r\n\
                 Subject: bulk message {i} of {n}\r\nDate: {}\r\n\
                 Message-ID: <bulk-{seed}-{i}@example.org>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=us-ascii\r\n\r\n",
                date(seed, i)
            );
            let mut msg = head.into_bytes();
            let body = target.saturating_sub(msg.len());
            msg.extend(filler(&mut rng, body));
            msg
        })
        .collect()
}

/// The real-world `.eml` test messages shipped with the mail-parser crate:
/// (path, bytes), sorted by path. Empty if the crate's sources are not in
/// the cargo cache (they are after `cargo fetch`). Note: at least one of them
/// (thirdparty/005.eml) contains NUL bytes.
pub fn mail_parser_samples() -> Vec<(PathBuf, Vec<u8>)> {
    let Some(dir) = mail_parser_resources() else {
        return Vec::new();
    };
    let mut files = Vec::new();
    collect_eml(&dir, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

/// The mail-parser crate's `resources` dir, found with `cargo metadata`.
pub fn mail_parser_resources() -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    meta["packages"].as_array()?.iter().find_map(|p| {
        (p["name"] == "mail-parser").then_some(())?;
        let manifest = PathBuf::from(p["manifest_path"].as_str()?);
        let dir = manifest.parent()?.join("resources");
        dir.is_dir().then_some(dir)
    })
}

fn collect_eml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_eml(&path, out);
        } else if path.extension().is_some_and(|e| e == "eml") {
            out.push(path);
        }
    }
}

// Subjects in legacy charsets, as (decoded text, encoded bytes).
const LATIN1: (&str, &[u8]) = ("Grüße aus Köln Ärger", b"Gr\xfc\xdfe aus K\xf6ln \xc4rger");
const KOI8R: (&str, &[u8]) = (
    "Привет, мир! Отчёт",
    b"\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2! \xef\xd4\xde\xa3\xd4",
);
const SHIFT_JIS: (&str, &[u8]) = (
    "日本語のテスト件名",
    b"\x93\xfa\x96\x7b\x8c\xea\x82\xcc\x83\x65\x83\x58\x83\x67\x8c\x8f\x96\xbc",
);
const ISO_2022_JP: (&str, &[u8]) = ("会議の議事録について", b"\x1b$B2q5D$N5D;vO?$K$D$$$F\x1b(B");
const UTF8_SUBJECT: &str = "Ünïcödé ✓ 测试 emoji 🎉";

fn generate(i: usize, kind: &'static str, seed: u64, rng: &mut Rng, shared: &[Vec<u8>]) -> Sample {
    let id = format!("{seed}.{i}@corpus.example");
    let from = format!("Sender {} <sender{}@example.org>", i % 7, i % 7);
    // Most bodies are small; the size spread comes from filler.
    let pad = 300 + rng.below(if i.is_multiple_of(5) { 30_000 } else { 3_000 });
    let mut subject = format!("{kind} message {i}");
    let mut headers: Vec<String> = vec![
        format!("From: {from}"),
        "To: Alice <alice@example.org>".to_string(),
        format!("Date: {}", date(seed, i)),
        format!("Message-ID: <{id}>"),
        "MIME-Version: 1.0".to_string(),
    ];
    let mut raw_subject: Option<Vec<u8>> = None;
    let body: Vec<u8>;
    let mut eol_lf = false;
    match kind {
        "ascii" => {
            headers.push("Content-Type: text/plain; charset=us-ascii".into());
            body = text_body(rng, pad);
        }
        "utf8-subject" => {
            subject = format!("{UTF8_SUBJECT} {i}");
            raw_subject = Some(encoded_word_b("UTF-8", subject.as_bytes()).into_bytes());
            headers.push("Content-Type: text/plain; charset=utf-8".into());
            headers.push("Content-Transfer-Encoding: 8bit".into());
            let mut b = format!("Grüße, {UTF8_SUBJECT}\r\n\r\n").into_bytes();
            b.extend(text_body(rng, pad));
            body = b;
        }
        "latin1-qp" => {
            subject = LATIN1.0.to_string();
            raw_subject = Some(encoded_word_q("ISO-8859-1", LATIN1.1).into_bytes());
            headers.push("Content-Type: text/plain; charset=iso-8859-1".into());
            headers.push("Content-Transfer-Encoding: quoted-printable".into());
            let mut plain = LATIN1.1.to_vec();
            plain.extend_from_slice(b"\r\n");
            plain.extend(text_body(rng, pad));
            body = quoted_printable(&plain);
        }
        "koi8r-base64" => {
            subject = KOI8R.0.to_string();
            raw_subject = Some(encoded_word_b("KOI8-R", KOI8R.1).into_bytes());
            headers.push("Content-Type: text/plain; charset=koi8-r".into());
            headers.push("Content-Transfer-Encoding: base64".into());
            let mut plain = KOI8R.1.repeat(1 + pad / 40);
            plain.extend_from_slice(b"\r\n");
            body = base64_lines(&plain);
        }
        "shift-jis" => {
            subject = SHIFT_JIS.0.to_string();
            raw_subject = Some(encoded_word_b("Shift_JIS", SHIFT_JIS.1).into_bytes());
            headers.push("Content-Type: text/plain; charset=Shift_JIS".into());
            headers.push("Content-Transfer-Encoding: base64".into());
            body = base64_lines(&SHIFT_JIS.1.repeat(1 + pad / 40));
        }
        "iso-2022-jp" => {
            subject = ISO_2022_JP.0.to_string();
            raw_subject = Some(encoded_word_b("ISO-2022-JP", ISO_2022_JP.1).into_bytes());
            headers.push("Content-Type: text/plain; charset=ISO-2022-JP".into());
            headers.push("Content-Transfer-Encoding: 7bit".into());
            let mut b = Vec::new();
            for _ in 0..1 + pad / 60 {
                b.extend_from_slice(ISO_2022_JP.1);
                b.extend_from_slice(b"\r\n");
            }
            body = b;
        }
        "alternative-html" => {
            let boundary = format!("alt-{seed}-{i}");
            headers.push(format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\""
            ));
            let text = text_body(rng, pad);
            let html = format!(
                "<html><body><p>Hello <b>Alice</b> &amp; caf\u{e9}</p><pre>{}</pre></body></html>\r\n",
                String::from_utf8_lossy(&text)
            );
            let mut b = b"This is a multi-part message in MIME format.\r\n".to_vec();
            b.extend(
                format!("--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
                    .as_bytes(),
            );
            b.extend(&text);
            b.extend(
                format!(
                    "\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                )
                .as_bytes(),
            );
            b.extend(quoted_printable(html.as_bytes()));
            b.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
            body = b;
        }
        "attachment" => {
            let boundary = format!("mixed-{seed}-{i}");
            headers.push(format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\""
            ));
            // Every other attachment is one of the shared blobs.
            let blob = if i.is_multiple_of(2) {
                shared[(i / 2) % shared.len()].clone()
            } else {
                {
                    let n = 1_000 + rng.below(40_000);
                    rng.bytes(n)
                }
            };
            let mut b =
                format!("--{boundary}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n")
                    .into_bytes();
            b.extend(
                format!(
                    "--{boundary}\r\nContent-Type: application/octet-stream; name=\"blob{i}.bin\"\r\n\
                     Content-Disposition: attachment; filename=\"blob{i}.bin\"\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n"
                )
                .as_bytes(),
            );
            b.extend(base64_lines(&blob));
            b.extend(
                format!(
                    "--{boundary}\r\nContent-Type: text/plain; name=\"notes.txt\"\r\n\
                     Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n\
                     the same small text attachment in every message\r\n--{boundary}--\r\n"
                )
                .as_bytes(),
            );
            body = b;
        }
        "nested-rfc822" => {
            let boundary = format!("fwd-{seed}-{i}");
            let inner_boundary = format!("inner-{seed}-{i}");
            headers.push(format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\""
            ));
            subject = format!("Fwd: {kind} message {i}");
            let mut b = format!(
                "--{boundary}\r\nContent-Type: text/plain\r\n\r\nForwarding this.\r\n\
                 --{boundary}\r\nContent-Type: message/rfc822\r\n\r\n\
                 From: Original <orig@example.net>\r\nTo: bob@example.net\r\n\
                 Subject: {}\r\nDate: {}\r\nMessage-ID: <inner.{id}>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/alternative; boundary=\"{inner_boundary}\"\r\n\r\n\
                 --{inner_boundary}\r\nContent-Type: text/plain\r\n\r\n",
                encoded_word_b("UTF-8", "inner ✓".as_bytes()),
                date(seed, i + 1000)
            )
            .into_bytes();
            b.extend(text_body(rng, pad));
            b.extend(
                format!(
                    "\r\n--{inner_boundary}\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n\
                     --{inner_boundary}--\r\n\r\n--{boundary}--\r\n"
                )
                .as_bytes(),
            );
            body = b;
        }
        "bare-lf" => {
            eol_lf = true;
            headers.push("Content-Type: text/plain; charset=us-ascii".into());
            body = text_body(rng, pad);
        }
        "no-message-id" => {
            headers.retain(|h| !h.starts_with("Message-ID:"));
            headers.push("Content-Type: text/plain".into());
            body = text_body(rng, pad);
        }
        "no-date" => {
            headers.retain(|h| !h.starts_with("Date:"));
            headers.push("Content-Type: text/plain".into());
            body = text_body(rng, pad);
        }
        "raw-8bit-headers" => {
            subject = format!("Raw 8-bit: Ärger über Café {i}");
            raw_subject = Some(subject.clone().into_bytes());
            headers[0] = "From: Jürgen Müller <juergen@example.de>".into();
            headers.push("Content-Type: text/plain; charset=utf-8".into());
            headers.push("Content-Transfer-Encoding: 8bit".into());
            body = format!("Straße, Größe, naïve – {i}\r\n").into_bytes();
        }
        "long-headers" => {
            let refs: Vec<String> = (0..120).map(|k| format!("<ref{k}.{id}>")).collect();
            headers.push(format!("References: {}", refs.join("\r\n ")));
            // One header line far longer than RFC 5322's 998 limit, unfolded.
            headers.push(format!("X-Long-Unfolded: {}", "x".repeat(4000 + i % 100)));
            let words: Vec<String> = (0..60).map(|k| format!("word{k}")).collect();
            subject = format!("long {}", words.join(" "));
            raw_subject = Some(fold(&subject).into_bytes());
            headers.push("Content-Type: text/plain".into());
            body = text_body(rng, pad);
        }
        "large" => {
            let boundary = format!("large-{seed}-{i}");
            headers.push(format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\""
            ));
            let size = 100_000 + rng.below(300_000);
            let mut b = format!(
                "--{boundary}\r\nContent-Type: text/plain\r\n\r\nA large one.\r\n\
                 --{boundary}\r\nContent-Type: image/png; name=\"big.png\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            )
            .into_bytes();
            b.extend(base64_lines(&rng.bytes(size)));
            b.extend(format!("--{boundary}--\r\n").as_bytes());
            body = b;
        }
        other => unreachable!("unknown kind {other}"),
    }

    let subject_line = raw_subject.unwrap_or_else(|| subject.clone().into_bytes());
    let mut msg = Vec::new();
    for h in &headers {
        msg.extend_from_slice(h.as_bytes());
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b"Subject: ");
    msg.extend_from_slice(&subject_line);
    msg.extend_from_slice(b"\r\n\r\n");
    msg.extend_from_slice(&body);
    if eol_lf {
        msg.retain(|&b| b != b'\r');
    }
    let message_id = headers
        .iter()
        .any(|h| h.starts_with("Message-ID:"))
        .then_some(id);
    Sample {
        kind,
        bytes: msg,
        subject,
        message_id,
    }
}

const WORDS: &[&str] = &[
    "the",
    "quarterly",
    "report",
    "mail",
    "server",
    "sync",
    "folder",
    "meeting",
    "budget",
    "please",
    "review",
    "attached",
    "tomorrow",
    "invoice",
    "thanks",
    "regards",
    "update",
    "database",
    "release",
    "notes",
    "a",
    "of",
    "and",
    "to",
    "in",
];

/// ASCII prose of about `n` bytes in CRLF lines of at most 72 characters.
fn text_body(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = filler(rng, n);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Exactly `n` bytes of ASCII prose in CRLF lines.
fn filler(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut col = 0;
    while out.len() < n {
        let w = WORDS[rng.below(WORDS.len())];
        if col + w.len() + 1 > 72 {
            out.extend_from_slice(b"\r\n");
            col = 0;
        } else if col > 0 {
            out.push(b' ');
            col += 1;
        }
        out.extend_from_slice(w.as_bytes());
        col += w.len();
    }
    out.truncate(n);
    // Never end inside a CRLF pair.
    if out.last() == Some(&b'\r') {
        out.pop();
        out.push(b'.');
    }
    out
}

/// Base64 in 76-column CRLF lines, as a mail program writes a part body.
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38);
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045) of CRLF text; lines soft-wrapped at 76.
fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let text = data.split(|&b| b == b'\n');
    let lines: Vec<&[u8]> = text.collect();
    for (k, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                vec![b]
            } else {
                format!("={b:02X}").into_bytes()
            };
            if col + piece.len() > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            col += piece.len();
            out.extend(piece);
        }
        if k + 1 < lines.len() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn encoded_word_b(charset: &str, bytes: &[u8]) -> String {
    format!(
        "=?{charset}?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn encoded_word_q(charset: &str, bytes: &[u8]) -> String {
    let mut out = format!("=?{charset}?Q?");
    for &b in bytes {
        match b {
            b' ' => out.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

/// Folds a header value at spaces so no line exceeds 78 characters.
fn fold(value: &str) -> String {
    let mut out = String::new();
    let mut col = "Subject: ".len();
    for (k, word) in value.split(' ').enumerate() {
        if k > 0 {
            if col + 1 + word.len() > 78 {
                out.push_str("\r\n ");
                col = 1;
            } else {
                out.push(' ');
                col += 1;
            }
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

/// An RFC 5322 date, deterministic in (seed, i), between 2001 and 2030.
fn date(seed: u64, i: usize) -> String {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(i as u64));
    let days = 11_323 + rng.below(10_950) as i64; // 2001-01-01 + up to 30 years
    let secs = rng.below(86_400);
    let (y, m, d) = mailfeed::utc::civil_from_days(days);
    const DOW: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let zones = ["+0000", "-0500", "+0100", "+0530", "-0800", "+0900"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {}",
        DOW[(days % 7) as usize],
        d,
        MON[m as usize - 1],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        zones[i % zones.len()]
    )
}
