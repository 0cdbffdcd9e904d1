//! The HTTP/1.1 client for token endpoints: a form POST over the transport's
//! TCP and TLS (same rustls/ring stack, same trust settings), one request per
//! connection, the whole exchange bounded by a timeout and the answer by
//! size. `http://` only to this machine (test endpoints, local proxies).
//! No OAuth2 knowledge here; the form's values never reach an error.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;

use crate::transport::{Link, TransportError};

/// A token endpoint answers with a few hundred bytes of JSON; more is not
/// a token endpoint.
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{0}` is not an https:// URL (http:// only to 127.0.0.1 or localhost)")]
    Url(String),
    #[error("connecting to {url}: {source}")]
    Connect { url: String, source: TransportError },
    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("talking to {url}: {message}")]
    Protocol { url: String, message: String },
    #[error("{url} sent more than {MAX_BODY} bytes")]
    TooLarge { url: String },
}

/// What the endpoint answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Host, port and path of an endpoint URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, HttpError> {
        let bad = || HttpError::Url(url.to_owned());
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(bad)?;
                (h.to_owned(), after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            },
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tls => 443,
            None => 80,
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        if !tls && !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") {
            return Err(bad());
        }
        Ok(Endpoint {
            tls,
            host,
            port,
            path,
        })
    }
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, SET),
                utf8_percent_encode(v, SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Posts forms to endpoints.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl HttpClient {
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> HttpClient {
        HttpClient { tls, timeout }
    }

    /// POSTs `form` (already encoded; it holds secrets) to `url`.
    pub async fn post_form(&self, url: &str, form: String) -> Result<Answer, HttpError> {
        let ep = Endpoint::parse(url)?;
        // Everything — connect, TLS, request, answer — within one timeout:
        // a slow endpoint must not hold a reconnect forever.
        match tokio::time::timeout(self.timeout, self.exchange(url, &ep, form)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout {
                url: url.to_owned(),
                after: self.timeout,
            }),
        }
    }

    async fn exchange(&self, url: &str, ep: &Endpoint, form: String) -> Result<Answer, HttpError> {
        let connect = |source| HttpError::Connect {
            url: url.to_owned(),
            source,
        };
        let protocol = |message: String| HttpError::Protocol {
            url: url.to_owned(),
            message,
        };
        let mut link = Link::connect(&ep.host, ep.port, self.timeout)
            .await
            .map_err(connect)?;
        if ep.tls {
            link = link
                .start_tls(self.tls.clone(), &ep.host)
                .await
                .map_err(connect)?;
        }
        let io = hyper_util::rt::TokioIo::new(link.into_io().map_err(connect)?);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        // The connection is driven beside the request; it ends with it.
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = if (ep.tls && ep.port == 443) || (!ep.tls && ep.port == 80) {
            ep.host.clone()
        } else {
            format!("{}:{}", ep.host, ep.port)
        };
        let request = hyper::Request::builder()
            .method("POST")
            .uri(ep.path.as_str())
            .header("host", host)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("mailfeed/", env!("CARGO_PKG_VERSION")),
            )
            .header("connection", "close")
            .body(http_body_util::Full::new(Bytes::from(form)))
            .map_err(|e| protocol(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| protocol(e.to_string()))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge {
                            url: url.to_owned(),
                        }
                    } else {
                        protocol(e.to_string())
                    }
                })?
                .to_bytes()
                .to_vec();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        }
        .await;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_plain_http_is_loopback_only() {
        assert_eq!(
            Endpoint::parse("https://login.microsoftonline.com/common/oauth2/v2.0/token")
                .expect("ms"),
            Endpoint {
                tls: true,
                host: "login.microsoftonline.com".into(),
                port: 443,
                path: "/common/oauth2/v2.0/token".into()
            }
        );
        let e = Endpoint::parse("http://127.0.0.1:8080?x=1").expect("loopback");
        assert_eq!((e.port, e.path.as_str()), (8080, "/?x=1"));
        assert!(Endpoint::parse("http://example.org/token").is_err());
        assert!(Endpoint::parse("https://user:pw@example.org/").is_err());
        assert!(Endpoint::parse("ftp://example.org/").is_err());
        assert!(Endpoint::parse("https://example.org:99999/").is_err());
        assert_eq!(Endpoint::parse("http://[::1]:9/t").expect("v6").host, "::1");
    }

    /// A loopback endpoint that answers each connection with `answer`
    /// (None: accepts, reads, and says nothing).
    async fn endpoint(answer: Option<&'static str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    match answer {
                        Some(a) => {
                            let _ = s.write_all(a.as_bytes()).await;
                            let _ = s.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        format!("http://127.0.0.1:{port}/token")
    }

    fn client(timeout: Duration) -> HttpClient {
        HttpClient::new(crate::transport::tls_config(None).expect("tls"), timeout)
    }

    #[tokio::test]
    async fn a_silent_endpoint_times_out_and_a_closed_port_is_a_connect_error() {
        let url = endpoint(None).await;
        let t0 = std::time::Instant::now();
        let e = client(Duration::from_millis(400))
            .post_form(&url, "a=b".into())
            .await
            .expect_err("timeout");
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        // A port nobody listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let e = client(Duration::from_secs(5))
            .post_form(&format!("http://127.0.0.1:{port}/t"), "a=b".into())
            .await
            .expect_err("refused");
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        assert!(!e.to_string().contains("a=b"));
    }

    #[tokio::test]
    async fn answers_are_read_whole_and_bounded() {
        let url = endpoint(Some(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<html>x</html>",
        ))
        .await;
        let a = client(Duration::from_secs(5))
            .post_form(&url, "a=b".into())
            .await
            .expect("answer");
        assert_eq!((a.status, a.content_type.as_str()), (502, "text/html"));
        assert_eq!(a.body, b"<html>x</html>".to_vec());
        let huge: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{}",
                "x".repeat(MAX_BODY + 10),
                n = MAX_BODY + 10
            )
            .into_boxed_str(),
        );
        let url = endpoint(Some(huge)).await;
        let e = client(Duration::from_secs(10))
            .post_form(&url, "a=b".into())
            .await
            .expect_err("too large");
        assert!(matches!(e, HttpError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form_encode(&[("scope", "a b/c"), ("k", "x&y=z~")]),
            "scope=a%20b%2Fc&k=x%26y%3Dz~"
        );
    }
}
