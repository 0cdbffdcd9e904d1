//! The backfill window and filters: `since = "2024-01-01"` or
//! `max_age = "365d"` (by INTERNALDATE, via `UID SEARCH SINCE`) and
//! `search = "…"` (raw IMAP SEARCH criteria) limit what a folder's sync
//! fetches. The window in force is recorded per folder; when the
//! configuration changes it, the next pass searches the UIDs the cursor
//! already covers with the new window and fetches the matches that are not
//! stored — so widening fetches the older mail once, and narrowing fetches
//! nothing and deletes nothing. Owns the criteria and the two searches;
//! must not build SQL (the record is `store::window`) or decide cursors.

mod follow;

use crate::imap::{Command, SearchArg, UidSet, Untagged};
use crate::session::{Session, SessionError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// `since = "YYYY-MM-DD"`: day count since 1970-01-01.
    Date { text: String, day: i64 },
    /// `max_age = "Nd"`: a window that moves with the clock.
    MaxAge(u32),
}

/// What a folder's sync fetches; the default fetches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    pub since: Option<Since>,
    /// The `search` criteria as written, and parsed.
    pub search: Option<(String, Vec<SearchArg>)>,
}

impl Window {
    /// Whether the window leaves anything out.
    pub fn filters(&self) -> bool {
        self.since.is_some() || self.search.is_some()
    }

    /// What is recorded per folder: it changes only when the configuration
    /// does (not daily with `max_age`). Empty for everything.
    pub fn key(&self) -> String {
        let mut k = String::new();
        match &self.since {
            Some(Since::Date { text, .. }) => k.push_str(&format!("since={text}")),
            Some(Since::MaxAge(d)) => k.push_str(&format!("max_age={d}d")),
            None => {}
        }
        if let Some((text, _)) = &self.search {
            if !k.is_empty() {
                k.push(';');
            }
            k.push_str(&format!("search={text}"));
        }
        k
    }

    /// The criteria on `today` (days since 1970-01-01); `ALL` when none.
    pub fn criteria(&self, today: i64) -> Vec<SearchArg> {
        let mut out = Vec::new();
        let day = match &self.since {
            Some(Since::Date { day, .. }) => Some(*day),
            Some(Since::MaxAge(d)) => Some(today - i64::from(*d)),
            None => None,
        };
        if let Some(day) = day {
            out.push(SearchArg::Atom("SINCE".into()));
            out.push(SearchArg::Atom(crate::actions::execute::imap_date(day)));
        }
        if let Some((_, args)) = &self.search {
            out.extend(args.iter().cloned());
        }
        if out.is_empty() {
            out.push(SearchArg::Atom("ALL".into()));
        }
        out
    }

    /// One line for `check`.
    pub fn describe(&self) -> Option<String> {
        let since = match &self.since {
            Some(Since::Date { text, .. }) => Some(format!("mail since {text}")),
            Some(Since::MaxAge(d)) => Some(format!("mail of the last {d} days")),
            None => None,
        };
        match (since, &self.search) {
            (None, None) => None,
            (Some(s), None) => Some(format!("fetches only {s}")),
            (None, Some((t, _))) => Some(format!("fetches only mail matching {t}")),
            (Some(s), Some((t, _))) => Some(format!("fetches only {s} matching {t}")),
        }
    }
}

/// `since`: a date `YYYY-MM-DD`.
pub fn parse_since(key: &str, text: &str) -> Result<Since, String> {
    let bad =
        || format!("`{key}` = {text:?} is not a date; write e.g. \"2024-01-01\" (YYYY-MM-DD)");
    let t = text.trim();
    let mut parts = t.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d) = match (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>()) {
        (Ok(y), Ok(m), Ok(d)) if (1..=12).contains(&m) && (1..=31).contains(&d) => (y, m, d),
        _ => return Err(bad()),
    };
    let day = crate::utc::days_from_civil(y, m, d);
    // 2024-02-31 would silently become March 2nd.
    if crate::utc::civil_from_days(day) != (y, m as u32, d as u32) {
        return Err(bad());
    }
    Ok(Since::Date {
        text: t.to_owned(),
        day,
    })
}

/// `search`: raw IMAP SEARCH criteria, e.g. `FROM "boss" UNSEEN` or
/// `SUBJECT "Grüße"`. Words are sent as they are, quoted strings as
/// strings (literals with CHARSET UTF-8 when not ASCII), parentheses kept.
pub fn parse_search(key: &str, text: &str) -> Result<Vec<SearchArg>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e) => s.push(e),
                        None => return Err(format!("`{key}`: a `\\` ends the text")),
                    },
                    Some(ch) => s.push(ch),
                    None => {
                        return Err(format!(
                            "`{key}` = {text:?}: a quoted string is not closed; end it with `\"`"
                        ));
                    }
                }
            }
            out.push(SearchArg::Str(s));
        } else if c == '(' || c == ')' {
            chars.next();
            out.push(SearchArg::Atom(c.to_string()));
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '"' {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            if !w.is_ascii() || w.chars().any(|c| c.is_control() || c == '{') {
                return Err(format!(
                    "`{key}`: {w:?} must be quoted (write \"{w}\"); only quoted strings may hold non-ASCII text"
                ));
            }
            out.push(SearchArg::Atom(w));
        }
    }
    let depth = out.iter().try_fold(0i32, |d, a| match a {
        SearchArg::Atom(t) if t == "(" => Some(d + 1),
        SearchArg::Atom(t) if t == ")" => (d > 0).then_some(d - 1),
        _ => Some(d),
    });
    if depth != Some(0) {
        return Err(format!("`{key}` = {text:?}: parentheses do not match"));
    }
    if out.is_empty() {
        return Err(format!(
            "`{key}` is empty; remove it, or write criteria such as 'FROM \"boss\"'"
        ));
    }
    Ok(out)
}

/// Today as days since 1970-01-01 (UTC).
pub fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        .div_euclid(86_400)
}

/// `UID SEARCH UID set criteria`: the UIDs of `set` that the window takes.
pub async fn search(
    session: &mut Session,
    set: String,
    window: &Window,
) -> Result<UidSet, SessionError> {
    let mut args = vec![SearchArg::Atom("UID".into()), SearchArg::Atom(set)];
    args.extend(window.criteria(today()));
    let esearch = session.capabilities().esearch();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let cmd = Command::UidSearchArgs { args, esearch };
    for u in session.run(&cmd).await? {
        match u {
            Untagged::Search(found) => ranges.extend(found.into_iter().map(|u| (u, u))),
            Untagged::ESearch(e) => {
                if let Some(all) = e.all {
                    ranges.extend_from_slice(all.ranges());
                }
            }
            _ => {}
        }
    }
    Ok(UidSet::from_ranges(ranges))
}

/// The UIDs above `after` that the window takes (`n:*` also names the
/// highest message when every UID is below n, hence the filter).
pub async fn search_above(
    session: &mut Session,
    after: u32,
    window: &Window,
) -> Result<UidSet, SessionError> {
    let found = search(session, format!("{}:*", after.saturating_add(1)), window).await?;
    Ok(UidSet::from_uids(found.iter().filter(|u| *u > after)))
}

/// Every UID of `a` that is not in `b`.
pub fn minus(a: &UidSet, b: &UidSet) -> UidSet {
    UidSet::from_uids(a.iter().filter(|u| !b.contains(*u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_dates() {
        assert!(matches!(
            parse_since("k", "2024-01-01"),
            Ok(Since::Date { day: 19_723, .. })
        ));
        for bad in [
            "2024-02-31",
            "24-01-01",
            "2024/01/01",
            "2024-13-01",
            "soon",
            "90d",
        ] {
            let e = parse_since("accounts[0].since", bad).expect_err(bad);
            assert!(e.contains("`accounts[0].since`"), "{e}");
        }
    }

    #[test]
    fn search_criteria() {
        assert_eq!(
            parse_search(
                "k",
                r#"FROM "boss" (OR UNSEEN FLAGGED) SUBJECT "Grüße \"x\"""#
            ),
            Ok(vec![
                SearchArg::Atom("FROM".into()),
                SearchArg::Str("boss".into()),
                SearchArg::Atom("(".into()),
                SearchArg::Atom("OR".into()),
                SearchArg::Atom("UNSEEN".into()),
                SearchArg::Atom("FLAGGED".into()),
                SearchArg::Atom(")".into()),
                SearchArg::Atom("SUBJECT".into()),
                SearchArg::Str("Grüße \"x\"".into()),
            ])
        );
        for bad in [
            "",
            "FROM \"boss",
            "(UNSEEN",
            "UNSEEN)",
            "SUBJECT Grüße",
            "X {3}",
        ] {
            assert!(parse_search("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn criteria_and_key() {
        let w = Window {
            since: Some(Since::MaxAge(30)),
            search: Some(("UNSEEN".into(), vec![SearchArg::Atom("UNSEEN".into())])),
        };
        assert_eq!(w.key(), "max_age=30d;search=UNSEEN");
        assert_eq!(
            w.criteria(19_753),
            vec![
                SearchArg::Atom("SINCE".into()),
                SearchArg::Atom("1-Jan-2024".into()),
                SearchArg::Atom("UNSEEN".into()),
            ]
        );
        assert_eq!(Window::default().key(), "");
        assert_eq!(
            Window::default().criteria(0),
            vec![SearchArg::Atom("ALL".into())]
        );
    }

    #[test]
    fn set_difference() {
        let a = UidSet::from_ranges(vec![(1, 10)]);
        let b = UidSet::from_uids([2, 3, 7]);
        assert_eq!(minus(&a, &b).to_string(), "1,4:6,8:10");
    }
}
