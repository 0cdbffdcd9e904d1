//! Large attachments without a decoded copy: finds the base64 parts of a
//! large message that are too big to hold decoded beside the raw bytes,
//! hashes them in pieces, and builds the skeleton (the raw message with
//! those part bodies cut out) that the ordinary parse reads instead. The
//! writer later decodes the same byte ranges of the raw message in pieces
//! straight into the attachment's blob ([`decode_base64`]), so a message is
//! never held raw and decoded at once. Pure: no IO, no SQL.
//!
//! mail-parser decodes every part into memory as it parses; this module
//! keeps it from seeing the bodies it should not decode. Only what it can
//! decode exactly as mail-parser would (clean base64) is cut out; anything
//! else stays in the skeleton and is parsed as before.

use std::ops::Range;

use base64::Engine;
use mail_parser::{HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// Messages smaller than this are parsed whole: their decoded parts are
/// small enough to hold.
pub(super) const MIN_MESSAGE: usize = 1 << 20;
/// Encoded part bodies at least this large are cut out of the skeleton.
pub(super) const MIN_PART: usize = 256 << 10;
/// Decoded bytes handed to the sink at a time.
const PIECE: usize = 64 << 10;

/// A part body cut out of the skeleton: where its base64 text is in the raw
/// message, and what it decodes to.
#[derive(Debug)]
pub(super) struct Elided {
    /// Index of the part in mail-parser's part list (the same in the
    /// skeleton's parse).
    pub(super) part: usize,
    pub(super) range: Range<usize>,
    pub(super) size: u64,
    pub(super) sha256: [u8; 32],
}

/// The skeleton of `raw` and the parts cut out of it, or `None` when no
/// part qualifies (then `raw` is parsed whole).
pub(super) fn plan(raw: &[u8]) -> Option<(Vec<u8>, Vec<Elided>)> {
    if raw.len() < MIN_MESSAGE {
        return None;
    }
    // Content-Transfer-Encoding read as if it were a content type: mail-parser
    // then sees no encoding it knows and decodes nothing (bodies stay borrowed
    // slices of `raw`), while the value stays readable here.
    let structure = MessageParser::new()
        .with_mime_headers()
        .header_content_type(HeaderName::ContentTransferEncoding)
        .parse(raw)?;
    let mut elided = Vec::new();
    for (i, part) in structure.parts.iter().enumerate() {
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        if !matches!(part.body, PartType::Binary(_) | PartType::InlineBinary(_))
            || part.is_encoding_problem
            || end < start
            || end - start < MIN_PART
            || end > raw.len()
        {
            continue;
        }
        let base64 = part.headers.iter().any(|h| {
            h.name == HeaderName::ContentTransferEncoding
                && matches!(&h.value, HeaderValue::ContentType(ct)
                    if ct.ctype().eq_ignore_ascii_case("base64") && ct.subtype().is_none())
        });
        // A message/rfc822 part is parsed as a nested message, and a text part
        // is converted to UTF-8: neither is a plain byte copy.
        let plain_bytes = part.content_type().is_none_or(|ct| {
            !ct.ctype().eq_ignore_ascii_case("text")
                && !ct.ctype().eq_ignore_ascii_case("message")
                && !ct.ctype().eq_ignore_ascii_case("multipart")
        });
        if !base64 || !plain_bytes {
            continue;
        }
        let mut hash = Sha256::new();
        let Ok(Some(size)) = decode_base64(&raw[start..end], |piece| {
            hash.update(piece);
            Ok::<_, std::convert::Infallible>(())
        }) else {
            continue;
        };
        elided.push(Elided {
            part: i,
            range: start..end,
            size,
            sha256: hash.finalize().into(),
        });
    }
    if elided.is_empty() {
        return None;
    }
    let cut: usize = elided.iter().map(|e| e.range.len()).sum();
    let mut skeleton = Vec::with_capacity(raw.len() - cut);
    let mut from = 0;
    for e in &elided {
        skeleton.extend_from_slice(&raw[from..e.range.start]);
        from = e.range.end;
    }
    skeleton.extend_from_slice(&raw[from..]);
    Some((skeleton, elided))
}

/// Decodes clean base64 (the alphabet, `=` padding, spaces and line ends)
/// in pieces of at most 64 KiB, handing each to `sink`, and returns the
/// decoded length; `Ok(None)` when the text is not clean base64 (a stray
/// character, padding after a single character), which callers
/// leave to mail-parser. On clean input the bytes are exactly what
/// mail-parser decodes.
pub fn decode_base64<E>(
    encoded: &[u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Option<u64>, E> {
    let mut group = Group::default();
    let mut out: Vec<u8> = Vec::with_capacity(PIECE + 128);
    let mut total = 0u64;
    // A line is taken in runs of at most [`RUN`] characters, so a part
    // sent without line breaks is still decoded in pieces.
    let runs = encoded
        .split(|&b| b == b'\n')
        .flat_map(|line| line.strip_suffix(b"\r").unwrap_or(line).chunks(RUN));
    for line in runs {
        // The common line (whole groups of the alphabet, perhaps padded at
        // its end) goes through the base64 crate's decoder, several times
        // faster than one character at a time; whatever it refuses (spaces
        // inside, padding mid-line, a group split across lines, a stray
        // character) takes the careful path below, which decides. Valid
        // base64 has one decoding, so both paths give the same bytes.
        if !group.open() && !line.is_empty() {
            let at = out.len();
            out.resize(at + line.len() / 4 * 3 + 3, 0);
            match LINE.decode_slice(line, &mut out[at..]) {
                Ok(n) => {
                    out.truncate(at + n);
                    total += flush_full(&mut out, &mut sink)?;
                    continue;
                }
                Err(_) => out.truncate(at),
            }
        }
        for &ch in line {
            if !group.push(ch, &mut out) {
                return Ok(None);
            }
        }
        total += flush_full(&mut out, &mut sink)?;
    }
    // A dangling group (1-3 characters, no padding) holds no whole byte;
    // mail-parser drops it too.
    if !out.is_empty() {
        total += out.len() as u64;
        sink(&out)?;
    }
    Ok(Some(total))
}

/// Characters decoded at once: whole groups, about one piece of output.
const RUN: usize = PIECE / 3 * 4;

/// The alphabet with `=` padding required at the end of a padded group and
/// no stray bits: exactly the lines the careful path would decode alike.
const LINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Hands `out` to `sink` once it holds a piece's worth; returns how many
/// bytes it handed over.
fn flush_full<E>(
    out: &mut Vec<u8>,
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    if out.len() < PIECE {
        return Ok(0);
    }
    let n = out.len() as u64;
    sink(out)?;
    out.clear();
    Ok(n)
}

/// The careful path: one character at a time, a group of up to four
/// sextets carried across lines, `=` closing a group wherever it comes.
#[derive(Default)]
struct Group {
    chunk: u32,
    count: u8,
}

impl Group {
    /// Whether part of a group is pending (a line then cannot start fresh).
    fn open(&self) -> bool {
        self.count != 0
    }

    /// Takes one character; false when the text is not clean base64.
    fn push(&mut self, ch: u8, out: &mut Vec<u8>) -> bool {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b' ' | b'\t' | b'\r' | b'\n' => return true,
            b'=' => {
                match self.count {
                    0 => {}
                    2 => out.push((self.chunk >> 4) as u8),
                    3 => {
                        out.extend_from_slice(&[(self.chunk >> 10) as u8, (self.chunk >> 2) as u8])
                    }
                    _ => return false,
                }
                *self = Group::default();
                return true;
            }
            _ => return false,
        };
        self.chunk = (self.chunk << 6) | u32::from(v);
        self.count += 1;
        if self.count == 4 {
            out.extend_from_slice(&self.chunk.to_be_bytes()[1..]);
            *self = Group::default();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(encoded: &[u8]) -> Option<Vec<u8>> {
        let mut all = Vec::new();
        decode_base64(encoded, |p| {
            all.extend_from_slice(p);
            Ok::<_, ()>(())
        })
        .expect("infallible")
        .map(|n| {
            assert_eq!(n as usize, all.len());
            all
        })
    }

    /// mail-parser's decoding of the same text as the body of a one-part
    /// message.
    fn mail_parser_decoded(encoded: &[u8]) -> Vec<u8> {
        let mut raw = b"Content-Type: application/octet-stream\r\n\
                        Content-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(encoded);
        let m = MessageParser::default().parse(&raw).expect("parsed");
        match &m.parts[0].body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            other => panic!("not binary: {other:?}"),
        }
    }

    #[test]
    fn clean_base64_decodes_as_mail_parser_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for len in [0usize, 1, 2, 3, 4, 5, 57, 58, 59, 1000, 70_000, 200_001] {
            // Random groups of four, line breaks every 76, then padding.
            let mut text = Vec::new();
            for i in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % 64) as usize]);
                if i % 76 == 75 {
                    text.extend_from_slice(b"\r\n");
                }
            }
            let groups = len % 4;
            match groups {
                0 => {}
                // Dangling: no padding, as a cut-off part would end.
                1 => {}
                2 => text.extend_from_slice(b"=="),
                _ => text.push(b'='),
            }
            text.extend_from_slice(b"\r\n");
            assert_eq!(
                decoded(&text).expect("clean"),
                mail_parser_decoded(&text),
                "length {len}"
            );
        }
    }

    /// The careful path alone, for comparison with the line fast path.
    fn carefully(encoded: &[u8]) -> Option<Vec<u8>> {
        let (mut group, mut out) = (Group::default(), Vec::new());
        encoded
            .iter()
            .all(|&ch| group.push(ch, &mut out))
            .then_some(out)
    }

    #[test]
    fn lines_of_any_shape_decode_as_the_careful_path_does() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&data);
        let text = text.as_bytes();
        // Line widths that split groups, LF or CRLF ends, no breaks at all.
        for (width, end) in [
            (76, &b"\r\n"[..]),
            (77, b"\n"),
            (3, b"\r\n"),
            (1 << 20, b"\r\n"),
        ] {
            let mut shaped = Vec::new();
            for line in text.chunks(width) {
                shaped.extend_from_slice(line);
                shaped.extend_from_slice(end);
            }
            let mut largest = 0;
            let mut all = Vec::new();
            let n = decode_base64(&shaped, |p| {
                largest = largest.max(p.len());
                all.extend_from_slice(p);
                Ok::<_, ()>(())
            });
            assert_eq!(n, Ok(Some(data.len() as u64)), "width {width}");
            assert_eq!(all, data, "width {width}");
            assert_eq!(
                carefully(&shaped).as_deref(),
                Some(&data[..]),
                "width {width}"
            );
            assert!(
                largest <= 2 * PIECE,
                "width {width}: a piece of {largest} bytes"
            );
        }
        // Spaces inside a line, padding mid-line (two encodings joined), a
        // line with stray bits before its padding: each as the careful path.
        for text in [
            &b"QUJD REVG\r\n"[..],
            b"QQ==QUJD\r\n",
            b"QR==\r\nQUJD\r\n",
            b"QUI=\nQUJD\n",
        ] {
            assert_eq!(decoded(text), carefully(text), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_not_clean() {
        for text in [&b"QUJD-REVG"[..], b"QUJD\x00", b"Q===", b"QUJD!"] {
            assert_eq!(decoded(text), None, "{text:?}");
        }
        assert_eq!(
            decoded(b"QUJD\r\nREVG\r\n").as_deref(),
            Some(&b"ABCDEF"[..])
        );
    }

    #[test]
    fn a_large_part_is_cut_out_of_the_skeleton() {
        let payload: Vec<u8> = (0..(MIN_MESSAGE as u32)).map(|i| (i % 253) as u8).collect();
        let text = base64_lines(&payload);
        let mut raw = b"Subject: big\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
              --B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\n\
              Content-Type: image/png; name=a.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
        let start = raw.len();
        raw.extend_from_slice(&text);
        raw.extend_from_slice(b"--B--\r\n");
        let (skeleton, elided) = plan(&raw).expect("planned");
        assert_eq!(elided.len(), 1);
        let e = &elided[0];
        assert_eq!(e.range.start, start);
        assert_eq!(e.size, payload.len() as u64);
        assert_eq!(e.sha256, <[u8; 32]>::from(Sha256::digest(&payload)));
        assert!(skeleton.len() < 400, "{}", skeleton.len());
        assert_eq!(decoded(&raw[e.range.clone()]).expect("clean"), payload);
        // Smaller messages are parsed whole.
        assert!(plan(&raw[..MIN_MESSAGE - 1]).is_none());
    }

    pub(crate) fn base64_lines(data: &[u8]) -> Vec<u8> {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::with_capacity(data.len() / 57 * 78 + 80);
        for line in data.chunks(57) {
            for c in line.chunks(3) {
                let n = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                out.push(ALPHABET[(n >> 18) as usize & 63]);
                out.push(ALPHABET[(n >> 12) as usize & 63]);
                out.push(if c.len() > 1 {
                    ALPHABET[(n >> 6) as usize & 63]
                } else {
                    b'='
                });
                out.push(if c.len() > 2 {
                    ALPHABET[n as usize & 63]
                } else {
                    b'='
                });
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}
