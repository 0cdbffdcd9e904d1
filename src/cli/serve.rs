//! `mailfeed serve`: the web page and the read-only API over a database,
//! without syncing.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::Config;

/// `mailfeed serve`: the page and the API over a database, read-only,
/// until SIGINT or SIGTERM.
pub(crate) async fn cmd_serve(
    config: &Config,
    listen: Option<std::net::SocketAddr>,
    db: Option<&Path>,
) -> Result<i32> {
    if db.is_none() && config.store.postgres.is_some() {
        bail!(
            "`mailfeed serve` is not supported with [store] url yet; give `--db` with a SQLite database, or use `[http]` of `mailfeed run` for /metrics and /status"
        );
    }
    let path = db.unwrap_or(&config.store.path);
    if !path.exists() {
        bail!(
            "no database at {}; give `--db` or run `mailfeed sync` first",
            path.display()
        );
    }
    let default = crate::http::settings::DEFAULT_LISTEN
        .parse()
        .context("the default listen address")?;
    let addr = listen
        .or(config.http.as_ref().map(|h| h.listen))
        .unwrap_or(default);
    let token = config.http.as_ref().and_then(|h| h.token.clone());
    let http = crate::http::settings::check(addr, token).map_err(anyhow::Error::msg)?;
    let archive = crate::http::Archive::open(path)?;
    let api = crate::http::ApiState::new(archive, None);
    let cancel = api.cancel.clone();
    let tracker = tokio_util::task::TaskTracker::new();
    let addr = crate::http::start(&http, None, api, &tracker).await?;
    tracker.close();
    println!(
        "serving {} read-only on http://{addr}/ (Ctrl-C stops)",
        path.display(),
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    // Ends event streams and stops accepting; a moment for answers in flight.
    cancel.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tracker.wait()).await;
    Ok(0)
}
