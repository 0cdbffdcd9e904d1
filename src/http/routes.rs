//! Every route of the HTTP listener, in one table. A new route is one more
//! line here: it gets the same token check, the same security headers and
//! the same connection bound as the others. `run` mounts the operators'
//! routes (`/metrics`, `/healthz`, `/readyz`, which read the running
//! service) beside the API and the page; `serve`, which runs no service,
//! mounts only the API and the page, so those paths are its 404.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::auth::{self, Auth};
use super::state::Ops;
use super::{ApiState, api_router, headers, health, metrics, web_router};
use crate::secret::Secret;

pub fn router(ops: Option<Ops>, api: ApiState, token: Option<&Secret>) -> Router {
    let mut routes = api_router(api.clone()).merge(web_router(api));
    if let Some(ops) = ops {
        routes = routes.merge(
            Router::new()
                .route("/metrics", get(metrics::metrics))
                .route("/healthz", get(health::healthz))
                .route("/readyz", get(health::readyz))
                .with_state(ops),
        );
    }
    routes
        .fallback(|| async {
            super::api::error_response(axum::http::StatusCode::NOT_FOUND, "no such page".into())
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Auth::new(token)),
            auth::require,
        ))
        .layer(axum::middleware::map_response(headers::security_headers))
}
