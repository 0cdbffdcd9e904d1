//! The header block of a raw message: where it ends, and the repairs that
//! let mail-parser read it as a mail client would. Pure.

/// The header block of a raw message: everything up to and including the first empty line
/// (CRLF or bare LF). A message with no empty line is all header and is returned whole.
/// Used to keep just the headers of a message larger than the size limit.
pub fn headers_only(raw: &[u8]) -> &[u8] {
    let mut line_start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' {
            let line = &raw[line_start..i];
            if line.is_empty() || line == b"\r" {
                return &raw[..=i];
            }
            line_start = i + 1;
        }
    }
    raw
}

/// What [`repair_header_block`] changed so that mail-parser reads the header block as Python's
/// `email` (and a mail client) would.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Repaired {
    pub(super) bytes: Vec<u8>,
    /// An empty line was put before a line that is neither a header field nor a continuation.
    pub(super) body_without_separator: bool,
}

/// Repairs two faults of a header block that mail-parser would otherwise misread, returning
/// the fixed copy (the stored raw bytes are never changed), or `None` when there is neither:
///
/// - A `From ` line after the first line (an mbox envelope line that a mail program left
///   below headers it added, such as mutt's or MH's `Replied:`) is dropped, so the header
///   fields below it are still read as headers. Python's `email` ignores it the same way
///   (`MisplacedEnvelopeHeaderDefect`). A leading `From ` line is left to mail-parser, which
///   skips it.
/// - Where the header block is not ended by an empty line but by a line that is neither a
///   header field (`name:`) nor a continuation, an empty line is put before that line. Such a
///   line can only be body text written without the separating empty line (or a message with
///   no headers at all); mail-parser would read it as a header and lose it. Python's `email`
///   draws the same line.
pub(super) fn repair_header_block(raw: &[u8]) -> Option<Repaired> {
    let mut fixed: Vec<u8> = Vec::new();
    // Bytes of `raw` before `copied` are in `fixed` already (or were dropped).
    let mut copied = 0;
    let mut changed = false;
    let mut start = 0;
    while start < raw.len() {
        let end = raw[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| start + i + 1);
        let line = &raw[start..end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            break;
        }
        let envelope = content.starts_with(b"From ");
        if envelope && start > 0 {
            fixed.extend_from_slice(&raw[copied..start]);
            copied = end;
            changed = true;
            start = end;
            continue;
        }
        let is_header = (start == 0 && envelope)
            || (start > 0 && matches!(content[0], b' ' | b'\t'))
            || content
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|colon| content[..colon].iter().all(|b| (33..=126).contains(b)));
        if !is_header {
            let eol: &[u8] = if line.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            fixed.extend_from_slice(&raw[copied..start]);
            fixed.extend_from_slice(eol);
            fixed.extend_from_slice(&raw[start..]);
            return Some(Repaired {
                bytes: fixed,
                body_without_separator: true,
            });
        }
        start = end;
    }
    changed.then(|| {
        fixed.extend_from_slice(&raw[copied..]);
        Repaired {
            bytes: fixed,
            body_without_separator: false,
        }
    })
}
