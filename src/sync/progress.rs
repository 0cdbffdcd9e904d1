//! What a sync reports as it goes, for whoever shows it (the terminal's
//! progress bars): a folder's fetch starting with its totals, each message
//! received, the folder finished. The engine only calls the sink; drawing
//! is the CLI's business.

use std::sync::Arc;

/// One step of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// A fetch begins: `messages` listed above the cursor, `bytes` their
    /// RFC822.SIZE total.
    FolderStarted {
        account: &'a str,
        folder: &'a str,
        messages: u64,
        bytes: u64,
    },
    /// A message arrived (`bytes` as the server sized it).
    MessageReceived {
        account: &'a str,
        folder: &'a str,
        bytes: u64,
    },
    /// The folder's pass ended (whether or not it fetched anything).
    FolderFinished {
        account: &'a str,
        folder: &'a str,
        ok: bool,
    },
}

/// Receives progress events; called on the sync's task, so it must be quick.
pub type ProgressSink = Arc<dyn Fn(ProgressEvent<'_>) + Send + Sync>;
