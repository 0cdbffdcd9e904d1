//! One test a row of the table, so one attack can be run alone
//! (`cargo test --test hostile literal_size_negative`) and a failure names
//! its row; and the table's own rules (enough rows, unique names, a test
//! for every row).

use crate::run::run_case;
use crate::table::cases;

/// Runs the row named `name`; fails with what went wrong.
fn row(name: &str) {
    let case = cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no row named {name}"));
    match run_case(case) {
        Ok(report) => eprintln!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
}

macro_rules! rows {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                row($name);
            }
        )*

        /// The row names that have a test of their own.
        const TESTED: &[&str] = &[$($name),*];
    };
}

rows! {
    alert_everywhere => "alert-everywhere",
    bare_lf_line_endings => "bare-lf-line-endings",
    body_nil => "body-nil",
    bye_greeting => "bye-greeting",
    bye_mid_fetch => "bye-mid-fetch",
    closed_before_greeting => "closed-before-greeting",
    closed_mid_literal => "closed-mid-literal",
    continuation_mid_fetch => "continuation-mid-fetch",
    echoed_credentials_in_a_literal => "echoed-credentials-in-a-literal",
    echoed_credentials_in_a_tag => "echoed-credentials-in-a-tag",
    echoed_credentials_in_an_alert => "echoed-credentials-in-an-alert",
    echoed_credentials_in_an_untagged_bad => "echoed-credentials-in-an-untagged-bad",
    examine_no => "examine-no",
    fetch_bad => "fetch-bad",
    fetch_no => "fetch-no",
    fetch_without_uid => "fetch-without-uid",
    garbage_without_newline => "garbage-without-newline",
    greeting_is_a_tagged_reply => "greeting-is-a-tagged-reply",
    http_on_the_port => "http-on-the-port",
    line_of_1mb_without_crlf => "line-of-1MB-without-crlf",
    listed_uid_expunged_before_fetch => "listed-uid-expunged-before-fetch",
    listed_uid_not_sent_but_exists => "listed-uid-not-sent-but-exists",
    listing_empty_although_exists => "listing-empty-although-exists",
    literal_claims_4gib_then_closes => "literal-claims-4GiB-then-closes",
    literal_longer_than_data => "literal-longer-than-data",
    literal_shorter_than_data => "literal-shorter-than-data",
    literal_size_2_pow_40 => "literal-size-2^40",
    literal_size_absurd_digits => "literal-size-absurd-digits",
    literal_size_beyond_2_pow_32 => "literal-size-beyond-2^32",
    literal_size_negative => "literal-size-negative",
    literal_size_not_a_number => "literal-size-not-a-number",
    login_bad => "login-bad",
    login_no => "login-no",
    logindisabled => "logindisabled",
    nesting_too_deep => "nesting-too-deep",
    nul_in_fetch_syntax => "nul-in-fetch-syntax",
    nul_in_status_text => "nul-in-status-text",
    preauth => "preauth",
    reset_after_greeting => "reset-after-greeting",
    reset_mid_literal => "reset-mid-literal",
    same_uid_twice => "same-uid-twice",
    silence_instead_of_greeting => "silence-instead-of-greeting",
    size_mismatch => "size-mismatch",
    stall_mid_literal => "stall-mid-literal",
    starttls_after_preauth => "starttls-after-preauth",
    starttls_bad => "starttls-bad",
    starttls_not_offered => "starttls-not-offered",
    starttls_plaintext_injection => "starttls-plaintext-injection",
    starttls_refused => "starttls-refused",
    tagged_reply_not_ok_no_bad => "tagged-reply-not-ok-no-bad",
    uid_never_requested => "uid-never-requested",
    uids_going_backwards => "uids-going-backwards",
    uidvalidity_beyond_32_bits => "uidvalidity-beyond-32-bits",
    uidvalidity_changes_mid_fetch => "uidvalidity-changes-mid-fetch",
    uidvalidity_missing => "uidvalidity-missing",
    uidvalidity_zero => "uidvalidity-zero",
    unbalanced_close_parenthesis => "unbalanced-close-parenthesis",
    unbalanced_open_parenthesis => "unbalanced-open-parenthesis",
    unknown_tag => "unknown-tag",
    unterminated_quoted_string => "unterminated-quoted-string",
}

#[test]
fn the_table_has_unique_rows_each_with_its_test() {
    let all = cases();
    assert!(all.len() >= 30, "the table has {} rows", all.len());
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names must be unique");
    let mut tested = TESTED.to_vec();
    tested.sort_unstable();
    assert_eq!(
        names, tested,
        "every row has one test in rows.rs, and no more"
    );
}
