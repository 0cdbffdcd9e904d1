//! Gmail's one-message-many-folders, in SQL: a message is stored once per
//! account and X-GM-MSGID; every folder and UID it was seen under is a
//! membership; its labels are a set whose changes are `labels` events.
//! Runs on the writer thread, inside the transaction that also carries the
//! cursor covering the UIDs. Knows nothing of IMAP beyond the ids.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Context, MailboxId, StoreError};
use crate::imap::UidValidity;

/// What Gmail says about one message besides its bytes (X-GM-EXT-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailIds {
    pub msgid: u64,
    pub thrid: Option<u64>,
    /// Decoded labels, as Gmail reported them (`None`: not asked).
    pub labels: Option<Vec<String>>,
}

/// One UID of a folder whose message is (or is about to be) stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub uid: u32,
    pub msgid: u64,
    pub labels: Option<Vec<String>>,
}

fn account_of(c: &Connection, mailbox: MailboxId) -> Result<i64, StoreError> {
    c.prepare_cached("SELECT account_id FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![mailbox.0], |r| r.get(0)))
        .doing("reading the account of a mailbox")
}

fn stored(c: &Connection, account: i64, msgid: u64) -> Result<Option<i64>, StoreError> {
    c.prepare_cached(
        "SELECT message_id FROM gmail_messages WHERE account_id = ?1 AND gm_msgid = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![account, msgid.to_string()], |r| r.get(0))
            .optional()
    })
    .doing("looking up a Gmail message id")
}

fn add_membership(
    c: &Connection,
    mailbox: MailboxId,
    uv: UidValidity,
    uid: u32,
    message: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO gmail_memberships (mailbox_id, uidvalidity, uid, message_id)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![mailbox.0, uv.0, uid, message]))
    .doing("recording a Gmail folder membership")?;
    Ok(())
}

/// Replaces a message's labels; a change (not the first report) becomes a
/// `labels` event whose detail is the new set, one label per line.
fn set_labels(
    c: &Connection,
    mailbox: MailboxId,
    message: i64,
    labels: &[String],
    first: bool,
) -> Result<bool, StoreError> {
    let new: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
    let old: BTreeSet<String> = c
        .prepare_cached("SELECT label FROM gmail_labels WHERE message_id = ?1")
        .and_then(|mut s| {
            s.query_map(params![message], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .doing("reading a message's labels")?;
    if old.iter().map(String::as_str).eq(new.iter().copied()) {
        return Ok(false);
    }
    c.prepare_cached("DELETE FROM gmail_labels WHERE message_id = ?1")
        .and_then(|mut s| s.execute(params![message]))
        .doing("replacing a message's labels")?;
    for l in &new {
        c.prepare_cached("INSERT INTO gmail_labels (message_id, label) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![message, l]))
            .doing("storing a label")?;
    }
    if !first {
        let detail = new.iter().copied().collect::<Vec<_>>().join("\n");
        c.prepare_cached(
            "INSERT INTO events (kind, mailbox_id, message_id, detail) VALUES ('labels', ?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![mailbox.0, message, detail]))
        .doing("recording a label change")?;
    }
    Ok(true)
}

/// Before a fetched message is inserted: when the account already stores
/// it (fetched from another folder, perhaps by another connection), only
/// its membership and labels are recorded, and true is returned.
pub(crate) fn link_if_stored(
    c: &Connection,
    mailbox: MailboxId,
    uv: UidValidity,
    uid: u32,
    gm: &GmailIds,
) -> Result<bool, StoreError> {
    let account = account_of(c, mailbox)?;
    let Some(message) = stored(c, account, gm.msgid)? else {
        return Ok(false);
    };
    add_membership(c, mailbox, uv, uid, message)?;
    if let Some(labels) = &gm.labels {
        set_labels(c, mailbox, message, labels, false)?;
    }
    Ok(true)
}

/// After a fetched message got its row `message`: its ids, its first
/// membership and its labels (no event: the `new` event covers them).
pub(crate) fn record_new(
    c: &Connection,
    mailbox: MailboxId,
    uv: UidValidity,
    uid: u32,
    message: i64,
    gm: &GmailIds,
) -> Result<(), StoreError> {
    let account = account_of(c, mailbox)?;
    c.prepare_cached(
        "INSERT INTO gmail_messages (message_id, account_id, gm_msgid, gm_thrid)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            message,
            account,
            gm.msgid.to_string(),
            gm.thrid.map(|t| t.to_string())
        ])
    })
    .doing("storing Gmail ids")?;
    add_membership(c, mailbox, uv, uid, message)?;
    if let Some(labels) = &gm.labels {
        set_labels(c, mailbox, message, labels, true)?;
    }
    Ok(())
}

/// UIDs of a folder whose messages are stored already: memberships (and
/// label updates) recorded, so the folder's cursor may pass them. Those
/// whose message is not stored (anymore) are returned, to be fetched.
pub(crate) fn link_sightings(
    c: &Connection,
    mailbox: MailboxId,
    uv: UidValidity,
    sightings: &[Sighting],
) -> Result<Vec<u32>, StoreError> {
    let mut unstored = Vec::new();
    for s in sightings {
        let gm = GmailIds {
            msgid: s.msgid,
            thrid: None,
            labels: s.labels.clone(),
        };
        if !link_if_stored(c, mailbox, uv, s.uid, &gm)? {
            unstored.push(s.uid);
        }
    }
    Ok(unstored)
}

/// Label reports for stored messages (a CHANGEDSINCE scan): each changed
/// set becomes a `labels` event. Returns how many changed.
pub(crate) fn apply_labels(
    c: &Connection,
    mailbox: MailboxId,
    reports: &[(u64, Vec<String>)],
) -> Result<u64, StoreError> {
    let account = account_of(c, mailbox)?;
    let mut changed = 0;
    for (msgid, labels) in reports {
        if let Some(message) = stored(c, account, *msgid)?
            && set_labels(c, mailbox, message, labels, false)?
        {
            changed += 1;
        }
    }
    Ok(changed)
}
