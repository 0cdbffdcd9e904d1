//! The token endpoint's grants (RFC 6749 §4.4 and §6, RFC 8628 §3.4,
//! RFC 7636 §4.5): the forms mailfeed posts and the JSON it reads back.
//! Errors carry the endpoint's `error` code and description, never a
//! token or the client secret.

use serde::Deserialize;

use super::http::{Answer, HttpClient, form_encode};
use crate::config::OAuth2Client;
use crate::secret::Secret;

/// What a successful token request gave.
#[derive(Debug)]
pub struct Granted {
    pub access_token: Secret,
    /// Seconds the access token lives, when the endpoint said.
    pub expires_in: Option<u64>,
    /// A new refresh token (the endpoint rotated it, or a first grant).
    pub refresh_token: Option<Secret>,
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error(transparent)]
    Http(#[from] super::http::HttpError),
    /// RFC 6749 §5.2 error code other than the ones below.
    #[error("{url} refused: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        url: String,
        code: String,
        description: Option<String>,
    },
    /// The endpoint's answer was not OAuth2 JSON (an HTML error page, a proxy).
    #[error("{url} answered HTTP {status} with {what}, not an OAuth2 JSON answer")]
    Garbled {
        url: String,
        status: u16,
        what: String,
    },
    /// Device flow: the user has not finished yet (`authorization_pending`).
    #[error("authorization pending")]
    Pending,
    /// Device flow: poll less often.
    #[error("slow down")]
    SlowDown,
}

impl GrantError {
    /// The endpoint's RFC 6749 error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GrantError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct TokenJson {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Keeps what the endpoint says short and printable: it goes into one log
/// line.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

fn parse(url: &str, a: Answer) -> Result<Granted, GrantError> {
    let garbled = |what: String| GrantError::Garbled {
        url: url.to_owned(),
        status: a.status,
        what,
    };
    let json: TokenJson = serde_json::from_slice(&a.body).map_err(|_| {
        let ct = if a.content_type.is_empty() {
            "no content type".to_owned()
        } else {
            clean(&a.content_type)
        };
        garbled(format!("{} bytes of {ct}", a.body.len()))
    })?;
    if let Some(code) = json.error {
        return Err(match code.as_str() {
            "authorization_pending" => GrantError::Pending,
            "slow_down" => GrantError::SlowDown,
            _ => GrantError::Refused {
                url: url.to_owned(),
                code: clean(&code),
                description: json.error_description.as_deref().map(clean),
            },
        });
    }
    let access_token = match json.access_token {
        Some(t) if (200..300).contains(&a.status) && !t.is_empty() => Secret::new(t).registered(),
        _ => return Err(garbled("JSON without an access_token".into())),
    };
    // Some endpoints (Microsoft's older ones) send numbers as strings.
    let expires_in = match json.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Granted {
        access_token,
        expires_in,
        refresh_token: json
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(|t| Secret::new(t).registered()),
    })
}

/// The client's own fields of every token request.
fn client_fields<'a>(
    c: &'a OAuth2Client,
    secret: &'a Option<Secret>,
    form: &mut Vec<(&'a str, &'a str)>,
) {
    form.push(("client_id", &c.client_id));
    if let Some(s) = secret {
        form.push(("client_secret", s.expose()));
    }
}

async fn post(http: &HttpClient, url: &str, form: &[(&str, &str)]) -> Result<Answer, GrantError> {
    // The encoded form holds secrets: kept in a Secret, dropped (zeroed)
    // after the request.
    let body = Secret::new(form_encode(form));
    Ok(http.post_form(url, body.expose().to_owned()).await?)
}

/// RFC 6749 §6: a new access token for the refresh token.
pub async fn refresh(
    http: &HttpClient,
    c: &OAuth2Client,
    secret: &Option<Secret>,
    refresh_token: &Secret,
) -> Result<Granted, GrantError> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("scope", c.scope.as_str()),
    ];
    client_fields(c, secret, &mut form);
    parse(&c.token_url, post(http, &c.token_url, &form).await?)
}

/// RFC 6749 §4.4: the application's own token (Microsoft app-only IMAP).
pub async fn client_credentials(
    http: &HttpClient,
    c: &OAuth2Client,
    secret: &Option<Secret>,
) -> Result<Granted, GrantError> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("scope", c.scope.as_str()),
    ];
    client_fields(c, secret, &mut form);
    parse(&c.token_url, post(http, &c.token_url, &form).await?)
}

/// RFC 8628 §3.2: what the user is to do.
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub interval: u64,
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct DeviceJson {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    // Google's older name.
    verification_url: Option<String>,
    interval: Option<u64>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// RFC 8628 §3.1: starts a device authorization.
pub async fn device_start(
    http: &HttpClient,
    c: &OAuth2Client,
    device_url: &str,
) -> Result<DeviceAuthorization, GrantError> {
    let mut form = vec![("scope", c.scope.as_str())];
    form.push(("client_id", &c.client_id));
    let a = post(http, device_url, &form).await?;
    let status = a.status;
    let j: DeviceJson = serde_json::from_slice(&a.body).map_err(|_| GrantError::Garbled {
        url: device_url.to_owned(),
        status,
        what: format!("{} bytes that are not JSON", a.body.len()),
    })?;
    if let Some(code) = j.error {
        return Err(GrantError::Refused {
            url: device_url.to_owned(),
            code: clean(&code),
            description: j.error_description.as_deref().map(clean),
        });
    }
    match (
        j.device_code,
        j.user_code,
        j.verification_uri.or(j.verification_url),
    ) {
        (Some(d), Some(u), Some(v)) => Ok(DeviceAuthorization {
            device_code: Secret::new(d),
            user_code: clean(&u),
            verification_uri: clean(&v),
            interval: j.interval.unwrap_or(5).clamp(1, 60),
            expires_in: j.expires_in.unwrap_or(900).min(3600),
        }),
        _ => Err(GrantError::Garbled {
            url: device_url.to_owned(),
            status,
            what: "JSON without device_code, user_code and verification_uri".into(),
        }),
    }
}

/// RFC 8628 §3.4: one poll of the token endpoint.
pub async fn device_poll(
    http: &HttpClient,
    c: &OAuth2Client,
    secret: &Option<Secret>,
    device_code: &Secret,
) -> Result<Granted, GrantError> {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.expose()),
    ];
    client_fields(c, secret, &mut form);
    parse(&c.token_url, post(http, &c.token_url, &form).await?)
}

/// RFC 6749 §4.1.3 with RFC 7636's verifier: the code from the redirect
/// for tokens.
pub async fn exchange_code(
    http: &HttpClient,
    c: &OAuth2Client,
    secret: &Option<Secret>,
    code: &Secret,
    verifier: &Secret,
    redirect_uri: &str,
) -> Result<Granted, GrantError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("code_verifier", verifier.expose()),
        ("redirect_uri", redirect_uri),
    ];
    client_fields(c, secret, &mut form);
    parse(&c.token_url, post(http, &c.token_url, &form).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, ct: &str, body: &str) -> Answer {
        Answer {
            status,
            content_type: ct.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn token_answers_and_errors_are_told_apart() {
        let g = parse(
            "u",
            answer(
                200,
                "application/json",
                r#"{"access_token":"at-1","expires_in":"3599","refresh_token":"rt-2","token_type":"Bearer"}"#,
            ),
        )
        .expect("granted");
        assert_eq!(g.access_token.expose(), "at-1");
        assert_eq!(g.expires_in, Some(3599));
        assert_eq!(g.refresh_token.expect("rotated").expose(), "rt-2");
        let e = parse(
            "u",
            answer(
                400,
                "application/json",
                r#"{"error":"invalid_grant","error_description":"AADSTS70008: expired\n"}"#,
            ),
        )
        .expect_err("refused");
        assert_eq!(e.code(), Some("invalid_grant"));
        assert_eq!(
            e.to_string(),
            "u refused: invalid_grant (AADSTS70008: expired )"
        );
        let e = parse("u", answer(502, "text/html", "<html>Bad gateway</html>")).expect_err("html");
        assert_eq!(
            e.to_string(),
            "u answered HTTP 502 with 24 bytes of text/html, not an OAuth2 JSON answer"
        );
        assert!(matches!(
            parse("u", answer(400, "", r#"{"error":"authorization_pending"}"#)),
            Err(GrantError::Pending)
        ));
        assert!(parse("u", answer(200, "", r#"{"token_type":"Bearer"}"#)).is_err());
    }
}
