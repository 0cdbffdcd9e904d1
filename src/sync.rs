//! The sync engine: a pure *plan* (cursor + what EXAMINE said → what to
//! fetch, in which UID ranges) and an *execute* step that drives a
//! [`Session`] and hands messages to the store writer. It never sees raw
//! protocol bytes or SQL.
//!
//! Safety argument, in one place: a batch is a contiguous UID range
//! `(previous end, end]` that covers every UID the server listed in it. When
//! the server's tagged OK for that range's FETCH has arrived and every earlier
//! range is complete, every message in it has been handed to the writer, so
//! the cursor may move to `end`. The writer applies jobs in order, so the
//! cursor can never be committed before those messages.

pub mod progress;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{AccountConfig, SyncConfig};
use crate::imap::date::internal_date_to_utc;
use crate::imap::{Body, Command, ModSeq, Response, Uid, UidSet, UidValidity, Untagged, mutf7};
use crate::session::{ConnectOptions, MailboxState, Session, SessionError, Tap};
use crate::store::{MailboxCursor, MailboxId, NewMessage, StoreError, StoreHandle};
use progress::{ProgressEvent, ProgressSink};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server reported no usable UIDVALIDITY for the folder")]
    NoUidValidity,
    #[error("server sent no content (NIL) for UID {0}; it will be retried on the next pass")]
    NilBody(u32),
    #[error("server sent a message without its UID")]
    MissingUid,
    #[error("UIDVALIDITY changed during the session (from {old} to {new})")]
    UidValidityChanged { old: u32, new: u32 },
    #[error(
        "server listed UID {0} but did not send it, and it still exists; the folder's cursor stays below it and the next pass asks again"
    )]
    NotDelivered(u32),
    #[error(transparent)]
    Action(#[from] crate::actions::ActionError),
}

impl SyncError {
    /// True when the connection is unusable afterwards.
    pub fn breaks_connection(&self) -> bool {
        match self {
            SyncError::Session(SessionError::CommandFailed { .. }) => false,
            SyncError::Session(_)
            | SyncError::MissingUid
            | SyncError::UidValidityChanged { .. } => true,
            SyncError::Action(e) => e.breaks_connection(),
            _ => false,
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SyncError::Session(e) => e.hint(),
            _ => None,
        }
    }
}

/// What to do with a mailbox, decided from its cursor and EXAMINE's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// UIDNEXT shows nothing above the cursor: no further round trip.
    UpToDate { uidvalidity: UidValidity },
    /// Fetch everything above `after` (0 for all) under `uidvalidity`;
    /// `new_generation` when the stored UIDVALIDITY differs.
    Fetch {
        uidvalidity: UidValidity,
        after: u32,
        new_generation: bool,
    },
}

/// The pure planning step.
pub fn plan(cursor: &MailboxCursor, state: &MailboxState) -> Result<Plan, SyncError> {
    let uv = match state.uidvalidity {
        Some(v) if v.0 != 0 => v,
        _ => return Err(SyncError::NoUidValidity),
    };
    if cursor.uidvalidity != Some(uv) {
        return Ok(Plan::Fetch {
            uidvalidity: uv,
            after: 0,
            new_generation: true,
        });
    }
    let nothing_new = state.exists == 0
        || state
            .uidnext
            .is_some_and(|next| next <= cursor.last_uid.saturating_add(1));
    if nothing_new {
        return Ok(Plan::UpToDate { uidvalidity: uv });
    }
    Ok(Plan::Fetch {
        uidvalidity: uv,
        after: cursor.last_uid,
        new_generation: false,
    })
}

/// A planned FETCH: every UID in `(after, last]` that exists on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub after: u32,
    pub last: u32,
    pub count: usize,
}

/// Splits the listed UIDs above `after` into contiguous batches of at most
/// `max_count` messages. A batch's range covers the gaps before its UIDs, so
/// completing it proves every UID up to its end was seen.
pub fn batches(after: u32, listed: &UidSet, max_count: usize) -> Vec<Batch> {
    let max_count = max_count.max(1);
    let mut out = Vec::new();
    let mut start = after;
    let mut count = 0;
    let mut last = after;
    for uid in listed.iter().filter(|u| *u > after) {
        if count == max_count {
            out.push(Batch {
                after: start,
                last,
                count,
            });
            start = last;
            count = 0;
        }
        count += 1;
        last = uid;
    }
    if count > 0 {
        out.push(Batch {
            after: start,
            last,
            count,
        });
    }
    out
}

/// What one mailbox pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderStats {
    /// Messages received (new, re-found, or stored before by a cut-off pass).
    pub fetched: u64,
    /// Rows the pass added to the feed (one `new` event each).
    pub new: u64,
    /// Messages stored under a new UIDVALIDITY that were already in the
    /// feed under an earlier one (linked, not shown again).
    pub refound: u64,
    pub bytes: u64,
    pub new_generation: bool,
}

/// The outcome of one folder in a pass.
#[derive(Debug)]
pub struct FolderOutcome {
    pub account: String,
    pub folder: String,
    pub result: Result<FolderStats, SyncError>,
}

/// Everything the engine needs besides a session.
#[derive(Clone)]
pub struct Engine {
    pub store: StoreHandle,
    pub opts: ConnectOptions,
    pub settings: SyncConfig,
    /// Passes made per mailbox, to space out rescans (see `rescan_every`).
    pub passes: Arc<Mutex<std::collections::HashMap<MailboxId, u64>>>,
    /// Mailboxes whose next pass must list UIDs and flags whatever the
    /// schedule: the server reported an expunge by number, or more changes
    /// than were held (see [`crate::session::Reported`]).
    pub rescan_now: Arc<Mutex<std::collections::HashSet<MailboxId>>>,
    /// Rises with every message received and every batch stored: whoever
    /// runs a long sync can tell one that is moving from one that hangs.
    pub progress: Arc<AtomicU64>,
    /// What to do on the server after storing (`crate::actions`).
    pub actions: Arc<crate::actions::Actions>,
    /// Told of each folder's totals and each message, when someone shows them.
    pub sink: Option<ProgressSink>,
}

impl Engine {
    pub fn new(store: StoreHandle, opts: ConnectOptions, settings: SyncConfig) -> Engine {
        Engine {
            store,
            opts,
            settings,
            passes: Arc::default(),
            rescan_now: Arc::default(),
            progress: Arc::default(),
            actions: Arc::default(),
            sink: None,
        }
    }

    /// The same engine reporting to `sink` (folder listings then also ask
    /// for RFC822.SIZE, so the byte total is known up front).
    pub fn with_sink(self, sink: ProgressSink) -> Engine {
        Engine {
            sink: Some(sink),
            ..self
        }
    }

    fn tell(&self, event: ProgressEvent<'_>) {
        if let Some(s) = &self.sink {
            s(event);
        }
    }

    /// The same engine with a progress counter of its own, for one caller.
    pub fn with_own_progress(&self) -> Engine {
        Engine {
            progress: Arc::default(),
            ..self.clone()
        }
    }

    fn made_progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many FETCH commands may be in flight on one connection.
const PIPELINE_DEPTH: usize = 3;
/// Missing UIDs of a pass that are listed again before giving up on them.
const MAX_RECHECK: usize = 1000;
/// Flag updates handed to the store at once during a rescan.
const FLAG_CHUNK: usize = 2000;

const FETCH_ITEMS: &str = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]";

impl Engine {
    /// Syncs one folder on an open session: examine, plan, fetch, store.
    pub async fn sync_folder(
        &self,
        session: &mut Session,
        account: &str,
        wire_name: &str,
    ) -> Result<FolderStats, SyncError> {
        let started = Instant::now();
        let (mailbox, cursor) = self.store.ensure_mailbox(account, wire_name).await?;
        let action = self
            .actions
            .mailbox_action(wire_name, session.capabilities());
        self.store.set_mailbox_action(mailbox, action).await?;
        let marks = self.store.marks().await?;
        let mut result = self
            .sync_mailbox(session, account, wire_name, mailbox, cursor)
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
            folder: &mutf7::decode(wire_name),
            ok: outcome.is_none(),
        });
        let recorded = self.store.record_outcome(mailbox, outcome).await;
        let committed = self.store.commit().await;
        let stats = result?;
        recorded?;
        committed?;
        // Only now, after the commit (the ledger syncs it to disk first).
        if self.actions.for_wire(wire_name).changes_server()
            && let Some(uv) = self.store.cursor(mailbox).await?.uidvalidity
            && let Err(e) = (self.actions)
                .run(&self.store, session, mailbox, uv, wire_name)
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
            folder = %mutf7::decode(wire_name),
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
        wire_name: &str,
        mailbox: MailboxId,
        cursor: MailboxCursor,
    ) -> Result<FolderStats, SyncError> {
        // What the server reported unasked since the last pass (in IDLE,
        // say) belongs to the mailbox still selected: recorded before
        // EXAMINE changes the selection.
        self.record_reported(session, account).await?;
        // QRESYNC lets EXAMINE itself report what changed since our last
        // HIGHESTMODSEQ (flags and VANISHED UIDs): no extra round trip.
        let qresync = session.enable_qresync().await?;
        let known = match (cursor.uidvalidity, cursor.highest_modseq) {
            (Some(v), Some(m)) if qresync => Some((v, ModSeq(m))),
            _ => None,
        };
        let state = if self.actions.selects(wire_name, session.capabilities()) {
            session.select(wire_name, known).await?
        } else {
            session.examine(wire_name, known).await?
        };
        let mut stats = FolderStats::default();
        let folder = mutf7::decode(wire_name);
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
            folder,
            mailbox,
            uidvalidity: uv,
        };
        if let Some(after) = fetch_after {
            let window = &self.actions.for_wire(wire_name).window;
            // A window's UID SEARCH gives no sizes: its byte total is unknown.
            let (listed, bytes) = match window.filters() {
                false => list_uids(session, after, self.sink.is_some()).await?,
                true => (
                    crate::window::search_above(session, after, window).await?,
                    0,
                ),
            };
            let plan = batches(after, &listed, self.settings.batch_size as usize);
            self.tell(ProgressEvent::FolderStarted {
                account,
                folder: &ctx.folder,
                messages: plan.iter().map(|b| b.count as u64).sum(),
                bytes,
            });
            self.fetch_batches(session, &ctx, &listed, &plan, &mut stats)
                .await?;
            // UIDs below the UIDNEXT seen at EXAMINE that the later listing
            // did not return no longer exist: the cursor may pass them, so a
            // folder whose newest mail was deleted does not look new forever.
            // Only when the counts add up: a server whose listing misses
            // messages it said exist must not make mailfeed skip them.
            let covered = plan.last().map_or(after, |b| b.last);
            // Rows that a cut-off pass stored above the old cursor and that
            // the listing (of everything above it) no longer shows were
            // expunged in between.
            // (Not with a window: what it leaves out is not gone.)
            if !window.filters() {
                self.store
                    .reconcile_existing(mailbox, uv, (after, u32::MAX), listed)
                    .await?;
            }
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

    /// Records flag changes and expunges of messages stored before this pass
    /// (UIDs up to the old cursor): from QRESYNC's report when EXAMINE had
    /// one, from CHANGEDSINCE with CONDSTORE, or by rescanning otherwise.
    async fn track_changes(
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
    async fn record_reported(&self, session: &mut Session, account: &str) -> Result<(), SyncError> {
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
                    set: set.to_string(),
                    items: "UID FLAGS",
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
            tracing::info!(account, folder = %mutf7::decode(&wire), flags_changed = changed,
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

    /// Sends the batches' FETCH commands with a few in flight, stores each
    /// message as it arrives, and moves the cursor as ranges complete.
    ///
    /// A range completes only when every UID `listed` in it arrived. A server
    /// may leave one out (expunged since the listing, or a message it cannot
    /// read): from then on the cursor stays just below it, and once the
    /// pipeline is drained the missing UIDs are listed again. Those that no
    /// longer exist are passed; one that still exists is an error, so the
    /// next pass asks for it again instead of skipping it for good.
    pub(crate) async fn fetch_batches(
        &self,
        session: &mut Session,
        ctx: &FetchCtx<'_>,
        listed: &UidSet,
        plan: &[Batch],
        stats: &mut FolderStats,
    ) -> Result<(), SyncError> {
        let mut next_to_send = 0;
        let mut in_flight: VecDeque<(String, usize, Instant)> = VecDeque::new();
        let mut batch_counts = vec![(0u64, 0u64); plan.len()];
        // Listed UIDs received, per batch in flight (at most batch_size each).
        let mut received: Vec<std::collections::HashSet<u32>> =
            vec![Default::default(); plan.len()];
        // Listed UIDs that did not arrive; the cursor may not pass the first.
        let mut missing: Vec<u32> = Vec::new();
        while next_to_send < plan.len() || !in_flight.is_empty() {
            while next_to_send < plan.len() && in_flight.len() < PIPELINE_DEPTH {
                let b = plan[next_to_send];
                let tag = session
                    .send(&Command::UidFetch {
                        // The range, or exactly the listed UIDs when a
                        // window left holes in it.
                        set: if b.count as u64 == u64::from(b.last - b.after) {
                            format!("{}:{}", b.after + 1, b.last)
                        } else {
                            UidSet::from_uids(listed.iter_range(b.after, b.last)).to_string()
                        },
                        items: FETCH_ITEMS,
                        changed_since: None,
                        vanished: false,
                    })
                    .await?;
                in_flight.push_back((tag, next_to_send, Instant::now()));
                next_to_send += 1;
            }
            let r = session.next_response().await?;
            match r.response {
                Response::Untagged(Untagged::Fetch(_, data)) => {
                    let data = *data;
                    let Some(body) = data.body else {
                        // A flag update or other unsolicited FETCH.
                        continue;
                    };
                    let uid = data.uid.ok_or(SyncError::MissingUid)?;
                    let Some(idx) = plan.iter().position(|b| uid.0 > b.after && uid.0 <= b.last)
                    else {
                        tracing::warn!(account = ctx.account, folder = %ctx.folder, uid = uid.0,
                            "server sent a message that was not asked for; ignored");
                        continue;
                    };
                    let (raw, truncated) = match body {
                        Body::Full(b) => (b, false),
                        Body::Truncated { prefix, declared } => {
                            tracing::warn!(account = ctx.account, folder = %ctx.folder, uid = uid.0,
                                size = declared, "message exceeds max_message_size; storing its headers only");
                            (crate::mime::headers_only(&prefix).to_vec(), true)
                        }
                        Body::Nil => return Err(SyncError::NilBody(uid.0)),
                    };
                    let size = data.rfc822_size.unwrap_or(raw.len() as u64);
                    if listed.contains(uid.0) {
                        received[idx].insert(uid.0);
                    }
                    batch_counts[idx].0 += 1;
                    batch_counts[idx].1 += raw.len() as u64;
                    self.made_progress();
                    self.tell(ProgressEvent::MessageReceived {
                        account: ctx.account,
                        folder: &ctx.folder,
                        bytes: size,
                    });
                    tracing::debug!(account = ctx.account, folder = %ctx.folder, uid = uid.0, bytes = raw.len(), "message received");
                    self.store
                        .save(NewMessage {
                            mailbox: ctx.mailbox,
                            uidvalidity: ctx.uidvalidity,
                            uid,
                            internal_date: data
                                .internal_date
                                .as_deref()
                                .and_then(internal_date_to_utc),
                            flags: crate::store::changes::canonical_flags(
                                &data.flags.unwrap_or_default(),
                            ),
                            modseq: data.modseq.map(|m| m.0),
                            size,
                            raw,
                            truncated,
                        })
                        .await?;
                }
                Response::Tagged { tag, status, text } => {
                    let Some(pos) = in_flight.iter().position(|(t, _, _)| *t == tag) else {
                        return Err(SessionError::Unexpected(format!(
                            "tagged reply for unknown tag `{tag}`"
                        ))
                        .into());
                    };
                    crate::session::completion("UID FETCH", status, text)?;
                    if pos != 0 {
                        // Replies out of command order: a server may run
                        // commands concurrently; only an in-order prefix moves
                        // the cursor, so wait for the earlier ones.
                        let done = in_flight.remove(pos);
                        if let Some(d) = done {
                            in_flight.insert(pos, (String::new(), d.1, d.2));
                        }
                        continue;
                    }
                    let mut finished = vec![in_flight.pop_front()];
                    while in_flight.front().is_some_and(|(t, _, _)| t.is_empty()) {
                        finished.push(in_flight.pop_front());
                    }
                    for (_, idx, t0) in finished.into_iter().flatten() {
                        let b = plan[idx];
                        let got = std::mem::take(&mut received[idx]);
                        if got.len() < b.count {
                            missing.extend(
                                listed
                                    .iter_range(b.after, b.last)
                                    .filter(|u| !got.contains(u)),
                            );
                        }
                        match missing.first() {
                            None => {
                                self.store
                                    .advance_cursor(ctx.mailbox, ctx.uidvalidity, b.last)
                                    .await?
                            }
                            Some(&first) if first - 1 > b.after => {
                                self.store
                                    .advance_cursor(ctx.mailbox, ctx.uidvalidity, first - 1)
                                    .await?
                            }
                            Some(_) => {}
                        }
                        self.made_progress();
                        let (n, bytes) = batch_counts[idx];
                        stats.fetched += n;
                        stats.bytes += bytes;
                        tracing::info!(
                            account = ctx.account,
                            folder = %ctx.folder,
                            count = n,
                            bytes,
                            ms = t0.elapsed().as_millis() as u64,
                            last_uid = b.last,
                            "batch stored"
                        );
                    }
                }
                Response::Untagged(u) => {
                    if let Some(new) = uidvalidity_in(&u)
                        && new != ctx.uidvalidity
                    {
                        return Err(SyncError::UidValidityChanged {
                            old: ctx.uidvalidity.0,
                            new: new.0,
                        });
                    }
                }
                Response::Continuation(_) => {
                    return Err(
                        SessionError::Unexpected("unexpected continuation request".into()).into(),
                    );
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        // Ask once more which of the missing UIDs exist. A server that left
        // out more than a few is not having a race with an expunge: retry.
        if missing.len() > MAX_RECHECK {
            return Err(SyncError::NotDelivered(missing[0]));
        }
        let still = list_uid_set(session, &UidSet::from_uids(missing.iter().copied())).await?;
        if let Some(first) = still.iter().next() {
            tracing::warn!(account = ctx.account, folder = %ctx.folder, uid = first,
                "server listed a message but did not send it; it will be asked for again");
            return Err(SyncError::NotDelivered(first));
        }
        tracing::info!(account = ctx.account, folder = %ctx.folder, count = missing.len(),
            "messages expunged between the listing and the fetch; passing them");
        if let Some(b) = plan.last() {
            self.store
                .advance_cursor(ctx.mailbox, ctx.uidvalidity, b.last)
                .await?;
        }
        Ok(())
    }
}

pub(crate) struct FetchCtx<'a> {
    pub(crate) account: &'a str,
    pub(crate) folder: String,
    pub(crate) mailbox: MailboxId,
    pub(crate) uidvalidity: UidValidity,
}

fn uidvalidity_in(u: &Untagged) -> Option<UidValidity> {
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

/// Streams `UID FETCH 1:last (UID FLAGS)` (only changed ones with
/// `changed_since`), handing flags to the store in chunks; returns the UIDs
/// that exist and how many stored messages changed flags.
async fn scan_flags(
    engine: &Engine,
    session: &mut Session,
    ctx: &FetchCtx<'_>,
    last: u32,
    changed_since: Option<ModSeq>,
) -> Result<(UidSet, u64), SyncError> {
    let tag = session
        .send(&Command::UidFetch {
            set: format!("1:{last}"),
            items: "UID FLAGS",
            changed_since,
            vanished: false,
        })
        .await?;
    let mut existing = RangeBuilder::default();
    let mut chunk: Vec<(u32, Vec<String>)> = Vec::new();
    let mut changed = 0;
    loop {
        let r = session.next_response().await?;
        match r.response {
            Response::Untagged(Untagged::Fetch(_, d)) => {
                if let (Some(Uid(uid)), Some(flags)) = (d.uid, d.flags)
                    && uid <= last
                {
                    existing.push(uid);
                    chunk.push((uid, flags));
                    if chunk.len() >= FLAG_CHUNK {
                        let c = std::mem::take(&mut chunk);
                        changed += engine
                            .store
                            .apply_flags(ctx.mailbox, ctx.uidvalidity, c)
                            .await?;
                    }
                }
            }
            Response::Tagged {
                tag: t,
                status,
                text,
            } if t == tag => {
                crate::session::completion("UID FETCH", status, text)?;
                break;
            }
            Response::Tagged { tag: t, .. } => {
                return Err(SessionError::Unexpected(format!(
                    "tagged reply for unknown tag `{t}`"
                ))
                .into());
            }
            _ => {}
        }
    }
    if !chunk.is_empty() {
        changed += engine
            .store
            .apply_flags(ctx.mailbox, ctx.uidvalidity, chunk)
            .await?;
    }
    Ok((existing.finish(), changed))
}

/// Lists the UIDs above `after`, streamed into compact ranges so a huge
/// mailbox costs a few integers, not a response object per message. `n:*`
/// also returns the highest message when all UIDs are below `n`, so results
/// are filtered.
/// The UIDs above `after`, and with `sized` the sum of their RFC822.SIZE.
async fn list_uids(
    session: &mut Session,
    after: u32,
    sized: bool,
) -> Result<(UidSet, u64), SyncError> {
    let set = format!("{}:*", after.saturating_add(1));
    let items = if sized { "UID RFC822.SIZE" } else { "UID" };
    list_uids_in(session, set, items, |u| u > after).await
}

/// Which UIDs of `set` exist on the server.
async fn list_uid_set(session: &mut Session, set: &UidSet) -> Result<UidSet, SyncError> {
    let (uids, _) = list_uids_in(session, set.to_string(), "UID", |u| set.contains(u)).await?;
    Ok(uids)
}

/// `UID FETCH set (items)`, keeping the UIDs that `wanted` accepts (a server
/// answers `n:*` with the last message even when its UID is below n), and
/// the sum of their RFC822.SIZE when `items` asks for it.
async fn list_uids_in(
    session: &mut Session,
    set: String,
    items: &'static str,
    wanted: impl Fn(u32) -> bool,
) -> Result<(UidSet, u64), SyncError> {
    let tag = session
        .send(&Command::UidFetch {
            set,
            items,
            changed_since: None,
            vanished: false,
        })
        .await?;
    let mut ranges = RangeBuilder::default();
    let mut bytes = 0u64;
    loop {
        let r = session.next_response().await?;
        match r.response {
            Response::Untagged(Untagged::Fetch(_, d)) => {
                if let Some(Uid(uid)) = d.uid.filter(|u| wanted(u.0)) {
                    ranges.push(uid);
                    bytes = bytes.saturating_add(d.rfc822_size.unwrap_or(0));
                }
            }
            Response::Tagged {
                tag: t,
                status,
                text,
            } if t == tag => {
                crate::session::completion("UID FETCH", status, text)?;
                return Ok((ranges.finish(), bytes));
            }
            Response::Tagged { tag: t, .. } => {
                return Err(SessionError::Unexpected(format!(
                    "tagged reply for unknown tag `{t}`"
                ))
                .into());
            }
            _ => {}
        }
    }
}

/// Collects UIDs arriving mostly in order into ranges.
#[derive(Default)]
struct RangeBuilder {
    ranges: Vec<(u32, u32)>,
}

impl RangeBuilder {
    fn push(&mut self, uid: u32) {
        match self.ranges.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(uid) => last.1 = uid,
            _ => self.ranges.push((uid, uid)),
        }
    }

    fn finish(self) -> UidSet {
        UidSet::from_ranges(self.ranges)
    }
}

/// `INBOX` is case-insensitive (RFC 3501 5.1): `inbox`, `Inbox` and `INBOX`
/// are one folder, and must be one mailbox in the database, not three.
fn canonical_inbox(wire: String) -> String {
    if wire.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        wire
    }
}

/// Resolves the configured folder list (exact names and LIST patterns) to
/// wire names, in configuration order without repeats.
pub async fn resolve_folders(
    session: &mut Session,
    folders: &[String],
) -> Result<Vec<String>, SessionError> {
    let mut out: Vec<String> = Vec::new();
    for f in folders {
        if f.contains('*') || f.contains('%') {
            let entries = session.list(&mutf7::encode(f)).await?;
            for e in entries.into_iter().filter(|e| e.is_selectable()) {
                let name = canonical_inbox(e.name);
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        } else {
            let wire = canonical_inbox(mutf7::encode(f));
            if !out.contains(&wire) {
                out.push(wire);
            }
        }
    }
    Ok(out)
}

/// One pass over an account: resolve folders, then sync them over up to
/// `max_connections` connections. Folder failures are reported, not fatal.
pub async fn sync_account(
    engine: &Engine,
    account: &AccountConfig,
    make_tap: &(dyn Fn() -> Option<Tap> + Sync),
) -> Vec<FolderOutcome> {
    let fail_all = |e: SyncError| {
        vec![FolderOutcome {
            account: account.name.clone(),
            folder: "(connect)".into(),
            result: Err(e),
        }]
    };
    let mut first = match Session::connect(account, &engine.opts, make_tap()).await {
        Ok(s) => s,
        Err(e) => return fail_all(e.into()),
    };
    let folders = match resolve_folders(&mut first, &account.folders).await {
        Ok(f) => f,
        Err(e) => return fail_all(e.into()),
    };
    let queue = Arc::new(Mutex::new(folders.iter().cloned().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers = (account.max_connections as usize).min(folders.len()).max(1);
    let mut sessions = vec![Some(first)];
    sessions.resize_with(workers, || None);
    let tasks = sessions.into_iter().map(|s| {
        let queue = queue.clone();
        let results = results.clone();
        async move {
            let mut session = s;
            while let Some(folder) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                if session.is_none() {
                    match Session::connect(account, &engine.opts, make_tap()).await {
                        Ok(s) => session = Some(s),
                        Err(e) => {
                            push(&results, account, &folder, Err(e.into()));
                            continue;
                        }
                    }
                }
                let Some(sess) = session.as_mut() else {
                    continue;
                };
                let r = engine.sync_folder(sess, &account.name, &folder).await;
                if r.as_ref().is_err_and(SyncError::breaks_connection) {
                    session = None;
                }
                push(&results, account, &folder, r);
            }
            if let Some(s) = session {
                s.logout().await;
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    let mut out = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    // Report in configuration order.
    out.sort_by_key(|o: &FolderOutcome| {
        folders
            .iter()
            .position(|f| mutf7::decode(f) == o.folder)
            .unwrap_or(usize::MAX)
    });
    out
}

fn push(
    results: &Mutex<Vec<FolderOutcome>>,
    account: &AccountConfig,
    wire: &str,
    result: Result<FolderStats, SyncError>,
) {
    if let Ok(mut r) = results.lock() {
        r.push(FolderOutcome {
            account: account.name.clone(),
            folder: mutf7::decode(wire),
            result,
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inbox_is_one_folder_in_any_case() {
        for n in ["inbox", "Inbox", "INBOX", "iNbOx"] {
            assert_eq!(super::canonical_inbox(n.to_owned()), "INBOX");
        }
        assert_eq!(super::canonical_inbox("Inbox/Sub".to_owned()), "Inbox/Sub");
        assert_eq!(super::canonical_inbox("Inboxes".to_owned()), "Inboxes");
    }

    use super::*;

    fn state(uv: u32, exists: u32, uidnext: u32) -> MailboxState {
        MailboxState {
            exists,
            uidvalidity: Some(UidValidity(uv)),
            uidnext: Some(uidnext),
            ..Default::default()
        }
    }

    #[test]
    fn plan_decides_from_cursor_and_state() {
        let fresh = MailboxCursor::default();
        assert_eq!(
            plan(&fresh, &state(5, 10, 11)).expect("plan"),
            Plan::Fetch {
                uidvalidity: UidValidity(5),
                after: 0,
                new_generation: true
            }
        );
        let cur = MailboxCursor {
            uidvalidity: Some(UidValidity(5)),
            last_uid: 10,
            highest_modseq: None,
        };
        assert_eq!(
            plan(&cur, &state(5, 10, 11)).expect("plan"),
            Plan::UpToDate {
                uidvalidity: UidValidity(5)
            }
        );
        assert_eq!(
            plan(&cur, &state(5, 11, 13)).expect("plan"),
            Plan::Fetch {
                uidvalidity: UidValidity(5),
                after: 10,
                new_generation: false
            }
        );
        assert_eq!(
            plan(&cur, &state(6, 3, 4)).expect("plan"),
            Plan::Fetch {
                uidvalidity: UidValidity(6),
                after: 0,
                new_generation: true
            }
        );
        assert!(matches!(
            plan(&cur, &state(0, 3, 4)),
            Err(SyncError::NoUidValidity)
        ));
        let mut no_uv = state(5, 1, 2);
        no_uv.uidvalidity = None;
        assert!(plan(&cur, &no_uv).is_err());
        // Without UIDNEXT the server must be asked.
        let mut no_next = state(5, 10, 0);
        no_next.uidnext = None;
        assert!(matches!(
            plan(&cur, &no_next).expect("plan"),
            Plan::Fetch { after: 10, .. }
        ));
    }

    #[test]
    fn batches_are_contiguous_and_bounded() {
        let listed = UidSet::from_uids([3, 4, 9, 10, 11]);
        let b = batches(2, &listed, 2);
        assert_eq!(
            b.iter()
                .map(|b| (b.after, b.last, b.count))
                .collect::<Vec<_>>(),
            vec![(2, 4, 2), (4, 10, 2), (10, 11, 1)]
        );
        // UIDs at or below the cursor (the `n:*` quirk) are ignored.
        assert!(batches(20, &listed, 2).is_empty());
        assert_eq!(batches(0, &listed, 100).len(), 1);
    }

    #[test]
    fn range_builder_is_compact() {
        let mut r = RangeBuilder::default();
        for u in (1..=100_000).chain([200_000, 7]) {
            r.push(u);
        }
        let set = r.finish();
        assert_eq!(set.ranges(), &[(1, 100_000), (200_000, 200_000)]);
    }
}

#[cfg(test)]
mod unsolicited_tests;
