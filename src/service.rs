//! The daemon behind `mailfeed run`: a task per account, signals, backoff.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::store::StoreHandle;
use crate::sync::Engine;

/// Runs until SIGTERM/SIGINT: sync every account, sleep, repeat.
pub async fn run(config: Arc<Config>, _path: PathBuf) -> Result<i32> {
    let (store, writer) = StoreHandle::start(
        &config.store.path,
        config.store.synchronous,
        config.sync.max_buffered_bytes,
    )?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        for acc in &config.accounts {
            let engine = Engine {
                store: store.clone(),
                opts: crate::cli::connect_options(&config, acc)?,
                settings: config.sync.clone(),
            };
            let outcomes = crate::sync::sync_account(&engine, acc, &|| None).await;
            for o in outcomes {
                if let Err(e) = o.result {
                    tracing::error!(account = %o.account, folder = %o.folder, "sync failed: {e}");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.sync.poll_interval) => {}
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(store);
    writer.join();
    Ok(0)
}
