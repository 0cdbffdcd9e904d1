//! The SQL of storing one fetched message: its `messages` row (identity,
//! flags and parsed header columns, written once), its raw bytes, its parsed
//! parts ([`super::parsed`]) and its `new` event. Runs on the writer thread,
//! inside the transaction that also carries the cursor covering it. Knows
//! nothing of queues, commits or the search index (filled later by
//! [`super::search`]).

use rusqlite::blob::ZeroBlob;
use rusqlite::{Connection, MAIN_DB, params};

use super::{Context, MailboxId, StoreError};
use crate::imap::{Uid, UidValidity};
use crate::mime::ParsedMessage;

/// A message as fetched, ready to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub mailbox: MailboxId,
    pub uidvalidity: UidValidity,
    pub uid: Uid,
    /// INTERNALDATE in UTC ISO-8601.
    pub internal_date: Option<String>,
    pub flags: Vec<String>,
    pub modseq: Option<u64>,
    /// The size the server reported (RFC822.SIZE), or the bytes received.
    pub size: u64,
    /// Exactly the bytes the server sent for BODY[] (the header block only
    /// when `truncated`).
    pub raw: Vec<u8>,
    pub truncated: bool,
    /// Gmail's ids and labels, when the server offers X-GM-EXT-1: the
    /// message is then stored once per account ([`super::gmail`]).
    pub gmail: Option<super::GmailIds>,
}

/// What is stored besides the message itself, worked out by the parse
/// stage: hashing and the one MIME parse run on a thread of their own,
/// beside both the socket reader and the one writer thread, which is the
/// bottleneck of a sync. For a truncated message `raw` is the header block,
/// so only headers are found.
pub(crate) struct Derived {
    pub(crate) sha256: [u8; 32],
    pub(crate) parsed: ParsedMessage,
}

impl Derived {
    pub(crate) fn of(raw: &[u8]) -> Derived {
        Derived {
            sha256: super::sha256(raw),
            parsed: crate::mime::parse(raw),
        }
    }
}

/// Whether a mailbox holds rows of a generation other than the one being
/// stored, remembered for the open transaction (the write lock keeps it
/// true until the commit). Without one there is nothing an incoming message
/// could supersede, and the lookup below is skipped.
#[derive(Default)]
pub(crate) struct Generations(Option<(MailboxId, UidValidity, bool)>);

impl Generations {
    fn others(
        &mut self,
        c: &Connection,
        mb: MailboxId,
        uv: UidValidity,
    ) -> Result<bool, StoreError> {
        if let Some((m, u, others)) = self.0
            && m == mb
            && u == uv
        {
            return Ok(others);
        }
        let others: bool = c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uidvalidity < ?2)
                     OR EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uidvalidity > ?2)",
            )
            .and_then(|mut s| s.query_row(params![mb.0, uv.0], |r| r.get(0)))
            .doing("looking for earlier generations of the mailbox")?;
        self.0 = Some((mb, uv, others));
        Ok(others)
    }
}

/// Stores `m` with what the parse stage derived from it. A message stored
/// before (same mailbox, UIDVALIDITY and UID) only has its flags updated.
pub(crate) fn insert(
    c: &Connection,
    m: &NewMessage,
    d: &Derived,
    generations: &mut Generations,
) -> Result<(), StoreError> {
    super::limits::count(c, m.mailbox, m.raw.len() as u64)?;
    if let Some(gm) = &m.gmail {
        if super::gmail::link_if_stored(c, m.mailbox, m.uidvalidity, m.uid.0, gm)? {
            return Ok(());
        }
        if let Some(id) = insert_row(c, m, d, None)? {
            super::gmail::record_new(c, m.mailbox, m.uidvalidity, m.uid.0, id, gm)?;
        }
        return Ok(());
    }
    if !generations.others(c, m.mailbox, m.uidvalidity)? {
        return insert_row(c, m, d, None).map(drop);
    }
    // A message already stored under an earlier UIDVALIDITY of this mailbox,
    // with the same Message-ID and bytes, is linked to the row consumers
    // see (not to a hidden row of a generation in between) instead of
    // shown as new.
    let supersedes: Option<i64> = c
        .prepare_cached(
            "SELECT o.id FROM messages o
             WHERE o.mailbox_id = ?1 AND o.sha256 = ?2 AND o.uidvalidity <> ?3
               AND o.message_id IS ?4 AND o.supersedes IS NULL
               AND NOT EXISTS (SELECT 1 FROM messages n
                               WHERE n.supersedes = o.id AND n.uidvalidity = ?3)
             ORDER BY o.id LIMIT 1",
        )
        .and_then(|mut s| {
            let mut rows = s.query(params![
                m.mailbox.0,
                &d.sha256[..],
                m.uidvalidity.0,
                d.parsed.message_id
            ])?;
            rows.next()?.map(|r| r.get(0)).transpose()
        })
        .doing("looking for an earlier copy of the message")?;
    insert_row(c, m, d, supersedes).map(drop)
}

fn insert_row(
    c: &Connection,
    m: &NewMessage,
    d: &Derived,
    supersedes: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let p = &d.parsed;
    let from = p.addresses_with(crate::mime::AddressRole::From).next();
    let join = |ids: &[String]| (!ids.is_empty()).then(|| ids.join(" "));
    // One INSERT with every column, the parsed ones included: the row is
    // written once, not inserted and then updated (which rewrote the record
    // and its index entries a second time).
    let inserted = c
        .prepare_cached(
            "INSERT INTO messages (mailbox_id, uidvalidity, uid, internal_date, size, flags,
                                   modseq, sha256, truncated, message_id, subject, supersedes,
                                   sent_at, date_raw, in_reply_to, reference_ids, from_name,
                                   from_address, attachment_count, parse_error, parsed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                     ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT (mailbox_id, uidvalidity, uid) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                m.mailbox.0,
                m.uidvalidity.0,
                m.uid.0,
                m.internal_date,
                i64::try_from(m.size).unwrap_or(i64::MAX),
                m.flags.join(" "),
                m.modseq.and_then(|v| i64::try_from(v).ok()),
                &d.sha256[..],
                m.truncated,
                p.message_id,
                p.subject,
                supersedes,
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
        .doing("storing a message")?;
    if inserted == 0 {
        // Stored before, by a pass that was cut off before its cursor moved.
        // The bytes are the same; the flags may have changed since, and no
        // later change report covers them (they are above the old cursor).
        let flags = [(m.uid.0, m.flags.clone())];
        super::changes::apply_flags(c, m.mailbox, m.uidvalidity.0, &flags)?;
        return Ok(None);
    }
    let id = c.last_insert_rowid();
    // A bound blob would be copied twice more inside SQLite (the bound value
    // and the record built from it), so a 50 MB message would briefly cost
    // 150 MB. Instead reserve the room and write the bytes straight into the
    // pages through the incremental blob API.
    c.prepare_cached("INSERT INTO message_raw (message_id, raw) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, ZeroBlob(m.raw.len() as u64)]))
        .and_then(|_| c.blob_open(MAIN_DB, c"message_raw", c"raw", id, false))
        .and_then(|mut blob| blob.write_at(&m.raw, 0))
        .doing("storing the raw message")?;
    super::parsed::write(c, id, p, &m.raw)?;
    match supersedes {
        None => {
            c.prepare_cached(
                "INSERT INTO events (kind, mailbox_id, message_id) VALUES ('new', ?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![m.mailbox.0, id]))
            .doing("recording the new-message event")?;
        }
        Some(visible) => {
            super::changes::reconcile_refound(c, m.mailbox, id, m.uid.0, visible, &m.flags)?;
        }
    }
    Ok(Some(id))
}
