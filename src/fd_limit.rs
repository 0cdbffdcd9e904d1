//! The process's open-file limit against the connections a configuration plans.
//!
//! Every IMAP connection is a descriptor, and systemd's default soft limit is 1,024: with
//! many accounts the last ones would fail to connect forever with "Too many open files".
//! At start the soft limit is raised to the hard limit (allowed without privileges), and
//! `run` and `check` say so when the planned connections come near the limit. Owns no
//! sockets; knows nothing of IMAP beyond the connection count of the configuration.

use crate::config::Config;

/// Descriptors mailfeed needs besides its IMAP connections: the database, its WAL and
/// shared memory on two connections, the checkpointer, the log, signals, a listener.
const BASE_DESCRIPTORS: u64 = 32;

/// The limit may be used up to this share before mailfeed warns.
const WARN_AT_PERCENT: u64 = 80;

/// The open-file limit after [`raise_soft_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard one and returns the limit now in force.
/// Returns `None` when the limit cannot be read; a refused raise (a seccomp filter such
/// as systemd's `SystemCallFilter=~@resources`) leaves the soft limit as it was.
pub fn raise_soft_limit() -> Option<FileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Some(FileLimit {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// The most IMAP connections `run` opens for this configuration: per account, one per
/// folder while IDLE is on, capped by `max_connections` (the rest share one poller).
pub fn planned_connections(config: &Config) -> u64 {
    config
        .accounts
        .iter()
        .map(|a| {
            if a.idle {
                u64::from(a.max_connections)
            } else {
                1
            }
        })
        .sum()
}

/// A warning when `connections` plus mailfeed's own descriptors come near `limit`,
/// naming the numbers and the fix; `None` when there is room.
pub fn headroom_warning(connections: u64, limit: FileLimit) -> Option<String> {
    let needed = connections + BASE_DESCRIPTORS;
    (needed * 100 > limit.soft * WARN_AT_PERCENT).then(|| {
        format!(
            "up to {connections} IMAP connections are planned, near the open-file limit of {} \
             (hard limit {}): raise it (systemd: LimitNOFILE= in the unit; a shell: ulimit -n) \
             or lower accounts' max_connections",
            limit.soft, limit.hard
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_near_the_limit() {
        let limit = FileLimit {
            soft: 1024,
            hard: 4096,
        };
        assert_eq!(headroom_warning(100, limit), None);
        assert_eq!(headroom_warning(1024 * 80 / 100 - 32, limit), None);
        let w = headroom_warning(1000, limit).expect("warning");
        assert!(
            w.contains("1000 IMAP connections") && w.contains("1024"),
            "{w}"
        );
        assert!(w.contains("LimitNOFILE="), "{w}");
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let limit = raise_soft_limit().expect("getrlimit works on Linux");
        assert_eq!(limit.soft, limit.hard);
    }
}
