//! The action keys: values, overrides, windows, patterns, from a file.

use super::build::pattern_matches;
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
    let p = |v: RawDays| build("a.", raw(None, Some(v)), &f).map(|a| a.default.delete_after_days);
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
    let e =
        load("[[accounts.folder]]\nname = \"INBOX\"\nafterstore = \"seen\"\n").expect_err("typo");
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
