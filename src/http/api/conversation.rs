//! `GET /api/v1/conversation/live?account=`: the live, annotated and
//! redacted IMAP conversation of `run`'s connections as server-sent events
//! (`line` events; a `lagged` event says how many lines a slow watcher
//! missed). The recent lines come first. `serve` does not sync: 404.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState, Params};

pub async fn live(
    State(st): State<ApiState>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let Some(conv) = st.conversation.clone() else {
        return Err(ApiError::NotFound(
            "no live conversation: this process does not sync (mailfeed serve)".into(),
        ));
    };
    let permit = st.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::Busy("too many open event streams; close some pages and retry".into())
    })?;
    let account = p.get("account").filter(|a| !a.is_empty()).cloned();
    let (backlog, rx) = conv.subscribe();
    let wanted = move |l: &crate::conversation::ConversationLine| {
        account.as_ref().is_none_or(|a| &l.account == a)
    };
    let first: Vec<Result<Event, Infallible>> = backlog
        .iter()
        .filter(|l| wanted(l))
        .map(|l| Ok(line_event(l)))
        .collect();
    let cancel = st.cancel.clone();
    let live = futures_util::stream::unfold((rx, permit), move |(mut rx, permit)| {
        let cancel = cancel.clone();
        let wanted = wanted.clone();
        async move {
            loop {
                let got = tokio::select! {
                    _ = cancel.cancelled() => return None,
                    r = rx.recv() => r,
                };
                match got {
                    Ok(l) if wanted(&l) => return Some((Ok(line_event(&l)), (rx, permit))),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        let ev = Event::default()
                            .event("lagged")
                            .data(serde_json::json!({ "missed": n }).to_string());
                        return Some((Ok(ev), (rx, permit)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    use futures_util::StreamExt;
    let stream = futures_util::stream::iter(first).chain(live);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn line_event(l: &crate::conversation::ConversationLine) -> Event {
    Event::default()
        .event("line")
        .data(serde_json::to_string(l).unwrap_or_default())
}
