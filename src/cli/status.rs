//! `mailfeed status`: the per-folder table (or JSON), once or redrawn.

use std::io::Write;

use anyhow::{Result, bail};

use crate::config::Config;
use crate::store;

use super::watch;

/// `mailfeed status`
pub(crate) fn cmd_status(config: &Config, json: bool, watch: bool) -> Result<i32> {
    if watch {
        return watch::every_second(|frame| status_table(config, false, frame));
    }
    status_table(config, json, &mut std::io::stdout().lock())?;
    Ok(0)
}

fn status_table(config: &Config, json: bool, out: &mut impl Write) -> Result<()> {
    if config.store.postgres.is_none() && !config.store.path.exists() {
        bail!(
            "no database at {} yet; run `mailfeed sync` first",
            config.store.path.display()
        );
    }
    let reader = store::Reader::open_store(&config.store)?;
    let rows = reader.status()?;
    let lag = reader.search_lag()?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:<24} {:>12} {:>8} {:>8} {:>6} {:>9} {:<24} LAST ERROR",
        "ACCOUNT", "FOLDER", "UIDVALIDITY", "LAST UID", "STORED", "TRUNC", "PARSE ERR", "LAST SYNC"
    )?;
    for r in &rows {
        let mut err = r.last_error.clone().unwrap_or_else(|| "-".into());
        if r.uidvalidity_changes > 0 {
            err = format!("{err} [UIDVALIDITY changed {}x]", r.uidvalidity_changes);
        }
        writeln!(
            out,
            "{:<12} {:<24} {:>12} {:>8} {:>8} {:>6} {:>9} {:<24} {}",
            r.account,
            r.mailbox,
            r.uidvalidity
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.last_uid,
            r.stored,
            r.truncated,
            r.parse_errors,
            r.last_sync_at.as_deref().unwrap_or("never"),
            err
        )?;
    }
    if lag.caught_up() {
        writeln!(out, "search index: up to date")?;
    } else {
        writeln!(out, "search index: {}", search_behind(&lag))?;
    }
    let leases = reader.leases()?;
    if !leases.is_empty() {
        writeln!(
            out,
            "\n{:<24} {:<40} {:>6} EXPIRES",
            "ACCOUNT", "INSTANCE", "FENCE"
        )?;
        for l in &leases {
            let expires = match (&l.owner, l.expires_in) {
                (None, _) => "free".to_owned(),
                (Some(_), s) if s < 0.0 => "expired".to_owned(),
                (Some(_), s) => format!("in {s:.0} s"),
            };
            writeln!(
                out,
                "{:<24} {:<40} {:>6} {}",
                l.account,
                l.owner.as_deref().unwrap_or("-"),
                l.fence,
                expires
            )?;
        }
    }
    Ok(())
}

/// "N message(s), S s behind the feed", for `status` and `search`.
pub(super) fn search_behind(lag: &store::SearchLag) -> String {
    format!(
        "{} message(s), {:.1} s behind the feed",
        lag.messages, lag.seconds
    )
}
