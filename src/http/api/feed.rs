//! `GET /api/v1/messages?after_id=&limit=`: the feed with its cursor, the
//! same rows and order as `SELECT ... FROM message_feed WHERE id > :after_id
//! ORDER BY id LIMIT :limit` (all columns but `raw`).

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
    let after = int_param(&p, "after_id", 0)?;
    let limit = limit_param(&p, DEFAULT_LIMIT, MAX_LIMIT)?;
    let rows = st
        .archive
        .read(move |c| c.feed_page(after, limit))
        .await??;
    let next = rows.last().map_or(after, |r| r.id);
    Ok(Json(serde_json::json!({
        "messages": rows,
        "limit": limit,
        "next_after_id": next,
    })))
}
