//! Actions on the server after the commit: `after_store` (mark seen, move,
//! delete) and `delete_after` (retention). Owns the decision of which
//! folders are SELECTed instead of EXAMINEd, the pure plan of commands
//! ([`plan`]), and running it over a session once the messages are durably
//! stored ([`execute`]). Must not: build SQL (the ledger is
//! `store::actions`), or act on a message the store has not durably
//! committed together with the cursor that covers it.
//!
//! The guarantee: an action runs only after the message row and its cursor
//! are committed and synced to disk (a synchronous=FULL commit, whatever
//! `store.synchronous` says; on PostgreSQL a commit with
//! `synchronous_commit = on`), and on PostgreSQL only while this instance
//! holds the account's lease (checked before each batch of commands), and the pending action is recorded in the same
//! transaction as the message row, so a crash anywhere leaves either
//! neither or a pending action that the next pass performs. Every action is
//! idempotent on the server (flags, UID MOVE, UID EXPUNGE of given UIDs),
//! and the one step that is not (COPY, without MOVE) is recorded before the
//! rest, so a restart does not copy twice.

pub mod execute;
pub mod plan;
pub mod settings;

use std::collections::HashSet;
use std::sync::Mutex;

pub use settings::{AccountActions, AfterStore, FolderActions};

use crate::imap::{Capabilities, Folder, mutf7};
use crate::session::SessionError;
use crate::store::StoreError;
use crate::store::actions::{ActionKind, Ledger, MailboxAction};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("acting on the server: {0}")]
    Session(#[from] SessionError),
    #[error("recording actions: {0}")]
    Store(#[from] StoreError),
    #[error(
        "moving messages to `{folder}`: the folder does not exist on the server; create it, or set `create_destination = true`"
    )]
    NoDestination { folder: String },
    #[error("actions need a database file (an in-memory database has no second connection)")]
    NoDatabaseFile,
}

impl ActionError {
    /// True when the connection is unusable afterwards.
    pub fn breaks_connection(&self) -> bool {
        matches!(self, ActionError::Session(e) if !matches!(e, SessionError::CommandFailed { .. }))
    }
}

/// One account's actions as the engine uses them: the configuration, the
/// ledger connection (opened on first use), and which refusals were said.
#[derive(Default)]
pub struct Actions {
    pub config: AccountActions,
    ledger: tokio::sync::OnceCell<Ledger>,
    /// Folders whose refusal (missing capability) was logged once already.
    warned: Mutex<HashSet<String>>,
}

impl Actions {
    pub fn new(config: AccountActions) -> Actions {
        Actions {
            config,
            ..Default::default()
        }
    }

    /// The folder's actions, by its readable name.
    pub fn for_folder(&self, folder: &Folder) -> &FolderActions {
        self.config.for_folder(folder.name())
    }

    /// What this server will not let mailfeed do in the folder, if anything.
    pub fn refused(&self, folder: &Folder, caps: &Capabilities) -> Option<String> {
        let f = self.for_folder(folder);
        let after = match &f.after_store {
            AfterStore::None => None,
            AfterStore::Seen => plan::refusal(ActionKind::Seen, false, caps),
            AfterStore::Move(_) => plan::refusal(ActionKind::Move, false, caps),
            AfterStore::Delete => plan::refusal(ActionKind::Delete, false, caps),
        };
        let retention = f
            .delete_after_days
            .and_then(|_| plan::refusal(ActionKind::Delete, false, caps))
            .map(|r| r.replace("`delete`", "`delete_after`"));
        match (after, retention) {
            (Some(a), Some(_)) => {
                Some(a.replace("`delete` refused", "`delete` and `delete_after` refused"))
            }
            (a, r) => a.or(r),
        }
    }

    /// Whether mailfeed will change the folder on this server (then it is
    /// SELECTed; otherwise EXAMINEd). A refused folder is not acted on.
    pub fn selects(&self, folder: &Folder, caps: &Capabilities) -> bool {
        self.for_folder(folder).changes_server() && self.refused(folder, caps).is_none()
    }

    /// The `after_store` action recorded with each message of the folder
    /// (none when refused on this server), with a destination's wire name.
    pub fn mailbox_action(&self, folder: &Folder, caps: &Capabilities) -> MailboxAction {
        if self.refused(folder, caps).is_some() {
            self.warn_once(folder, caps);
            return None;
        }
        match &self.for_folder(folder).after_store {
            AfterStore::None => None,
            AfterStore::Seen => Some((ActionKind::Seen, None)),
            AfterStore::Move(dest) => Some((ActionKind::Move, Some(mutf7::encode(dest)))),
            AfterStore::Delete => Some((ActionKind::Delete, None)),
        }
    }

    fn warn_once(&self, folder: &Folder, caps: &Capabilities) {
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(folder.wire().to_owned()))
            .unwrap_or(false);
        if first && let Some(why) = self.refused(folder, caps) {
            tracing::warn!(folder = %folder, "{why}; this folder is not acted on (read-only)");
        }
    }

    /// One line per folder setting, for the start-up log.
    pub fn announce(&self, account: &str) {
        if !self.config.any() {
            return;
        }
        let d = &self.config.default;
        tracing::info!(
            account,
            "folders without their own setting: {}",
            d.describe()
        );
        for (name, f) in &self.config.folders {
            tracing::info!(account, folder = %name, "{}", f.describe());
        }
    }

    /// The `check` line for a folder on a server with `caps`.
    pub fn check_line(&self, folder: &Folder, caps: &Capabilities) -> String {
        let f = self.for_folder(folder);
        match self.refused(folder, caps) {
            Some(why) => format!("REFUSED {folder}: {why}; mailfeed will only read this folder"),
            None if f.changes_server() => format!("changes {folder}: {}", f.describe()),
            None => format!("reads   {folder}: {}", f.describe()),
        }
    }

    async fn ledger(&self, store: &crate::store::StoreHandle) -> Result<&Ledger, ActionError> {
        self.ledger
            .get_or_try_init(|| async { store.ledger().await?.ok_or(ActionError::NoDatabaseFile) })
            .await
    }
}

impl crate::sync::Engine {
    /// The same engine acting on the server as `config` says.
    pub fn with_actions(mut self, config: &AccountActions) -> crate::sync::Engine {
        self.actions = std::sync::Arc::new(Actions::new(config.clone()));
        self
    }
}
