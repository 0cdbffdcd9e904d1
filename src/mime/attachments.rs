//! Every part that is not body text, as an [`Attachment`]: type, name,
//! disposition, decoded bytes and their SHA-256; large base64 parts left in
//! the raw message by [`super::large`] are described by their range. Pure.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::body::is_demoted_body_text;
use super::fields::strip_brackets;
use super::{Attachment, large};

pub(super) fn attachments(message: &mut Message<'_>, elided: &[large::Elided]) -> Vec<Attachment> {
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
pub(super) fn lines_up(skeleton: &[u8], elided: &[large::Elided]) -> bool {
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

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}
