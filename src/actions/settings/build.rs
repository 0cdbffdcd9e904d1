//! An account's actions from its raw keys: the account's defaults, then
//! each `[[accounts.folder]]` override, which must name a listed folder.

use super::raw::RawAccountActions;
use super::values::{parse_after_store, parse_days, window};
use super::{AccountActions, AfterStore, FolderActions, same_folder};

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
pub(super) fn pattern_matches(pattern: &str, name: &str) -> bool {
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
