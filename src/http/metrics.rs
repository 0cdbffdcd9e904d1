//! `GET /metrics`: the Prometheus text exposition, built afresh per scrape
//! from the health board, the writer's handle and the database's totals.
//! Folder labels are bounded: only folders the configuration names or the
//! watchers resolved from it appear, never every mailbox the database holds.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::{DbTotals, Ops};
use crate::health::{ErrorKind, FolderHealth, Key, State as WatchState};

type Labels = Vec<(&'static str, String)>;
type IntGauge = Family<Labels, Gauge>;
type FloatGauge = Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>;
type Count = Family<Labels, Counter>;

/// The folder label of an account's own entry (before its folders are known).
pub const ACCOUNT_LEVEL: &str = "(account)";

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(ops): State<Ops>) -> Response {
    let totals = match ops.totals().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("http: /metrics: {e}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the database: {e}\n"),
            )
                .into_response();
        }
    };
    let board = ops.board.snapshot();
    match render(&ops, &board, &totals) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

fn labels(key: &Key) -> Labels {
    vec![
        ("account", key.account.clone()),
        (
            "folder",
            key.folder.clone().unwrap_or_else(|| ACCOUNT_LEVEL.into()),
        ),
    ]
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The exposition text for one scrape.
pub fn render(
    ops: &Ops,
    board: &[(Key, FolderHealth)],
    totals: &DbTotals,
) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("mailfeed");
    let mut gauge = |name: &str, help: &str| {
        let f = IntGauge::default();
        reg.register(name, help, f.clone());
        f
    };
    let messages = gauge(
        "messages_stored",
        "Messages stored, per folder (every UIDVALIDITY generation)",
    );
    let bytes = gauge(
        "stored_bytes",
        "Bytes of mail stored (RFC822.SIZE), per folder",
    );
    let truncated = gauge(
        "truncated_messages",
        "Messages over max_message_size stored as headers only",
    );
    let parse_errors = gauge(
        "parse_errors",
        "Messages stored raw whose MIME structure could not be parsed",
    );
    let uv_changes = gauge(
        "uidvalidity_changes",
        "UIDVALIDITY changes seen, per folder",
    );
    let state = gauge(
        "state",
        "1 for the watcher's current state (starting, idle, polling, syncing, backing_off, failed)",
    );
    let failures = gauge(
        "consecutive_failures",
        "Failures since the last successful pass or connection",
    );
    let idle = gauge("idle_connections", "IDLE commands running, per account");
    let queue = gauge(
        "writer_queue_bytes",
        "Bytes of mail waiting for the database writer",
    );
    let db_bytes = gauge(
        "database_bytes",
        "Size of the database file (without its WAL)",
    );
    let writer_up = gauge("writer_up", "1 while the database writer is alive");
    let leases = (!totals.leases.is_empty()).then(|| {
        gauge(
            "lease_held",
            "1 per account for the instance whose lease on it has not run out (PostgreSQL)",
        )
    });
    let lag = totals.search_index_lag.map(|_| {
        gauge(
            "search_index_lag_messages",
            "Stored messages not yet in the search index",
        )
    });
    let mut float = |name: &str, help: &str| {
        let f = FloatGauge::default();
        reg.register(name, help, f.clone());
        f
    };
    let last_success = float(
        "last_success_timestamp_seconds",
        "Unix time of the last successful pass",
    );
    let duration = float(
        "sync_duration_seconds",
        "How long the last successful pass took",
    );
    let mut counter = |name: &str, help: &str| {
        let f = Count::default();
        reg.register(name, help, f.clone());
        f
    };
    let errors = counter(
        "errors",
        "Failures by kind (auth, tls, network, server, store) since start",
    );
    let reconnects = counter(
        "reconnects",
        "Connections made again after one was lost or refused",
    );

    // Folders that may carry a label: configured by name, or resolved.
    let mut allowed: BTreeSet<(&str, &str)> = BTreeSet::new();
    for c in ops.configured.iter() {
        for f in &c.folders {
            allowed.insert((&c.account, f));
        }
    }
    for (k, _) in board {
        if let Some(f) = &k.folder {
            allowed.insert((&k.account, f));
        }
    }
    for t in &totals.mailboxes {
        let inbox_alias = t.mailbox.eq_ignore_ascii_case("INBOX")
            && allowed.contains(&(t.account.as_str(), "INBOX"));
        if !allowed.contains(&(t.account.as_str(), t.mailbox.as_str())) && !inbox_alias {
            continue;
        }
        let l: Labels = vec![
            ("account", t.account.clone()),
            ("folder", t.mailbox.clone()),
        ];
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        messages.get_or_create(&l).set(n(t.messages));
        bytes.get_or_create(&l).set(n(t.bytes));
        truncated.get_or_create(&l).set(n(t.truncated));
        parse_errors.get_or_create(&l).set(n(t.parse_errors));
        uv_changes.get_or_create(&l).set(n(t.uidvalidity_changes));
    }
    for (key, h) in board {
        let l = labels(key);
        for s in WatchState::ALL {
            let mut with = l.clone();
            with.push(("state", s.as_str().to_owned()));
            state.get_or_create(&with).set(i64::from(h.state == s));
        }
        failures
            .get_or_create(&l)
            .set(i64::try_from(h.consecutive_failures).unwrap_or(i64::MAX));
        if let Some(t) = h.last_success {
            last_success.get_or_create(&l).set(seconds_since_epoch(t));
        }
        if let Some(d) = h.last_duration {
            duration.get_or_create(&l).set(d.as_secs_f64());
        }
        for kind in ErrorKind::ALL {
            let mut with = l.clone();
            with.push(("kind", kind.as_str().to_owned()));
            errors.get_or_create(&with).inc_by(h.errors[kind.index()]);
        }
        reconnects.get_or_create(&l).inc_by(h.reconnects);
        idle.get_or_create(&vec![("account", key.account.clone())])
            .inc_by(i64::from(h.idle_open));
    }
    queue
        .get_or_create(&Vec::new())
        .set(i64::try_from(ops.store.queued_bytes()).unwrap_or(i64::MAX));
    db_bytes
        .get_or_create(&Vec::new())
        .set(i64::try_from(totals.database_bytes).unwrap_or(i64::MAX));
    writer_up
        .get_or_create(&Vec::new())
        .set(i64::from(!ops.store.has_failed()));
    if let Some(g) = leases {
        for l in &totals.leases {
            if let Some(owner) = l.owner.as_ref().filter(|_| l.expires_in > 0.0) {
                g.get_or_create(&vec![
                    ("account", l.account.clone()),
                    ("instance", owner.clone()),
                ])
                .set(1);
            }
        }
    }
    if let (Some(g), Some(v)) = (lag, totals.search_index_lag) {
        g.get_or_create(&Vec::new())
            .set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(text_format(&out))
}

/// prometheus-client writes OpenMetrics, where a counter family `x` has
/// samples `x_total` and the text ends with `# EOF`. The classic text
/// format (`version=0.0.4`, what Prometheus and `promtool check metrics`
/// read as `text/plain`) names the family as its samples: `x_total`.
fn text_format(open_metrics: &str) -> String {
    let counters: BTreeSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_families_are_named_as_their_samples() {
        let open = "# HELP m_errors Failures.\n# TYPE m_errors counter\nm_errors_total{kind=\"a\"} 1\n# HELP m_up Up.\n# TYPE m_up gauge\nm_up 1\n# EOF\n";
        assert_eq!(
            super::text_format(open),
            "# HELP m_errors_total Failures.\n# TYPE m_errors_total counter\nm_errors_total{kind=\"a\"} 1\n# HELP m_up Up.\n# TYPE m_up gauge\nm_up 1\n"
        );
    }
}
