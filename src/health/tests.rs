use std::time::{Duration, SystemTime};

use super::*;

#[test]
fn a_failure_run_starts_once_and_ends_with_a_success() {
    let board = Board::default();
    let r = board.report("acc", Some("INBOX"), Duration::from_secs(60));
    let now = SystemTime::now();
    assert!(
        board.snapshot()[0].1.not_ready(now).is_some(),
        "not synced yet"
    );
    r.succeeded(Duration::from_millis(5));
    assert_eq!(board.snapshot()[0].1.not_ready(SystemTime::now()), None);
    r.failed(ErrorKind::Network, "connection reset", false);
    let first = board.snapshot()[0].1.failing_since.expect("failing");
    r.failed(ErrorKind::Auth, "login failed", true);
    let (_, h) = &board.snapshot()[0];
    assert_eq!(
        h.failing_since,
        Some(first),
        "the run began at the first failure"
    );
    assert_eq!(h.consecutive_failures, 2);
    assert_eq!(h.state, State::Failed);
    assert_eq!(h.errors[ErrorKind::Network.index()], 1);
    assert_eq!(h.errors[ErrorKind::Auth.index()], 1);
    let why = h.not_ready(SystemTime::now()).expect("not ready");
    assert!(why.contains("login failed"), "{why}");
    r.succeeded(Duration::from_millis(5));
    let (_, h) = &board.snapshot()[0];
    assert_eq!((h.consecutive_failures, h.failing_since), (0, None));
    assert_eq!(h.errors[ErrorKind::Auth.index()], 1, "counters stay");
}

#[test]
fn a_pass_older_than_its_interval_is_not_ready_unless_idling() {
    let board = Board::default();
    let r = board.report("acc", Some("INBOX"), Duration::from_secs(60));
    r.succeeded(Duration::from_millis(5));
    let later = SystemTime::now() + Duration::from_secs(120);
    let h = board.snapshot()[0].1.clone();
    assert!(
        h.not_ready(later)
            .is_some_and(|w| w.contains("expected every 60s"))
    );
    r.idle_opened();
    assert_eq!(board.snapshot()[0].1.not_ready(later), None);
}

#[test]
fn an_entry_lives_while_a_report_holds_it() {
    let board = Board::default();
    let old = board.report("acc", Some("INBOX"), Duration::from_secs(60));
    old.reconnected();
    let new = board.report("acc", Some("INBOX"), Duration::from_secs(60));
    drop(old);
    assert_eq!(board.snapshot().len(), 1);
    assert_eq!(
        board.snapshot()[0].1.reconnects,
        1,
        "the replacement carries on"
    );
    drop(new);
    assert!(board.snapshot().is_empty());
}
