//! Listing what a folder holds: `UID FETCH n:* (UID)` streamed into
//! compact ranges, and the flag scan (`UID FETCH 1:n (UID FLAGS)`, with
//! CHANGEDSINCE when known) that hands flags to the store in chunks. Reads
//! responses through the session; never encodes a command itself.

use super::{Engine, FetchCtx, SyncError};
use crate::imap::{Command, FetchItems, FetchSet, ModSeq, Uid, UidSet, Untagged};
use crate::session::Session;

/// Flag updates handed to the store at once during a rescan.
const FLAG_CHUNK: usize = 2000;

/// Streams `UID FETCH 1:last (UID FLAGS)` (only changed ones with
/// `changed_since`), handing flags to the store in chunks; returns the UIDs
/// that exist and how many stored messages changed flags.
pub(super) async fn scan_flags(
    engine: &Engine,
    session: &mut Session,
    ctx: &FetchCtx<'_>,
    last: u32,
    changed_since: Option<ModSeq>,
) -> Result<(UidSet, u64), SyncError> {
    let tag = session
        .send(&Command::UidFetch {
            set: FetchSet::Range(1, last),
            items: FetchItems::Flags,
            changed_since,
            vanished: false,
        })
        .await?;
    let mut existing = RangeBuilder::default();
    let mut chunk: Vec<(u32, Vec<String>)> = Vec::new();
    let mut changed = 0;
    while let Some(u) = session.next_answer(&tag, "UID FETCH").await? {
        if let Untagged::Fetch(_, d) = u
            && let (Some(Uid(uid)), Some(flags)) = (d.uid, d.flags)
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
/// are filtered. With `sized`, also the sum of their RFC822.SIZE.
pub(super) async fn list_uids(
    session: &mut Session,
    after: u32,
    sized: bool,
) -> Result<(UidSet, u64), SyncError> {
    let set = FetchSet::From(after.saturating_add(1));
    let items = if sized {
        FetchItems::UidSize
    } else {
        FetchItems::Uid
    };
    list_uids_in(session, set, items, |u| u > after).await
}

/// Which UIDs of `set` exist on the server.
pub(super) async fn list_uid_set(session: &mut Session, set: &UidSet) -> Result<UidSet, SyncError> {
    let (uids, _) = list_uids_in(session, FetchSet::Set(set.clone()), FetchItems::Uid, |u| {
        set.contains(u)
    })
    .await?;
    Ok(uids)
}

/// `UID FETCH set (items)`, keeping the UIDs that `wanted` accepts (a server
/// answers `n:*` with the last message even when its UID is below n), and
/// the sum of their RFC822.SIZE when `items` asks for it.
async fn list_uids_in(
    session: &mut Session,
    set: FetchSet,
    items: FetchItems,
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
    while let Some(u) = session.next_answer(&tag, "UID FETCH").await? {
        if let Untagged::Fetch(_, d) = u
            && let Some(Uid(uid)) = d.uid.filter(|u| wanted(u.0))
        {
            ranges.push(uid);
            bytes = bytes.saturating_add(d.rfc822_size.unwrap_or(0));
        }
    }
    Ok((ranges.finish(), bytes))
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

#[cfg(test)]
mod tests {
    use super::*;

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
