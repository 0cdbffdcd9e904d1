//! Response headers every answer carries (`nosniff`, no referrer), and the
//! careful ones: a `Content-Disposition` whose file name cannot break out of
//! its quotes or name a path.

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Added to every response of the API and the page.
pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// A file name safe to offer a browser: the last path component only, no
/// control characters, quotes, backslashes or semicolons, no leading dots,
/// at most 150 characters; `fallback` when nothing is left.
pub fn safe_filename(name: Option<&str>, fallback: &str) -> String {
    let name = name.unwrap_or_default();
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| match c {
            c if c.is_control() => '_',
            '"' | '\\' | ';' | '/' | ':' | '*' | '?' | '<' | '>' | '|' => '_',
            c => c,
        })
        .take(150)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned
    }
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC
/// 6266): the download is never shown inline, and non-ASCII names survive.
pub fn attachment_disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Decodes `%XX` escapes (a cookie value set by the page with
/// `encodeURIComponent`); invalid escapes stay as written.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_quotes_and_control_characters() {
        assert_eq!(safe_filename(Some("../../etc/passwd"), "x"), "passwd");
        assert_eq!(safe_filename(Some("..\\..\\boot.ini"), "x"), "boot.ini");
        assert_eq!(safe_filename(Some("a\"b;\r\nc.pdf"), "x"), "a_b___c.pdf");
        assert_eq!(safe_filename(Some("..."), "x"), "x");
        assert_eq!(safe_filename(None, "fallback"), "fallback");
        assert_eq!(safe_filename(Some(".htaccess"), "x"), "htaccess");
    }

    #[test]
    fn disposition_is_attachment_with_both_name_forms() {
        let v = attachment_disposition("Réponse 1.pdf");
        assert_eq!(
            v.to_str().unwrap(),
            "attachment; filename=\"R_ponse 1.pdf\"; filename*=UTF-8''R%C3%A9ponse%201.pdf"
        );
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b%zz%4"), b"a b%zz%4");
    }
}
