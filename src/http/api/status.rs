//! `GET /api/v1/status`: what `mailfeed status --json` prints, one object
//! per folder (cursor, counts, last sync, last error); and
//! `GET /api/v1/status/live`: the same as server-sent events, sent again
//! whenever it changes (checked every second).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::{ApiError, ApiState};
use crate::store::read;

const EVERY: Duration = Duration::from_secs(1);

pub async fn status(
    State(st): State<ApiState>,
) -> Result<Json<Vec<read::MailboxStatus>>, ApiError> {
    Ok(Json(st.archive.read(read::status).await??))
}

pub async fn live(
    State(st): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold((st, String::new(), true), |(st, last, first)| async move {
            loop {
                if !first {
                    tokio::select! {
                        _ = st.cancel.cancelled() => return None,
                        _ = tokio::time::sleep(EVERY) => {}
                    }
                }
                let text = match st.archive.read(read::status).await {
                    Ok(Ok(rows)) => serde_json::to_string(&rows).unwrap_or_default(),
                    Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }).to_string(),
                    Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
                };
                if text != last {
                    let ev = Event::default().event("status").data(text.clone());
                    return Some((Ok(ev), (st, text, false)));
                }
                if first {
                    return Some((Ok(Event::default().comment("unchanged")), (st, last, false)));
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
