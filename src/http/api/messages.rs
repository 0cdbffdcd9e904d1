//! One message: `GET /api/v1/messages/{id}` (parsed form: header fields,
//! addresses, bodies, attachment list, flags, expunged), `.../raw` (exactly
//! the stored bytes as `message/rfc822`, streamed, with an ETag) and
//! `.../html` (the HTML body as a document of its own, under a
//! Content-Security-Policy that allows no script, no form, no connection
//! and no remote image unless `remote_images=1`; the page shows it in a
//! sandboxed frame). An id that is not a feed id is 404, whatever it holds.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, Params};
use crate::store::archive_read::{self, Blob};

/// CSP of a message's HTML: nothing may load or run; inline styles and
/// `data:` images are harmless and keep layouts readable.
pub const HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     font-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox";
/// The same, when the reader asked for remote images.
pub const HTML_CSP_REMOTE_IMAGES: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data: http: https:; font-src data:; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'self'; sandbox";

/// A feed id from the path: digits only, else no such message.
pub(super) fn feed_id(text: &str) -> Result<i64, ApiError> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found());
    }
    text.parse().map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::NotFound("no message with this id".into())
}

pub async fn detail(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = feed_id(&id)?;
    let m = st
        .archive
        .read(move |c| c.message(id))
        .await??
        .ok_or_else(not_found)?;
    let headers = header_fields(&m.header_block);
    let mut v = serde_json::to_value(&m).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "headers".into(),
            serde_json::to_value(headers).unwrap_or_default(),
        );
        o.insert("expunged".into(), m.row.expunged_at.is_some().into());
        o.insert(
            "flag_list".into(),
            m.row.flags.split_whitespace().collect::<Vec<_>>().into(),
        );
    }
    Ok(Json(v))
}

/// A header block split into fields, `(name, value)` in order, folded lines
/// joined; values as written (encoded words left encoded), bytes that are
/// not UTF-8 shown as U+FFFD.
pub fn header_fields(block: &[u8]) -> Vec<(String, String)> {
    let head = crate::mime::headers_only(block);
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// Whether a request's `If-None-Match` names this ETag.
pub(super) fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
}

/// A streamed blob's answer, or 304 when the client has it.
pub(super) fn blob_response(
    headers: &HeaderMap,
    info: &archive_read::BlobInfo,
    body: Body,
    content_type: &str,
    disposition: HeaderValue,
) -> Response {
    let etag = format!("\"{}\"", info.sha256);
    let mut res = if matches_etag(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(body);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
        r
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_DISPOSITION, disposition);
    // Opened directly, it still may not run anything.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    res
}

pub async fn raw(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = feed_id(&id)?;
    let (info, body) = st
        .archive
        .stream(Blob::Raw(id))
        .await?
        .ok_or_else(not_found)?;
    Ok(blob_response(
        &headers,
        &info,
        body,
        "message/rfc822",
        super::super::headers::attachment_disposition(&format!("message-{id}.eml")),
    ))
}

pub async fn html(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let id = feed_id(&id)?;
    let html = st
        .archive
        .read(move |c| c.html_body(id))
        .await??
        .ok_or_else(not_found)?
        .ok_or_else(|| ApiError::NotFound("this message has no HTML body".into()))?;
    let csp = if p.get("remote_images").is_some_and(|v| v == "1") {
        HTML_CSP_REMOTE_IMAGES
    } else {
        HTML_CSP
    };
    let mut r = html.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_digits_only() {
        assert_eq!(feed_id("42").unwrap(), 42);
        for bad in [
            "",
            "-1",
            "1.0",
            "..",
            "../1",
            "1%2F..",
            "99999999999999999999",
            " 1",
        ] {
            assert!(matches!(feed_id(bad), Err(ApiError::NotFound(_))), "{bad}");
        }
    }

    #[test]
    fn header_fields_unfold_and_stop_at_the_body() {
        let f = header_fields(b"Subject: a\r\n  b\r\nFrom: x@y\r\n\r\nBody: no\r\n");
        assert_eq!(
            f,
            vec![
                ("Subject".into(), "a b".into()),
                ("From".into(), "x@y".into())
            ]
        );
    }

    #[test]
    fn etags_match_strong_weak_lists_and_star() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(matches_etag(&h, "\"b\""));
        assert!(!matches_etag(&h, "\"c\""));
    }
}
