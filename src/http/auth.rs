//! Who may ask: with a token configured, every data request must carry it —
//! `Authorization: Bearer <token>`, or the `mailfeed_token` cookie the page
//! sets so that downloads, the message frame and event streams (which
//! cannot send headers) carry it too — compared in constant time; a wrong or
//! missing one is 401, logged with the peer and the path, never with what
//! was sent. Without a token (loopback
//! only, enforced by the config), the `Host` header must name a loopback or
//! literal address, so a web page elsewhere cannot reach the archive through
//! DNS rebinding. The page's own files (`/`, `/assets/…`) hold no data and
//! are served to anyone who may connect.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::listener::Peer;
use crate::secret::Secret;

/// The cookie the page sets after asking for the token.
pub const COOKIE: &str = "mailfeed_token";

#[derive(Clone)]
pub struct Auth {
    /// SHA-256 of the token: comparing digests takes the same time whatever
    /// the length or content of what was sent.
    token_digest: Option<[u8; 32]>,
}

impl Auth {
    pub fn new(token: Option<&Secret>) -> Auth {
        Auth {
            token_digest: token.map(|t| digest(t.expose().as_bytes())),
        }
    }

    pub fn requires_token(&self) -> bool {
        self.token_digest.is_some()
    }

    #[cfg(test)]
    fn accepts(&self, headers: &HeaderMap) -> bool {
        self.verdict(headers).is_ok()
    }

    /// Ok, or why not (for the log: never what was sent).
    fn verdict(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(want) = &self.token_digest else {
            return Ok(());
        };
        let candidates = presented(headers);
        let mut ok = false;
        for candidate in &candidates {
            // No early exit: every candidate is compared in full.
            ok |= constant_time_eq(&digest(candidate), want);
        }
        match (ok, candidates.is_empty()) {
            (true, _) => Ok(()),
            (false, true) => Err("no bearer token"),
            (false, false) => Err("wrong bearer token"),
        }
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Tokens the request offers: the bearer credential and the cookie.
fn presented(headers: &HeaderMap) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for v in headers.get_all(header::AUTHORIZATION) {
        if let Some(t) = v.to_str().ok().and_then(|s| {
            s.strip_prefix("Bearer ")
                .or_else(|| s.strip_prefix("bearer "))
        }) {
            out.push(t.trim().as_bytes().to_vec());
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            if let Some(val) = pair
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|r| r.strip_prefix('='))
            {
                out.push(super::headers::percent_decode(val));
            }
        }
    }
    out
}

/// Whether a `Host` header names this machine by loopback name or an
/// address literal (what a browser sends for `http://127.0.0.1:9925/`).
fn host_is_literal_or_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 clients may omit it; they are not browsers.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/")
}

/// The middleware.
pub async fn require(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !auth.requires_token() && !host_is_literal_or_loopback(req.headers()) {
        return super::api::error_response(
            StatusCode::FORBIDDEN,
            "this listener has no token and answers only to loopback names and addresses (Host header); set `http.token` to serve other names".into(),
        );
    }
    let why = match auth.verdict(req.headers()) {
        Ok(()) => return next.run(req).await,
        Err(_) if is_public(&path) => return next.run(req).await,
        Err(why) => why,
    };
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|p| p.0.0.to_string())
        .unwrap_or_default();
    tracing::warn!(peer, path = %path, "http: refused, {why}");
    let mut res = super::api::error_response(
        StatusCode::UNAUTHORIZED,
        "a bearer token is required: send `Authorization: Bearer <token>`".into(),
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"mailfeed\""),
    );
    res.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn token_by_header_or_cookie_only_when_exact() {
        let secret = Secret::new("0123456789abcdef-token");
        let a = Auth::new(Some(&secret));
        assert!(a.accepts(&headers(&[(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef-token"
        )])));
        assert!(a.accepts(&headers(&[(
            header::COOKIE,
            "x=1; mailfeed_token=0123456789abcdef-token"
        )])));
        assert!(!a.accepts(&headers(&[(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef-toke"
        )])));
        assert!(!a.accepts(&headers(&[(
            header::AUTHORIZATION,
            "Basic 0123456789abcdef-token"
        )])));
        assert!(!a.accepts(&HeaderMap::new()));
        assert_eq!(a.verdict(&HeaderMap::new()), Err("no bearer token"));
        assert_eq!(
            a.verdict(&headers(&[(header::AUTHORIZATION, "Bearer x")])),
            Err("wrong bearer token")
        );
        assert!(Auth::new(None).accepts(&HeaderMap::new()));
    }

    #[test]
    fn rebinding_guard_accepts_loopback_names_and_literals_only() {
        for ok in ["127.0.0.1:9925", "localhost:1", "[::1]:9925", "10.1.2.3"] {
            assert!(
                host_is_literal_or_loopback(&headers(&[(header::HOST, ok)])),
                "{ok}"
            );
        }
        for bad in ["evil.example:9925", "mail.example.org"] {
            assert!(
                !host_is_literal_or_loopback(&headers(&[(header::HOST, bad)])),
                "{bad}"
            );
        }
    }
}
