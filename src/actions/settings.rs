//! The configuration of actions: `after_store`, `delete_after` and
//! `create_destination`, per account with per-folder overrides
//! (`[[accounts.folder]]`, so `folders = [...]` stays a plain list). Parses
//! and validates the raw keys into [`AccountActions`]; messages name the key
//! and the fix. Knows nothing of IMAP sessions or the database.

use serde::Deserialize;

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

fn same_folder(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

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
    name: Option<String>,
    after_store: Option<String>,
    delete_after: Option<RawDays>,
    create_destination: Option<bool>,
    since: Option<String>,
    max_age: Option<RawDays>,
    search: Option<String>,
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

/// `since`, `max_age` and `search` of one level; a field is `None` when
/// not set there (then the level above applies).
fn window(
    key: &dyn Fn(&str) -> String,
    since: &Option<String>,
    max_age: &Option<RawDays>,
    search: &Option<String>,
) -> Result<crate::window::Window, String> {
    let since = match (since, max_age) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "set `{}` or `{}`, not both",
                key("since"),
                key("max_age")
            ));
        }
        (Some(d), None) => Some(crate::window::parse_since(&key("since"), d)?),
        (None, Some(a)) => Some(crate::window::Since::MaxAge(parse_days(
            &key("max_age"),
            a,
        )?)),
        (None, None) => None,
    };
    let search = match search {
        Some(t) => Some((
            t.trim().to_owned(),
            crate::window::parse_search(&key("search"), t)?,
        )),
        None => None,
    };
    Ok(crate::window::Window { since, search })
}

/// The longest `delete_after`: a century.
const MAX_DAYS: u32 = 36_500;

fn parse_after_store(key: &str, v: &str) -> Result<AfterStore, String> {
    let t = v.trim();
    match t.to_ascii_lowercase().as_str() {
        "none" => return Ok(AfterStore::None),
        "seen" => return Ok(AfterStore::Seen),
        "delete" => return Ok(AfterStore::Delete),
        _ => {}
    }
    if let Some((kind, dest)) = t.split_once(':')
        && kind.eq_ignore_ascii_case("move")
    {
        let dest = dest.trim();
        if dest.is_empty() {
            return Err(format!(
                "`{key}` = {v:?} names no folder; write e.g. \"move:Processed\""
            ));
        }
        if dest.contains(['*', '%']) || dest.contains(['\r', '\n', '\0']) {
            return Err(format!(
                "`{key}` = {v:?}: the destination must be one folder name, without `*`, `%` or control characters"
            ));
        }
        return Ok(AfterStore::Move(dest.to_owned()));
    }
    Err(format!(
        "`{key}` = {v:?} is not an action; use \"none\", \"seen\", \"move:FOLDER\" or \"delete\""
    ))
}

fn parse_days(key: &str, v: &RawDays) -> Result<u32, String> {
    let text = match v {
        RawDays::Number(n) => {
            return Err(format!(
                "`{key}` = {n} has no unit; write the number of days with `d`, e.g. \"{n}d\""
            ));
        }
        RawDays::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{key}` = {text:?} is not a number of days; write e.g. \"90d\""
        ));
    }
    let n: u64 = num.parse().unwrap_or(u64::MAX);
    let days = match unit.trim() {
        "" => {
            return Err(format!(
                "`{key}` = {text:?} has no unit; write the number of days with `d`, e.g. \"{num}d\""
            ));
        }
        "d" | "day" | "days" => n,
        "w" | "week" | "weeks" => n.saturating_mul(7),
        "s" | "sec" | "secs" | "ms" | "m" | "min" | "mins" | "h" | "hour" | "hours" => {
            return Err(format!(
                "`{key}` = {text:?} is shorter than a day or not whole days; mailfeed retains mail by whole days (INTERNALDATE, as IMAP SEARCH BEFORE compares it): write e.g. \"90d\""
            ));
        }
        other => {
            return Err(format!(
                "`{key}` = {text:?}: unknown unit {other:?}; write days, e.g. \"90d\" (or weeks, \"12w\")"
            ));
        }
    };
    if days == 0 || days > u64::from(MAX_DAYS) {
        return Err(format!(
            "`{key}` = {text:?} is out of range; use \"1d\" to \"{MAX_DAYS}d\""
        ));
    }
    Ok(days as u32)
}

/// Builds an account's actions; `prefix` is e.g. `accounts[0].`, `folders`
/// the account's folder list (an override must name one of them, or fall
/// under one of its patterns).
pub(crate) fn build(
    prefix: &str,
    raw: RawAccountActions,
    folders: &[String],
) -> Result<AccountActions, String> {
    let key = |k: &str| format!("{prefix}{k}");
    let default = FolderActions {
        after_store: match &raw.after_store {
            Some(v) => parse_after_store(&key("after_store"), v)?,
            None => AfterStore::None,
        },
        delete_after_days: raw
            .delete_after
            .as_ref()
            .map(|v| parse_days(&key("delete_after"), v))
            .transpose()?,
        create_destination: raw.create_destination.unwrap_or(false),
        window: window(&key, &raw.since, &raw.max_age, &raw.search)?,
    };
    let mut out = AccountActions {
        default: default.clone(),
        folders: Vec::new(),
    };
    for (j, f) in raw.folder.unwrap_or_default().into_iter().enumerate() {
        let fkey = |k: &str| format!("{prefix}folder[{j}].{k}");
        let name = f.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
            format!(
                "`{}` is missing; name the folder this entry sets",
                fkey("name")
            )
        })?;
        if name.contains(['*', '%']) {
            return Err(format!(
                "`{}` = {name:?}: name one folder (patterns belong in `{}`)",
                fkey("name"),
                key("folders")
            ));
        }
        let listed = folders
            .iter()
            .any(|p| same_folder(p, &name) || pattern_matches(p, &name));
        if !listed {
            return Err(format!(
                "`{}` = {name:?} is not among `{}` ({folders:?}); add it there, or fix the name",
                fkey("name"),
                key("folders")
            ));
        }
        if out.folders.iter().any(|(n, _)| same_folder(n, &name)) {
            return Err(format!(
                "`{}` = {name:?} appears twice; merge the two entries",
                fkey("name")
            ));
        }
        let actions = FolderActions {
            after_store: match &f.after_store {
                Some(v) => parse_after_store(&fkey("after_store"), v)?,
                None => default.after_store.clone(),
            },
            delete_after_days: match &f.delete_after {
                Some(v) => Some(parse_days(&fkey("delete_after"), v)?),
                None => default.delete_after_days,
            },
            create_destination: f.create_destination.unwrap_or(default.create_destination),
            window: {
                // An override's `since`/`max_age` replaces the account's,
                // and its `search` the account's `search`.
                let w = window(&fkey, &f.since, &f.max_age, &f.search)?;
                crate::window::Window {
                    since: w.since.or_else(|| default.window.since.clone()),
                    search: w.search.or_else(|| default.window.search.clone()),
                }
            },
        };
        if let AfterStore::Move(dest) = &actions.after_store
            && same_folder(dest, &name)
        {
            return Err(format!(
                "`{}` = \"move:{dest}\" moves the folder's mail into itself; name another folder",
                fkey("after_store")
            ));
        }
        out.folders.push((name, actions));
    }
    Ok(out)
}

/// LIST-style matching on readable names: `*` matches anything, `%`
/// anything but the hierarchy separator (taken as `/` or `.`).
fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('%', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || !matches!(n[i - 1], '/' | '.'))
                .any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(after: Option<&str>, days: Option<RawDays>) -> RawAccountActions {
        RawAccountActions {
            after_store: after.map(str::to_owned),
            delete_after: days,
            create_destination: None,
            folder: None,
            since: None,
            max_age: None,
            search: None,
        }
    }

    #[test]
    fn after_store_values() {
        let f = vec!["INBOX".to_owned()];
        let p = |v: &str| build("a.", raw(Some(v), None), &f).map(|a| a.default.after_store);
        assert_eq!(p("none"), Ok(AfterStore::None));
        assert_eq!(p("seen"), Ok(AfterStore::Seen));
        assert_eq!(p("delete"), Ok(AfterStore::Delete));
        assert_eq!(
            p("move:Processed"),
            Ok(AfterStore::Move("Processed".into()))
        );
        assert_eq!(
            p("move:Done Items"),
            Ok(AfterStore::Move("Done Items".into()))
        );
        for bad in ["move:", "moved:X", "read", "move:A*", ""] {
            let e = p(bad).expect_err(bad);
            assert!(e.contains("`a.after_store`"), "{e}");
        }
    }

    #[test]
    fn delete_after_wants_whole_days_with_a_unit() {
        let f = vec!["INBOX".to_owned()];
        let p =
            |v: RawDays| build("a.", raw(None, Some(v)), &f).map(|a| a.default.delete_after_days);
        assert_eq!(p(RawDays::Text("90d".into())), Ok(Some(90)));
        assert_eq!(p(RawDays::Text("2w".into())), Ok(Some(14)));
        let e = p(RawDays::Text("90".into())).expect_err("bare text number");
        assert!(
            e.contains("`a.delete_after`") && e.contains("\"90d\""),
            "{e}"
        );
        let e = p(RawDays::Number(90)).expect_err("bare number");
        assert!(
            e.contains("`a.delete_after`") && e.contains("\"90d\""),
            "{e}"
        );
        let e = p(RawDays::Text("12h".into())).expect_err("hours");
        assert!(e.contains("shorter than a day"), "{e}");
        assert!(p(RawDays::Text("0d".into())).is_err());
        assert!(p(RawDays::Text("99999999999d".into())).is_err());
        assert!(p(RawDays::Text("d".into())).is_err());
    }

    #[test]
    fn folder_overrides_name_listed_folders() {
        let folders = vec!["INBOX".to_owned(), "Lists/*".to_owned()];
        let entry = |name: &str, after: &str| RawFolder {
            name: Some(name.into()),
            after_store: Some(after.into()),
            delete_after: None,
            create_destination: None,
            since: None,
            max_age: None,
            search: None,
        };
        let with = |entries: Vec<RawFolder>| {
            build(
                "accounts[0].",
                RawAccountActions {
                    after_store: Some("seen".into()),
                    delete_after: Some(RawDays::Text("30d".into())),
                    create_destination: None,
                    folder: Some(entries),
                    since: None,
                    max_age: None,
                    search: None,
                },
                &folders,
            )
        };
        let a = with(vec![
            entry("inbox", "move:Processed"),
            entry("Lists/rust", "none"),
        ])
        .expect("valid");
        assert_eq!(
            a.for_folder("INBOX").after_store,
            AfterStore::Move("Processed".into())
        );
        // Overrides inherit the account's other keys.
        assert_eq!(a.for_folder("INBOX").delete_after_days, Some(30));
        assert_eq!(a.for_folder("Lists/rust").after_store, AfterStore::None);
        assert_eq!(a.for_folder("Lists/go").after_store, AfterStore::Seen);
        let e = with(vec![entry("Archive", "seen")]).expect_err("unlisted");
        assert!(e.contains("`accounts[0].folder[0].name`"), "{e}");
        let e = with(vec![entry("INBOX", "move:inbox")]).expect_err("into itself");
        assert!(e.contains("folder[0].after_store"), "{e}");
        let e = with(vec![entry("INBOX", "seen"), entry("INBOX", "delete")]).expect_err("twice");
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn windows_are_set_per_level() {
        let folders = vec!["INBOX".to_owned(), "Old".to_owned()];
        let mut r = raw(None, None);
        r.since = Some("2024-01-01".into());
        r.max_age = Some(RawDays::Text("30d".into()));
        let e = build("accounts[0].", r, &folders).expect_err("both");
        assert!(
            e.contains("`accounts[0].since`") && e.contains("not both"),
            "{e}"
        );
        let mut r = raw(None, None);
        r.max_age = Some(RawDays::Number(30));
        let e = build("accounts[0].", r, &folders).expect_err("bare number");
        assert!(
            e.contains("`accounts[0].max_age`") && e.contains("\"30d\""),
            "{e}"
        );
        let mut r = raw(None, None);
        r.since = Some("2024-01-01".into());
        r.search = Some("UNSEEN".into());
        r.folder = Some(vec![RawFolder {
            name: Some("Old".into()),
            after_store: None,
            delete_after: None,
            create_destination: None,
            since: None,
            max_age: Some(RawDays::Text("3650d".into())),
            search: None,
        }]);
        let a = build("accounts[0].", r, &folders).expect("valid");
        assert_eq!(
            a.for_folder("INBOX").window.key(),
            "since=2024-01-01;search=UNSEEN"
        );
        assert_eq!(
            a.for_folder("Old").window.key(),
            "max_age=3650d;search=UNSEEN"
        );
        assert_eq!(
            a.for_folder("INBOX").describe(),
            "read-only (EXAMINE): mailfeed changes nothing; fetches only mail since 2024-01-01 matching UNSEEN"
        );
    }

    /// Through the real loader: TOML tables, messages naming the key.
    #[test]
    fn from_the_configuration_file() {
        let base = r#"
            [store]
            path = "m.db"
            [[accounts]]
            name = "w"
            host = "h"
            username = "u"
            password_env = "PW"
            folders = ["INBOX", "Orders"]
        "#;
        let load = |extra: &str| {
            crate::config::Config::from_toml(&format!("{base}{extra}"), std::path::Path::new("/"))
                .map_err(|e| e.to_string())
        };
        let c = load(
            "after_store = \"seen\"\n[[accounts.folder]]\nname = \"Orders\"\nafter_store = \"move:Processed\"\n",
        )
        .expect("valid");
        let a = &c.accounts[0].actions;
        assert_eq!(a.for_folder("INBOX").after_store, AfterStore::Seen);
        assert_eq!(
            a.for_folder("Orders").after_store,
            AfterStore::Move("Processed".into())
        );
        let e = load("delete_after = \"90\"\n").expect_err("bare number");
        assert!(
            e.contains("`accounts[0].delete_after`") && e.contains("\"90d\""),
            "{e}"
        );
        let e = load("delete_after = 90\n").expect_err("integer");
        assert!(e.contains("`accounts[0].delete_after`"), "{e}");
        let e = load("delete_after = \"6h\"\n").expect_err("hours");
        assert!(e.contains("shorter than a day"), "{e}");
        let e = load("[[accounts.folder]]\nname = \"INBOX\"\nafterstore = \"seen\"\n")
            .expect_err("typo");
        assert!(e.contains("afterstore"), "{e}");
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "a/b"));
        assert!(pattern_matches("Lists/*", "Lists/a/b"));
        assert!(pattern_matches("Lists/%", "Lists/a"));
        assert!(!pattern_matches("Lists/%", "Lists/a/b"));
        assert!(!pattern_matches("Lists/*", "Archive"));
    }
}
