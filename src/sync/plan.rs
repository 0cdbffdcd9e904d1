//! The pure planning step: from a mailbox's cursor and what EXAMINE said,
//! decide whether anything is to be fetched, and cut the listed UIDs into
//! contiguous ranges. No IO, no session, no store.

use super::SyncError;
use crate::imap::{UidSet, UidValidity};
use crate::session::MailboxState;
use crate::store::MailboxCursor;

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

#[cfg(test)]
mod tests {
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
}
