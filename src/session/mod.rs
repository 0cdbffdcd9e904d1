//! An IMAP session over a [`Link`]: it drives the sans-IO flows of
//! `crate::imap` (login, EXAMINE, IDLE, tags, changes reported unasked) with
//! the bytes the transport moves. Every line in either direction can be
//! shown to an observer (the `check` transcript, trace logs) in redacted
//! form. Touches no SQLite; builds no command text itself.
//!
//! `connect.rs` the way in (TLS, STARTTLS, greeting, login, ID, COMPRESS)
//! and the connect options; `login.rs` password and OAuth2 login;
//! `mailbox.rs` EXAMINE, LIST, QRESYNC and the changes reported unasked;
//! `idle.rs` waiting for a change; `notify.rs` watching many folders
//! on one connection (NOTIFY); `error.rs` the error and its policy.

mod connect;
mod error;
mod idle;
mod login;
mod mailbox;
mod notify;

use std::collections::VecDeque;
use std::time::Duration;

use crate::imap::describe::{describe, render_line};
use crate::imap::{
    Capabilities, Code, Command, Part, Received, Response, ResponseReader, Status, StatusText,
    Tags, Unasked, Untagged, UntaggedStatus,
};
use crate::transport::{Link, TransportError};

pub use crate::imap::{MAX_REPORTED_CHANGES, MailboxState, Reported, Seen};
pub use connect::{ConnectOptions, connect_options, connect_options_observed};
pub use error::SessionError;
pub use idle::IdleBegun;
pub use notify::{Notified, NotifyBegun};

/// One line of the conversation, for whoever watches it.
pub enum TapLine<'a> {
    /// What mailfeed sent, secrets already replaced by `***`.
    Client(&'a str),
    /// What the server sent (literals shown by size) and what it means.
    Server { line: String, meaning: String },
    /// A note from mailfeed itself (TLS started, connection closed, ...).
    Note(&'a str),
}

pub type Tap = Box<dyn FnMut(TapLine<'_>) + Send>;

/// The most one read takes from the link: enough to keep a fetch of large
/// literals at a few system calls per megabyte.
const READ_CHUNK: usize = 64 * 1024;

/// Where the read buffer starts, and what it goes back to when the session
/// waits (IDLE, NOTIFY): a process watching thousands of folders holds
/// thousands of waiting sessions, and a fetch-sized buffer in each would be
/// most of its memory. A read that fills the buffer doubles it, up to
/// [`READ_CHUNK`].
const READ_START: usize = 4 * 1024;

pub struct Session {
    link: Link,
    reader: ResponseReader,
    buf: Vec<u8>,
    pending: VecDeque<Received>,
    caps: Capabilities,
    tap: Option<Tap>,
    /// The tap is the live conversation's: lines are worth rendering only
    /// while somebody watches it.
    conversation_tap: bool,
    /// Commands sent and not yet answered.
    tags: Tags,
    account: String,
    qresync_enabled: bool,
    bye: Option<String>,
    /// Changes the server reported without being asked.
    unasked: Unasked,
    /// The next [`Session::examine`] sends SELECT (see [`Session::select`]).
    read_write: bool,
    /// The IDLE running on this connection, with its tag.
    idle: Option<(crate::imap::Idle, String)>,
    /// The NOTIFY watch set on this connection, and what it noted.
    watching: Option<notify::Watching>,
    /// The mailbox the last EXAMINE or SELECT opened and what it saw.
    opened: Option<(String, crate::imap::Seen)>,
}

impl Session {
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn is_encrypted(&self) -> bool {
        self.link.is_encrypted()
    }

    pub fn qresync_enabled(&self) -> bool {
        self.qresync_enabled
    }

    /// Whether lines must be rendered for the tap (a sync renders none
    /// while nobody watches the live conversation).
    fn tapping(&self) -> bool {
        self.tap.is_some() && (!self.conversation_tap || crate::conversation::watched())
    }

    fn tap_note(&mut self, s: &str) {
        if let Some(t) = self.tap.as_mut() {
            t(TapLine::Note(s));
        }
    }

    /// Sends bytes that answer a continuation (they may hold a secret:
    /// observers see `shown` only).
    async fn send_answer(&mut self, bytes: &[u8], shown: Option<&str>) -> Result<(), SessionError> {
        if let (Some(t), Some(shown)) = (self.tap.as_mut(), shown) {
            t(TapLine::Client(shown));
        }
        self.link.write_all(bytes).await?;
        Ok(())
    }

    /// Sends a command and returns its tag; the caller reads the responses.
    /// Synchronizing literals wait for the server's `+`.
    pub async fn send(&mut self, cmd: &Command) -> Result<String, SessionError> {
        let tag = self.tags.sent(cmd);
        if self.tapping() || tracing::enabled!(tracing::Level::TRACE) {
            let shown = cmd.redacted(&tag);
            tracing::trace!(account = %self.account, "C: {shown}");
            if let Some(t) = self.tap.as_mut() {
                t(TapLine::Client(&shown));
            }
        }
        let parts = cmd.encode(&tag, self.caps.literal_plus());
        let mut out: Vec<u8> = Vec::new();
        for part in parts {
            match part {
                Part::Text(t) => out.extend_from_slice(&t),
                Part::Literal {
                    data,
                    synchronizing,
                } => {
                    if synchronizing {
                        self.link.write_all(&out).await?;
                        out.clear();
                        self.await_continuation(&tag, cmd.name()).await?;
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
        self.link.write_all(&out).await?;
        Ok(tag)
    }

    async fn await_continuation(
        &mut self,
        tag: &str,
        command: &'static str,
    ) -> Result<(), SessionError> {
        loop {
            let r = self.read_one().await?;
            match &r.response {
                Response::Continuation(_) => return Ok(()),
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    return Err(SessionError::CommandFailed {
                        command,
                        status: status.as_str(),
                        text: text.text.clone(),
                        code: text.code.clone(),
                    });
                }
                _ => self.pending.push_back(r),
            }
        }
    }

    /// Sends the bare `DONE` that ends IDLE.
    pub async fn send_done(&mut self) -> Result<(), SessionError> {
        if let Some(t) = self.tap.as_mut() {
            t(TapLine::Client("DONE"));
        }
        tracing::trace!(account = %self.account, "C: DONE");
        self.link.write_all(crate::imap::idle::DONE).await?;
        Ok(())
    }

    /// The next response from the wire. `timeout` bounds silence, not the
    /// response: every chunk that arrives restarts it, so a large message on
    /// a slow link is received whole, while a server that sends nothing for
    /// `timeout` is given up on.
    async fn read_one(&mut self) -> Result<Received, SessionError> {
        let limit = self.link.timeout();
        loop {
            if let Some(r) = self.reader.pop() {
                self.observe(&r);
                return Ok(r);
            }
            if !self.read_chunk(limit).await? {
                return Err(SessionError::Transport(TransportError::ReadTimeout {
                    after: limit,
                }));
            }
        }
    }

    /// The next response if it is complete within `limit` (IDLE waits); a
    /// response still arriving then stays in the reader for the next read.
    async fn read_one_within(&mut self, limit: Duration) -> Result<Option<Received>, SessionError> {
        let deadline = tokio::time::Instant::now() + limit;
        if self.buf.len() > READ_START {
            self.buf = vec![0; READ_START];
        }
        loop {
            if let Some(r) = self.reader.pop() {
                self.observe(&r);
                return Ok(Some(r));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.read_chunk(left).await? {
                return Ok(None);
            }
        }
    }

    /// Feeds the reader whatever arrives within `limit`; false when nothing
    /// did.
    async fn read_chunk(&mut self, limit: Duration) -> Result<bool, SessionError> {
        let n = match self.link.read_within(&mut self.buf, limit).await {
            Ok(n) => n,
            Err(TransportError::ReadTimeout { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            let mid = !self.reader.at_boundary();
            self.tap_note("server closed the connection");
            return Err(match self.bye.take() {
                Some(text) if !mid => SessionError::Bye(text),
                _ => SessionError::Closed { mid_response: mid },
            });
        }
        self.reader.feed(&self.buf[..n])?;
        if n == self.buf.len() && n < READ_CHUNK {
            self.buf.resize((n * 2).min(READ_CHUNK), 0);
        }
        Ok(true)
    }

    /// Every response read passes here once, in order: the unasked-change
    /// tracker and the tag table see it before anyone acts on it.
    fn observe(&mut self, r: &Received) {
        let command = match &r.response {
            Response::Tagged { tag, .. } => self.tags.name(tag),
            _ => None,
        };
        self.unasked.received(&r.response, &self.tags);
        if let Some(w) = self.watching.as_mut() {
            w.received(&r.response, &self.tags);
        }
        if let Response::Tagged { tag, .. } = &r.response {
            self.tags.completed(tag);
        }
        if let Response::Untagged(Untagged::Status(UntaggedStatus::Bye, text)) = &r.response {
            self.bye = Some(text.shown());
        }
        // RFC 3501 7.1: an ALERT's text must be presented to the user.
        if let Response::Untagged(Untagged::Status(_, text)) | Response::Tagged { text, .. } =
            &r.response
            && text.code == Some(Code::Alert)
        {
            tracing::warn!(account = %self.account, "server alert: {}", text.text);
        }
        if !self.tapping() && !tracing::enabled!(tracing::Level::TRACE) {
            return;
        }
        let line = crate::secret::scrub(&render_line(&r.line)).into_owned();
        let meaning = crate::secret::scrub(&describe(&r.response, command)).into_owned();
        tracing::trace!(account = %self.account, "S: {line}  ({meaning})");
        if let Some(t) = self.tap.as_mut() {
            t(TapLine::Server { line, meaning });
        }
    }

    /// The next response, from what was queued while sending or from the wire.
    pub async fn next_response(&mut self) -> Result<Received, SessionError> {
        if let Some(r) = self.pending.pop_front() {
            return Ok(r);
        }
        self.read_one().await
    }

    /// The next response if one arrives within `limit`.
    async fn next_response_within(
        &mut self,
        limit: Duration,
    ) -> Result<Option<Received>, SessionError> {
        if let Some(r) = self.pending.pop_front() {
            return Ok(Some(r));
        }
        self.read_one_within(limit).await
    }

    /// Runs a command to completion, returning its untagged responses; a NO or
    /// BAD becomes [`SessionError::CommandFailed`].
    pub async fn run(&mut self, cmd: &Command) -> Result<Vec<Untagged>, SessionError> {
        let tag = self.send(cmd).await?;
        self.collect(&tag, cmd.name()).await
    }

    /// Reads responses until the tagged reply to `tag`.
    pub async fn collect(
        &mut self,
        tag: &str,
        command: &'static str,
    ) -> Result<Vec<Untagged>, SessionError> {
        let mut out = Vec::new();
        self.collect_with(tag, command, |u| out.push(u)).await?;
        Ok(out)
    }

    /// Reads responses until the tagged reply to `tag`, handing each
    /// untagged one to `each` as it arrives instead of keeping them all (a
    /// command may be answered by a million responses).
    pub async fn collect_with(
        &mut self,
        tag: &str,
        command: &'static str,
        mut each: impl FnMut(Untagged),
    ) -> Result<(), SessionError> {
        while let Some(u) = self.next_answer(tag, command).await? {
            each(u);
        }
        Ok(())
    }

    /// The next untagged response while the command tagged `tag` runs, or
    /// `None` once its tagged reply came and was OK. A NO or BAD is
    /// [`SessionError::CommandFailed`]; another command's tag or a
    /// continuation request is [`SessionError::Unexpected`]. One response
    /// at a time, so the caller may await (the store) between them.
    pub async fn next_answer(
        &mut self,
        tag: &str,
        command: &'static str,
    ) -> Result<Option<Untagged>, SessionError> {
        let r = self.next_response().await?;
        match r.response {
            Response::Tagged {
                tag: t,
                status,
                text,
            } if t == tag => completion(command, status, text).map(|()| None),
            Response::Tagged { tag: t, .. } => Err(SessionError::Unexpected(format!(
                "tagged reply for unknown tag `{t}` while waiting for {tag}"
            ))),
            Response::Untagged(u) => Ok(Some(u)),
            Response::Continuation(_) => Err(SessionError::Unexpected(
                "unexpected continuation request".into(),
            )),
        }
    }
}

/// Turns a tagged reply into the command's outcome: OK, or
/// [`SessionError::CommandFailed`] carrying the server's words.
pub fn completion(
    command: &'static str,
    status: Status,
    text: StatusText,
) -> Result<(), SessionError> {
    if status == Status::Ok {
        return Ok(());
    }
    Err(SessionError::CommandFailed {
        command,
        status: status.as_str(),
        text: text.text,
        code: text.code,
    })
}

#[cfg(test)]
mod tests;
