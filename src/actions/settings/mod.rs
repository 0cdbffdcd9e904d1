//! The configuration of actions: `after_store`, `delete_after` and
//! `create_destination`, per account with per-folder overrides
//! (`[[accounts.folder]]`, so `folders = [...]` stays a plain list). Parses
//! and validates the raw keys into [`AccountActions`]; messages name the key
//! and the fix. Knows nothing of IMAP sessions or the database.
//!
//! `raw.rs` the keys as read, `values.rs` one key's value, `build.rs` an
//! account's actions with its folder overrides.

mod build;
mod raw;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use build::build;
pub(crate) use raw::{RawAccountActions, RawDays, RawFolder};

/// What to do with a message on the server once it is durably stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AfterStore {
    /// Nothing: the folder is EXAMINEd (read-only), as without actions.
    #[default]
    None,
    /// Add `\Seen`.
    Seen,
    /// Move to this folder (its readable name, as in `folders`).
    Move(String),
    /// Mark `\Deleted` and `UID EXPUNGE` exactly those UIDs.
    Delete,
}

impl AfterStore {
    /// How the action is written in the configuration.
    pub fn describe(&self) -> String {
        match self {
            AfterStore::None => "none".into(),
            AfterStore::Seen => "seen".into(),
            AfterStore::Move(f) => format!("move:{f}"),
            AfterStore::Delete => "delete".into(),
        }
    }
}

/// The actions of one folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderActions {
    pub after_store: AfterStore,
    /// Remove from the server stored messages whose INTERNALDATE is older
    /// than this many days.
    pub delete_after_days: Option<u32>,
    /// Create a missing `move:` destination instead of failing. Off by
    /// default: a misspelt destination would otherwise quietly become a new
    /// folder that nobody reads, holding the mail that left INBOX.
    pub create_destination: bool,
    /// What the folder's sync fetches (`since`/`max_age`, `search`): not an
    /// action, but set in the same places, account and folder.
    pub window: crate::window::Window,
}

impl FolderActions {
    /// Whether mailfeed changes this folder at all (then it is SELECTed).
    pub fn changes_server(&self) -> bool {
        self.after_store != AfterStore::None || self.delete_after_days.is_some()
    }

    /// One line for `check` and the start-up log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.after_store {
            AfterStore::None => {}
            AfterStore::Seen => parts.push("marks each stored message \\Seen".to_owned()),
            AfterStore::Move(f) => parts.push(format!(
                "moves each stored message to `{f}`{}",
                if self.create_destination {
                    " (creating it if missing)"
                } else {
                    ""
                }
            )),
            AfterStore::Delete => parts.push("deletes each stored message".to_owned()),
        }
        if let Some(d) = self.delete_after_days {
            parts.push(format!(
                "deletes stored messages older than {d} day{}",
                if d == 1 { "" } else { "s" }
            ));
        }
        let window = self
            .window
            .describe()
            .map(|w| format!("; {w}"))
            .unwrap_or_default();
        if parts.is_empty() {
            format!("read-only (EXAMINE): mailfeed changes nothing{window}")
        } else {
            format!("SELECT: {}{window}", parts.join("; "))
        }
    }
}

/// An account's actions: its own setting and per-folder overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountActions {
    pub default: FolderActions,
    /// (readable folder name, its actions), in configuration order.
    pub folders: Vec<(String, FolderActions)>,
}

impl AccountActions {
    /// The actions for a folder by its readable name (`INBOX` in any case).
    pub fn for_folder(&self, name: &str) -> &FolderActions {
        self.folders
            .iter()
            .find(|(n, _)| same_folder(n, name))
            .map(|(_, a)| a)
            .unwrap_or(&self.default)
    }

    /// Whether any folder of the account is changed.
    pub fn any(&self) -> bool {
        self.default.changes_server() || self.folders.iter().any(|(_, a)| a.changes_server())
    }
}

pub(super) fn same_folder(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}
