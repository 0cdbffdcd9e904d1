//! `[http]`: where the HTTP listener (`run` and `serve`) binds and the bearer token that
//! guards it. A listener beyond loopback without a token is refused here,
//! at load, so it can never start.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    listen: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
}

/// The validated `[http]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Required unless `listen` is a loopback address.
    pub token: Option<Secret>,
}

/// Checks `[http]`; reads `token_file` now so an unreadable file is a
/// configuration error, not a listener that rejects everyone.
pub(crate) fn parse(raw: RawHttp, base: &Path) -> Result<HttpConfig, String> {
    let text = raw.listen.ok_or(
        "`http.listen` is missing; set it to an address and port, e.g. listen = \"127.0.0.1:9925\" (or remove [http])",
    )?;
    let listen: SocketAddr = text.trim().parse().map_err(|_| {
        format!(
            "`http.listen` = {text:?} is not an address and port; write e.g. \"127.0.0.1:9925\" or \"[::1]:9925\""
        )
    })?;
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err("`http.token` and `http.token_file` are both set; keep one".into());
        }
        (Some(t), None) => Some(Secret::new(t)),
        (None, Some(f)) => {
            let path = crate::config::resolve_path(base, &f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "`http.token_file` = {:?} cannot be read: {e}; make it readable by mailfeed",
                    path.display().to_string()
                )
            })?;
            Some(Secret::new(text.trim_end_matches(['\r', '\n'])))
        }
        (None, None) => None,
    };
    if let Some(t) = &token
        && t.expose().trim().len() < 16
    {
        return Err(
            "`http.token` (or the file `http.token_file` names) is shorter than 16 characters; use a long random token, e.g. from `openssl rand -hex 32`".into(),
        );
    }
    check(listen, token)
}

/// `mailfeed serve`'s listen address when neither `--listen` nor `[http]`
/// gives one: loopback, so no token is needed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9925";

/// The rule for every listener (`[http]` and `serve --listen` alike):
/// beyond loopback, a token is required.
pub fn check(listen: SocketAddr, token: Option<Secret>) -> Result<HttpConfig, String> {
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(format!(
            "`http.listen` = \"{listen}\" is reachable beyond this machine, so it needs `http.token` or `http.token_file` (a bearer token that clients send as `Authorization: Bearer …`); or listen on 127.0.0.1"
        ));
    }
    Ok(HttpConfig { listen, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_toml(text: &str) -> Result<HttpConfig, String> {
        #[derive(Deserialize)]
        struct W {
            http: RawHttp,
        }
        let w: W = toml_like(text);
        parse(w.http, Path::new("/nonexistent"))
    }

    fn toml_like<T: serde::de::DeserializeOwned>(text: &str) -> T {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("test toml")
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let e = parse_toml("[http]\nlisten = \"0.0.0.0:9925\"").expect_err("refused");
        assert!(
            e.contains("`http.listen`") && e.contains("http.token_file"),
            "{e}"
        );
        let ok = parse_toml("[http]\nlisten = \"127.0.0.1:9925\"").expect("loopback");
        assert!(ok.token.is_none());
        parse_toml("[http]\nlisten = \"[::1]:9925\"").expect("loopback v6");
        let t = parse_toml("[http]\nlisten = \"0.0.0.0:9925\"\ntoken = \"0123456789abcdef0123\"")
            .expect("with a token");
        assert!(t.token.is_some());
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse_toml("[http]\nlisten = \"localhost\"").expect_err("no port");
        assert!(e.contains("`http.listen`"), "{e}");
        let e = parse_toml("[http]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"/nonexistent/t\"")
            .expect_err("unreadable");
        assert!(
            e.contains("`http.token_file`") && e.contains("/nonexistent/t"),
            "{e}"
        );
        let e =
            parse_toml("[http]\nlisten = \"127.0.0.1:1\"\ntoken = \"short\"").expect_err("short");
        assert!(e.contains("16 characters") && !e.contains("short\""), "{e}");
    }
}
