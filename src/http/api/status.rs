//! `GET /api/v1/status`: what `mailfeed status --json` prints, one object
//! per folder (cursor, counts, last sync, last error); and
//! `GET /api/v1/status/live`: the same as server-sent events, sent again
//! whenever it changes: one poller reads it every second for all streams.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::{ApiError, ApiState};
use crate::store::MailboxStatus;

const EVERY: Duration = Duration::from_secs(1);

pub async fn status(State(st): State<ApiState>) -> Result<Json<Vec<MailboxStatus>>, ApiError> {
    Ok(Json(st.archive.read(|c| c.status()).await??))
}

pub async fn live(
    State(st): State<ApiState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = st.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::Busy("too many open event streams; close some pages and retry".into())
    })?;
    let rx = st.status_watch().await;
    let cancel = st.cancel.clone();
    let stream =
        futures_util::stream::unfold((rx, true, permit), move |(mut rx, first, permit)| {
            let cancel = cancel.clone();
            async move {
                // The first answer waits only for the poller's first read.
                if !first || rx.borrow().is_empty() {
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        changed = rx.changed() => changed.ok()?,
                    }
                }
                let text = rx.borrow_and_update().clone();
                let ev = Event::default().event("status").data(text.as_str());
                Some((Ok(ev), (rx, false, permit)))
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The one poller behind every status stream: reads status every
/// [`EVERY`] while anyone watches, and publishes it when it changed, so a
/// hundred open pages cost one query a second, not a hundred.
pub(super) fn spawn_poller(
    archive: crate::http::Archive,
    tx: tokio::sync::watch::Sender<std::sync::Arc<String>>,
    cancel: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            if tx.receiver_count() > 0 {
                let text = match archive.read(|c| c.status()).await {
                    Ok(Ok(rows)) => serde_json::to_string(&rows).unwrap_or_default(),
                    Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }).to_string(),
                    Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
                };
                tx.send_if_modified(|cur| {
                    if **cur == text {
                        false
                    } else {
                        *cur = std::sync::Arc::new(text);
                        true
                    }
                });
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}
