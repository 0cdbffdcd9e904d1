//! Every route of the operators' listener, in one table. A new route (a
//! read-only `/api/v1/...`, a page at `/`) is one more line here: it gets
//! the same [`Ops`] state, the same bearer check and the same connection
//! bound as the others.

use axum::Router;
use axum::routing::get;

use super::auth::{Bearer, require_bearer};
use super::state::Ops;
use super::{health, metrics};

pub fn router(ops: Ops, bearer: Option<Bearer>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(ops);
    match bearer {
        Some(b) => routes.layer(axum::middleware::from_fn_with_state(b, require_bearer)),
        None => routes,
    }
}
