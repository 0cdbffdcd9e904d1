//! Writes what [`crate::mime::parse`] found in a message: the decoded header
//! columns of its `messages` row, its addresses, bodies and attachments
//! (bytes stored once per distinct SHA-256), and its full-text index entry.
//! Runs on the writer thread inside the transaction that stores the raw row,
//! so a message is never visible without its parsed form.

use rusqlite::blob::ZeroBlob;
use rusqlite::{Connection, MAIN_DB, params};

use super::{Context, StoreError};
use crate::mime::ParsedMessage;

/// Stores `p` for the message row `id`. `indexed` is false for a row that
/// re-appeared under a new UIDVALIDITY (it is not in the feed, so search
/// must not return it).
pub(crate) fn write(
    c: &Connection,
    id: i64,
    p: &ParsedMessage,
    indexed: bool,
) -> Result<(), StoreError> {
    let from = p.addresses_with(crate::mime::AddressRole::From).next();
    let join = |ids: &[String]| (!ids.is_empty()).then(|| ids.join(" "));
    c.prepare_cached(
        "UPDATE messages SET sent_at = ?2, date_raw = ?3, in_reply_to = ?4, reference_ids = ?5,
                from_name = ?6, from_address = ?7, attachment_count = ?8, parse_error = ?9,
                parsed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            p.sent_at,
            p.date_raw,
            join(&p.in_reply_to),
            join(&p.references),
            from.and_then(|a| a.name.as_deref()),
            from.and_then(|a| a.address.as_deref()),
            p.attachments.len() as i64,
            p.parse_error,
        ])
    })
    .doing("storing the parsed header fields")?;

    if !p.addresses.is_empty() {
        let mut st = c
            .prepare_cached(
                "INSERT INTO addresses (message_id, role, position, name, address)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .doing("storing addresses")?;
        for a in &p.addresses {
            st.execute(params![id, a.role.as_str(), a.position, a.name, a.address])
                .doing("storing addresses")?;
        }
    }

    if p.text_body.is_some() || p.html_body.is_some() {
        c.prepare_cached("INSERT INTO bodies (message_id, text, html) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![id, p.text_body, p.html_body]))
            .doing("storing the message bodies")?;
    }

    if !p.attachments.is_empty() {
        let mut known = c
            .prepare_cached("SELECT 1 FROM attachment_blobs WHERE sha256 = ?1")
            .doing("looking up attachment contents")?;
        let mut blob = c
            .prepare_cached("INSERT INTO attachment_blobs (sha256, size, data) VALUES (?1, ?2, ?3)")
            .doing("storing attachment contents")?;
        let mut row = c
            .prepare_cached(
                "INSERT INTO attachments (message_id, position, filename, content_type,
                                          content_id, disposition, size, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .doing("storing attachments")?;
        for (i, a) in p.attachments.iter().enumerate() {
            // Checked first so the bytes of a known attachment are not even
            // handed to SQLite.
            if !known
                .exists(params![a.sha256])
                .doing("looking up attachment contents")?
            {
                // Through the incremental blob API, as for the raw message: a
                // bound blob would be copied twice inside SQLite.
                blob.execute(params![
                    a.sha256,
                    a.size as i64,
                    ZeroBlob(a.data.len() as u64)
                ])
                .and_then(|_| {
                    c.blob_open(
                        MAIN_DB,
                        c"attachment_blobs",
                        c"data",
                        c.last_insert_rowid(),
                        false,
                    )
                })
                .and_then(|mut b| b.write_at(&a.data, 0))
                .doing("storing attachment contents")?;
            }
            row.execute(params![
                id,
                i as i64,
                a.filename,
                a.content_type,
                a.content_id,
                a.disposition,
                a.size as i64,
                a.sha256,
            ])
            .doing("storing attachments")?;
        }
    }

    if indexed {
        let (sender, recipients) = search_addresses(p);
        c.prepare_cached(
            "INSERT INTO message_search (rowid, subject, sender, recipients, body, attachments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                p.subject,
                sender,
                recipients,
                p.text_body,
                (!p.attachments.is_empty()).then(|| p.attachment_names()),
            ])
        })
        .doing("indexing the message for search")?;
    }
    Ok(())
}

/// Sender and recipient text for the index, as `message_search_source`
/// renders it (the two must give the same tokens, or FTS5 `delete` and
/// `rebuild` would disagree with what was inserted).
fn search_addresses(p: &ParsedMessage) -> (Option<String>, Option<String>) {
    use crate::mime::AddressRole::*;
    let render = |roles: &[crate::mime::AddressRole]| {
        let lines: Vec<String> = p
            .addresses
            .iter()
            .filter(|a| roles.contains(&a.role))
            .map(|a| {
                format!(
                    "{} {}",
                    a.name.as_deref().unwrap_or(""),
                    a.address.as_deref().unwrap_or("")
                )
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    };
    (render(&[From, Sender]), render(&[To, Cc, Bcc]))
}
