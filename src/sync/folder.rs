//! One folder pass: examine, plan, list, fetch, then the changes to what
//! was stored before, and the pass's outcome recorded for `status`.

use std::time::Instant;

use super::progress::ProgressEvent;
use super::{Engine, FolderStats, Plan, SyncError, batches, listing::list_uids, plan};
use crate::imap::{Folder, ModSeq, UidSet, UidValidity, Untagged};
use crate::session::Session;
use crate::store::{MailboxCursor, MailboxId};

impl Engine {
    /// Syncs one folder on an open session: examine, plan, fetch, store.
    pub async fn sync_folder(
        &self,
        session: &mut Session,
        account: &str,
        folder: &Folder,
    ) -> Result<FolderStats, SyncError> {
        let started = Instant::now();
        let (mailbox, cursor) = self.store.ensure_mailbox(account, folder.wire()).await?;
        let action = self.actions.mailbox_action(folder, session.capabilities());
        self.store.set_mailbox_action(mailbox, action).await?;
        let marks = self.store.marks().await?;
        let mut result = self
            .sync_mailbox(session, account, folder, mailbox, cursor)
            .await;
        if let Ok(stats) = &mut result {
            // Counted in the store, after the writer has applied the pass:
            // what consumers see, not what arrived.
            let added = self.store.added_since(mailbox, marks).await?;
            stats.new = added.new;
            stats.refound = added.refound;
        }
        let outcome = match &result {
            Ok(_) => None,
            // Stored and shown by `status`: no secret a server echoed.
            Err(e) => Some(crate::secret::scrub(&e.to_string()).into_owned()),
        };
        // Recording the outcome must not hide the sync's own error.
        self.tell(ProgressEvent::FolderFinished {
            account,
            folder: folder.name(),
            ok: outcome.is_none(),
        });
        let recorded = self.store.record_outcome(mailbox, outcome).await;
        let committed = self.store.commit().await;
        let stats = result?;
        recorded?;
        committed?;
        // Only now, after the commit (the ledger syncs it to disk first).
        if self.actions.for_folder(folder).changes_server()
            && let Some(uv) = self.store.cursor(mailbox).await?.uidvalidity
            && let Err(e) = (self.actions)
                .run(&self.store, session, mailbox, uv, folder)
                .await
        {
            let _ = self
                .store
                .record_outcome(mailbox, Some(e.to_string()))
                .await;
            let _ = self.store.commit().await;
            return Err(e.into());
        }
        tracing::debug!(
            account,
            folder = %folder,
            fetched = stats.fetched,
            new = stats.new,
            refound = stats.refound,
            ms = started.elapsed().as_millis() as u64,
            "folder synced"
        );
        Ok(stats)
    }

    async fn sync_mailbox(
        &self,
        session: &mut Session,
        account: &str,
        folder: &Folder,
        mailbox: MailboxId,
        cursor: MailboxCursor,
    ) -> Result<FolderStats, SyncError> {
        // What the server reported unasked since the last pass (in IDLE,
        // say) belongs to the mailbox still selected: recorded before
        // EXAMINE changes the selection.
        self.record_reported(session, account).await?;
        // An account past its daily download limit asks the server nothing.
        let budget = self.download_budget(account).await?;
        // QRESYNC lets EXAMINE itself report what changed since our last
        // HIGHESTMODSEQ (flags and VANISHED UIDs): no extra round trip.
        let qresync = session.enable_qresync().await?;
        let known = match (cursor.uidvalidity, cursor.highest_modseq) {
            (Some(v), Some(m)) if qresync => Some((v, ModSeq(m))),
            _ => None,
        };
        let state = if self.actions.selects(folder, session.capabilities()) {
            session.select(folder.wire(), known).await?
        } else {
            session.examine(folder.wire(), known).await?
        };
        let mut stats = FolderStats::default();
        let (uv, fetch_after) = match plan(&cursor, &state)? {
            Plan::UpToDate { uidvalidity } => (uidvalidity, None),
            Plan::Fetch {
                uidvalidity,
                after,
                new_generation,
            } => {
                if new_generation {
                    stats.new_generation = true;
                    if let Some(old) = cursor.uidvalidity {
                        tracing::warn!(
                            account,
                            folder = %folder,
                            old = old.0,
                            new = uidvalidity.0,
                            "UIDVALIDITY changed: keeping stored messages, fetching the folder again"
                        );
                    }
                    self.store.begin_generation(mailbox, uidvalidity).await?;
                }
                (uidvalidity, Some(after))
            }
        };
        let ctx = FetchCtx {
            account,
            folder: folder.name().to_owned(),
            mailbox,
            uidvalidity: uv,
            gmail: session.capabilities().has("X-GM-EXT-1"),
            budget,
        };
        if let Some(after) = fetch_after {
            let window = &self.actions.for_folder(folder).window;
            let (listed, to_fetch, bytes) = if window.filters() {
                // A window's UID SEARCH gives no sizes: its byte total is unknown.
                let listed = crate::window::search_above(session, after, window).await?;
                (listed.clone(), listed, 0)
            } else if ctx.gmail {
                // Bodies only for messages the account does not store yet;
                // the others become memberships, queued before any cursor
                // move that passes their UIDs.
                let (listed, sightings) = super::gmail::list(session, after).await?;
                let unstored = self.store.link_gmail(mailbox, uv, sightings).await?;
                // Sizes are not listed here: the byte total stays unknown.
                (listed, UidSet::from_uids(unstored), 0)
            } else {
                let (listed, bytes) = list_uids(session, after, self.sink.is_some()).await?;
                (listed.clone(), listed, bytes)
            };
            let plan = batches(after, &to_fetch, self.settings.batch_size as usize);
            self.tell(ProgressEvent::FolderStarted {
                account,
                folder: &ctx.folder,
                messages: plan.iter().map(|b| b.count as u64).sum(),
                bytes,
            });
            let fetched_to = plan.last().map_or(after, |b| b.last);
            self.fetch_batches(session, &ctx, &to_fetch, plan, &mut stats)
                .await?;
            // Listed UIDs above the last fetched one are memberships only.
            let covered = listed
                .ranges()
                .last()
                .map_or(after, |r| r.1)
                .max(fetched_to);
            if covered > fetched_to {
                self.store.advance_cursor(mailbox, uv, covered).await?;
            }
            // Rows that a cut-off pass stored above the old cursor and that
            // the listing (of everything above it) no longer shows were
            // expunged in between.
            // (Not with a window: what it leaves out is not gone.)
            if !window.filters() {
                self.store
                    .reconcile_existing(mailbox, uv, (after, u32::MAX), listed)
                    .await?;
            }
            // UIDs below the UIDNEXT seen at EXAMINE that the later listing
            // did not return no longer exist: the cursor may pass them, so a
            // folder whose newest mail was deleted does not look new forever.
            // Only when the counts add up: a server whose listing misses
            // messages it said exist must not make mailfeed skip them.
            if let Some(next) = state.uidnext.filter(|n| n.saturating_sub(1) > covered) {
                let live = self.store.live_count(mailbox, uv).await?;
                if live >= u64::from(state.exists) {
                    self.store.advance_cursor(mailbox, uv, next - 1).await?;
                }
            }
        }
        // Every message of this generation is stored now: rows of an
        // earlier one that none of them re-found are gone from the server.
        // (Also when up to date: the pass that completed the generation may
        // have failed just after.) Two index lookups for a mailbox that
        // never changed UIDVALIDITY.
        let retired = self.store.retire_unfound(mailbox, uv).await?;
        if retired > 0 {
            tracing::info!(account, folder = %ctx.folder, expunged = retired,
                "messages of the earlier UIDVALIDITY not found again marked expunged");
        }
        self.follow_window(session, &ctx, &cursor, &mut stats)
            .await?;
        if cursor.uidvalidity == Some(uv) && cursor.last_uid > 0 {
            self.track_changes(session, &ctx, &cursor, &state, known.is_some())
                .await?;
            if ctx.gmail {
                // A label change moves the message's MODSEQ (Gmail has
                // CONDSTORE); without HIGHESTMODSEQ every pass reads them.
                let since = cursor.highest_modseq.map(ModSeq);
                let moved = match (state.highest_modseq, since) {
                    (Some(now), Some(before)) => now != before,
                    _ => true,
                };
                if moved {
                    self.scan_labels(session, &ctx, cursor.last_uid, since)
                        .await?;
                }
            }
        }
        // And what it reported during this pass (a flag change in the
        // middle of the FETCH).
        self.record_reported(session, account).await?;
        if !state.nomodseq {
            self.store
                .set_highest_modseq(mailbox, uv, state.highest_modseq.map(|m| m.0))
                .await?;
        }
        Ok(stats)
    }
}

pub(crate) struct FetchCtx<'a> {
    pub(crate) account: &'a str,
    pub(crate) folder: String,
    pub(crate) mailbox: MailboxId,
    pub(crate) uidvalidity: UidValidity,
    /// The server offers X-GM-EXT-1: one stored message per X-GM-MSGID.
    pub(super) gmail: bool,
    /// Bytes this pass may download before the account pauses for the day.
    pub(super) budget: Option<u64>,
}

pub(super) fn uidvalidity_in(u: &Untagged) -> Option<UidValidity> {
    match u {
        Untagged::Status(
            _,
            crate::imap::StatusText {
                code: Some(crate::imap::Code::UidValidity(v)),
                ..
            },
        ) => Some(UidValidity(*v)),
        _ => None,
    }
}
