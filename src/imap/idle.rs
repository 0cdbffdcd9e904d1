//! IDLE (RFC 2177) as a pure flow: the command, the server's `+`, the
//! announcements that end a wait, and the `DONE` that ends it. The driver
//! decides how long to wait; this only says what each response meant.

use super::command::Command;
use super::response::{Response, Untagged, UntaggedStatus};

/// The line that ends IDLE.
pub const DONE: &[u8] = b"DONE\r\n";

/// What one response meant to an IDLE in progress.
#[derive(Debug, PartialEq, Eq)]
pub enum IdleEvent {
    /// The server sent its `+`: IDLE is running.
    Accepted,
    /// The server answered IDLE with a tagged reply instead (`NO`, `BAD`):
    /// its status and words.
    Refused(String),
    /// The server announced a change to the selected mailbox.
    ChangeAnnounced,
    /// The server said BYE while idling.
    ByeReceived(String),
    /// Nothing that ends the wait.
    Ignored,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Requested,
    Idling,
    DoneSent,
}

/// One IDLE, from the command to the `DONE`.
#[derive(Debug)]
pub struct Idle {
    phase: Phase,
}

impl Idle {
    /// Starts IDLE: the flow and the command to send.
    pub fn start() -> (Idle, Command) {
        (
            Idle {
                phase: Phase::Requested,
            },
            Command::Idle,
        )
    }

    /// Feeds one response.
    pub fn received(&mut self, r: &Response) -> IdleEvent {
        match (&self.phase, r) {
            (Phase::Requested, Response::Continuation(_)) => {
                self.phase = Phase::Idling;
                IdleEvent::Accepted
            }
            (Phase::Requested, Response::Tagged { status, text, .. }) => {
                IdleEvent::Refused(format!("{} {}", status.as_str(), text.text))
            }
            (
                Phase::Idling,
                Response::Untagged(
                    Untagged::Exists(_)
                    | Untagged::Expunge(_)
                    | Untagged::Fetch(..)
                    | Untagged::Vanished { .. },
                ),
            ) => IdleEvent::ChangeAnnounced,
            (Phase::Idling, Response::Untagged(Untagged::Status(UntaggedStatus::Bye, text))) => {
                IdleEvent::ByeReceived(text.text.clone())
            }
            _ => IdleEvent::Ignored,
        }
    }

    /// Whether the server's `+` has come.
    pub fn is_idling(&self) -> bool {
        self.phase == Phase::Idling
    }

    /// Ends IDLE: the bytes to send. The tagged reply then completes the
    /// IDLE command like any other.
    pub fn done(&mut self) -> &'static [u8] {
        self.phase = Phase::DoneSent;
        DONE
    }
}
