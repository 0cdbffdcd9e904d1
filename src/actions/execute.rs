//! Running the plan over a session whose folder is SELECTed, right after a
//! sync pass committed: the durable barrier, `delete_after`'s search, each
//! batch's commands, and the outcome of every action into the ledger. A NO
//! for a set is retried message by message, so one message the server
//! refuses (e.g. already gone) fails alone. A cut connection leaves the
//! actions open; the next pass does them (every step is idempotent). Each
//! batch's commands go out only after the ledger confirmed this process
//! may act for the account (its lease, on PostgreSQL). Must not: build
//! SQL, or touch a UID the ledger did not hand out.

use std::time::{SystemTime, UNIX_EPOCH};

use super::plan::{self, Batch};
use super::{ActionError, Actions};
use crate::imap::{Code, Command, Folder, SearchArg, UidSet, UidValidity, Untagged};
use crate::session::{Session, SessionError};
use crate::store::actions::{ActionKind, Ledger, Outcome};
use crate::store::{MailboxId, StoreHandle};

/// Open actions read from the ledger at once.
const PAGE: u32 = 5000;

/// What one run did in a folder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ActionStats {
    pub done: u64,
    pub failed: u64,
    pub refused: u64,
}

impl Actions {
    /// Acts on the folder's durably stored messages; the session has the
    /// folder SELECTed under `uidvalidity` (what the pass just used).
    pub async fn run(
        &self,
        store: &StoreHandle,
        session: &mut Session,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        folder: &Folder,
    ) -> Result<ActionStats, ActionError> {
        let caps = session.capabilities().clone();
        if !self.selects(folder, &caps) {
            // Refused on this server (said once at the folder's first pass).
            return Ok(ActionStats::default());
        }
        let ledger = self.ledger(store).await?;
        let keep = self.mailbox_action(folder, &caps);
        let retention = self.for_folder(folder).delete_after_days;
        // Actions the configuration no longer asks for are ended, not run.
        ledger
            .cancel_stale(mailbox, keep, retention.is_some())
            .await?;
        if let Some(days) = retention {
            queue_expired(ledger, session, mailbox, uidvalidity, days).await?;
        }
        ledger.mark_durable(mailbox).await?;
        let mut stats = ActionStats::default();
        loop {
            let open = ledger.open_actions(mailbox, uidvalidity, PAGE).await?;
            if open.is_empty() {
                break;
            }
            let full_page = open.len() == PAGE as usize;
            let p = plan::plan(&open, &caps);
            let mut outcomes: Vec<(i64, Outcome)> = Vec::new();
            for (id, kind) in &p.gone {
                let o = match kind {
                    ActionKind::Seen => {
                        stats.failed += 1;
                        Outcome::Failed("the message was expunged from the server first".into())
                    }
                    _ => {
                        stats.done += 1;
                        Outcome::Done(
                            "the message had already left the folder (an earlier run cut off after its command, or another client)".into(),
                        )
                    }
                };
                outcomes.push((*id, o));
            }
            for (ids, why) in &p.refused {
                stats.refused += ids.len() as u64;
                tracing::warn!(folder = %folder, count = ids.len(), "{why}; left pending");
            }
            ledger
                .record(mailbox, std::mem::take(&mut outcomes))
                .await?;
            let message_ids: std::collections::HashMap<i64, Option<String>> = open
                .iter()
                .filter(|a| a.copying)
                .map(|a| (a.id, a.message_id.clone()))
                .collect();
            for b in &p.batches {
                let (done, failed) = if b.verify {
                    self.run_verified(ledger, session, mailbox, folder, b, &message_ids)
                        .await?
                } else {
                    self.run_batch(ledger, session, mailbox, folder, b, 0)
                        .await?
                };
                stats.done += done;
                stats.failed += failed;
            }
            // Refused ones stay open: reading again would return them again.
            if !full_page || !p.refused.is_empty() {
                break;
            }
        }
        if stats != ActionStats::default() {
            tracing::info!(folder = %folder, done = stats.done, failed = stats.failed,
                refused = stats.refused, "actions on the server");
        }
        Ok(stats)
    }

    /// A batch of moves left `copying`: looks in the destination for each
    /// message (by Message-ID) and copies only those not found there; the
    /// found ones are recorded `copied` and only expunged.
    async fn run_verified(
        &self,
        ledger: &Ledger,
        session: &mut Session,
        mailbox: MailboxId,
        folder: &Folder,
        b: &Batch,
        message_ids: &std::collections::HashMap<i64, Option<String>>,
    ) -> Result<(u64, u64), ActionError> {
        let dest = b
            .ops
            .iter()
            .find_map(|o| o.destination())
            .unwrap_or_default()
            .to_owned();
        let mut found = Vec::new();
        let mut not_found = Vec::new();
        // A failed EXAMINE leaves no folder selected: the source is
        // selected again whatever happens here.
        match session.examine(&dest, None).await {
            Ok(_) => {
                for &(id, uid) in &b.actions {
                    let hit = match message_ids.get(&id).cloned().flatten() {
                        Some(mid) => has_message_id(session, &mid).await?,
                        None => false,
                    };
                    if hit {
                        found.push((id, uid));
                    } else {
                        not_found.push((id, uid));
                    }
                }
            }
            Err(SessionError::CommandFailed { .. }) => not_found = b.actions.clone(),
            Err(e) => return Err(e.into()),
        }
        session.select(folder.wire(), None).await?;
        tracing::info!(folder = %folder, already_copied = found.len(),
            to_copy = not_found.len(), "moves cut off during their copy: looked in the destination");
        let (mut done, mut failed) = (0, 0);
        if !found.is_empty() {
            let copied = found.iter().map(|(id, _)| (*id, Outcome::Copied));
            ledger.record(mailbox, copied.collect()).await?;
            let part = Batch {
                actions: found,
                ..b.clone()
            };
            let (d, f) = self
                .run_batch(ledger, session, mailbox, folder, &part, 1)
                .await?;
            done += d;
            failed += f;
        }
        if !not_found.is_empty() {
            let part = Batch {
                actions: not_found,
                ..b.clone()
            };
            let (d, f) = self
                .run_batch(ledger, session, mailbox, folder, &part, 0)
                .await?;
            done += d;
            failed += f;
        }
        Ok((done, failed))
    }

    /// Runs one batch's steps from `from` on its whole set; a NO splits the
    /// rest of the steps into one command per message. Returns (done, failed).
    async fn run_batch(
        &self,
        ledger: &Ledger,
        session: &mut Session,
        mailbox: MailboxId,
        folder: &Folder,
        b: &Batch,
        from: usize,
    ) -> Result<(u64, u64), ActionError> {
        let set = b.uids();
        ledger.confirm(mailbox).await?;
        for (i, op) in b.ops.iter().enumerate().skip(from) {
            if b.copying_before == Some(i) {
                let copying = b.actions.iter().map(|(id, _)| (*id, Outcome::Copying));
                ledger.record(mailbox, copying.collect()).await?;
            }
            match self.run_op(session, folder, op, &set).await {
                Ok(()) => {
                    if b.copied_after == Some(i) {
                        let copied = b.actions.iter().map(|(id, _)| (*id, Outcome::Copied));
                        ledger.record(mailbox, copied.collect()).await?;
                    }
                }
                Err(ActionError::Session(SessionError::CommandFailed { .. }))
                    if b.actions.len() > 1 =>
                {
                    return self
                        .run_singly(ledger, session, mailbox, folder, b, i)
                        .await;
                }
                Err(ActionError::Session(SessionError::CommandFailed { text, .. })) => {
                    let outcome = Outcome::Failed(format!("the server refused: {text}"));
                    let all = b.actions.iter().map(|(id, _)| (*id, outcome.clone()));
                    ledger.record(mailbox, all.collect()).await?;
                    return Ok((0, b.actions.len() as u64));
                }
                Err(e) => return Err(e),
            }
        }
        let all = b
            .actions
            .iter()
            .map(|(id, _)| (*id, Outcome::Done(b.done.clone())));
        ledger.record(mailbox, all.collect()).await?;
        Ok((b.actions.len() as u64, 0))
    }

    /// The steps from `from` on, one message at a time.
    async fn run_singly(
        &self,
        ledger: &Ledger,
        session: &mut Session,
        mailbox: MailboxId,
        folder: &Folder,
        b: &Batch,
        from: usize,
    ) -> Result<(u64, u64), ActionError> {
        let (mut done, mut failed) = (0, 0);
        for &(id, uid) in &b.actions {
            let one = UidSet::from_uids([uid]);
            let mut outcome = Outcome::Done(b.done.clone());
            ledger.confirm(mailbox).await?;
            for (i, op) in b.ops.iter().enumerate().skip(from) {
                if b.copying_before == Some(i) {
                    ledger.record(mailbox, vec![(id, Outcome::Copying)]).await?;
                }
                match self.run_op(session, folder, op, &one).await {
                    Ok(()) if b.copied_after == Some(i) => {
                        ledger.record(mailbox, vec![(id, Outcome::Copied)]).await?;
                    }
                    Ok(()) => {}
                    Err(ActionError::Session(SessionError::CommandFailed { text, .. })) => {
                        outcome = Outcome::Failed(format!("the server refused: {text}"));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            match outcome {
                Outcome::Done(_) => done += 1,
                _ => failed += 1,
            }
            ledger.record(mailbox, vec![(id, outcome)]).await?;
        }
        Ok((done, failed))
    }

    /// One command; a missing destination (`[TRYCREATE]`) is created once
    /// when `create_destination` says so, else the run stops with the reason.
    async fn run_op(
        &self,
        session: &mut Session,
        folder: &Folder,
        op: &plan::Op,
        set: &UidSet,
    ) -> Result<(), ActionError> {
        let cmd = op.command(set);
        match session.run(&cmd).await {
            Ok(_) => Ok(()),
            Err(SessionError::CommandFailed {
                code: Some(Code::Other(c, _)),
                ..
            }) if c.eq_ignore_ascii_case("TRYCREATE") => {
                let dest = op.destination().unwrap_or_default().to_owned();
                let dest_name = crate::imap::mutf7::decode(&dest);
                if !self.for_folder(folder).create_destination {
                    return Err(ActionError::NoDestination { folder: dest_name });
                }
                tracing::info!(folder = %dest_name, "creating the destination folder");
                session
                    .run(&Command::Create {
                        mailbox: dest.clone(),
                    })
                    .await?;
                session.run(&cmd).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether the selected folder holds a message with this Message-ID.
async fn has_message_id(session: &mut Session, message_id: &str) -> Result<bool, ActionError> {
    let cmd = Command::UidSearchArgs {
        args: vec![
            SearchArg::Atom("HEADER".into()),
            SearchArg::Atom("Message-ID".into()),
            SearchArg::Str(message_id.to_owned()),
        ],
        esearch: false,
    };
    let found = session.run(&cmd).await?.into_iter().any(|u| match u {
        Untagged::Search(uids) => !uids.is_empty(),
        Untagged::ESearch(e) => e.all.is_some_and(|a| !a.is_empty()),
        _ => false,
    });
    Ok(found)
}

/// `delete_after`: asks the server which messages are older than `days`
/// (`UID SEARCH BEFORE`, by INTERNALDATE) and queues deletion for those that
/// are also stored, covered by the cursor and dated before the cut-off in
/// the database. Both must agree.
async fn queue_expired(
    ledger: &Ledger,
    session: &mut Session,
    mailbox: MailboxId,
    uidvalidity: UidValidity,
    days: u32,
) -> Result<(), ActionError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let cutoff_day = now.div_euclid(86_400) - i64::from(days);
    let esearch = session.capabilities().esearch();
    let cmd = Command::UidSearch {
        criteria: format!("BEFORE {}", imap_date(cutoff_day)),
        esearch,
    };
    let mut uids: Vec<u32> = Vec::new();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for u in session.run(&cmd).await? {
        match u {
            Untagged::Search(found) => uids.extend(found),
            Untagged::ESearch(e) => {
                if let Some(all) = e.all {
                    ranges.extend_from_slice(all.ranges());
                }
            }
            _ => {}
        }
    }
    ranges.extend(UidSet::from_uids(uids).ranges());
    let found = UidSet::from_ranges(ranges);
    if found.is_empty() {
        return Ok(());
    }
    let before = crate::utc::format_utc(cutoff_day * 86_400);
    let n = ledger
        .queue_expiry(mailbox, uidvalidity, found, before)
        .await?;
    if n > 0 {
        tracing::info!(
            count = n,
            days,
            "messages past delete_after queued for deletion"
        );
    }
    Ok(())
}

/// An IMAP `date` (`1-Feb-2024`) of a day count since 1970-01-01.
pub fn imap_date(days: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = crate::utc::civil_from_days(days);
    format!("{d}-{}-{y}", MONTHS[(m as usize).saturating_sub(1).min(11)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn imap_dates() {
        assert_eq!(super::imap_date(0), "1-Jan-1970");
        assert_eq!(super::imap_date(19_723), "1-Jan-2024");
        assert_eq!(super::imap_date(19_783), "1-Mar-2024");
    }
}

/// Response handling over a scripted server: a NO for a set is retried
/// message by message and fails only the refused message.
#[cfg(test)]
mod scripted {
    use std::time::Duration;

    use super::super::{AccountActions, Actions, AfterStore, FolderActions};
    use crate::imap::{Uid, UidValidity};
    use crate::store::actions::ActionKind;
    use crate::store::{NewMessage, StoreHandle};
    use crate::testing::{Peer, listen, session_on};

    #[tokio::test]
    async fn a_no_for_one_message_fails_only_that_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let (store, writer) =
            StoreHandle::start(&path, crate::config::Synchronous::Normal, 1 << 20).expect("store");
        let (mb, _) = store.ensure_mailbox("t", "INBOX").await.expect("mailbox");
        store
            .begin_generation(mb, UidValidity(9))
            .await
            .expect("generation");
        store
            .set_mailbox_action(mb, Some((ActionKind::Seen, None)))
            .await
            .expect("action");
        for uid in 1..=3 {
            store
                .save(NewMessage {
                    mailbox: mb,
                    uidvalidity: UidValidity(9),
                    uid: Uid(uid),
                    internal_date: None,
                    flags: vec![],
                    modseq: None,
                    size: 5,
                    raw: crate::testing::body(uid),
                    truncated: false,
                    gmail: None,
                })
                .await
                .expect("save");
        }
        store
            .advance_cursor(mb, UidValidity(9), 3)
            .await
            .expect("cursor");
        store.commit().await.expect("commit");

        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let mut p = Peer::accept(&listener).await;
            let tag = p.expect("UID STORE 1:3 +FLAGS.SILENT (\\Seen)").await;
            p.send(format!(
                "{tag} NO [EXPUNGEISSUED] Some messages were expunged\r\n"
            ))
            .await;
            for (uid, ok) in [(1, true), (2, false), (3, true)] {
                let tag = p.expect(&format!("UID STORE {uid} +FLAGS.SILENT")).await;
                if ok {
                    p.send(format!("{tag} OK Store completed\r\n")).await;
                } else {
                    p.send(format!("{tag} NO Message {uid} is gone\r\n")).await;
                }
            }
            p
        });
        let actions = Actions::new(AccountActions {
            default: FolderActions {
                after_store: AfterStore::Seen,
                ..Default::default()
            },
            folders: Vec::new(),
        });
        let mut session = session_on(port, Duration::from_secs(10)).await;
        let stats = actions
            .run(
                &store,
                &mut session,
                mb,
                UidValidity(9),
                &crate::imap::Folder::from_wire("INBOX"),
            )
            .await
            .expect("run");
        assert_eq!((stats.done, stats.failed), (2, 1));
        drop(server.await);
        drop(store);
        writer.join();
        let conn = crate::store::open_read_only(&path).expect("read");
        let rows: Vec<(u32, String, String)> = conn
            .prepare(
                "SELECT m.uid, a.state, a.result FROM actions a JOIN messages m ON m.id = a.message_id
                 ORDER BY m.uid",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .expect("rows");
        assert_eq!(rows[0].1, "done");
        assert_eq!(
            (rows[1].1.as_str(), rows[1].2.as_str()),
            ("failed", "the server refused: Message 2 is gone")
        );
        assert_eq!(rows[2].1, "done");
    }
}
