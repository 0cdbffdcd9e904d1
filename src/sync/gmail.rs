//! Gmail (X-GM-EXT-1): one message is in many folders under a different
//! UID in each, with one X-GM-MSGID. A folder's new UIDs are listed with
//! their X-GM-MSGID and labels first; those whose message the account
//! already stores become memberships (no body fetched), the rest go to the
//! ordinary pipelined fetch. Label changes of stored messages are read with
//! CHANGEDSINCE (Gmail offers CONDSTORE, not QRESYNC).

use super::{Engine, FetchCtx, SyncError};
use crate::imap::{Command, FetchItems, FetchSet, ModSeq, UidSet, Untagged, mutf7};
use crate::session::Session;
use crate::store::Sighting;

/// Label reports handed to the store at once.
const LABEL_CHUNK: usize = 2000;

/// Decoded labels (Gmail sends them in modified UTF-7).
pub(super) fn decode_labels(labels: &[String]) -> Vec<String> {
    labels.iter().map(|l| mutf7::decode(l)).collect()
}

/// The UIDs above `after` with their X-GM-MSGID and labels.
pub(super) async fn list(
    session: &mut Session,
    after: u32,
) -> Result<(UidSet, Vec<Sighting>), SyncError> {
    let tag = session
        .send(&Command::UidFetch {
            set: FetchSet::From(after.saturating_add(1)),
            items: FetchItems::GmailLabels,
            changed_since: None,
            vanished: false,
        })
        .await?;
    let mut sightings = Vec::new();
    while let Some(u) = session.next_answer(&tag, "UID FETCH").await? {
        // `n:*` also answers with the last message below n.
        if let Untagged::Fetch(_, d) = u
            && let (Some(uid), Some(msgid)) = (d.uid.filter(|u| u.0 > after), d.gm_msgid)
        {
            sightings.push(Sighting {
                uid: uid.0,
                msgid,
                labels: d.gm_labels.as_deref().map(decode_labels),
            });
        }
    }
    let uids = UidSet::from_uids(sightings.iter().map(|s| s.uid));
    Ok((uids, sightings))
}

impl Engine {
    /// Reads the labels of stored messages (UIDs up to `last`) changed
    /// since `since` and records each change as a `labels` event.
    pub(super) async fn scan_labels(
        &self,
        session: &mut Session,
        ctx: &FetchCtx<'_>,
        last: u32,
        since: Option<ModSeq>,
    ) -> Result<u64, SyncError> {
        let tag = session
            .send(&Command::UidFetch {
                set: FetchSet::Range(1, last),
                items: FetchItems::GmailLabels,
                changed_since: since,
                vanished: false,
            })
            .await?;
        let mut chunk: Vec<(u64, Vec<String>)> = Vec::new();
        let mut changed = 0;
        while let Some(u) = session.next_answer(&tag, "UID FETCH").await? {
            if let Untagged::Fetch(_, d) = u
                && let (Some(msgid), Some(labels)) = (d.gm_msgid, d.gm_labels)
            {
                chunk.push((msgid, decode_labels(&labels)));
                if chunk.len() >= LABEL_CHUNK {
                    let c = std::mem::take(&mut chunk);
                    changed += self.store.apply_labels(ctx.mailbox, c).await?;
                }
            }
        }
        if !chunk.is_empty() {
            changed += self.store.apply_labels(ctx.mailbox, chunk).await?;
        }
        if changed > 0 {
            tracing::info!(account = ctx.account, folder = %ctx.folder, labels_changed = changed,
                "label changes recorded");
        }
        Ok(changed)
    }
}
