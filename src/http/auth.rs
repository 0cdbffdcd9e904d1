//! The bearer token check in front of every route. The token is compared
//! through SHA-256 digests with a constant-time comparison, so neither its
//! bytes nor its length can be timed. A refusal is logged with the peer and
//! the path, never with what was sent.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::listener::Peer;
use crate::secret::Secret;

/// The token's digest (the token itself is not kept by the router).
#[derive(Clone)]
pub struct Bearer {
    digest: [u8; 32],
}

impl Bearer {
    pub fn new(token: &Secret) -> Self {
        Bearer {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let d: [u8; 32] = Sha256::digest(presented).into();
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Middleware: 401 unless `Authorization: Bearer <token>` matches.
pub async fn require_bearer(State(bearer): State<Bearer>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let why = match presented {
        Some(t) if bearer.accepts(t) => return next.run(req).await,
        Some(_) => "wrong bearer token",
        None => "no bearer token",
    };
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|p| p.0.0.to_string())
        .unwrap_or_default();
    tracing::warn!(peer, path = %req.uri().path(), "http: refused, {why}");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 unauthorized: send `Authorization: Bearer <http.token>`\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let b = Bearer::new(&Secret::new("0123456789abcdef"));
        assert!(b.accepts(b"0123456789abcdef"));
        assert!(!b.accepts(b"0123456789abcdeF"));
        assert!(!b.accepts(b"0123456789abcdef "));
        assert!(!b.accepts(b""));
    }
}
