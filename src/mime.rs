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
    /// charset conversion. Not serialised: `size` and `sha256` stand for it in JSON.
    #[serde(skip)]
    pub data: Vec<u8>,
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

fn parse_unguarded(raw: &[u8]) -> ParsedMessage {
    // mail-parser bounds the nesting depth of message/rfc822 parts itself.
    let Some(message) = MessageParser::default().parse(raw) else {
        return ParsedMessage {
            parse_error: Some("no RFC 5322 header block found".to_owned()),
            ..ParsedMessage::default()
        };
    };

    let (date_raw, sent_at) = date(&message);
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
        attachments: attachments(&message),
        parse_error: None,
    };
    if message.headers().is_empty() {
        parsed.parse_error = Some("no RFC 5322 header fields found".to_owned());
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
        .map(|d| utc_iso8601(d.to_timestamp()));
    (raw, sent_at)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_iso8601(timestamp: i64) -> String {
    let days = timestamp.div_euclid(86_400);
    let secs = timestamp.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the "days to civil" algorithm
/// that works in 400-year eras of 146,097 days, with years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

fn text_body(message: &Message<'_>) -> Option<String> {
    let parts = message
        .text_body
        .iter()
        .filter_map(|&id| message.parts.get(id as usize))
        .filter_map(|part| match &part.body {
            PartType::Text(text) => Some(Cow::Borrowed(text.as_ref())),
            PartType::Html(html) => {
                Some(Cow::Owned(mail_parser::decoders::html::html_to_text(html)))
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

fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    message
        .attachments
        .iter()
        .filter_map(|&id| message.parts.get(id as usize))
        .map(attachment)
        .collect()
}

fn attachment(part: &MessagePart<'_>) -> Attachment {
    let data = part.contents().to_vec();
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
