//! The read-only JSON API under `/api/v1`, one idea per file: the feed
//! ([`feed`]), one message and its raw bytes and HTML ([`messages`]),
//! attachments ([`attachments`]), the change log ([`events`]), search
//! ([`search`]), status and its live stream ([`status`]), the live
//! conversation ([`conversation`]) and the OpenAPI document ([`openapi`]).
//! Every path is listed in [`routes`], which the router is built from and
//! the OpenAPI test compares with `docs/openapi.json`.

pub mod attachments;
pub mod conversation;
pub mod events;
pub mod feed;
pub mod messages;
pub mod openapi;
pub mod search;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::{Archive, HttpError};
use crate::conversation::Conversation;

/// What every handler may use.
#[derive(Clone)]
pub struct ApiState {
    pub archive: Archive,
    /// The live conversation; `None` in `serve`, which does not sync.
    pub conversation: Option<Conversation>,
    /// Cancelled when the listener stops: event streams end.
    pub cancel: CancellationToken,
    /// Event streams open at once, at most [`MAX_STREAMS`].
    pub streams: Arc<Semaphore>,
    /// The latest status as JSON, for every status stream (one poller).
    status: Arc<tokio::sync::OnceCell<watch::Receiver<Arc<String>>>>,
}

/// Event streams (status, conversation) that may be open at once; more
/// are refused with 503.
pub const MAX_STREAMS: usize = 64;

impl ApiState {
    pub fn new(archive: Archive, conversation: Option<Conversation>) -> ApiState {
        ApiState {
            archive,
            conversation,
            cancel: CancellationToken::new(),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            status: Arc::default(),
        }
    }

    /// A receiver of the shared status, starting its poller on first use.
    pub(crate) async fn status_watch(&self) -> watch::Receiver<Arc<String>> {
        self.status
            .get_or_init(|| async {
                let (tx, rx) = watch::channel(Arc::new(String::new()));
                status::spawn_poller(self.archive.clone(), tx, self.cancel.clone());
                rx
            })
            .await
            .clone()
    }
}

/// Every API path (axum's `{name}` syntax, the same as OpenAPI's) with its
/// handlers.
pub fn routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    vec![
        ("/api/v1/openapi.json", get(openapi::document)),
        ("/api/v1/messages", get(feed::list)),
        ("/api/v1/messages/{id}", get(messages::detail)),
        ("/api/v1/messages/{id}/raw", get(messages::raw)),
        ("/api/v1/messages/{id}/html", get(messages::html)),
        ("/api/v1/attachments/{sha256}", get(attachments::download)),
        ("/api/v1/events", get(events::list)),
        ("/api/v1/search", get(search::search)),
        ("/api/v1/status", get(status::status)),
        ("/api/v1/status/live", get(status::live)),
        ("/api/v1/conversation/live", get(conversation::live)),
    ]
}

/// The API's router, ready to be merged into a listener's.
pub fn api_router(state: ApiState) -> Router {
    let mut r = Router::new();
    for (path, handler) in routes() {
        r = r.route(path, handler);
    }
    r.with_state(state)
}

/// An error answer: `{"error": "..."}` with its status.
/// The message passes through [`crate::secret::scrub`]: a database or IO
/// error must not carry a registered secret into an answer.
pub fn error_response(status: StatusCode, message: String) -> Response {
    let message = crate::secret::scrub(&message).into_owned();
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// What a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    /// A bound was reached (too many open streams): retry later.
    Busy(String),
    Internal(HttpError),
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        ApiError::Internal(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => error_response(StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => error_response(StatusCode::NOT_FOUND, m),
            ApiError::Busy(m) => error_response(StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(HttpError::Store(e @ crate::store::StoreError::Unsupported(_))) => {
                error_response(StatusCode::NOT_IMPLEMENTED, e.to_string())
            }
            ApiError::Internal(e) => {
                tracing::error!("HTTP: {e}");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

/// Query parameters, as written.
pub type Params = HashMap<String, String>;

/// An integer parameter, `default` when absent.
pub fn int_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("`{name}` = {v:?} is not an integer"))),
    }
}

/// `limit`: `default` when absent, at least 1, and clamped to `max` (the
/// answer says which limit applied).
pub fn limit_param(p: &Params, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(v) = p.get("limit") else {
        return Ok(default);
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "`limit` = {v:?} is not a positive integer"
        )));
    }
    // Digits only: anything that does not fit is above the maximum anyway.
    let n = v.parse::<u64>().unwrap_or(u64::MAX);
    if n == 0 {
        return Err(ApiError::BadRequest("`limit` must be at least 1".into()));
    }
    Ok(n.min(u64::from(max)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits_are_clamped_and_bad_ones_refused() {
        assert_eq!(limit_param(&p(&[]), 100, 1000).unwrap(), 100);
        assert_eq!(limit_param(&p(&[("limit", "5")]), 100, 1000).unwrap(), 5);
        assert_eq!(
            limit_param(&p(&[("limit", "99999999999999999999999")]), 100, 1000).unwrap(),
            1000
        );
        for bad in ["0", "-1", "abc", "", "1e3"] {
            assert!(
                matches!(
                    limit_param(&p(&[("limit", bad)]), 100, 1000),
                    Err(ApiError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
