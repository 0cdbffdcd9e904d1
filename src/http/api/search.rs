//! `GET /api/v1/search?q=&limit=`: full-text search, best match first, in
//! the store's query form: SQLite's FTS5 syntax, or PostgreSQL's
//! `websearch_to_tsquery` (docs/consumer-contract.md). A query FTS5 cannot
//! parse is the caller's mistake: 400 with SQLite's reason, never 500.

use axum::Json;
use axum::extract::{Query, State};

use super::{ApiError, ApiState, Params, limit_param};
use crate::store::archive_read::SearchError;

pub const DEFAULT_LIMIT: u32 = 50;
/// Larger limits are clamped to this.
pub const MAX_LIMIT: u32 = 500;
/// Longer queries are refused: FTS5 work grows with the query.
pub const MAX_QUERY: usize = 1000;

pub async fn search(
    State(st): State<ApiState>,
    Query(p): Query<Params>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = p.get("q").map(|s| s.trim().to_owned()).unwrap_or_default();
    if q.is_empty() {
        return Err(ApiError::BadRequest(
            "`q` is missing: give an FTS5 query, e.g. q=invoice or q=subject:report".into(),
        ));
    }
    if q.len() > MAX_QUERY {
        return Err(ApiError::BadRequest(format!(
            "`q` is longer than {MAX_QUERY} bytes"
        )));
    }
    let limit = limit_param(&p, DEFAULT_LIMIT, MAX_LIMIT)?;
    let query = q.clone();
    let hits = st.archive.read(move |c| c.search(&query, limit)).await?;
    match hits {
        Ok(hits) => Ok(Json(serde_json::json!({
            "query": q,
            "limit": limit,
            "messages": hits,
        }))),
        Err(SearchError::Malformed(reason)) => Err(ApiError::BadRequest(format!(
            "the search query is not valid FTS5 syntax: {reason}"
        ))),
        Err(SearchError::Store(e)) => Err(e.into()),
    }
}
