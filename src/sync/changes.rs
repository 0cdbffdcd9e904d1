//! Changes to messages stored before this pass: flags and expunges, from
//! QRESYNC's EXAMINE report, CHANGEDSINCE with CONDSTORE, or a rescan; and
//! the changes a server reported unasked on the selected mailbox.

use super::listing::scan_flags;
use super::{Engine, FetchCtx, SyncError};
use crate::imap::{Command, FetchItems, FetchSet, Folder, ModSeq, UidSet, Untagged};
use crate::session::{MailboxState, Session};
use crate::store::{MailboxCursor, MailboxId};

impl Engine {
    /// Records flag changes and expunges of messages stored before this pass
    /// (UIDs up to the old cursor): from QRESYNC's report when EXAMINE had
    /// one, from CHANGEDSINCE with CONDSTORE, or by rescanning otherwise.
    pub(super) async fn track_changes(
        &self,
        session: &mut Session,
        ctx: &FetchCtx<'_>,
        cursor: &MailboxCursor,
        state: &MailboxState,
        qresync_used: bool,
    ) -> Result<(), SyncError> {
        let last = cursor.last_uid;
        let mut changed = 0;
        let mut gone = 0;
        let forced = self
            .rescan_now
            .lock()
            .map(|mut m| m.remove(&ctx.mailbox))
            .unwrap_or(true);
        let mut scanned = false;
        let modseq_moved = match (state.highest_modseq, cursor.highest_modseq) {
            (Some(now), Some(before)) => Some(now.0 != before),
            _ => None,
        };
        if qresync_used && state.changes_overflowed {
            // Too many changes to have held them: stream them instead.
            let cs = cursor.highest_modseq.map(ModSeq);
            changed += scan_flags(self, session, ctx, u32::MAX, cs).await?.1;
        }
        if qresync_used {
            // Not only UIDs up to the cursor: rows a cut-off pass stored
            // above it are covered too (the store ignores UIDs it lacks).
            let flags: Vec<(u32, Vec<String>)> = state
                .changed
                .iter()
                .map(|(u, f, _)| (*u, f.clone()))
                .collect();
            if !flags.is_empty() {
                changed += self
                    .store
                    .apply_flags(ctx.mailbox, ctx.uidvalidity, flags)
                    .await?;
            }
            if !state.vanished.is_empty() {
                gone += self
                    .store
                    .mark_expunged(ctx.mailbox, ctx.uidvalidity, state.vanished.clone())
                    .await?;
            }
        } else {
            match modseq_moved {
                Some(false) => {}
                Some(true) => {
                    let cs = cursor.highest_modseq.map(ModSeq);
                    changed += scan_flags(self, session, ctx, last, cs).await?.1;
                }
                None if self.rescan_due(ctx.mailbox) => {
                    let (existing, n) = scan_flags(self, session, ctx, last, None).await?;
                    changed += n;
                    gone += self
                        .store
                        .reconcile_existing(ctx.mailbox, ctx.uidvalidity, (0, last), existing)
                        .await?;
                    scanned = true;
                }
                None => {}
            }
            // Expunges without QRESYNC: fewer messages on the server than
            // stored means something was removed; only then list the UIDs.
            if !scanned {
                let live = self.store.live_count(ctx.mailbox, ctx.uidvalidity).await?;
                if u64::from(state.exists) < live {
                    let (existing, n) = scan_flags(self, session, ctx, last, None).await?;
                    changed += n;
                    gone += self
                        .store
                        .reconcile_existing(ctx.mailbox, ctx.uidvalidity, (0, last), existing)
                        .await?;
                    scanned = true;
                }
            }
        }
        if forced && !scanned {
            let (existing, n) = scan_flags(self, session, ctx, last, None).await?;
            changed += n;
            gone += self
                .store
                .reconcile_existing(ctx.mailbox, ctx.uidvalidity, (0, last), existing)
                .await?;
        }
        if changed > 0 || gone > 0 {
            tracing::info!(account = ctx.account, folder = %ctx.folder, flags_changed = changed, expunged = gone, "changes recorded");
        }
        Ok(())
    }

    /// Records the changes the server reported unasked on the selected
    /// mailbox ([`crate::session::Reported`]): flags by UID at once; flags by sequence
    /// number after asking for their UIDs (`FETCH n (UID FLAGS)`, valid
    /// while that mailbox stays selected); VANISHED UIDs as expunges. An
    /// EXPUNGE by number, or more changes than were held, makes the
    /// mailbox's next pass list its UIDs and flags.
    pub(super) async fn record_reported(
        &self,
        session: &mut Session,
        account: &str,
    ) -> Result<(), SyncError> {
        let Some(reported) = session.take_reported() else {
            return Ok(());
        };
        let Some((wire, uv)) = reported.mailbox.clone() else {
            return Ok(());
        };
        let (mailbox, cursor) = self.store.ensure_mailbox(account, &wire).await?;
        if cursor.uidvalidity != Some(uv) {
            // Of a generation the store does not follow (yet): the pass
            // that starts it fetches everything anyway.
            return Ok(());
        }
        let mut flags = reported.flags;
        if !reported.flag_seqs.is_empty() {
            let set = UidSet::from_uids(reported.flag_seqs.iter().copied());
            let tag = session
                .send(&Command::Fetch {
                    set: FetchSet::Set(set),
                    items: FetchItems::Flags,
                })
                .await?;
            session
                .collect_with(&tag, "FETCH", |u| {
                    if let Untagged::Fetch(_, d) = u
                        && let (Some(uid), Some(f)) = (d.uid, d.flags)
                    {
                        flags.push((uid.0, f));
                    }
                })
                .await?;
        }
        let changed = if flags.is_empty() {
            0
        } else {
            self.store.apply_flags(mailbox, uv, flags).await?
        };
        let gone = if reported.vanished.is_empty() {
            0
        } else {
            let set = UidSet::from_ranges(reported.vanished);
            self.store.mark_expunged(mailbox, uv, set).await?
        };
        if (reported.expunged || reported.overflowed)
            && let Ok(mut m) = self.rescan_now.lock()
        {
            m.insert(mailbox);
        }
        if changed > 0 || gone > 0 {
            tracing::info!(account, folder = %Folder::from_wire(wire.as_str()), flags_changed = changed,
                expunged = gone, "changes the server reported unasked recorded");
        }
        Ok(())
    }

    /// Counts passes per mailbox; true on the first and every Nth pass.
    fn rescan_due(&self, mailbox: MailboxId) -> bool {
        let every = u64::from(self.settings.rescan_every);
        if every == 0 {
            return false;
        }
        let Ok(mut passes) = self.passes.lock() else {
            return true;
        };
        let n = passes.entry(mailbox).or_insert(0);
        let due = *n % every == 0;
        *n += 1;
        due
    }
}
