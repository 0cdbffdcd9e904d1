//! The alert as JSON, the same for a webhook's body and a command's stdin.
//! It names the account, the folder, since when it fails, the last error
//! and how to look closer; it holds no secret (errors never carry one, and
//! nothing from the configuration but names goes in).

use std::time::{SystemTime, UNIX_EPOCH};

use super::rules::Alert;

fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::utc::format_utc(secs)
}

/// The JSON document for `alert`, sent at `now`.
pub fn render(alert: &Alert, now: SystemTime) -> Vec<u8> {
    let account = &alert.key.account;
    let what = match &alert.key.folder {
        Some(f) => format!("folder `{f}` of account `{account}`"),
        None => format!("account `{account}`"),
    };
    let summary = match alert.event {
        super::rules::Event::Failing => format!(
            "mailfeed: {what} has been failing since {}: {}",
            utc(alert.since),
            alert.last_error.as_deref().unwrap_or("unknown error")
        ),
        super::rules::Event::Recovered => format!("mailfeed: {what} works again"),
    };
    let doc = serde_json::json!({
        "event": alert.event.as_str(),
        "account": account,
        "folder": alert.key.folder,
        "failing_since": utc(alert.since),
        "last_error": alert.last_error,
        "error_kind": alert.error_kind,
        "consecutive_failures": alert.consecutive_failures,
        "check": format!("mailfeed check --account {account}"),
        "summary": summary,
        "sent_at": utc(now),
    });
    let mut body = serde_json::to_vec(&doc).unwrap_or_default();
    body.push(b'\n');
    body
}
