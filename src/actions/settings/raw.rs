//! The action keys as the configuration file gives them, before checking.

use serde::Deserialize;

/// `delete_after`: text such as `"90d"`; a bare number is refused, because
/// whether it meant days or seconds cannot be told.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum RawDays {
    Number(i64),
    Text(String),
}

/// One `[[accounts.folder]]` entry.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFolder {
    pub(super) name: Option<String>,
    pub(super) after_store: Option<String>,
    pub(super) delete_after: Option<RawDays>,
    pub(super) create_destination: Option<bool>,
    pub(super) since: Option<String>,
    pub(super) max_age: Option<RawDays>,
    pub(super) search: Option<String>,
}

/// The account-level keys, as read.
pub(crate) struct RawAccountActions {
    pub after_store: Option<String>,
    pub delete_after: Option<RawDays>,
    pub create_destination: Option<bool>,
    pub folder: Option<Vec<RawFolder>>,
    pub since: Option<String>,
    pub max_age: Option<RawDays>,
    pub search: Option<String>,
}
