//! Writes what [`crate::mime::parse`] found in a message beside its row:
//! addresses, bodies and attachments (bytes stored once per distinct
//! SHA-256). Runs on the writer thread inside the transaction that stores the
//! raw row, so a message is never visible without its parsed form. The
//! full-text index is not written here: [`super::search`] fills it later from
//! these tables.

use std::ops::Range;

use rusqlite::blob::{Blob, ZeroBlob};
use rusqlite::{Connection, MAIN_DB, params};

use super::{Context, StoreError};
use crate::mime::ParsedMessage;

/// Stores the addresses, bodies and attachments of `p` for the message
/// row `id` (its header columns are in the row itself, see
/// [`super::messages`]).
/// `raw` is the message `p` was parsed from: a large attachment's bytes are
/// decoded from it in pieces ([`crate::mime::Attachment::in_raw`]).
pub(crate) fn write(
    c: &Connection,
    id: i64,
    p: &ParsedMessage,
    raw: &[u8],
) -> Result<(), StoreError> {
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
                let len = match a.in_raw {
                    Some(_) => a.size,
                    None => a.data.len() as u64,
                };
                let mut b = blob
                    .execute(params![a.sha256, a.size as i64, ZeroBlob(len)])
                    .and_then(|_| {
                        c.blob_open(
                            MAIN_DB,
                            c"attachment_blobs",
                            c"data",
                            c.last_insert_rowid(),
                            false,
                        )
                    })
                    .doing("storing attachment contents")?;
                match &a.in_raw {
                    None => b
                        .write_at(&a.data, 0)
                        .doing("storing attachment contents")?,
                    Some(range) => write_decoded(&mut b, raw, range.clone(), len)?,
                }
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

    Ok(())
}

/// Decodes the base64 text at `range` of `raw` in pieces into `blob`
/// (reserved at the decoded length the parse stage found), so the decoded
/// attachment is never held whole.
fn write_decoded(
    blob: &mut Blob<'_>,
    raw: &[u8],
    range: Range<usize>,
    len: u64,
) -> Result<(), StoreError> {
    let mismatch = || StoreError::AttachmentMismatch;
    let encoded = raw.get(range).ok_or_else(mismatch)?;
    let mut at = 0usize;
    let written = crate::mime::decode_base64(encoded, |piece| {
        if (at + piece.len()) as u64 > len {
            return Err(mismatch());
        }
        blob.write_at(piece, at)
            .doing("storing attachment contents")?;
        at += piece.len();
        Ok(())
    })?;
    if written != Some(len) {
        return Err(mismatch());
    }
    Ok(())
}
