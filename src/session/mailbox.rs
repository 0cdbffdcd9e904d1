//! The selected mailbox: EXAMINE or SELECT (folded by `crate::imap::examine`), LIST,
//! ENABLE QRESYNC, and the changes the server reported unasked about it.

use super::{MailboxState, Reported, Session, SessionError};
use crate::imap::{Command, Examine, ListEntry, ModSeq, UidValidity, Untagged};

impl Session {
    /// LIST with a pattern; returns selectable folders' wire names.
    pub async fn list(&mut self, pattern: &str) -> Result<Vec<ListEntry>, SessionError> {
        let untagged = self
            .run(&Command::List {
                reference: String::new(),
                pattern: pattern.to_owned(),
            })
            .await?;
        Ok(untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::List(e) => Some(e),
                _ => None,
            })
            .collect())
    }

    /// Enables QRESYNC when offered (once per connection).
    pub async fn enable_qresync(&mut self) -> Result<bool, SessionError> {
        if self.qresync_enabled {
            return Ok(true);
        }
        if !self.caps.qresync() {
            return Ok(false);
        }
        let untagged = self.run(&Command::Enable(vec!["QRESYNC".into()])).await?;
        self.qresync_enabled = untagged.iter().any(|u| {
            matches!(u, Untagged::Enabled(c) if c.iter().any(|x| x.eq_ignore_ascii_case("QRESYNC")))
        });
        Ok(self.qresync_enabled)
    }

    /// EXAMINE (read-only): nothing mailfeed does can change the server.
    pub async fn examine(
        &mut self,
        mailbox_wire: &str,
        qresync: Option<(UidValidity, ModSeq)>,
    ) -> Result<MailboxState, SessionError> {
        let qresync = if self.qresync_enabled { qresync } else { None };
        let read_write = std::mem::take(&mut self.read_write);
        let (mut flow, cmd) =
            Examine::start(mailbox_wire, read_write, self.caps.condstore(), qresync);
        // Changes reported for the mailbox selected until now belong to it:
        // whoever wants them takes them before examining another
        // ([`Session::take_reported`]); they cannot be told apart after.
        self.unasked.selecting();
        self.opened = None;
        let tag = self.send(&cmd).await?;
        self.collect_with(&tag, cmd.name(), |u| flow.received(u))
            .await?;
        let st = flow.finished();
        self.opened = Some((mailbox_wire.to_owned(), crate::imap::Seen::of(&st)));
        self.unasked
            .selected(st.uidvalidity.map(|v| (mailbox_wire.to_owned(), v)));
        Ok(st)
    }

    /// SELECT (read-write) instead of EXAMINE, for a folder that mailfeed
    /// is configured to change (see `actions`); otherwise as [`Self::examine`].
    pub async fn select(
        &mut self,
        mailbox_wire: &str,
        qresync: Option<(UidValidity, ModSeq)>,
    ) -> Result<MailboxState, SessionError> {
        self.read_write = true;
        self.examine(mailbox_wire, qresync).await
    }

    /// True when, since the last call, the server reported a mailbox change
    /// that no command of ours asked for: an `EXISTS`, `EXPUNGE` or
    /// `VANISHED` outside EXAMINE, a `FETCH` outside our FETCHes. A sync pass
    /// may have listed the folder before that change, and a server does not
    /// repeat it in IDLE, so whoever waits next should look again first.
    pub fn take_unsolicited_changes(&mut self) -> bool {
        self.unasked.take_changed()
    }

    /// The flag changes and expunges of the selected mailbox reported
    /// unasked since the last call, if any; see [`Reported`].
    pub fn take_reported(&mut self) -> Option<Reported> {
        self.unasked.take_reported()
    }
}
