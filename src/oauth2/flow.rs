//! `mailfeed auth ACCOUNT`: a person signs in once and mailfeed keeps the
//! refresh token. Device code (RFC 8628) where the provider allows it for
//! the mail scope; otherwise the browser is sent to the provider and back to
//! a one-shot listener on 127.0.0.1 (RFC 8252), the code protected by PKCE
//! (RFC 7636, S256) and the redirect by a random `state`.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::grants::{self, GrantError};
use super::http::{HttpClient, form_encode};
use super::{OAuth2Error, token_file};
use crate::config::{Grant, OAuth2Client};
use crate::secret::Secret;
use crate::transport::{AsyncIo, LoopbackListener};

/// How long a person has to finish signing in with the loopback flow.
const BROWSER_WAIT: Duration = Duration::from_secs(600);

/// Signs in and stores the refresh token; `say` receives the lines meant
/// for the person (the URL, the code). Returns the token file's path.
pub async fn sign_in(
    account: &str,
    c: &OAuth2Client,
    http: &HttpClient,
    say: &mut (dyn Write + Send),
) -> Result<(), OAuth2Error> {
    let fail = |message: String| OAuth2Error::Command {
        account: account.to_owned(),
        message,
    };
    if c.grant == Grant::ClientCredentials {
        return Err(fail(
            "grant = \"client_credentials\" needs no sign-in: mailfeed asks for tokens itself"
                .into(),
        ));
    }
    let secret = match &c.client_secret {
        Some(s) => Some(s.resolve(account)?),
        None => None,
    };
    let endpoint = |source: GrantError| match source.code() {
        Some("invalid_client" | "unauthorized_client" | "invalid_scope") => OAuth2Error::Client {
            account: account.to_owned(),
            source,
        },
        _ => OAuth2Error::Endpoint {
            account: account.to_owned(),
            source,
        },
    };
    let granted = if let Some(device_url) = &c.device_url {
        let d = grants::device_start(http, c, device_url)
            .await
            .map_err(endpoint)?;
        let _ = writeln!(
            say,
            "To let mailfeed read account `{account}`, open {} and enter the code {}",
            d.verification_uri, d.user_code
        );
        let _ = say.flush();
        let deadline = Instant::now() + Duration::from_secs(d.expires_in);
        let mut interval = Duration::from_secs(d.interval);
        loop {
            if Instant::now() > deadline {
                return Err(fail(
                    "the code expired before the sign-in was finished; run `mailfeed auth` again"
                        .into(),
                ));
            }
            tokio::time::sleep(interval).await;
            match grants::device_poll(http, c, &secret, &d.device_code).await {
                Ok(g) => break g,
                Err(GrantError::Pending) => {}
                Err(GrantError::SlowDown) => interval += Duration::from_secs(5),
                Err(e) => return Err(endpoint(e)),
            }
        }
    } else if let Some(auth_url) = &c.auth_url {
        loopback(account, c, http, &secret, auth_url, say).await?
    } else {
        return Err(fail(
            "the provider has neither `oauth2.device_url` nor `oauth2.auth_url`; set one".into(),
        ));
    };
    let Some(rt) = granted.refresh_token else {
        return Err(fail(
            "the provider granted access but no refresh token; ask for offline access (Microsoft: add `offline_access` to `oauth2.scope`)".into(),
        ));
    };
    token_file::write(&c.token_file, &rt).map_err(|source| OAuth2Error::TokenFile {
        account: account.to_owned(),
        path: c.token_file.clone(),
        source,
    })?;
    let _ = writeln!(
        say,
        "Signed in; the refresh token is stored in {} (mode 0600).",
        c.token_file.display()
    );
    Ok(())
}

/// `n` random bytes from the kernel, base64url without padding.
fn random_b64(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        // SAFETY: writes at most n - got bytes into buf[got..].
        let r = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), n - got, 0) };
        if r <= 0 {
            return Err("the system gave no random bytes".into());
        }
        got += r as usize;
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf))
}

/// RFC 7636 §4.2: the S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn loopback(
    account: &str,
    c: &OAuth2Client,
    http: &HttpClient,
    secret: &Option<Secret>,
    auth_url: &str,
    say: &mut (dyn Write + Send),
) -> Result<grants::Granted, OAuth2Error> {
    let fail = |message: String| OAuth2Error::Command {
        account: account.to_owned(),
        message,
    };
    let (listener, port) = LoopbackListener::bind().await.map_err(|e| {
        fail(format!(
            "cannot listen on 127.0.0.1 for the sign-in redirect: {e}"
        ))
    })?;
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let verifier = Secret::new(random_b64(48).map_err(fail)?);
    let state = random_b64(24).map_err(fail)?;
    let query = form_encode(&[
        ("response_type", "code"),
        ("client_id", &c.client_id),
        ("redirect_uri", &redirect_uri),
        ("scope", &c.scope),
        ("code_challenge", &pkce_challenge(verifier.expose())),
        ("code_challenge_method", "S256"),
        ("state", &state),
        // Google gives a refresh token only for offline access.
        ("access_type", "offline"),
        ("prompt", "consent"),
    ]);
    let sep = if auth_url.contains('?') { '&' } else { '?' };
    let _ = writeln!(
        say,
        "To let mailfeed read account `{account}`, open this address in a browser on this machine:\n{auth_url}{sep}{query}"
    );
    let _ = say.flush();
    let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
    let code = loop {
        let accepted = tokio::time::timeout_at(deadline, listener.accept())
            .await
            .map_err(|_| fail("no sign-in arrived within 10 minutes".into()))?;
        let Ok(mut stream) = accepted else {
            continue;
        };
        let Some(target) = read_request_target(&mut stream).await else {
            continue;
        };
        let params = query_params(&target);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // Anything without our state is not the provider's redirect (a
        // favicon request, another local program): ignored.
        if get("state").as_deref() != Some(state.as_str()) {
            respond(&mut stream, "404 Not Found", "Not the sign-in redirect.").await;
            continue;
        }
        if let Some(err) = get("error") {
            respond(&mut stream, "200 OK", "Sign-in refused; see the terminal.").await;
            let err: String = err.chars().filter(|c| !c.is_control()).take(200).collect();
            return Err(fail(format!("the provider refused the sign-in: {err}")));
        }
        match get("code") {
            Some(code) => {
                respond(
                    &mut stream,
                    "200 OK",
                    "mailfeed is signed in. You may close this window.",
                )
                .await;
                break Secret::new(code);
            }
            None => respond(&mut stream, "400 Bad Request", "No code in the redirect.").await,
        }
    };
    grants::exchange_code(http, c, secret, &code, &verifier, &redirect_uri)
        .await
        .map_err(|source| OAuth2Error::Endpoint {
            account: account.to_owned(),
            source,
        })
}

/// The target of a `GET target HTTP/1.1` request, read within a few seconds.
async fn read_request_target(stream: &mut Box<dyn AsyncIo>) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_owned)
}

fn query_params(target: &str) -> Vec<(String, String)> {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((dec(k), dec(v)))
        })
        .collect()
}

async fn respond(stream: &mut Box<dyn AsyncIo>, status: &str, text: &str) {
    let body = format!("<!doctype html><title>mailfeed</title><p>{text}</p>\n");
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(msg.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_base64url_of_sha256_without_padding() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mA92Zl1mzaHdNHhDsEc5iRzSyhVXqs"),
            "hh4HMfEJr3-ek8JvQWpsoNqeN15lBSQYZnESGzBv400"
        );
        assert_eq!(random_b64(48).expect("random").len(), 64);
        assert_ne!(random_b64(24).expect("a"), random_b64(24).expect("b"));
    }

    #[test]
    fn redirect_queries_are_decoded() {
        let p = query_params("/?code=4%2F0Ab+x&state=s-1&scope=a%20b");
        assert_eq!(
            p,
            vec![
                ("code".to_owned(), "4/0Ab x".to_owned()),
                ("state".to_owned(), "s-1".to_owned()),
                ("scope".to_owned(), "a b".to_owned())
            ]
        );
    }
}
