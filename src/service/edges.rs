//! What `mailfeed run` starts beside its watchers: the HTTP listener (the
//! page, the API and the operators' routes) (bound here, before READY, so a port in use fails start-up)
//! and the alert loop. Both only read the health board and the store; they
//! stop with the service.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::health::Board;
use crate::http::{Configured, HttpError, Ops};
use crate::store::{StoreError, StoreHandle};
use crate::transport::TransportError;

/// Why an edge could not start; `mailfeed run` stops before READY.
#[derive(Debug, thiserror::Error)]
pub enum EdgesError {
    #[error("opening the database for the HTTP API")]
    Archive(#[source] StoreError),
    /// Says itself what failed (`http.listen` in use, say).
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("starting alerts")]
    Alerts(#[source] TransportError),
}

/// Starts the configured edges on `tracker`; they end when `cancel` fires.
pub async fn start(
    config: &Arc<Config>,
    board: &Board,
    store: &StoreHandle,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), EdgesError> {
    if let Some(http) = &config.http {
        let configured = config
            .accounts
            .iter()
            .map(|a| Configured {
                account: a.name.clone(),
                folders: a
                    .folders
                    .iter()
                    .filter(|f| !f.contains(['*', '%']))
                    .cloned()
                    .collect(),
            })
            .collect();
        let ops = Ops::new(
            board.clone(),
            store.clone(),
            config.store.clone(),
            configured,
        );
        // Installed before any account starts, so every connection feeds it.
        let conversation = crate::conversation::install(crate::conversation::Conversation::new());
        let archive = crate::store::archive_read::ArchiveSource::of(&config.store)
            .and_then(crate::http::Archive::open)
            .map_err(EdgesError::Archive)?;
        let mut api = crate::http::ApiState::new(archive, Some(conversation));
        api.cancel = cancel.child_token();
        crate::http::start(http, Some(ops), api, tracker).await?;
    }
    crate::alerts::start(&config.alerts, board.clone(), cancel.clone(), tracker)
        .map_err(EdgesError::Alerts)?;
    Ok(())
}
