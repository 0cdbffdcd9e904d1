//! NOTIFY (RFC 5465) as a pure flow: one connection watches many mailboxes.
//! The command asks for new, expunged and changed messages in the watched
//! mailboxes; the server then reports the selected one as usual (EXISTS,
//! EXPUNGE, FETCH, which IDLE and the unasked-change tracker already read)
//! and every other one with an unasked `* STATUS`. This says which watched
//! mailbox such a response names, and when the server lost count
//! (`NOTIFICATIONOVERFLOW`: every mailbox must be looked at). It is fed
//! every response of the connection, whatever command is open; the driver
//! decides what to sync and when.

use super::command::Command;
use super::examine::MailboxState;
use super::response::{Code, Response, Untagged, UntaggedStatus};
use super::tags::Tags;

/// What one response meant to the watch.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyEvent {
    /// `NOTIFY SET` was accepted: the watch is on.
    Set,
    /// `NOTIFY SET` was refused (`NO [BADEVENT]`, `BAD`, ...): its status
    /// and words. Nothing is watched.
    Refused(String),
    /// The server reported a change in this watched mailbox (its wire name
    /// as given to [`Notify::start`]).
    Changed(String),
    /// The server could not keep up and stopped reporting
    /// (`NOTIFICATIONOVERFLOW`): any watched mailbox may have changed.
    Overflowed,
    /// Nothing the watch cares about.
    Ignored,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Requested,
    Set,
    Refused,
}

/// One `NOTIFY SET`, from the command for as long as the connection lives.
#[derive(Debug)]
pub struct Notify {
    mailboxes: Vec<String>,
    phase: Phase,
    /// Mailboxes a STATUS command asked about, whose next `* STATUS` is
    /// that command's answer, not an announcement.
    asked: Vec<String>,
}

impl Notify {
    /// Starts watching `mailboxes` (wire names): the flow and the command.
    pub fn start(mailboxes: Vec<String>) -> (Notify, Command) {
        let cmd = Command::NotifySet {
            mailboxes: mailboxes.clone(),
        };
        (
            Notify {
                mailboxes,
                phase: Phase::Requested,
                asked: Vec::new(),
            },
            cmd,
        )
    }

    /// A `STATUS mailbox` command is being sent: its answer is not an
    /// announcement.
    pub fn status_asked(&mut self, mailbox: &str) {
        self.asked.push(mailbox.to_owned());
    }

    /// Whether the server accepted the watch.
    pub fn is_set(&self) -> bool {
        self.phase == Phase::Set
    }

    /// Feeds one response, read while the commands in `tags` were open
    /// (before its own tagged reply closes one).
    pub fn received(&mut self, r: &Response, tags: &Tags) -> NotifyEvent {
        match r {
            Response::Tagged { tag, status, text }
                if self.phase == Phase::Requested && tags.name(tag) == Some("NOTIFY") =>
            {
                if *status == super::response::Status::Ok {
                    self.phase = Phase::Set;
                    NotifyEvent::Set
                } else {
                    self.phase = Phase::Refused;
                    NotifyEvent::Refused(format!("{} {}", status.as_str(), text.shown()))
                }
            }
            _ if self.phase == Phase::Refused => NotifyEvent::Ignored,
            Response::Untagged(Untagged::MailboxStatus { mailbox, .. }) => {
                // The answer to a STATUS command is not an announcement.
                if let Some(i) = self.asked.iter().position(|m| same_mailbox(m, mailbox)) {
                    self.asked.swap_remove(i);
                    return NotifyEvent::Ignored;
                }
                match self.mailboxes.iter().find(|m| same_mailbox(m, mailbox)) {
                    Some(m) => NotifyEvent::Changed(m.clone()),
                    None => NotifyEvent::Ignored,
                }
            }
            // A STATUS that failed sent no answer to wait for.
            Response::Tagged { tag, .. } if tags.name(tag) == Some("STATUS") => {
                self.asked.clear();
                NotifyEvent::Ignored
            }
            Response::Untagged(Untagged::Status(UntaggedStatus::Ok, text))
            | Response::Tagged { text, .. }
                if matches!(&text.code, Some(Code::Other(c, _)) if c.eq_ignore_ascii_case("NOTIFICATIONOVERFLOW")) =>
            {
                NotifyEvent::Overflowed
            }
            _ => NotifyEvent::Ignored,
        }
    }
}

/// Mailbox names compare exactly, except INBOX, which is INBOX in any case
/// (RFC 3501 5.1).
fn same_mailbox(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

/// What a pass saw of a folder when it opened it, to tell later, from a
/// STATUS, whether the folder moved on since (a change made while it was
/// selected that the server never announced because another folder was
/// selected before it noticed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    uidvalidity: Option<u32>,
    uidnext: Option<u32>,
    messages: u32,
    highest_modseq: Option<u64>,
}

impl Seen {
    pub fn of(st: &MailboxState) -> Seen {
        Seen {
            uidvalidity: st.uidvalidity.map(|v| v.0),
            uidnext: st.uidnext,
            messages: st.exists,
            highest_modseq: st.highest_modseq.map(|m| m.0),
        }
    }

    /// The STATUS items to ask for (HIGHESTMODSEQ only with CONDSTORE).
    pub fn status_items(condstore: bool) -> Vec<&'static str> {
        let mut items = vec!["MESSAGES", "UIDNEXT", "UIDVALIDITY"];
        if condstore {
            items.push("HIGHESTMODSEQ");
        }
        items
    }

    /// Whether a STATUS answer differs from what was seen (an item not
    /// seen, or not answered, tells nothing).
    pub fn moved_on(&self, items: &[(String, u64)]) -> bool {
        items.iter().any(|(name, v)| match name.as_str() {
            "MESSAGES" => u64::from(self.messages) != *v,
            "UIDNEXT" => self.uidnext.is_some_and(|n| u64::from(n) != *v),
            "UIDVALIDITY" => self.uidvalidity.is_some_and(|n| u64::from(n) != *v),
            "HIGHESTMODSEQ" => self.highest_modseq.is_some_and(|n| n != *v),
            _ => false,
        })
    }
}
