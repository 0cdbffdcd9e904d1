//! The benchmark's ceiling: the least work a client can do to download a
//! folder. It logs in, EXAMINEs one folder, sends a single
//! `UID FETCH <set> (UID RFC822.SIZE BODY.PEEK[])`, frames the responses just
//! enough to skip literals and find the tagged reply, and discards the bytes.
//! Nothing is parsed or stored, so `mailfeed sync` can be compared with it.
//!
//! Usage: raw_fetch --port N [--tls --ca CERT] --user U --password P
//!        [--folder INBOX] [--set 1:*]
//! Prints one line of JSON: {"messages":..,"bytes":..,"seconds":..}.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

struct Args {
    port: u16,
    tls: bool,
    ca: Option<String>,
    user: String,
    password: String,
    folder: String,
    set: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        tls: false,
        ca: None,
        user: String::new(),
        password: String::new(),
        folder: "INBOX".into(),
        set: "1:*".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--port" => a.port = val()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--tls" => a.tls = true,
            "--ca" => a.ca = Some(val()?),
            "--user" => a.user = val()?,
            "--password" => a.password = val()?,
            "--folder" => a.folder = val()?,
            "--set" => a.set = val()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.port == 0 || a.user.is_empty() {
        return Err("--port and --user are required".into());
    }
    Ok(a)
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Reads responses, skipping literal bodies, counting what went by.
struct Framer {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    literal_bytes: u64,
    literals: u64,
}

impl Framer {
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// The next line (without CRLF), with any literal that follows it
    /// skipped; returns the line text.
    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = self.buf[self.start..self.start + i].to_vec();
                self.start += i + 1;
                if let Some(n) = literal_size(&line) {
                    self.skip(n)?;
                    self.literals += 1;
                    self.literal_bytes += n;
                }
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn skip(&mut self, mut n: u64) -> std::io::Result<()> {
        while n > 0 {
            if self.start == self.end {
                self.fill()?;
            }
            let take = n.min((self.end - self.start) as u64) as usize;
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads until the tagged reply to `tag`; fails unless it is OK.
    fn until_tagged(&mut self, tag: &str) -> std::io::Result<()> {
        let want = format!("{tag} ");
        loop {
            let line = self.line()?;
            if line.starts_with(want.as_bytes()) {
                let rest = &line[want.len()..];
                if rest.starts_with(b"OK") {
                    return Ok(());
                }
                return Err(std::io::Error::other(format!(
                    "{tag} failed: {}",
                    String::from_utf8_lossy(&line)
                )));
            }
        }
    }

    fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.stream.write_all(text.as_bytes())?;
        self.stream.flush()
    }
}

fn literal_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

fn connect(a: &Args) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect(("127.0.0.1", a.port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    if !a.tls {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &a.ca {
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
            roots
                .add(cert.map_err(|e| format!("{ca}: {e}"))?)
                .map_err(|e| e.to_string())?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn run(a: &Args) -> Result<(), String> {
    let t0 = Instant::now();
    let mut f = Framer {
        stream: connect(a)?,
        buf: vec![0; 256 * 1024],
        start: 0,
        end: 0,
        literal_bytes: 0,
        literals: 0,
    };
    let io = |e: std::io::Error| e.to_string();
    f.line().map_err(io)?; // greeting
    f.send(&format!(
        "a1 LOGIN {} {}\r\na2 EXAMINE {}\r\n",
        quoted(&a.user),
        quoted(&a.password),
        quoted(&a.folder)
    ))
    .map_err(io)?;
    f.until_tagged("a1").map_err(io)?;
    f.until_tagged("a2").map_err(io)?;
    let t_fetch = Instant::now();
    f.send(&format!(
        "a3 UID FETCH {} (UID RFC822.SIZE BODY.PEEK[])\r\n",
        a.set
    ))
    .map_err(io)?;
    f.until_tagged("a3").map_err(io)?;
    let fetch_s = t_fetch.elapsed().as_secs_f64();
    f.send("a4 LOGOUT\r\n").map_err(io)?;
    let _ = f.until_tagged("a4");
    println!(
        "{{\"messages\":{},\"bytes\":{},\"seconds\":{:.6},\"fetch_seconds\":{:.6}}}",
        f.literals,
        f.literal_bytes,
        t0.elapsed().as_secs_f64(),
        fetch_s
    );
    Ok(())
}

fn main() {
    let code = match parse_args().and_then(|a| run(&a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("raw_fetch: {e}");
            1
        }
    };
    std::process::exit(code);
}
