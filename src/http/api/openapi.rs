//! `GET /api/v1/openapi.json`: the API's OpenAPI 3 description, the file
//! `docs/openapi.json` built into the binary.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document, as shipped.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub async fn document() -> Response {
    let mut r = DOCUMENT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
