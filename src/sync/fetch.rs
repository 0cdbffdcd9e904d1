//! The pipelined body fetch over a session: sends the ranges a
//! [`Pipeline`] hands out, stores each message as it arrives, and queues the
//! cursor moves the pipeline allows — behind the messages they cover. Then
//! lists again the UIDs that did not arrive.

use std::time::Instant;

use super::listing::list_uid_set;
use super::progress::ProgressEvent;
use super::{Batch, Engine, FetchCtx, FolderStats, Pipeline, SyncError, UnknownTag};
use crate::imap::date::internal_date_to_utc;
use crate::imap::{Body, Command, FetchItems, FetchSet, Response, UidSet, Untagged};
use crate::session::{Session, SessionError};
use crate::store::{GmailIds, NewMessage};

/// How many FETCH commands may be in flight on one connection.
const PIPELINE_DEPTH: usize = 3;
/// Missing UIDs of a pass that are listed again before giving up on them.
const MAX_RECHECK: usize = 1000;

impl Engine {
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
        plan: Vec<Batch>,
        stats: &mut FolderStats,
    ) -> Result<(), SyncError> {
        let mut started: Vec<Option<Instant>> = vec![None; plan.len()];
        let mut p = Pipeline::new(plan, listed.clone(), PIPELINE_DEPTH);
        let mut downloaded = 0u64;
        let mut paused = false;
        while !p.is_drained() {
            if !paused && ctx.budget.is_some_and(|b| downloaded >= b) {
                // The day's limit: what is in flight still lands (the limit
                // may be passed by that much), nothing more is asked.
                paused = true;
                p.stop_sending();
            }
            while let Some(b) = p.next_range() {
                let tag = session
                    .send(&Command::UidFetch {
                        // The range, or exactly the listed UIDs when a
                        // window left holes in it.
                        set: if b.count as u64 == u64::from(b.last - b.after) {
                            FetchSet::Range(b.after + 1, b.last)
                        } else {
                            FetchSet::Set(UidSet::from_uids(listed.iter_range(b.after, b.last)))
                        },
                        items: if ctx.gmail {
                            FetchItems::GmailMessage
                        } else {
                            FetchItems::Message
                        },
                        changed_since: None,
                        vanished: false,
                    })
                    .await?;
                let index = p.range_sent(tag);
                started[index] = Some(Instant::now());
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
                    if !p.asked(uid.0) {
                        tracing::warn!(account = ctx.account, folder = %ctx.folder, uid = uid.0,
                            "server sent a message that was not asked for; ignored");
                        continue;
                    }
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
                    p.message_arrived(uid.0, raw.len() as u64);
                    downloaded += raw.len() as u64;
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
                            gmail: data.gm_msgid.filter(|_| ctx.gmail).map(|msgid| GmailIds {
                                msgid,
                                thrid: data.gm_thrid,
                                labels: data.gm_labels.as_deref().map(super::gmail::decode_labels),
                            }),
                        })
                        .await?;
                }
                Response::Tagged { tag, status, text } => {
                    let done = p.tagged_ok(&tag).map_err(|UnknownTag(t)| {
                        SessionError::Unexpected(format!("tagged reply for unknown tag `{t}`"))
                    })?;
                    crate::session::completion("UID FETCH", status, text)?;
                    for c in done {
                        if let Some(to) = c.advance_to {
                            self.store
                                .advance_cursor(ctx.mailbox, ctx.uidvalidity, to)
                                .await?;
                        }
                        self.made_progress();
                        stats.fetched += c.count;
                        stats.bytes += c.bytes;
                        let ms = started[c.index].map_or(0, |t| t.elapsed().as_millis() as u64);
                        tracing::info!(
                            account = ctx.account,
                            folder = %ctx.folder,
                            count = c.count,
                            bytes = c.bytes,
                            ms,
                            last_uid = c.batch.last,
                            "batch stored"
                        );
                    }
                }
                Response::Untagged(u) => {
                    if let Some(new) = super::folder::uidvalidity_in(&u)
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
        if paused {
            tracing::info!(account = ctx.account, folder = %ctx.folder, bytes = downloaded,
                "daily download limit reached; pausing until the next day");
            return Err(super::daily_limit(
                self.daily_download_limit.unwrap_or_default(),
            ));
        }
        let missing = p.missing();
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
        if let Some(last) = p.last() {
            self.store
                .advance_cursor(ctx.mailbox, ctx.uidvalidity, last)
                .await?;
        }
        Ok(())
    }
}
