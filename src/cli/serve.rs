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
    // `--db` names a SQLite file; without it, the store `[store]` names.
    let (source, shown) = match db {
        Some(path) => (
            crate::store::archive_read::ArchiveSource::sqlite(path),
            Some(path),
        ),
        None => (
            crate::store::archive_read::ArchiveSource::of(&config.store)?,
            config
                .store
                .postgres
                .is_none()
                .then_some(config.store.path.as_path()),
        ),
    };
    if let Some(path) = shown
        && !path.exists()
    {
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
    let archive = crate::http::Archive::open(source)?;
    let api = crate::http::ApiState::new(archive, None);
    let cancel = api.cancel.clone();
    let tracker = tokio_util::task::TaskTracker::new();
    let addr = crate::http::start(&http, None, api, &tracker).await?;
    tracker.close();
    let what = match shown {
        Some(path) => path.display().to_string(),
        None => "the PostgreSQL store".to_owned(),
    };
    println!("serving {what} read-only on http://{addr}/ (Ctrl-C stops)");
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
