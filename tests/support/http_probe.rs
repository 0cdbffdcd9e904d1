//! A tiny blocking HTTP/1.1 client for the operators' endpoints, and a
//! scripted loopback webhook receiver that records what it is sent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Status and body of `GET path`, with an optional `Authorization` value.
pub fn get(port: u16, path: &str, auth: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // `Connection: close` answers may still be chunked; unchunk simply.
    let chunked = text.split_once("\r\n\r\n").is_some_and(|(h, _)| {
        h.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    });
    Ok((status, if chunked { unchunk(&body) } else { body }))
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// What a receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Status500,
    Redirect,
    /// Reads the request and never answers.
    Hang,
}

/// A loopback webhook: answers each request by its script (the last entry
/// repeats) and records the bodies of the requests it answered 200.
pub struct Receiver {
    pub port: u16,
    pub accepted: Arc<Mutex<Vec<String>>>,
    pub requests: Arc<Mutex<Vec<Answer>>>,
}

impl Receiver {
    pub fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (acc, req) = (accepted.clone(), requests.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let answer = script[n.min(script.len() - 1)];
                n += 1;
                let Some(body) = read_request(&mut conn) else {
                    continue;
                };
                req.lock().expect("lock").push(answer);
                let reply = match answer {
                    Answer::Ok => {
                        acc.lock().expect("lock").push(body);
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    }
                    Answer::Status500 => "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
                    Answer::Redirect => {
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n"
                    }
                    Answer::Hang => {
                        // Keep the connection open, silent, until the client gives up.
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 64];
                            let _ = conn.read(&mut buf);
                        });
                        continue;
                    }
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        Receiver {
            port,
            accepted,
            requests,
        }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.accepted.lock().expect("lock").clone()
    }
}

/// Reads one request (headers and a Content-Length body); returns the body.
fn read_request(conn: &mut TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(body[..len].to_owned());
            }
        }
    }
}
