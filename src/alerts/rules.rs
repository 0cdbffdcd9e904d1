//! When to alert, decided from health snapshots alone (pure: no IO, the
//! time is passed in). An entry failing for longer than `after` opens an
//! alert; the first snapshot where it is no longer failing (or no longer
//! watched) closes it with a recovery. At most one open alert per key, so
//! a folder that keeps failing is announced once, however long it fails.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::health::{FolderHealth, Key};

/// What to tell the receivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub event: Event,
    pub key: Key,
    /// When the run of failures began.
    pub since: SystemTime,
    pub last_error: Option<String>,
    pub error_kind: Option<&'static str>,
    pub consecutive_failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Failing,
    Recovered,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failing => "failing",
            Event::Recovered => "recovered",
        }
    }
}

/// The open alerts of one `[[alerts]]` entry.
pub struct Rules {
    after: Duration,
    open: BTreeMap<Key, Alert>,
}

impl Rules {
    pub fn new(after: Duration) -> Self {
        Rules {
            after,
            open: BTreeMap::new(),
        }
    }

    /// The alerts this snapshot calls for, in key order.
    pub fn step(&mut self, snapshot: &[(Key, FolderHealth)], now: SystemTime) -> Vec<Alert> {
        let mut out = Vec::new();
        for (key, h) in snapshot {
            let Some(since) = h.failing_since else {
                continue;
            };
            let failing_for = now.duration_since(since).unwrap_or_default();
            if failing_for >= self.after && !self.open.contains_key(key) {
                let alert = Alert {
                    event: Event::Failing,
                    key: key.clone(),
                    since,
                    last_error: h.last_error.clone(),
                    error_kind: h.last_error_kind.map(|k| k.as_str()),
                    consecutive_failures: h.consecutive_failures,
                };
                self.open.insert(key.clone(), alert.clone());
                out.push(alert);
            }
        }
        let recovered: Vec<Key> = self
            .open
            .keys()
            .filter(|k| {
                !snapshot
                    .iter()
                    .any(|(key, h)| key == *k && h.failing_since.is_some())
            })
            .cloned()
            .collect();
        for key in recovered {
            if let Some(mut a) = self.open.remove(&key) {
                a.event = Event::Recovered;
                out.push(a);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Board, ErrorKind};

    #[test]
    fn one_alert_after_the_delay_and_one_recovery() {
        let board = Board::default();
        let r = board.report("acc", Some("INBOX"), Duration::from_secs(60));
        let mut rules = Rules::new(Duration::from_secs(900));
        let t0 = SystemTime::now();
        r.failed(ErrorKind::Network, "connection refused", false);
        assert!(rules.step(&board.snapshot(), t0).is_empty(), "too early");
        let late = t0 + Duration::from_secs(901);
        let a = rules.step(&board.snapshot(), late);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event, Event::Failing);
        assert_eq!(a[0].last_error.as_deref(), Some("connection refused"));
        r.failed(ErrorKind::Network, "connection refused", false);
        assert!(
            rules
                .step(&board.snapshot(), late + Duration::from_secs(600))
                .is_empty(),
            "still one"
        );
        r.succeeded(Duration::from_millis(3));
        let a = rules.step(&board.snapshot(), late + Duration::from_secs(700));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event, Event::Recovered);
        assert!(
            rules
                .step(&board.snapshot(), late + Duration::from_secs(800))
                .is_empty()
        );
    }

    #[test]
    fn a_short_failure_raises_nothing_and_a_vanished_entry_recovers() {
        let board = Board::default();
        let r = board.report("acc", None, Duration::from_secs(60));
        let mut rules = Rules::new(Duration::from_secs(10));
        let t0 = SystemTime::now();
        r.failed(ErrorKind::Auth, "login failed", true);
        r.succeeded(Duration::ZERO);
        assert!(
            rules
                .step(&board.snapshot(), t0 + Duration::from_secs(60))
                .is_empty()
        );
        r.failed(ErrorKind::Auth, "login failed", true);
        assert_eq!(
            rules
                .step(&board.snapshot(), t0 + Duration::from_secs(60))
                .len(),
            1
        );
        drop(r);
        let a = rules.step(&board.snapshot(), t0 + Duration::from_secs(61));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event, Event::Recovered);
    }
}
