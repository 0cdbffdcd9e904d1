//! Sending one alert: a JSON POST to a webhook, or a command with the JSON
//! on its stdin. Each attempt is bounded by [`ATTEMPT_TIMEOUT`] end to end
//! (connect, TLS, request, answer; or the command's whole run), so a
//! receiver that hangs costs a retry, never a stuck task.
//!
//! Redirects are not followed: a 3xx is a failed attempt whose error names
//! the `Location`, so the operator points `webhook` at the final URL. (A
//! followed redirect could carry the alert to another host, or from https
//! to http, without anyone having configured that.)

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::io::AsyncWriteExt;

use super::settings::Webhook;

/// The longest one delivery attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0} did not answer within {ATTEMPT_TIMEOUT:?}")]
    Timeout(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("{0}: {1}")]
    Http(String, hyper::Error),
    #[error("{0} answered {1}")]
    Status(String, u16),
    #[error("{0} redirected to {1}; redirects are not followed: set `webhook` to the final URL")]
    Redirect(String, String),
    #[error("command {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("command {0} exited with {1}")]
    Exit(String, std::process::ExitStatus),
}

/// POSTs `body` to `hook`; Ok on a 2xx answer.
pub async fn webhook(
    hook: &Webhook,
    tls: &Arc<rustls::ClientConfig>,
    body: Vec<u8>,
) -> Result<(), DeliverError> {
    let shown = hook.shown();
    tokio::time::timeout(ATTEMPT_TIMEOUT, post(hook, tls, body))
        .await
        .map_err(|_| DeliverError::Timeout(shown))?
}

async fn post(
    hook: &Webhook,
    tls: &Arc<rustls::ClientConfig>,
    body: Vec<u8>,
) -> Result<(), DeliverError> {
    let shown = hook.shown();
    let tcp = tokio::net::TcpStream::connect((hook.host.as_str(), hook.port))
        .await
        .map_err(|e| DeliverError::Connect(shown.clone(), e))?;
    let _ = tcp.set_nodelay(true);
    if hook.tls {
        let name = rustls::pki_types::ServerName::try_from(hook.host.clone())
            .map_err(|e| DeliverError::Tls(shown.clone(), e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| DeliverError::Tls(shown.clone(), e.to_string()))?;
        exchange(hook, stream, body).await
    } else {
        exchange(hook, tcp, body).await
    }
}

async fn exchange<S>(hook: &Webhook, stream: S, body: Vec<u8>) -> Result<(), DeliverError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shown = hook.shown();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| DeliverError::Http(shown.clone(), e))?;
    // The connection is driven beside the request and dropped with it.
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = hook.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let host = match hook.uri.port_u16() {
        Some(p) => format!("{}:{p}", hook.uri.host().unwrap_or(&hook.host)),
        None => hook.uri.host().unwrap_or(&hook.host).to_owned(),
    };
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("mailfeed/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)));
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(DeliverError::Tls(
                shown,
                format!("building the request: {e}"),
            ));
        }
    };
    let answer = sender.send_request(req).await;
    driver.abort();
    let answer = answer.map_err(|e| DeliverError::Http(shown.clone(), e))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        let to = answer
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| l.chars().take(200).collect())
            .unwrap_or_else(|| "nowhere".to_owned());
        return Err(DeliverError::Redirect(shown, to));
    }
    Err(DeliverError::Status(shown, status.as_u16()))
}

/// Runs `argv` (no shell) with `body` on stdin; Ok when it exits 0.
pub async fn command(argv: &[String], body: Vec<u8>) -> Result<(), DeliverError> {
    let shown = argv.first().cloned().unwrap_or_default();
    let mut child = tokio::process::Command::new(&shown)
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DeliverError::Spawn(shown.clone(), e))?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is its own business.
            let _ = stdin.write_all(&body).await;
        }
        child.wait().await
    };
    let status = tokio::time::timeout(ATTEMPT_TIMEOUT, run)
        .await
        .map_err(|_| DeliverError::Timeout(format!("command {shown}")))?
        .map_err(|e| DeliverError::Spawn(shown.clone(), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(DeliverError::Exit(shown, status))
    }
}
