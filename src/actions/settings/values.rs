//! One key's value: an `after_store` action, a number of days, a window's
//! `since`/`max_age`/`search`. Messages name the key and the fix.

use super::AfterStore;
use super::raw::RawDays;

/// `since`, `max_age` and `search` of one level; a field is `None` when
/// not set there (then the level above applies).
pub(super) fn window(
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

pub(super) fn parse_after_store(key: &str, v: &str) -> Result<AfterStore, String> {
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

pub(super) fn parse_days(key: &str, v: &RawDays) -> Result<u32, String> {
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
