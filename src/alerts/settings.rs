//! `[[alerts]]`: where alerts go (a webhook URL, a command, or both) and
//! how long a folder must fail before one is sent.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{DurationValue, parse_duration};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    webhook: Option<String>,
    command: Option<Vec<String>>,
    after: Option<DurationValue>,
}

/// A webhook's parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// As written, for logs (a URL carries no secret we add; one the
    /// operator put in its query string is theirs, and it is never logged:
    /// see [`Webhook::shown`]).
    pub uri: hyper::Uri,
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Webhook {
    /// Scheme, host and port only: a path or query may hold a token.
    pub fn shown(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}/…", self.host, self.port)
    }
}

/// One validated `[[alerts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    pub webhook: Option<Webhook>,
    /// Program and arguments, run without a shell; the alert comes on stdin.
    pub command: Option<Vec<String>>,
    /// How long a folder or account must be failing before the alert.
    pub after: Duration,
}

pub const DEFAULT_AFTER: Duration = Duration::from_secs(15 * 60);

pub(crate) fn parse(raw: Vec<RawAlert>, _base: &Path) -> Result<Vec<AlertConfig>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, a)| parse_one(i, a))
        .collect()
}

fn parse_one(i: usize, a: RawAlert) -> Result<AlertConfig, String> {
    let key = |k: &str| format!("alerts[{i}].{k}");
    if a.webhook.is_none() && a.command.is_none() {
        return Err(format!(
            "`alerts[{i}]` has neither `webhook` nor `command`; give it `webhook = \"https://…\"` or `command = [\"/path/to/program\"]`"
        ));
    }
    let webhook = a
        .webhook
        .map(|w| webhook(&key("webhook"), &w))
        .transpose()?;
    if let Some(c) = &a.command
        && c.first().is_none_or(|p| p.is_empty())
    {
        return Err(format!(
            "`{}` is empty; give the program first, then its arguments",
            key("command")
        ));
    }
    let after = match &a.after {
        Some(v) => parse_duration(&key("after"), v)?,
        None => DEFAULT_AFTER,
    };
    if after < Duration::from_millis(100) {
        return Err(format!(
            "`{}` is too short; use at least \"1s\" (default \"15m\")",
            key("after")
        ));
    }
    Ok(AlertConfig {
        webhook,
        command: a.command,
        after,
    })
}

fn webhook(key: &str, text: &str) -> Result<Webhook, String> {
    let bad = || {
        format!("`{key}` is not an http(s) URL; write e.g. \"https://hooks.example.com/mailfeed\"")
    };
    let uri: hyper::Uri = text.trim().parse().map_err(|_| bad())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let host = uri
        .host()
        .ok_or_else(bad)?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if !tls {
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "`{key}` uses plain http to {host}; alerts leave this machine only over https (http is allowed for 127.0.0.1, ::1 and localhost)"
            ));
        }
    }
    Ok(Webhook {
        uri,
        tls,
        host,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(webhook: Option<&str>, command: Option<Vec<&str>>) -> RawAlert {
        RawAlert {
            webhook: webhook.map(str::to_owned),
            command: command.map(|c| c.into_iter().map(str::to_owned).collect()),
            after: None,
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let e = parse_one(0, raw(Some("http://hooks.example.com/x"), None)).expect_err("http");
        assert!(
            e.contains("`alerts[0].webhook`") && e.contains("https"),
            "{e}"
        );
        let ok = parse_one(0, raw(Some("http://127.0.0.1:8080/hook?k=v"), None)).expect("loopback");
        let w = ok.webhook.expect("webhook");
        assert_eq!((w.tls, w.port, w.host.as_str()), (false, 8080, "127.0.0.1"));
        assert!(!w.shown().contains("hook"), "the path stays out of logs");
        assert_eq!(ok.after, DEFAULT_AFTER);
        let ok = parse_one(0, raw(Some("https://hooks.example.com/x"), None)).expect("https");
        assert_eq!(ok.webhook.expect("webhook").port, 443);
        parse_one(0, raw(Some("ftp://x/"), None)).expect_err("scheme");
    }

    #[test]
    fn an_alert_needs_somewhere_to_go() {
        let e = parse_one(1, raw(None, None)).expect_err("nothing");
        assert!(e.contains("`alerts[1]`"), "{e}");
        let e = parse_one(0, raw(None, Some(vec![]))).expect_err("empty command");
        assert!(e.contains("`alerts[0].command`"), "{e}");
        parse_one(0, raw(None, Some(vec!["/bin/cat"]))).expect("command");
    }
}
