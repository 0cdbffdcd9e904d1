//! MIME decoding: turns the raw bytes of one RFC 5322 message into a [`ParsedMessage`] of
//! owned, UTF-8, database-ready fields (ids, subject, dates, addresses, bodies, attachments).
//!
//! This module is pure: no IO, no SQL, no async, no clock. It never fails and never panics on
//! any input; what it cannot understand it reports in [`ParsedMessage::parse_error`] and keeps
//! whatever it could extract. The MIME grammar itself is `mail-parser`'s; this module decides
//! what mailfeed calls a body and what it calls an attachment.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{HeaderName, MessageParser};
use serde::Serialize;

mod attachments;
mod body;
mod fields;
mod header_block;
mod large;
#[cfg(test)]
mod tests;

pub use header_block::headers_only;
pub use large::decode_base64;

use attachments::{attachments, lines_up};
use body::{html_body, move_attached_text_to_attachments, text_body};
use fields::{addresses, date, id_list, strip_brackets};
use header_block::repair_header_block;

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
