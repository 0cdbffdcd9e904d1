//! `mailfeed tail`: prints feed messages as they are stored.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::Config;

use super::open_existing;
use super::query::clip;

/// Whether nobody reads our stdout any more (the read end of a pipe or
/// socket was closed), so `tail --follow` can stop without waiting for a
/// message to fail to write.
#[cfg(unix)]
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, zero timeout; poll only writes revents.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
}

#[cfg(not(unix))]
fn stdout_closed() -> bool {
    false
}

/// `mailfeed tail`: prints feed messages (JSON lines with `--json`); with
/// `--follow`, polls for rows above the last printed id every 200 ms until
/// SIGINT, SIGTERM or a closed stdout.
pub(crate) async fn cmd_tail(
    config: &Config,
    from_id: Option<i64>,
    follow: bool,
    json: bool,
) -> Result<i32> {
    const POLL: std::time::Duration = std::time::Duration::from_millis(200);
    const BATCH: u32 = 500;
    // A follower may start before the first sync has created the database.
    while follow && config.store.postgres.is_none() && !config.store.path.exists() {
        tokio::time::sleep(POLL).await;
    }
    let reader = open_existing(config)?;
    let mut last = match from_id {
        Some(n) => n.saturating_sub(1),
        None => reader.id_before_last(10)?,
    };
    // Registered once, before the loop, so a signal that arrives while a
    // query runs is not lost.
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let stdout = std::io::stdout();
    loop {
        let rows = reader.entries_after(last, BATCH)?;
        let mut out = stdout.lock();
        for e in &rows {
            let line = if json {
                serde_json::to_string(e)?
            } else {
                format!(
                    "{:>8} {:<20} {:<32} {:<48} {}/{}",
                    e.id,
                    e.date.as_deref().map_or("-", |d| d.get(..19).unwrap_or(d)),
                    clip(e.from.as_deref().unwrap_or("-"), 32),
                    clip(e.subject.as_deref().unwrap_or("(no subject)"), 48),
                    e.account,
                    e.mailbox
                )
            };
            let written = writeln!(out, "{line}");
            if let Err(err) = written.and_then(|()| out.flush()) {
                // The reader went away (`| head`): a normal end, not a failure.
                if err.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(0);
                }
                return Err(err).context("writing to stdout");
            }
            last = e.id;
        }
        drop(out);
        if rows.len() as u32 == BATCH {
            continue;
        }
        if !follow || stdout_closed() {
            return Ok(0);
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = sigint.recv() => return Ok(0),
            _ = sigterm.recv() => return Ok(0),
        }
    }
}
