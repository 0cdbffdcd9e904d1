//! Storing one fetched message on PostgreSQL: its row, raw bytes (`bytea`,
//! exact), parsed parts, search document and `new` event, in the writer's
//! open transaction (with the cursor that covers it). The same rules as
//! `store/messages.rs`, including the link to an earlier generation's row
//! and Gmail's one row per X-GM-MSGID (`gmail.rs`).

use super::{Pg, PgContext, big, text};
use crate::store::StoreError;
use crate::store::messages::{Derived, NewMessage};

pub(crate) fn insert(pg: &mut Pg, m: &NewMessage, d: &Derived) -> Result<(), StoreError> {
    pg.touch(m.mailbox);
    super::limits::count(pg, m.mailbox, m.raw.len() as u64)?;
    // A Gmail message the account stores already (fetched from another
    // folder) gets a membership, not a second row.
    if let Some(gm) = &m.gmail
        && super::gmail::link_if_stored(pg, m.mailbox, m.uidvalidity, m.uid.0, gm)?
    {
        return Ok(());
    }
    let p = &d.parsed;
    // Gmail's messages are one row per X-GM-MSGID, never linked by bytes.
    let others = m.gmail.is_none() && other_generations(pg, m.mailbox.0, big(m.uidvalidity.0))?;
    let supersedes: Option<i64> = if others {
        let st = pg.st("SELECT o.id FROM messages o
             WHERE o.mailbox_id = $1 AND o.sha256 = $2 AND o.uidvalidity <> $3
               AND o.message_id IS NOT DISTINCT FROM $4 AND o.supersedes IS NULL
               AND NOT EXISTS (SELECT 1 FROM messages n
                               WHERE n.supersedes = o.id AND n.uidvalidity = $3)
             ORDER BY o.id LIMIT 1")?;
        pg.client
            .query_opt(
                &st,
                &[
                    &m.mailbox.0,
                    &&d.sha256[..],
                    &big(m.uidvalidity.0),
                    &text(p.message_id.as_deref()),
                ],
            )
            .pg("looking for an earlier copy of the message")?
            .map(|r| r.get(0))
    } else {
        None
    };
    let from = p.addresses_with(crate::mime::AddressRole::From).next();
    let join = |ids: &[String]| (!ids.is_empty()).then(|| ids.join(" "));
    let st = pg.st(
        "INSERT INTO messages (mailbox_id, uidvalidity, uid, internal_date, size, flags,
                               modseq, sha256, truncated, message_id, subject, supersedes,
                               sent_at, date_raw, in_reply_to, reference_ids, from_name,
                               from_address, attachment_count, parse_error, parsed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 $13, $14, $15, $16, $17, $18, $19, $20, mailfeed_now())
         ON CONFLICT (mailbox_id, uidvalidity, uid) DO NOTHING
         RETURNING id",
    )?;
    let row = pg
        .client
        .query_opt(
            &st,
            &[
                &m.mailbox.0,
                &big(m.uidvalidity.0),
                &big(m.uid.0),
                &m.internal_date,
                &i64::try_from(m.size).unwrap_or(i64::MAX),
                &m.flags.join(" "),
                &m.modseq.and_then(|v| i64::try_from(v).ok()),
                &&d.sha256[..],
                &i32::from(m.truncated),
                &text(p.message_id.as_deref()),
                &text(p.subject.as_deref()),
                &supersedes,
                &text(p.sent_at.as_deref()),
                &text(p.date_raw.as_deref()),
                &text(join(&p.in_reply_to).as_deref()),
                &text(join(&p.references).as_deref()),
                &text(from.and_then(|a| a.name.as_deref())),
                &text(from.and_then(|a| a.address.as_deref())),
                &(p.attachments.len() as i32),
                &text(p.parse_error.as_deref()),
            ],
        )
        .pg("storing a message")?;
    let Some(row) = row else {
        // Stored before by a pass cut off before its cursor moved: only the
        // flags may have changed since.
        let flags = [(m.uid.0, m.flags.clone())];
        super::changes::apply_flags(pg, m.mailbox, m.uidvalidity.0, &flags)?;
        return Ok(());
    };
    let id: i64 = row.get(0);
    let st = pg.st("INSERT INTO message_raw (message_id, raw) VALUES ($1, $2)")?;
    pg.client
        .execute(&st, &[&id, &m.raw.as_slice()])
        .pg("storing the raw message")?;
    write_parsed(pg, id, d, &m.raw)?;
    if let Some(gm) = &m.gmail {
        super::gmail::record_new(pg, m.mailbox, m.uidvalidity, m.uid.0, id, gm)?;
    }
    match supersedes {
        None => {
            let st =
                pg.st("INSERT INTO events (kind, mailbox_id, message_id) VALUES ('new', $1, $2)")?;
            pg.client
                .execute(&st, &[&m.mailbox.0, &id])
                .pg("recording the new-message event")?;
        }
        Some(visible) => {
            super::changes::reconcile_refound(pg, m.mailbox, id, m.uid.0, visible, &m.flags)?;
        }
    }
    Ok(())
}

/// Whether `mailbox` holds rows of a UIDVALIDITY other than `uidvalidity`,
/// read once per transaction. Two range probes of the unique index: a
/// `uidvalidity <> $2` walked every row of the current generation, once per
/// message, which made a first sync quadratic in the folder's size.
fn other_generations(pg: &mut Pg, mailbox: i64, uidvalidity: i64) -> Result<bool, StoreError> {
    if let Some((m, u, others)) = pg.generations
        && m == mailbox
        && u == uidvalidity
    {
        return Ok(others);
    }
    let st = pg.st(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1 AND uidvalidity < $2)
             OR EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1 AND uidvalidity > $2)",
    )?;
    let others: bool = pg
        .client
        .query_one(&st, &[&mailbox, &uidvalidity])
        .pg("looking for earlier generations of the mailbox")?
        .get(0);
    pg.generations = Some((mailbox, uidvalidity, others));
    Ok(others)
}

/// Addresses, bodies, attachments (contents once per SHA-256) and the
/// search document of message row `id`, parsed from `raw`.
fn write_parsed(pg: &mut Pg, id: i64, d: &Derived, raw: &[u8]) -> Result<(), StoreError> {
    let p = &d.parsed;
    // One statement for all of a message's addresses (a round trip each
    // was most of a first sync's statements).
    if !p.addresses.is_empty() {
        let st = pg.st(
            "INSERT INTO addresses (message_id, role, position, name, address)
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[])",
        )?;
        let roles: Vec<&str> = p.addresses.iter().map(|a| a.role.as_str()).collect();
        let positions: Vec<i32> = p.addresses.iter().map(|a| a.position as i32).collect();
        let names: Vec<Option<std::borrow::Cow<'_, str>>> = p
            .addresses
            .iter()
            .map(|a| text(a.name.as_deref()))
            .collect();
        let addresses: Vec<Option<std::borrow::Cow<'_, str>>> = p
            .addresses
            .iter()
            .map(|a| text(a.address.as_deref()))
            .collect();
        pg.client
            .execute(&st, &[&id, &roles, &positions, &names, &addresses])
            .pg("storing addresses")?;
    }
    if p.text_body.is_some() || p.html_body.is_some() {
        let st = pg.st("INSERT INTO bodies (message_id, text, html) VALUES ($1, $2, $3)")?;
        pg.client
            .execute(
                &st,
                &[
                    &id,
                    &text(p.text_body.as_deref()),
                    &text(p.html_body.as_deref()),
                ],
            )
            .pg("storing the message bodies")?;
    }
    let blob = pg.st(
        "INSERT INTO attachment_blobs (sha256, size, data) VALUES ($1, $2, $3)
         ON CONFLICT (sha256) DO NOTHING",
    )?;
    let known = pg.st("SELECT 1 FROM attachment_blobs WHERE sha256 = $1")?;
    let row = pg.st(
        "INSERT INTO attachments (message_id, position, filename, content_type,
                                  content_id, disposition, size, sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?;
    for (i, a) in p.attachments.iter().enumerate() {
        let have = pg
            .client
            .query_opt(&known, &[&a.sha256])
            .pg("looking up attachment contents")?
            .is_some();
        if !have {
            let data = contents(a, raw)?;
            pg.client
                .execute(&blob, &[&a.sha256, &(a.size as i64), &&*data])
                .pg("storing attachment contents")?;
        }
        pg.client
            .execute(
                &row,
                &[
                    &id,
                    &(i as i32),
                    &text(a.filename.as_deref()),
                    &text(Some(&a.content_type)),
                    &text(a.content_id.as_deref()),
                    &text(a.disposition.as_deref()),
                    &(a.size as i64),
                    &a.sha256,
                ],
            )
            .pg("storing attachments")?;
    }
    let people = |roles: &[&str]| {
        p.addresses
            .iter()
            .filter(|a| roles.contains(&a.role.as_str()))
            .map(|a| {
                format!(
                    "{} {}",
                    a.name.as_deref().unwrap_or(""),
                    a.address.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let files = p
        .attachments
        .iter()
        .filter_map(|a| a.filename.as_deref())
        .collect::<Vec<_>>()
        .join("\n");
    // Weighted like the FTS5 columns' order of importance: subject and
    // people (A, B) above body and file names (C, D).
    let st = pg.st(
        "INSERT INTO message_search (message_id, document) VALUES ($1,
             setweight(to_tsvector('simple', coalesce($2, '')), 'A') ||
             setweight(to_tsvector('simple', $3), 'B') ||
             setweight(to_tsvector('simple', $4), 'B') ||
             setweight(to_tsvector('simple', coalesce($5, '')), 'C') ||
             setweight(to_tsvector('simple', $6), 'D'))",
    )?;
    // A tsvector holds at most 1 MB of positions; very long bodies are
    // indexed by their first 256 KiB.
    let body = p.text_body.as_deref().map(|b| {
        let mut end = b.len().min(256 * 1024);
        while !b.is_char_boundary(end) {
            end -= 1;
        }
        &b[..end]
    });
    pg.client
        .execute(
            &st,
            &[
                &id,
                &text(p.subject.as_deref()),
                &text(Some(&people(&["from", "sender"]))),
                &text(Some(&people(&["to", "cc", "bcc"]))),
                &text(body),
                &text(Some(&files)),
            ],
        )
        .pg("indexing the message for search")?;
    Ok(())
}

/// An attachment's decoded bytes: those the parse stage kept, or, for a
/// large base64 part it left in the raw message, decoded from there now.
/// A `bytea` parameter is one value, so the decoded copy is held whole for
/// the insert; the queue's byte budget counts a decoded copy beside each
/// raw message, so this stays within it.
fn contents<'a>(
    a: &'a crate::mime::Attachment,
    raw: &[u8],
) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
    let Some(range) = a.in_raw.clone() else {
        return Ok(std::borrow::Cow::Borrowed(&a.data));
    };
    let mismatch = || StoreError::AttachmentMismatch;
    let encoded = raw.get(range).ok_or_else(mismatch)?;
    let mut out = Vec::with_capacity(usize::try_from(a.size).map_err(|_| mismatch())?);
    let written = crate::mime::decode_base64(encoded, |piece| {
        if (out.len() + piece.len()) as u64 > a.size {
            return Err(mismatch());
        }
        out.extend_from_slice(piece);
        Ok(())
    })?;
    if written != Some(a.size) {
        return Err(mismatch());
    }
    Ok(std::borrow::Cow::Owned(out))
}
