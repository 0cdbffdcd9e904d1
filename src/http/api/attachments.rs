//! `GET /api/v1/attachments/{sha256}`: an attachment's decoded bytes,
//! streamed, with its content type, an ETag (the hash) and
//! `Content-Disposition: attachment` with a sanitised file name, so a
//! browser downloads it and never renders it. Only hashes that a feed
//! message carries are served; anything but 64 lower-case hex digits is 404.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::messages::blob_response;
use super::{ApiError, ApiState};
use crate::http::headers::{attachment_disposition, safe_filename};
use crate::store::archive_read::Blob;

fn not_found() -> ApiError {
    ApiError::NotFound("no attachment with this SHA-256".into())
}

/// A `type/subtype` made of token characters, else a download type.
fn safe_content_type(t: Option<&str>) -> &str {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.and_then(|t| t.split_once('/')) {
        Some((a, b)) if ok(a) && ok(b) => t.unwrap_or("application/octet-stream"),
        _ => "application/octet-stream",
    }
}

pub async fn download(
    State(st): State<ApiState>,
    Path(sha): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(not_found());
    }
    let (info, body) = st
        .archive
        .stream(Blob::Attachment(sha.clone()))
        .await?
        .ok_or_else(not_found)?;
    let name = safe_filename(
        info.filename.as_deref(),
        &format!("attachment-{}", &sha[..12]),
    );
    let ctype = safe_content_type(info.content_type.as_deref()).to_owned();
    Ok(blob_response(
        &headers,
        &info,
        body,
        &ctype,
        attachment_disposition(&name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_tokens_or_octet_stream() {
        assert_eq!(
            safe_content_type(Some("application/pdf")),
            "application/pdf"
        );
        assert_eq!(
            safe_content_type(Some("text/html\r\nX: y")),
            "application/octet-stream"
        );
        assert_eq!(
            safe_content_type(Some("nonsense")),
            "application/octet-stream"
        );
        assert_eq!(safe_content_type(None), "application/octet-stream");
    }
}
