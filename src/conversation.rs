//! The live conversation: every IMAP line that `run`'s connections send and
//! receive, already redacted and annotated by the session's tap, broadcast
//! to whoever watches (the web page). A bounded tokio broadcast channel:
//! a watcher that falls behind loses lines (and is told how many), the sync
//! never waits for a watcher. Installed once per process, only when the
//! HTTP listener runs, and rendered only while somebody watches, so a sync
//! nobody looks at renders nothing extra (the backlog holds what was said
//! while someone did, and the connection notes).
//! Must not see secrets: it only receives what the tap shows people.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::broadcast;

use crate::session::{Tap, TapLine};

/// Lines a watcher may fall behind before it loses some.
pub const CAPACITY: usize = 1024;
/// Lines kept for a watcher that arrives late (per process, all accounts).
pub const BACKLOG: usize = 300;

/// One line of a conversation, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationLine {
    /// Increasing across the process: a watcher can tell what it missed.
    pub seq: u64,
    /// UTC, milliseconds.
    pub at: String,
    pub account: String,
    /// Which connection of the process (numbered from 1 as they open).
    pub connection: u64,
    /// `C` (mailfeed sent), `S` (the server sent) or `note`.
    pub kind: &'static str,
    pub text: String,
    /// What a server line means, in plain words.
    pub meaning: Option<String>,
}

/// The broadcast and a short backlog.
#[derive(Clone)]
pub struct Conversation {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<ConversationLine>>,
    backlog: Mutex<VecDeque<Arc<ConversationLine>>>,
    seq: AtomicU64,
    connections: AtomicU64,
}

impl Default for Conversation {
    fn default() -> Self {
        Self::new()
    }
}

impl Conversation {
    pub fn new() -> Conversation {
        let (tx, _) = broadcast::channel(CAPACITY);
        Conversation {
            inner: Arc::new(Inner {
                tx,
                backlog: Mutex::new(VecDeque::with_capacity(BACKLOG)),
                seq: AtomicU64::new(0),
                connections: AtomicU64::new(0),
            }),
        }
    }

    /// The recent lines (oldest first) and a receiver for the next ones,
    /// taken together so no line falls between them.
    pub fn subscribe(
        &self,
    ) -> (
        Vec<Arc<ConversationLine>>,
        broadcast::Receiver<Arc<ConversationLine>>,
    ) {
        let backlog = self.inner.backlog.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.inner.tx.subscribe();
        (backlog.iter().cloned().collect(), rx)
    }

    fn publish(
        &self,
        account: &str,
        connection: u64,
        kind: &'static str,
        text: String,
        meaning: Option<String>,
    ) {
        let line = Arc::new(ConversationLine {
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at: now_ms(),
            account: account.to_owned(),
            connection,
            kind,
            // The tap already redacts; the scrubber also catches any form
            // of a registered secret the server echoes (a tag, an ALERT).
            text: crate::secret::scrub(&text).into_owned(),
            meaning: meaning.map(|m| crate::secret::scrub(&m).into_owned()),
        });
        let mut backlog = self.inner.backlog.lock().unwrap_or_else(|p| p.into_inner());
        if backlog.len() == BACKLOG {
            backlog.pop_front();
        }
        backlog.push_back(line.clone());
        // Sent under the backlog lock, so `subscribe` sees each line in
        // exactly one of the two. No receiver is not an error.
        let _ = self.inner.tx.send(line);
    }

    /// A tap for one new connection of `account`.
    pub fn tap(&self, account: &str) -> Tap {
        let me = self.clone();
        let account = account.to_owned();
        let connection = self.inner.connections.fetch_add(1, Ordering::Relaxed) + 1;
        Box::new(move |line| match line {
            TapLine::Client(s) => me.publish(&account, connection, "C", s.to_owned(), None),
            TapLine::Server { line, meaning } => {
                me.publish(&account, connection, "S", line, Some(meaning))
            }
            TapLine::Note(s) => me.publish(&account, connection, "note", s.to_owned(), None),
        })
    }
}

fn now_ms() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = crate::utc::format_utc(now.as_secs() as i64);
    // format_utc gives `...SSZ`; add the milliseconds before the Z.
    match s.strip_suffix('Z') {
        Some(head) => format!("{head}.{:03}Z", now.subsec_millis()),
        None => s,
    }
}

static INSTALLED: OnceLock<Conversation> = OnceLock::new();

/// Makes `conversation` the process's broadcast: from now on every session
/// opened without a tap of its own feeds it. Returns the installed one (the
/// first, if called twice).
pub fn install(conversation: Conversation) -> Conversation {
    INSTALLED.get_or_init(|| conversation).clone()
}

/// Whether anybody watches the installed broadcast now: sessions render
/// their lines only then, so a sync nobody looks at pays nothing for it.
pub fn watched() -> bool {
    INSTALLED
        .get()
        .is_some_and(|c| c.inner.tx.receiver_count() > 0)
}

/// A tap into the installed broadcast, if there is one.
pub fn tap_for(account: &str) -> Option<Tap> {
    INSTALLED.get().map(|c| c.tap(account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_watcher_loses_lines_and_the_sender_never_waits() {
        let c = Conversation::new();
        let (_, mut rx) = c.subscribe();
        let mut tap = c.tap("a");
        for i in 0..(CAPACITY + 10) {
            tap(TapLine::Client(&format!("a{i} NOOP")));
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        let (backlog, _) = c.subscribe();
        assert_eq!(backlog.len(), BACKLOG);
        assert_eq!(
            backlog.last().map(|l| l.text.as_str()),
            Some(format!("a{} NOOP", CAPACITY + 9).as_str())
        );
    }

    #[test]
    fn connections_are_numbered_and_lines_keep_their_kind() {
        let c = Conversation::new();
        let mut one = c.tap("a");
        let mut two = c.tap("b");
        one(TapLine::Note("connected"));
        two(TapLine::Server {
            line: "* 3 EXISTS".into(),
            meaning: "3 messages".into(),
        });
        let (lines, _) = c.subscribe();
        assert_eq!(lines[0].connection + 1, lines[1].connection);
        assert_eq!(lines[0].kind, "note");
        assert_eq!(lines[1].kind, "S");
        assert_eq!(lines[1].meaning.as_deref(), Some("3 messages"));
        assert!(lines[1].at.ends_with('Z') && lines[1].at.contains('.'));
    }
}
