//! The action ledger on PostgreSQL: the same rows, states and `action`
//! events as SQLite's (`store::actions`), written on the writer's
//! connection inside its transaction, so each write for an account passes
//! the writer's fence check (`lease::check`) in the transaction that makes
//! it. [`confirm`] is the check before a command goes to the server: the
//! lease is this instance's and far from running out, or, for an instance
//! without leases (`sync`), no live instance holds it. Must not: decide
//! what to do, or talk IMAP.

use std::time::Duration;

use super::{Pg, PgContext, big, small};
use crate::imap::{UidSet, UidValidity};
use crate::store::actions::{ActionKind, MailboxAction, OpenAction, Outcome};
use crate::store::{MailboxId, StoreError};

/// Records the mailbox's `after_store` action (or none).
pub(crate) fn set_mailbox_action(
    pg: &mut Pg,
    mailbox: MailboxId,
    action: MailboxAction,
) -> Result<(), StoreError> {
    pg.touch(mailbox);
    match action {
        None => {
            let st = pg.st("DELETE FROM mailbox_actions WHERE mailbox_id = $1")?;
            pg.client
                .execute(&st, &[&mailbox.0])
                .pg("clearing the mailbox's action")?
        }
        Some((kind, target)) => {
            let st = pg.st(
                "INSERT INTO mailbox_actions (mailbox_id, kind, target) VALUES ($1, $2, $3)
                 ON CONFLICT (mailbox_id) DO UPDATE SET kind = excluded.kind, target = excluded.target",
            )?;
            pg.client
                .execute(&st, &[&mailbox.0, &kind.as_str(), &target])
                .pg("recording the mailbox's action")?
        }
    };
    Ok(())
}

/// The commit that ends this transaction waits until its WAL (and so every
/// earlier commit's) is flushed, whatever the server's or the URL's
/// `synchronous_commit` says: the durable barrier, as SQLite's FULL commit.
fn durable_commit(pg: &mut Pg) -> Result<(), StoreError> {
    pg.client
        .batch_execute("SET LOCAL synchronous_commit = on")
        .pg("asking for a durable commit")
}

/// Marks the mailbox's pending actions whose message and covering cursor
/// are in (or before) this transaction; returns how many.
pub(crate) fn mark_durable(pg: &mut Pg, mailbox: MailboxId) -> Result<usize, StoreError> {
    pg.touch(mailbox);
    durable_commit(pg)?;
    let st = pg.st("UPDATE actions a SET durable_at = mailfeed_now()
         FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
         WHERE m.id = a.message_id AND a.state = 'pending' AND a.durable_at IS NULL
           AND m.mailbox_id = $1 AND m.uidvalidity = b.uidvalidity AND m.uid <= b.last_uid")?;
    let n = pg
        .client
        .execute(&st, &[&mailbox.0])
        .pg("marking actions durable")?;
    Ok(n as usize)
}

/// Ends, as failed, the open actions that may no longer run (see
/// `Ledger::cancel_stale`); returns how many.
pub(crate) fn cancel_stale(
    pg: &mut Pg,
    mailbox: MailboxId,
    keep: MailboxAction,
    delete_after: bool,
) -> Result<usize, StoreError> {
    let kind = keep.as_ref().map(|(k, _)| k.as_str());
    let target = keep.as_ref().and_then(|(_, t)| t.clone());
    let st = pg.st(
        "SELECT a.id, CASE
            WHEN m.uidvalidity <> b.uidvalidity THEN 'the folder''s UIDVALIDITY changed; the UID no longer names this message'
            ELSE 'no longer configured' END
         FROM actions a JOIN messages m ON m.id = a.message_id
         JOIN mailboxes b ON b.id = m.mailbox_id
         WHERE m.mailbox_id = $1 AND a.state IN ('pending', 'copying', 'copied') AND (
            m.uidvalidity <> b.uidvalidity
            OR (a.reason = 'delete_after' AND NOT $4::boolean)
            OR (a.reason = 'after_store' AND a.state = 'pending'
                AND (a.kind IS DISTINCT FROM $2::text OR a.target IS DISTINCT FROM $3::text)))",
    )?;
    let stale: Vec<(i64, String)> = pg
        .client
        .query(&st, &[&mailbox.0, &kind, &target, &delete_after])
        .pg("finding stale actions")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (id, why) in &stale {
        record_one(pg, mailbox, *id, &Outcome::Failed(why.clone()))?;
    }
    Ok(stale.len())
}

/// Up to `limit` actions of the mailbox that may run now, by UID.
pub(crate) fn open_actions(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: UidValidity,
    limit: u32,
) -> Result<Vec<OpenAction>, StoreError> {
    let st = pg.st(
        "SELECT a.id, m.uid, a.kind, a.target, a.reason, a.state = 'copied',
                m.expunged_at IS NOT NULL, a.state = 'copying', m.message_id
         FROM actions a JOIN messages m ON m.id = a.message_id
         WHERE m.mailbox_id = $1 AND m.uidvalidity = $2
           AND a.state IN ('pending', 'copying', 'copied') AND a.durable_at IS NOT NULL
         ORDER BY m.uid, a.id LIMIT $3",
    )?;
    let rows = pg
        .client
        .query(&st, &[&mailbox.0, &big(uidvalidity.0), &i64::from(limit)])
        .pg("reading open actions")?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(OpenAction {
                id: r.get(0),
                uid: small(r.get(1)),
                kind: ActionKind::parse(r.get(2))?,
                target: r.get(3),
                reason: r.get(4),
                copied: r.get(5),
                gone: r.get(6),
                copying: r.get(7),
                message_id: r.get(8),
            })
        })
        .collect())
}

/// Records outcomes, with an `action` event for each that ended, in a
/// durable commit (a `copying` or `copied` state must survive a crash of
/// the database server before the command it announces is sent).
pub(crate) fn record(
    pg: &mut Pg,
    mailbox: MailboxId,
    outcomes: &[(i64, Outcome)],
) -> Result<(), StoreError> {
    durable_commit(pg)?;
    for (id, o) in outcomes {
        record_one(pg, mailbox, *id, o)?;
    }
    Ok(())
}

fn record_one(pg: &mut Pg, mailbox: MailboxId, id: i64, o: &Outcome) -> Result<(), StoreError> {
    pg.touch(mailbox);
    let (state, result) = match o {
        Outcome::Done(r) => ("done", Some(r.as_str())),
        Outcome::Failed(r) => ("failed", Some(r.as_str())),
        Outcome::Copied => ("copied", None),
        Outcome::Copying => ("copying", None),
    };
    let result = super::text(result);
    let st = pg.st(
        "UPDATE actions SET state = $2, result = coalesce($3, result),
             done_at = CASE WHEN $2 IN ('done', 'failed') THEN mailfeed_now() END
         WHERE id = $1 AND state IN ('pending', 'copying', 'copied')
         RETURNING message_id, kind, target, reason, state, result",
    )?;
    let row = pg
        .client
        .query_opt(&st, &[&id, &state, &result.as_deref()])
        .pg("recording an action's outcome")?;
    let Some(row) = row else { return Ok(()) };
    if !matches!(o, Outcome::Done(_) | Outcome::Failed(_)) {
        return Ok(());
    }
    let message: i64 = row.get(0);
    let detail = event_detail(row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    let st = pg.st(
        "INSERT INTO events (kind, mailbox_id, message_id, detail) VALUES ('action', $1, $2, $3)",
    )?;
    pg.client
        .execute(&st, &[&mailbox.0, &message, &detail])
        .pg("recording an action event")?;
    Ok(())
}

/// The `action` event's detail, byte for byte as SQLite's `json_object`
/// writes it (keys in this order, no spaces).
fn event_detail(
    action: &str,
    target: Option<&str>,
    reason: &str,
    state: &str,
    result: Option<&str>,
) -> String {
    let j = |v: Option<&str>| serde_json::to_string(&v).unwrap_or_else(|_| "null".into());
    format!(
        "{{\"action\":{},\"target\":{},\"reason\":{},\"state\":{},\"result\":{}}}",
        j(Some(action)),
        j(target),
        j(Some(reason)),
        j(Some(state)),
        j(result)
    )
}

/// Queues `delete_after` deletions (see `Ledger::queue_expiry`); returns
/// how many were queued.
pub(crate) fn queue_expiry(
    pg: &mut Pg,
    mailbox: MailboxId,
    uidvalidity: UidValidity,
    uids: &UidSet,
    before: &str,
) -> Result<usize, StoreError> {
    pg.touch(mailbox);
    let st = pg.st("INSERT INTO actions (message_id, kind, reason)
         SELECT m.id, 'delete', 'delete_after'
         FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
         WHERE m.mailbox_id = $1 AND m.uidvalidity = $2
           AND b.uidvalidity = $2 AND m.uid <= b.last_uid
           AND m.uid BETWEEN $3 AND $4 AND m.expunged_at IS NULL
           AND m.internal_date IS NOT NULL AND m.internal_date < $5
         ON CONFLICT (message_id, kind) DO NOTHING")?;
    let mut n = 0;
    for &(first, last) in uids.ranges() {
        n += pg
            .client
            .execute(
                &st,
                &[
                    &mailbox.0,
                    &big(uidvalidity.0),
                    &big(first),
                    &big(last),
                    &before,
                ],
            )
            .pg("queueing expired messages for deletion")?;
    }
    Ok(n as usize)
}

/// Whether commands may go to the mailbox's server now. With leases: this
/// instance holds the account's lease under the fence it claimed, and the
/// lease has more than a third of its period left, so a command sent now
/// ends well before another instance could claim it (renewals every third
/// of the period keep it there). Without leases (`sync`): no live
/// instance holds the account's lease. `Err` names who holds it.
pub(crate) fn confirm(pg: &mut Pg, mailbox: MailboxId) -> Result<(), StoreError> {
    let margin = pg
        .leases
        .as_ref()
        .map_or(Duration::ZERO, |b| b.period() / 3)
        .as_secs_f64();
    let st = pg.st("SELECT a.name, l.owner, coalesce(l.fence, 0),
                coalesce(l.expires_at > now() + $2 * interval '1 second', false)
         FROM mailboxes m JOIN accounts a ON a.id = m.account_id
         LEFT JOIN leases l ON l.account = a.name
         WHERE m.id = $1")?;
    let row = pg
        .client
        .query_one(&st, &[&mailbox.0, &margin])
        .pg("checking the lease before acting")?;
    let (account, holder, fence, live): (String, Option<String>, i64, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    match &pg.leases {
        Some(book) => {
            let ours =
                holder.as_deref() == Some(book.owner()) && book.fence(&account) == Some(fence);
            match (ours, live) {
                (true, true) => Ok(()),
                (true, false) => Err(StoreError::LeaseRunningOut { account }),
                (false, _) => Err(StoreError::LeaseLost {
                    account,
                    holder: holder.unwrap_or_else(|| "nobody".into()),
                    instance: book.owner().to_owned(),
                }),
            }
        }
        None => match holder {
            Some(holder) if live => Err(StoreError::LeaseHeld { account, holder }),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_detail_is_sqlites_json_object() {
        assert_eq!(
            super::event_detail("move", Some("Pro\"c"), "after_store", "done", None),
            r#"{"action":"move","target":"Pro\"c","reason":"after_store","state":"done","result":null}"#
        );
    }
}
