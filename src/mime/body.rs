//! What mailfeed calls the body of a message: which text and HTML parts
//! make it up (and which mail-parser's reading must give up or take back),
//! joined into the text and HTML bodies. Pure.

use std::borrow::Cow;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

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
pub(super) fn is_demoted_body_text(part: &MessagePart<'_>) -> bool {
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
pub(super) fn move_attached_text_to_attachments(message: &mut Message<'_>) {
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

pub(super) fn text_body(message: &Message<'_>) -> Option<String> {
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

pub(super) fn html_body(message: &Message<'_>) -> Option<String> {
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
