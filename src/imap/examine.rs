//! The EXAMINE/SELECT fold: what the responses to one EXAMINE (or SELECT) say about the
//! mailbox (RFC 3501 counts and codes, RFC 7162 HIGHESTMODSEQ, NOMODSEQ, the
//! QRESYNC report of flag changes and VANISHED (EARLIER), and `[CLOSED]`,
//! before which everything belonged to the mailbox selected until then).
//! Memory is bounded: a report larger than [`MAX_REPORTED_CHANGES`] is
//! dropped and marked for a streamed read instead.

use super::command::Command;
use super::response::{Code, StatusText, Untagged};
use super::types::{ModSeq, UidSet, UidValidity};

/// Flag changes (and VANISHED ranges) of one EXAMINE held in memory at most:
/// a QRESYNC report after "mark all as read" on a huge folder has one
/// response per message.
pub const MAX_REPORTED_CHANGES: usize = 100_000;

/// What EXAMINE reported about a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxState {
    pub exists: u32,
    pub uidvalidity: Option<UidValidity>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<ModSeq>,
    pub nomodseq: bool,
    /// UIDs reported expunged by QRESYNC (`VANISHED (EARLIER)`).
    pub vanished: UidSet,
    /// Flag changes reported by QRESYNC during EXAMINE: (uid, flags, modseq).
    pub changed: Vec<(u32, Vec<String>, Option<ModSeq>)>,
    /// QRESYNC reported more flag changes than [`MAX_REPORTED_CHANGES`];
    /// `changed` is empty and they must be read again with CHANGEDSINCE.
    pub changes_overflowed: bool,
}

/// One EXAMINE in progress: fed its untagged responses, finished by its OK.
#[derive(Debug)]
pub struct Examine {
    state: MailboxState,
    vanished: Vec<(u32, u32)>,
    condstore: bool,
}

impl Examine {
    /// Starts EXAMINE of `mailbox_wire` (read-only), or SELECT with
    /// `read_write` (only for a folder mailfeed is configured to change).
    /// `condstore` when the server advertises it; `qresync` the known
    /// generation and modseq when QRESYNC is enabled. Both are answered
    /// alike.
    pub fn start(
        mailbox_wire: &str,
        read_write: bool,
        condstore: bool,
        qresync: Option<(UidValidity, ModSeq)>,
    ) -> (Examine, Command) {
        let mailbox = mailbox_wire.to_owned();
        let cmd = if read_write {
            Command::Select {
                mailbox,
                condstore,
                qresync,
            }
        } else {
            Command::Examine {
                mailbox,
                condstore,
                qresync,
            }
        };
        let flow = Examine {
            state: MailboxState::default(),
            vanished: Vec::new(),
            condstore,
        };
        (flow, cmd)
    }

    /// Folds one untagged response in.
    pub fn received(&mut self, u: Untagged) {
        let st = &mut self.state;
        match u {
            Untagged::Exists(n) => st.exists = n,
            Untagged::Status(
                _,
                StatusText {
                    code: Some(code), ..
                },
            ) => match code {
                Code::UidValidity(v) => st.uidvalidity = Some(UidValidity(v)),
                Code::UidNext(n) => st.uidnext = Some(n),
                Code::HighestModSeq(m) => st.highest_modseq = Some(ModSeq(m)),
                Code::NoModSeq => st.nomodseq = true,
                // RFC 7162 3.2.11: everything before this belonged to the
                // previously selected folder (a queued flag update or
                // VANISHED of it must not be applied to this one).
                Code::Closed => {
                    *st = MailboxState::default();
                    self.vanished.clear();
                }
                _ => {}
            },
            Untagged::Vanished { uids, .. } => {
                self.vanished.extend_from_slice(uids.ranges());
                if self.vanished.len() > MAX_REPORTED_CHANGES {
                    let merged = UidSet::from_ranges(std::mem::take(&mut self.vanished));
                    self.vanished = merged.ranges().to_vec();
                }
            }
            Untagged::Fetch(_, d) => {
                if st.changes_overflowed {
                    return;
                }
                if let (Some(uid), Some(flags)) = (d.uid, d.flags) {
                    st.changed.push((uid.0, flags, d.modseq));
                }
                if st.changed.len() > MAX_REPORTED_CHANGES {
                    // Too many to hold: the caller reads them again,
                    // streamed, with CHANGEDSINCE.
                    st.changed = Vec::new();
                    st.changes_overflowed = true;
                }
            }
            _ => {}
        }
    }

    /// The state, once the tagged OK has come.
    pub fn finished(self) -> MailboxState {
        let mut st = self.state;
        st.vanished = UidSet::from_ranges(self.vanished);
        if !self.condstore {
            // Some servers report HIGHESTMODSEQ without advertising
            // CONDSTORE; mailfeed uses only what is advertised.
            st.highest_modseq = None;
        }
        st
    }
}
