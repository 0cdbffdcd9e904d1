//! Waiting for a change: drives `crate::imap::idle` over the link. The
//! service asks for "wait until the server announces a change, or `limit`
//! passes" and never sees a command or a response.

use std::time::Duration;

use super::{Session, SessionError};
use crate::imap::{Idle, IdleEvent};

/// How the server answered IDLE.
#[derive(Debug, PartialEq, Eq)]
pub enum IdleBegun {
    /// IDLE is running: wait with [`Session::wait_in_idle`], end with
    /// [`Session::end_idle`].
    Accepted,
    /// The server refused IDLE (its status and words); poll instead.
    Refused(String),
}

impl Session {
    /// Starts IDLE on the selected mailbox and waits for the server's `+`.
    pub async fn begin_idle(&mut self) -> Result<IdleBegun, SessionError> {
        let (mut flow, cmd) = Idle::start();
        let tag = self.send(&cmd).await?;
        // Anything before the `+` is just data.
        loop {
            let r = self.next_response().await?;
            match flow.received(&r.response) {
                IdleEvent::Accepted => {
                    self.idle = Some((flow, tag));
                    return Ok(IdleBegun::Accepted);
                }
                IdleEvent::Refused(words) => return Ok(IdleBegun::Refused(words)),
                _ => {}
            }
        }
    }

    /// Waits in IDLE up to `limit`: true when the server announced a change
    /// (to the selected mailbox, or to one a NOTIFY watch names), false when
    /// the time passed quietly. A BYE is an error.
    pub async fn wait_in_idle(&mut self, limit: Duration) -> Result<bool, SessionError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // A change noted while IDLE was being started counts too.
            if self.has_notified() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let Some(r) = self.next_response_within(left).await? else {
                return Ok(false);
            };
            let Some((flow, _)) = self.idle.as_mut() else {
                return Err(SessionError::Unexpected("waiting outside IDLE".into()));
            };
            match flow.received(&r.response) {
                IdleEvent::ChangeAnnounced => return Ok(true),
                IdleEvent::ByeReceived(text) => return Err(SessionError::Bye(text)),
                _ => {}
            }
        }
    }

    /// Ends IDLE: sends `DONE` and reads the tagged reply.
    pub async fn end_idle(&mut self) -> Result<(), SessionError> {
        let Some((mut flow, tag)) = self.idle.take() else {
            return Ok(());
        };
        let done = flow.done();
        self.send_answer(done, Some("DONE")).await?;
        tracing::trace!(account = %self.account, "C: DONE");
        self.collect(&tag, "IDLE").await.map(drop)
    }
}
