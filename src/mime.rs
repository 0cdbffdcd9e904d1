//! MIME decoding: turns the raw bytes of one RFC 5322 message into a [`ParsedMessage`] of
//! owned, UTF-8, database-ready fields (ids, subject, dates, addresses, bodies, attachments).
//!
//! This module is pure: no IO, no SQL, no async, no clock. It never fails and never panics on
//! any input; what it cannot understand it reports in [`ParsedMessage::parse_error`] and keeps
//! whatever it could extract. The MIME grammar itself is `mail-parser`'s; this module decides
//! what mailfeed calls a body and what it calls an attachment.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{
    Address as MpAddress, HeaderName, HeaderValue, Message, MessageParser, MessagePart,
    MimeHeaders, PartType,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

mod large;
pub use large::decode_base64;

/// Everything mailfeed keeps from one message, decoded to UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParsedMessage {
    /// `Message-ID` without angle brackets.
    pub message_id: Option<String>,
    /// Ids from `In-Reply-To`, without angle brackets, in header order.
    pub in_reply_to: Vec<String>,
    /// Ids from `References`, without angle brackets, in header order.
    pub references: Vec<String>,
    /// `Subject` with RFC 2047 encoded-words decoded.
    pub subject: Option<String>,
    /// The `Date` header exactly as written (whitespace-trimmed), parseable or not.
    pub date_raw: Option<String>,
    /// The `Date` header as UTC `YYYY-MM-DDTHH:MM:SSZ`, when it parsed to a plausible date.
    pub sent_at: Option<String>,
    /// Originator and recipient addresses; groups are flattened into their members.
    pub addresses: Vec<Address>,
    /// The plain-text body: the message's text parts joined by a blank line, with HTML parts
    /// rendered to text where a message (or an alternative) offers no `text/plain`.
    pub text_body: Option<String>,
    /// The HTML body: the message's `text/html` body parts joined.
    pub html_body: Option<String>,
    /// Every part that is not body text: see [`Attachment`].
    pub attachments: Vec<Attachment>,
    /// Set when the message could not be parsed (fully); the other fields hold what was found.
    pub parse_error: Option<String>,
}

/// Which header an [`Address`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressRole {
    From,
    Sender,
    ReplyTo,
    To,
    Cc,
    Bcc,
}

impl AddressRole {
    /// All roles, in the order addresses are listed.
    pub const ALL: [AddressRole; 6] = [
        AddressRole::From,
        AddressRole::Sender,
        AddressRole::ReplyTo,
        AddressRole::To,
        AddressRole::Cc,
        AddressRole::Bcc,
    ];

    /// The role as stored: `from`, `sender`, `reply_to`, `to`, `cc`, `bcc`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressRole::From => "from",
            AddressRole::Sender => "sender",
            AddressRole::ReplyTo => "reply_to",
            AddressRole::To => "to",
            AddressRole::Cc => "cc",
            AddressRole::Bcc => "bcc",
        }
    }

    fn header(self) -> HeaderName<'static> {
        match self {
            AddressRole::From => HeaderName::From,
            AddressRole::Sender => HeaderName::Sender,
            AddressRole::ReplyTo => HeaderName::ReplyTo,
            AddressRole::To => HeaderName::To,
            AddressRole::Cc => HeaderName::Cc,
            AddressRole::Bcc => HeaderName::Bcc,
        }
    }
}

/// One mailbox from an address header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub role: AddressRole,
    /// 0-based position within its role, counting across repeated headers of that role.
    pub position: u32,
    /// Display name, RFC 2047 decoded.
    pub name: Option<String>,
    /// The `local@domain` part; `None` when only a name (or a bare group) was written.
    pub address: Option<String>,
}

/// A non-body part of a message.
///
/// A part is an attachment when it is not one of the text/html parts that make up the body:
/// anything with `Content-Disposition: attachment`, any non-text part (including inline images,
/// which are also referenced from the HTML), text parts outside the body (e.g. `text/calendar`),
/// and a nested `message/rfc822` as one attachment holding the nested message's raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// File name from `Content-Disposition` (or else `Content-Type` `name`), decoded.
    pub filename: Option<String>,
    /// Lower-case `type/subtype`.
    pub content_type: String,
    /// `Content-ID` without angle brackets.
    pub content_id: Option<String>,
    /// `attachment` or `inline` when the part said so.
    pub disposition: Option<String>,
    /// Length of [`Attachment::data`] in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of [`Attachment::data`].
    pub sha256: String,
    /// The decoded bytes (transfer encoding removed). Text attachments are kept as UTF-8 after
    /// charset conversion. Not serialised: `size` and `sha256` stand for it in JSON. Empty when
    /// [`Attachment::in_raw`] is set.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// For a base64 part of a large message: where its encoded text is in the raw message
    /// ([`decode_base64`] of that range gives the bytes). Such a part is not decoded into
    /// [`Attachment::data`], so the message is never held raw and decoded at once; the store
    /// decodes it in pieces into its blob.
    #[serde(skip)]
    pub in_raw: Option<std::ops::Range<usize>>,
}

impl ParsedMessage {
    /// Addresses with the given role, in position order.
    pub fn addresses_with(&self, role: AddressRole) -> impl Iterator<Item = &Address> {
        self.addresses.iter().filter(move |a| a.role == role)
    }

    /// Attachment file names joined by newlines (for full-text search).
    pub fn attachment_names(&self) -> String {
        let names: Vec<&str> = self
            .attachments
            .iter()
            .filter_map(|a| a.filename.as_deref())
            .collect();
        names.join("\n")
    }

    /// One text for full-text search: subject, names and addresses, body text and attachment
    /// names, separated by newlines.
    pub fn search_text(&self) -> String {
        let mut out = String::new();
        let mut push = |s: &str| {
            if !s.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(s);
            }
        };
        push(self.subject.as_deref().unwrap_or(""));
        for a in &self.addresses {
            push(a.name.as_deref().unwrap_or(""));
            push(a.address.as_deref().unwrap_or(""));
        }
        push(self.text_body.as_deref().unwrap_or(""));
        push(&self.attachment_names());
        out
    }
}

/// Parses a raw message. Never fails and never panics: problems are reported in
/// [`ParsedMessage::parse_error`] alongside whatever could be extracted.
pub fn parse(raw: &[u8]) -> ParsedMessage {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return ParsedMessage {
            parse_error: Some("empty message".to_owned()),
            ..ParsedMessage::default()
        };
    }
    // mail-parser is meant not to panic, but it is fed bytes from the network; a panic in it
    // must cost one message, not a sync task.
    match catch_unwind(AssertUnwindSafe(|| parse_unguarded(raw))) {
        Ok(parsed) => parsed,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            ParsedMessage {
                parse_error: Some(format!("MIME parser panicked: {what}")),
                ..ParsedMessage::default()
            }
        }
    }
}

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
struct Repaired {
    bytes: Vec<u8>,
    /// An empty line was put before a line that is neither a header field nor a continuation.
    body_without_separator: bool,
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
fn repair_header_block(raw: &[u8]) -> Option<Repaired> {
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

fn parse_unguarded(raw: &[u8]) -> ParsedMessage {
    let repaired = repair_header_block(raw);
    // Large base64 parts are cut out before mail-parser sees the message (it
    // would decode them all into memory); their offsets are those of the raw
    // bytes, so not when the header block had to be repaired.
    let plan = match repaired {
        Some(_) => None,
        None => large::plan(raw).filter(|(skeleton, elided)| lines_up(skeleton, elided)),
    };
    let (raw, elided) = match (&repaired, &plan) {
        (_, Some((skeleton, elided))) => (skeleton.as_slice(), elided.as_slice()),
        (Some(r), None) => (r.bytes.as_slice(), &[][..]),
        (None, None) => (raw, &[][..]),
    };
    // mail-parser bounds the nesting depth of message/rfc822 parts itself.
    let Some(mut message) = MessageParser::default().parse(raw) else {
        return ParsedMessage {
            parse_error: Some("no RFC 5322 header block found".to_owned()),
            ..ParsedMessage::default()
        };
    };

    move_attached_text_to_attachments(&mut message);
    let (date_raw, sent_at) = date(&message);
    // Taken first: attachment bytes are moved out of the parsed message, not
    // copied, so a large attachment is held once.
    let attachments = attachments(&mut message, elided);
    let mut parsed = ParsedMessage {
        message_id: message.message_id().map(strip_brackets),
        in_reply_to: id_list(message.in_reply_to()),
        references: id_list(message.references()),
        subject: message.subject().map(str::to_owned),
        date_raw,
        sent_at,
        addresses: addresses(&message),
        text_body: text_body(&message),
        html_body: html_body(&message),
        attachments,
        parse_error: None,
    };
    if message.headers().is_empty() {
        parsed.parse_error = Some("no RFC 5322 header fields found".to_owned());
    } else if repaired.as_ref().is_some_and(|r| r.body_without_separator) {
        parsed.parse_error = Some(
            "the header block ends in a line that is not a header field; read from there as body"
                .to_owned(),
        );
    } else if message.parts.iter().any(|p| p.is_encoding_problem) {
        parsed.parse_error =
            Some("a MIME part has a broken transfer encoding; kept undecoded".to_owned());
    }
    parsed
}

fn strip_brackets(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![strip_brackets(id)],
        HeaderValue::TextList(ids) => ids.iter().map(|id| strip_brackets(id)).collect(),
        _ => Vec::new(),
    }
}

fn date(message: &Message<'_>) -> (Option<String>, Option<String>) {
    let raw = message
        .header_raw(HeaderName::Date)
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let sent_at = message
        .date()
        .filter(|d| d.is_valid())
        .map(|d| crate::utc::format_utc(d.to_timestamp()));
    (raw, sent_at)
}

fn addresses(message: &Message<'_>) -> Vec<Address> {
    let mut out = Vec::new();
    for role in AddressRole::ALL {
        let mut position = 0u32;
        for value in message.header_values(role.header()) {
            let HeaderValue::Address(list) = value else {
                continue;
            };
            let mut push = |name: Option<&str>, address: Option<&str>| {
                let mut name = name.map(str::trim).filter(|s| !s.is_empty());
                let mut address = address.map(str::trim).filter(|s| !s.is_empty());
                // `To: baz` is a bare local part (old local mail, RFC 822 without a domain);
                // mail-parser reads the lone word as a display name, but it names a mailbox.
                if address.is_none()
                    && name.is_some_and(|n| !n.contains(char::is_whitespace) && !n.contains('"'))
                {
                    (name, address) = (None, name);
                }
                if name.is_none() && address.is_none() {
                    return;
                }
                out.push(Address {
                    role,
                    position,
                    name: name.map(str::to_owned),
                    address: address.map(str::to_owned),
                });
                position += 1;
            };
            match list {
                MpAddress::List(addrs) => {
                    for a in addrs {
                        push(a.name(), a.address());
                    }
                }
                MpAddress::Group(groups) => {
                    for a in groups.iter().flat_map(|g| g.addresses.iter()) {
                        push(a.name(), a.address());
                    }
                }
            }
        }
    }
    out
}

fn join_nonempty(parts: Vec<Cow<'_, str>>) -> Option<String> {
    let parts: Vec<Cow<'_, str>> = parts.into_iter().filter(|p| !p.trim().is_empty()).collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("\n\n"))
    }
}

/// mail-parser demotes to attachments some text that a reader sees as the message body: a
/// part whose transfer encoding is broken, a `Content-Type: text` without subtype, and a
/// multipart whose boundary never occurs (RFC 2045 says to treat invalid types as
/// `text/plain`). Such a part, unless it is named or marked as an attachment, is body text.
fn is_demoted_body_text(part: &MessagePart<'_>) -> bool {
    if part.attachment_name().is_some() {
        return false;
    }
    let is_multipart = part
        .content_type()
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"));
    match part.body {
        PartType::Text(_) => {}
        // A multipart without a boundary parameter arrives as opaque bytes.
        PartType::Binary(_) | PartType::InlineBinary(_) if is_multipart => {}
        _ => return false,
    }
    if part
        .content_disposition()
        .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
    {
        return false;
    }
    let invalid_type = is_multipart || part.content_type().is_some_and(|ct| ct.subtype().is_none());
    // Only text keeps its meaning when its transfer encoding is broken; an image or a
    // sound with broken base64 is still a (damaged) attachment.
    let declared_text = part
        .content_type()
        .is_none_or(|ct| ct.ctype().eq_ignore_ascii_case("text"));
    part.is_encoding_problem && declared_text || invalid_type
}

/// mail-parser reads every text and HTML part as body, but a mail client shows some of them
/// as attachments, and the contract promises that they are (RFC 8621 4.1.4 draws the line):
/// a part marked `Content-Disposition: attachment`, and a named part (`filename=` or
/// `name=`) that is not the first part of its multipart, or that is in a multipart/related.
/// Such parts are moved from the body lists to the attachment list, in document order.
fn move_attached_text_to_attachments(message: &mut Message<'_>) {
    // For each part: its position within its multipart and whether that is related.
    let mut place: Vec<(usize, bool)> = vec![(0, false); message.parts.len()];
    for part in &message.parts {
        if let PartType::Multipart(children) = &part.body {
            let related = part
                .content_type()
                .and_then(|ct| ct.subtype())
                .is_some_and(|sub| sub.eq_ignore_ascii_case("related"));
            for (position, &child) in children.iter().enumerate() {
                if let Some(slot) = place.get_mut(child as usize) {
                    *slot = (position, related);
                }
            }
        }
    }
    let is_attached = |id: u32| {
        let Some(part) = message.parts.get(id as usize) else {
            return false;
        };
        let marked = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let named = part.attachment_name().is_some_and(|n| !n.trim().is_empty());
        let (position, related) = place[id as usize];
        marked || named && (position > 0 || related)
    };
    let attached: Vec<u32> = message
        .text_body
        .iter()
        .chain(&message.html_body)
        .copied()
        .filter(|&id| is_attached(id))
        .collect();
    if attached.is_empty() {
        return;
    }
    message.text_body.retain(|id| !attached.contains(id));
    message.html_body.retain(|id| !attached.contains(id));
    message.attachments.extend(attached);
    // Part ids follow document order.
    message.attachments.sort_unstable();
    message.attachments.dedup();
}

/// Ids of the parts whose text forms the plain-text body, in document order.
fn text_body_ids(message: &Message<'_>) -> Vec<u32> {
    let mut ids: Vec<u32> = message.text_body.clone();
    ids.extend(message.attachments.iter().copied().filter(|&id| {
        message
            .parts
            .get(id as usize)
            .is_some_and(is_demoted_body_text)
    }));
    // Part ids follow document order, so sorting restores reading order.
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn text_body(message: &Message<'_>) -> Option<String> {
    let parts = text_body_ids(message)
        .iter()
        .filter_map(|&id| message.parts.get(id as usize))
        .filter_map(|part| match &part.body {
            PartType::Text(text) => Some(Cow::Borrowed(text.as_ref())),
            PartType::Html(html) => {
                Some(Cow::Owned(mail_parser::decoders::html::html_to_text(html)))
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes)
                if is_demoted_body_text(part) =>
            {
                Some(String::from_utf8_lossy(bytes))
            }
            _ => None,
        })
        .collect();
    join_nonempty(parts)
}

fn html_body(message: &Message<'_>) -> Option<String> {
    let parts = message
        .html_body
        .iter()
        .filter_map(|&id| message.parts.get(id as usize))
        .filter_map(|part| match &part.body {
            PartType::Html(html) => Some(Cow::Borrowed(html.as_ref())),
            _ => None,
        })
        .collect();
    join_nonempty(parts)
}

fn attachments(message: &mut Message<'_>, elided: &[large::Elided]) -> Vec<Attachment> {
    let ids = message.attachments.clone();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(part) = message.parts.get_mut(id as usize)
            && !is_demoted_body_text(part)
        {
            let mut a = attachment(part);
            if let Some(e) = elided.iter().find(|e| e.part == id as usize) {
                a.size = e.size;
                a.sha256 = hex(&e.sha256);
                a.in_raw = Some(e.range.clone());
            }
            out.push(a);
        }
    }
    out
}

/// Whether the skeleton parses into the same parts as the whole message,
/// each cut-out part an empty attachment at its place. Otherwise the whole
/// message is parsed as it is.
fn lines_up(skeleton: &[u8], elided: &[large::Elided]) -> bool {
    let Some(m) = MessageParser::default().parse(skeleton) else {
        return false;
    };
    elided.iter().all(|e| {
        m.attachments.contains(&(e.part as u32))
            && m.parts.get(e.part).is_some_and(|p| {
                !p.is_encoding_problem
                    && matches!(&p.body, PartType::Binary(b) | PartType::InlineBinary(b) if b.is_empty())
            })
    })
}

fn attachment(part: &mut MessagePart<'_>) -> Attachment {
    // Decoded binary parts are moved out (the part is not used again);
    // everything else is copied from its contents.
    let data = match &mut part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            std::mem::take(bytes).into_owned()
        }
        _ => part.contents().to_vec(),
    };
    let content_type = match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            // A type without a subtype is invalid; RFC 2045 says to treat it as the default.
            None if ct.ctype().eq_ignore_ascii_case("text") => "text/plain".to_owned(),
            None => "application/octet-stream".to_owned(),
        },
        None => match &part.body {
            PartType::Message(_) => "message/rfc822".to_owned(),
            PartType::Text(_) => "text/plain".to_owned(),
            PartType::Html(_) => "text/html".to_owned(),
            _ => "application/octet-stream".to_owned(),
        },
    };
    let disposition = part
        .content_disposition()
        .map(|d| d.ctype().to_ascii_lowercase())
        .filter(|d| d == "attachment" || d == "inline");
    Attachment {
        filename: part
            .attachment_name()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        content_type,
        content_id: part
            .content_id()
            .map(strip_brackets)
            .filter(|s| !s.is_empty()),
        disposition,
        size: data.len() as u64,
        sha256: hex(&Sha256::digest(&data)),
        data,
        in_raw: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let p = parse(
                format!("From: a@example.com\nContent-Type: {ct}\n\nHello there\n").as_bytes(),
            );
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
        let p = parse(
            b"From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\nok \xff\xfe end\n",
        );
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

    /// Base64 in 76-column CRLF lines, written here so the test needs no extra dependency.
    fn base64_lines(data: &[u8]) -> Vec<u8> {
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
