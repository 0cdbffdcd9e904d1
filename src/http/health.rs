//! `GET /healthz` and `GET /readyz`, for systemd, Kubernetes or a load
//! balancer. Alive means the process answers and its database writer has
//! not stopped; ready means every account is connected or has synced within
//! its expected interval. Both bodies are plain text saying why.

use std::fmt::Write;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::state::Ops;

pub async fn healthz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.store.has_failed() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database writer has stopped after an error; mailfeed exits so the service manager restarts it\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

pub async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let now = SystemTime::now();
    let board = ops.board.snapshot();
    let mut body = String::new();
    for c in ops.configured.iter() {
        if !board.iter().any(|(k, _)| k.account == c.account) {
            let _ = writeln!(body, "{}: not connected yet", c.account);
        }
    }
    for (key, h) in &board {
        if let Some(why) = h.not_ready(now) {
            let _ = writeln!(body, "{}: {} — {}", key.shown(), h.state.as_str(), why);
        }
    }
    if body.is_empty() {
        (StatusCode::OK, format!("ready: {} watched\n", board.len()))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}
