//! The HTTP side of the tests: an `[http]` block for a [`Setup`]'s config,
//! a `mailfeed serve` or `run` child with its listener, and a small blocking
//! client (ureq, status codes as values, no body limit).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::mailfeed::Setup;

/// Adds `[http]` to the setup's config file.
pub fn add_http(setup: &Setup, listen: &str, token: Option<&str>) {
    let mut text = format!("\n[http]\nlisten = \"{listen}\"\n");
    if let Some(t) = token {
        let path = setup.dir.path().join("http.token");
        std::fs::write(&path, format!("{t}\n")).expect("token file");
        text.push_str(&format!("token_file = \"{}\"\n", path.display()));
    }
    setup.append_config(&text);
}

/// A mailfeed child serving HTTP; killed on drop.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Served {
    /// Starts `mailfeed <args>` and waits until `GET /api/v1/status`
    /// answers (with `token`, if any).
    pub fn start(setup: &Setup, args: &[&str], port: u16, token: Option<&str>) -> Served {
        let child = setup
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mailfeed");
        let mut s = Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("mailfeed {args:?} exited early: {st}");
            }
            if let Ok(r) = s.try_get("/api/v1/status", token)
                && r.status == 200
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "mailfeed {args:?} never served HTTP"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> Answer {
        self.try_get(path, None).expect("HTTP request")
    }

    pub fn try_get(&self, path: &str, token: Option<&str>) -> Result<Answer, ureq::Error> {
        request(&format!("{}{path}", self.base), &header_for(token))
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        request(&format!("{}{path}", self.base), headers).expect("HTTP request")
    }

    /// GET that parses a JSON answer and insists on 200.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let a = self.get(path);
        assert_eq!(a.status, 200, "GET {path}: {}", a.text());
        serde_json::from_slice(&a.body).expect("JSON answer")
    }
}

fn header_for(token: Option<&str>) -> Vec<(&'static str, String)> {
    token
        .map(|t| vec![("Authorization", format!("Bearer {t}"))])
        .unwrap_or_default()
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: status, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One GET with extra headers, whatever the status.
pub fn request<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    headers: &[(K, V)],
) -> Result<Answer, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(k.as_ref(), v.as_ref());
    }
    let mut res = req.call()?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = res.body_mut().with_config().limit(u64::MAX).read_to_vec()?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}
