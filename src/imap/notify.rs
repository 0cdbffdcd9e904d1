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
use super::response::{Code, Response, Untagged, UntaggedStatus};
use super::tags::{Asks, Tags};

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
            },
            cmd,
        )
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
            // The answer to a STATUS command is not an announcement.
            Response::Untagged(Untagged::MailboxStatus { mailbox, .. })
                if !tags.asking(Asks::Status) =>
            {
                match self.mailboxes.iter().find(|m| same_mailbox(m, mailbox)) {
                    Some(m) => NotifyEvent::Changed(m.clone()),
                    None => NotifyEvent::Ignored,
                }
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
