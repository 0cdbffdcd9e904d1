//! Changes the server reports without being asked: in IDLE, in the middle of
//! a FETCH, after any command. Fed every response (and the open commands, to
//! tell answers from announcements), it keeps two things: whether anything
//! changed that no command asked about, and the flag changes and expunges of
//! the selected mailbox ([`Reported`]), which must be recorded whether or not
//! the server has CONDSTORE (without it nothing else would report them
//! before the next rescan).

use super::examine::MAX_REPORTED_CHANGES;
use super::response::{Response, Untagged};
use super::tags::{Asks, Tags};
use super::types::UidValidity;

/// Flag changes and expunges of the selected mailbox reported unasked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The mailbox (wire name) and generation they belong to.
    pub mailbox: Option<(String, UidValidity)>,
    /// New flags by UID (the server named the UID: QRESYNC, or a UID in
    /// the FETCH).
    pub flags: Vec<(u32, Vec<String>)>,
    /// Message sequence numbers whose flags changed, the UID not given
    /// (IDLE without QRESYNC). Kept current through later EXPUNGEs, so they
    /// can be asked for with `FETCH n (UID FLAGS)` while still selected.
    pub flag_seqs: Vec<u32>,
    /// UIDs reported gone (`VANISHED`).
    pub vanished: Vec<(u32, u32)>,
    /// An `EXPUNGE` (by number: which UID is learnt only by listing).
    pub expunged: bool,
    /// More than [`MAX_REPORTED_CHANGES`] arrived: a rescan learns them.
    pub overflowed: bool,
}

impl Reported {
    fn is_empty(&self) -> bool {
        self.flags.is_empty()
            && self.flag_seqs.is_empty()
            && self.vanished.is_empty()
            && !self.expunged
            && !self.overflowed
    }

    fn size(&self) -> usize {
        self.flags.len() + self.flag_seqs.len() + self.vanished.len()
    }

    fn note(&mut self, u: &Untagged) {
        match u {
            Untagged::Fetch(seq, d) if d.body.is_none() => {
                let Some(flags) = &d.flags else { return };
                match d.uid {
                    Some(uid) => self.flags.push((uid.0, flags.clone())),
                    None => self.flag_seqs.push(seq.0),
                }
            }
            Untagged::Expunge(n) => {
                let n = n.0;
                self.flag_seqs.retain(|&s| s != n);
                for s in &mut self.flag_seqs {
                    if *s > n {
                        *s -= 1;
                    }
                }
                self.expunged = true;
            }
            Untagged::Vanished {
                earlier: false,
                uids,
            } => self.vanished.extend_from_slice(uids.ranges()),
            _ => return,
        }
        if self.size() > MAX_REPORTED_CHANGES {
            self.flags = Vec::new();
            self.flag_seqs = Vec::new();
            self.vanished = Vec::new();
            self.overflowed = true;
        }
    }
}

/// The tracker of one connection.
#[derive(Debug, Default)]
pub struct Unasked {
    /// The mailbox last examined, while it is selected.
    selected: Option<(String, UidValidity)>,
    reported: Reported,
    /// Something changed that no command asked about.
    changed: bool,
}

impl Unasked {
    /// Feeds one response, read while the commands in `tags` were open
    /// (before its own tagged reply closes one).
    pub fn received(&mut self, r: &Response, tags: &Tags) {
        let Response::Untagged(u) = r else { return };
        let examining = tags.asking(Asks::Examine);
        // Flag changes are ours when a command asked for flags alone (its
        // responses are applied by whoever sent it) or during EXAMINE; any
        // other FETCH carrying FLAGS and no body is a change to record.
        let recorded = match u {
            Untagged::Fetch(..) => !examining && !tags.asking(Asks::Flags),
            Untagged::Expunge(_) | Untagged::Vanished { earlier: false, .. } => !examining,
            _ => false,
        };
        if recorded && self.selected.is_some() {
            self.reported.note(u);
        }
        self.changed |= match u {
            Untagged::Exists(_)
            | Untagged::Expunge(_)
            | Untagged::Vanished { earlier: false, .. } => !examining,
            Untagged::Fetch(..) => {
                !examining && !tags.asking(Asks::UidFetch) && !tags.asking(Asks::Flags)
            }
            _ => false,
        };
    }

    /// Another mailbox is being selected: what was reported for the one
    /// selected until now belongs to it, and whoever wanted it has taken it.
    pub fn selecting(&mut self) {
        self.selected = None;
        self.reported = Reported::default();
    }

    /// The mailbox now selected (`None` when EXAMINE gave no UIDVALIDITY).
    pub fn selected(&mut self, mailbox: Option<(String, UidValidity)>) {
        self.selected = mailbox;
    }

    /// True when, since the last call, the server reported a change no
    /// command asked about.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The changes of the selected mailbox reported since the last call.
    pub fn take_reported(&mut self) -> Option<Reported> {
        if self.reported.is_empty() {
            return None;
        }
        let mut r = std::mem::take(&mut self.reported);
        r.mailbox = self.selected.clone();
        r.mailbox.is_some().then_some(r)
    }
}
