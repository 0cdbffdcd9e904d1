//! Watching many folders on one connection: drives `crate::imap::notify`.
//! Once the watch is set, every response read on the connection (in a
//! pass, in IDLE) is shown to it, and the folders it names are kept until
//! the service takes them; [`Session::wait_in_idle`] returns as soon as one
//! is named. The service never sees a command or a response.

use std::collections::BTreeSet;

use super::{Session, SessionError};
use crate::imap::{Command, Notify, NotifyEvent, Response, Seen, Untagged};

/// How the server answered `NOTIFY SET`.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyBegun {
    /// The folders are watched: changes are kept for
    /// [`Session::take_notified`].
    Accepted,
    /// The server refused (its status and words); nothing is watched.
    Refused(String),
}

/// Folders the server reported changed since the last
/// [`Session::take_notified`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notified {
    /// Wire names, as given to [`Session::notify_set`].
    pub folders: BTreeSet<String>,
    /// The server lost count (`NOTIFICATIONOVERFLOW`): any folder may have
    /// changed.
    pub all: bool,
}

impl Notified {
    pub fn is_empty(&self) -> bool {
        self.folders.is_empty() && !self.all
    }
}

/// The watch of one connection and what it has noted.
#[derive(Debug)]
pub(super) struct Watching {
    flow: Notify,
    noted: Notified,
}

impl Watching {
    pub(super) fn received(&mut self, r: &Response, tags: &crate::imap::Tags) {
        match self.flow.received(r, tags) {
            NotifyEvent::Changed(m) => {
                self.noted.folders.insert(m);
            }
            NotifyEvent::Overflowed => self.noted.all = true,
            NotifyEvent::Set | NotifyEvent::Refused(_) | NotifyEvent::Ignored => {}
        }
    }
}

impl Session {
    /// Whether the server offers NOTIFY.
    pub fn notify_offered(&self) -> bool {
        self.caps.notify()
    }

    /// Asks the server to report changes in `folders` (wire names) while
    /// this connection lives, whichever of them is selected.
    pub async fn notify_set(&mut self, folders: &[String]) -> Result<NotifyBegun, SessionError> {
        let (flow, cmd) = Notify::start(folders.to_vec());
        self.watching = Some(Watching {
            flow,
            noted: Notified::default(),
        });
        let tag = self.send(&cmd).await?;
        let r = self.collect(&tag, cmd.name()).await;
        let set = self.watching.as_ref().is_some_and(|w| w.flow.is_set());
        match r {
            Ok(_) if set => Ok(NotifyBegun::Accepted),
            Ok(_) => Err(SessionError::Unexpected(
                "NOTIFY answered but not seen by the watch".into(),
            )),
            Err(SessionError::CommandFailed {
                status, text, code, ..
            }) => {
                self.watching = None;
                let words = crate::imap::StatusText { code, text }.shown();
                Ok(NotifyBegun::Refused(format!("{status} {words}")))
            }
            Err(e) => Err(e),
        }
    }

    /// The folders reported changed since the last call.
    pub fn take_notified(&mut self) -> Notified {
        self.watching
            .as_mut()
            .map(|w| std::mem::take(&mut w.noted))
            .unwrap_or_default()
    }

    /// Whether `folder` moved on since a pass saw `seen` (asked with
    /// STATUS, whose answer the watch does not take for an announcement).
    pub async fn moved_on(&mut self, folder: &str, seen: &Seen) -> Result<bool, SessionError> {
        if let Some(w) = self.watching.as_mut() {
            w.flow.status_asked(folder);
        }
        let cmd = Command::Status {
            mailbox: folder.to_owned(),
            items: Seen::status_items(self.caps.condstore()),
        };
        let answer = self.run(&cmd).await?;
        Ok(answer.iter().any(|u| {
            matches!(u, Untagged::MailboxStatus { mailbox, items } if mailbox == folder && seen.moved_on(items))
        }))
    }

    /// Closes the selected mailbox without expunging (UNSELECT, when
    /// offered): every change is then announced by the watch. False when
    /// the server cannot.
    pub async fn unselect(&mut self) -> Result<bool, SessionError> {
        if !self.caps.has("UNSELECT") {
            return Ok(false);
        }
        self.unasked.selecting();
        self.run(&Command::Unselect).await?;
        self.opened = None;
        Ok(true)
    }

    /// The folder the last EXAMINE or SELECT opened, and what it saw.
    pub fn opened(&self) -> Option<(&str, Seen)> {
        self.opened.as_ref().map(|(f, s)| (f.as_str(), *s))
    }

    /// Whether a watched folder was reported changed and not yet taken.
    pub(super) fn has_notified(&self) -> bool {
        self.watching.as_ref().is_some_and(|w| !w.noted.is_empty())
    }
}
