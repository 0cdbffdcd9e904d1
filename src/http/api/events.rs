//! `GET /api/v1/events?after_seq=&limit=`: the change log with its cursor,
//! as `SELECT ... FROM message_events WHERE seq > :after_seq ORDER BY seq`.

use axum::Json;
use axum::extract::{Query, State};

use super::{ApiError, ApiState, Params, int_param, limit_param};

pub const DEFAULT_LIMIT: u32 = 100;
/// Larger limits are clamped to this.
pub const MAX_LIMIT: u32 = 1000;

pub async fn list(
    State(st): State<ApiState>,
    Query(p): Query<Params>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let after = int_param(&p, "after_seq", 0)?;
    let limit = limit_param(&p, DEFAULT_LIMIT, MAX_LIMIT)?;
    let rows = st
        .archive
        .read(move |c| c.events_page(after, limit))
        .await??;
    let next = rows.last().map_or(after, |r| r.seq);
    Ok(Json(serde_json::json!({
        "events": rows,
        "limit": limit,
        "next_after_seq": next,
    })))
}
