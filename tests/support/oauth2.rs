//! Test doubles for what cannot run here: a provider's OAuth2 token
//! endpoint (refresh-token, client-credentials, device-code and
//! authorization-code-with-PKCE grants; refresh token rotation, access token
//! expiry and `invalid_grant` on demand) and the token *introspection*
//! endpoint a real Dovecot asks about each bearer token
//! (`passdb { driver = oauth2 }`). One loopback HTTP/1.1 server plays both,
//! so the test decides which tokens Dovecot accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "mailfeed-test-client";
pub const CLIENT_SECRET: &str = "cs-Quokka-7781-distinct";

#[derive(Default)]
pub struct State {
    /// Access token → user it belongs to, while it is valid.
    pub access: BTreeMap<String, String>,
    /// When each access token stops being valid (its `expires_in`).
    expiry: BTreeMap<String, std::time::Instant>,
    /// Refresh token → user, while it is valid.
    pub refresh: BTreeMap<String, String>,
    /// Every refresh token ever issued (to assert none is reused).
    pub issued_refresh: Vec<String>,
    /// Every access token ever issued (for the secret grep).
    pub issued_access: Vec<String>,
    /// Refresh tokens presented, in order.
    pub presented_refresh: Vec<String>,
    /// Issue a new refresh token at every refresh (and retire the old one).
    pub rotate: bool,
    /// `expires_in` given with access tokens.
    pub expires_in: u64,
    /// Answer every refresh with `invalid_grant`.
    pub revoke_all: bool,
    /// User the client-credentials grant issues tokens for.
    pub app_user: Option<String>,
    /// Device flow: polls answered `authorization_pending` before success.
    pub device_pending: u32,
    pub device_user: Option<String>,
    /// Authorization code → (user, code_challenge).
    codes: BTreeMap<String, (String, String)>,
    /// Authorization-code user (the "browser" signs in as this user).
    pub browser_user: Option<String>,
    pub requests: Vec<String>,
    pub introspections: u32,
    counter: u64,
}

impl State {
    fn mint(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}-{}-Zq{:04}", std::process::id(), self.counter)
    }

    /// Issues a fresh access token for `user` (what a grant does).
    pub fn issue_access(&mut self, user: &str) -> String {
        let t = self.mint("at");
        self.access.insert(t.clone(), user.to_owned());
        self.expiry.insert(
            t.clone(),
            std::time::Instant::now() + Duration::from_secs(self.expires_in),
        );
        self.issued_access.push(t.clone());
        t
    }

    pub fn issue_refresh(&mut self, user: &str) -> String {
        let t = self.mint("rt");
        self.refresh.insert(t.clone(), user.to_owned());
        self.issued_refresh.push(t.clone());
        t
    }

    /// Expires every access token now: Dovecot refuses them from here on.
    pub fn expire_access_tokens(&mut self) {
        self.access.clear();
    }
}

pub struct OAuthServer {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl OAuthServer {
    pub fn start() -> OAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            expires_in: 3600,
            ..State::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        OAuthServer { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("state"))
    }

    /// Dovecot configuration making it ask this server about bearer tokens.
    pub fn dovecot_config(&self, dir: &std::path::Path, mechanisms: &str) -> String {
        let ext = dir.join(format!("oauth2-{}.conf.ext", self.port));
        std::fs::write(
            &ext,
            format!(
                "introspection_url = {}\nintrospection_mode = post\nusername_attribute = username\nactive_attribute = active\nactive_value = true\nforce_introspection = yes\n",
                self.url("/introspect")
            ),
        )
        .expect("oauth2.conf.ext");
        format!(
            "auth_mechanisms = plain login {mechanisms}\npassdb {{\n  driver = oauth2\n  mechanisms = {mechanisms}\n  args = {}\n}}\n",
            ext.display()
        )
    }
}

fn form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn reply(conn: &mut TcpStream, status: &str, extra: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(msg.as_bytes());
    let _ = conn.flush();
}

fn serve(mut conn: TcpStream, st: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let f = form(&String::from_utf8_lossy(&body));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut s = st.lock().expect("state");
    s.requests.push(format!(
        "{method} {path} {}",
        f.get("grant_type").map(String::as_str).unwrap_or("")
    ));
    match (method.as_str(), path) {
        ("POST", "/introspect") => {
            s.introspections += 1;
            let token = f.get("token").cloned().unwrap_or_default();
            // Tokens die when their expires_in says, as at a provider.
            let live = s
                .expiry
                .get(&token)
                .is_some_and(|t| std::time::Instant::now() < *t);
            match s.access.get(&token).filter(|_| live) {
                Some(user) => {
                    let b = format!(r#"{{"active":true,"username":"{user}"}}"#);
                    reply(&mut conn, "200 OK", "", &b)
                }
                None => reply(&mut conn, "401 Unauthorized", "", r#"{"active":false}"#),
            }
        }
        ("POST", "/device") => {
            if f.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                return reply(
                    &mut conn,
                    "400 Bad Request",
                    "",
                    r#"{"error":"invalid_client"}"#,
                );
            }
            let b = r#"{"device_code":"dc-1","user_code":"WDJB-MJHT","verification_uri":"https://example.test/device","interval":1,"expires_in":60}"#;
            reply(&mut conn, "200 OK", "", b)
        }
        ("GET", "/authorize") => {
            let q = form(query);
            let user = s.browser_user.clone().unwrap_or_default();
            let code = s.mint("code");
            let challenge = q.get("code_challenge").cloned().unwrap_or_default();
            s.codes.insert(code.clone(), (user, challenge));
            let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
            let state = q.get("state").cloned().unwrap_or_default();
            let loc = format!("Location: {redirect}?code={code}&state={state}\r\n");
            reply(&mut conn, "302 Found", &loc, "{}")
        }
        ("POST", "/token") => {
            let client_ok = f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && f.get("client_secret").is_none_or(|c| c == CLIENT_SECRET);
            if !client_ok {
                return reply(
                    &mut conn,
                    "401 Unauthorized",
                    "",
                    r#"{"error":"invalid_client"}"#,
                );
            }
            let grant = f.get("grant_type").cloned().unwrap_or_default();
            let issue = |s: &mut State, user: &str, with_refresh: bool| {
                let at = s.issue_access(user);
                let rt = with_refresh.then(|| s.issue_refresh(user));
                let rt = rt
                    .map(|r| format!(r#","refresh_token":"{r}""#))
                    .unwrap_or_default();
                format!(
                    r#"{{"access_token":"{at}","token_type":"Bearer","expires_in":{}{rt}}}"#,
                    s.expires_in
                )
            };
            let invalid_grant = r#"{"error":"invalid_grant","error_description":"AADSTS70000: the grant is expired or revoked"}"#;
            match grant.as_str() {
                "refresh_token" => {
                    let rt = f.get("refresh_token").cloned().unwrap_or_default();
                    s.presented_refresh.push(rt.clone());
                    let user = s.refresh.get(&rt).cloned();
                    match user {
                        Some(user) if !s.revoke_all => {
                            let rotate = s.rotate;
                            if rotate {
                                s.refresh.remove(&rt);
                            }
                            let b = issue(&mut s, &user, rotate);
                            reply(&mut conn, "200 OK", "", &b)
                        }
                        _ => reply(&mut conn, "400 Bad Request", "", invalid_grant),
                    }
                }
                "client_credentials" => {
                    if f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
                        return reply(
                            &mut conn,
                            "401 Unauthorized",
                            "",
                            r#"{"error":"invalid_client"}"#,
                        );
                    }
                    let user = s.app_user.clone().unwrap_or_default();
                    let b = issue(&mut s, &user, false);
                    reply(&mut conn, "200 OK", "", &b)
                }
                "urn:ietf:params:oauth:grant-type:device_code" => {
                    if s.device_pending > 0 {
                        s.device_pending -= 1;
                        return reply(
                            &mut conn,
                            "400 Bad Request",
                            "",
                            r#"{"error":"authorization_pending"}"#,
                        );
                    }
                    let user = s.device_user.clone().unwrap_or_default();
                    let b = issue(&mut s, &user, true);
                    reply(&mut conn, "200 OK", "", &b)
                }
                "authorization_code" => {
                    let code = f.get("code").cloned().unwrap_or_default();
                    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                    let Some((user, challenge)) = s.codes.remove(&code) else {
                        return reply(&mut conn, "400 Bad Request", "", invalid_grant);
                    };
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes()));
                    if computed != challenge {
                        return reply(&mut conn, "400 Bad Request", "", invalid_grant);
                    }
                    let b = issue(&mut s, &user, true);
                    reply(&mut conn, "200 OK", "", &b)
                }
                _ => reply(
                    &mut conn,
                    "400 Bad Request",
                    "",
                    r#"{"error":"unsupported_grant_type"}"#,
                ),
            }
        }
        _ => reply(&mut conn, "404 Not Found", "", "{}"),
    }
}

/// The distinct refresh tokens in `presented` that were presented twice.
pub fn reused(presented: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    presented
        .iter()
        .filter(|t| !seen.insert(t.as_str()))
        .cloned()
        .collect()
}
