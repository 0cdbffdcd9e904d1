//! Gmail's one-message-many-folders on PostgreSQL, with the rules of
//! `store/gmail.rs`: a message is stored once per account and X-GM-MSGID;
//! every folder and UID it was seen under is a membership; its labels are a
//! set whose changes are `labels` events. Runs on the writer thread inside
//! the transaction that also carries the cursor covering the UIDs, and
//! marks the mailbox written so the commit checks its lease. Two instances
//! storing one X-GM-MSGID at once cannot both keep it: `(account_id,
//! gm_msgid)` is unique, and the later commit fails and is retried.

use std::collections::BTreeSet;

use super::{Pg, PgContext, big};
use crate::imap::UidValidity;
use crate::store::{GmailIds, MailboxId, Sighting, StoreError};

fn account_of(pg: &mut Pg, mailbox: MailboxId) -> Result<i64, StoreError> {
    let st = pg.st("SELECT account_id FROM mailboxes WHERE id = $1")?;
    Ok(pg
        .client
        .query_one(&st, &[&mailbox.0])
        .pg("reading the account of a mailbox")?
        .get(0))
}

fn stored(pg: &mut Pg, account: i64, msgid: u64) -> Result<Option<i64>, StoreError> {
    let st =
        pg.st("SELECT message_id FROM gmail_messages WHERE account_id = $1 AND gm_msgid = $2")?;
    Ok(pg
        .client
        .query_opt(&st, &[&account, &msgid.to_string()])
        .pg("looking up a Gmail message id")?
        .map(|r| r.get(0)))
}

fn add_membership(
    pg: &mut Pg,
    mailbox: MailboxId,
    uv: UidValidity,
    uid: u32,
    message: i64,
) -> Result<(), StoreError> {
    let st = pg.st(
        "INSERT INTO gmail_memberships (mailbox_id, uidvalidity, uid, message_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )?;
    pg.client
        .execute(&st, &[&mailbox.0, &big(uv.0), &big(uid), &message])
        .pg("recording a Gmail folder membership")?;
    Ok(())
}

/// Replaces a message's labels; a change (not the first report) becomes a
/// `labels` event whose detail is the new set, one label per line.
fn set_labels(
    pg: &mut Pg,
    mailbox: MailboxId,
    message: i64,
    labels: &[String],
    first: bool,
) -> Result<bool, StoreError> {
    // Sorted by byte, as SQLite's BTreeSet of the same strings.
    let new: BTreeSet<String> = labels
        .iter()
        .map(|l| {
            super::text(Some(l))
                .map(|t| t.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let st = pg.st("SELECT label FROM gmail_labels WHERE message_id = $1")?;
    let old: BTreeSet<String> = pg
        .client
        .query(&st, &[&message])
        .pg("reading a message's labels")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if old == new {
        return Ok(false);
    }
    let st = pg.st("DELETE FROM gmail_labels WHERE message_id = $1")?;
    pg.client
        .execute(&st, &[&message])
        .pg("replacing a message's labels")?;
    let st = pg.st("INSERT INTO gmail_labels (message_id, label) VALUES ($1, $2)")?;
    for l in &new {
        pg.client
            .execute(&st, &[&message, l])
            .pg("storing a label")?;
    }
    if !first {
        let detail = new
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        let st = pg.st(
            "INSERT INTO events (kind, mailbox_id, message_id, detail) VALUES ('labels', $1, $2, $3)",
        )?;
        pg.client
            .execute(&st, &[&mailbox.0, &message, &detail])
            .pg("recording a label change")?;
    }
    Ok(true)
}

/// Before a fetched message is inserted: when the account already stores
/// it, only its membership and labels are recorded, and true is returned.
pub(crate) fn link_if_stored(
    pg: &mut Pg,
    mailbox: MailboxId,
    uv: UidValidity,
    uid: u32,
    gm: &GmailIds,
) -> Result<bool, StoreError> {
    pg.touch(mailbox);
    let account = account_of(pg, mailbox)?;
    let Some(message) = stored(pg, account, gm.msgid)? else {
        return Ok(false);
    };
    add_membership(pg, mailbox, uv, uid, message)?;
    if let Some(labels) = &gm.labels {
        set_labels(pg, mailbox, message, labels, false)?;
    }
    Ok(true)
}

/// After a fetched message got its row `message`: its ids, its first
/// membership and its labels (no event: the `new` event covers them).
pub(crate) fn record_new(
    pg: &mut Pg,
    mailbox: MailboxId,
    uv: UidValidity,
    uid: u32,
    message: i64,
    gm: &GmailIds,
) -> Result<(), StoreError> {
    pg.touch(mailbox);
    let account = account_of(pg, mailbox)?;
    let st = pg.st(
        "INSERT INTO gmail_messages (message_id, account_id, gm_msgid, gm_thrid)
         VALUES ($1, $2, $3, $4)",
    )?;
    pg.client
        .execute(
            &st,
            &[
                &message,
                &account,
                &gm.msgid.to_string(),
                &gm.thrid.map(|t| t.to_string()),
            ],
        )
        .pg("storing Gmail ids")?;
    add_membership(pg, mailbox, uv, uid, message)?;
    if let Some(labels) = &gm.labels {
        set_labels(pg, mailbox, message, labels, true)?;
    }
    Ok(())
}

/// UIDs of a folder whose messages are stored already: memberships (and
/// label updates) recorded, so the folder's cursor may pass them. Those
/// whose message is not stored are returned, to be fetched.
pub(crate) fn link_sightings(
    pg: &mut Pg,
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
        if !link_if_stored(pg, mailbox, uv, s.uid, &gm)? {
            unstored.push(s.uid);
        }
    }
    Ok(unstored)
}

/// Label reports for stored messages (a CHANGEDSINCE scan): each changed
/// set becomes a `labels` event. Returns how many changed.
pub(crate) fn apply_labels(
    pg: &mut Pg,
    mailbox: MailboxId,
    reports: &[(u64, Vec<String>)],
) -> Result<u64, StoreError> {
    pg.touch(mailbox);
    let account = account_of(pg, mailbox)?;
    let mut changed = 0;
    for (msgid, labels) in reports {
        if let Some(message) = stored(pg, account, *msgid)?
            && set_labels(pg, mailbox, message, labels, false)?
        {
            changed += 1;
        }
    }
    Ok(changed)
}
