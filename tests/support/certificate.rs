//! Certificates made the way users make them for a server of their own:
//! `openssl req -x509 -newkey rsa:2048 -nodes` with a subject and names,
//! nothing else (so CA:TRUE, openssl's default).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What a command printed, stdout then stderr, for assertions and messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A self-signed certificate for `cn` with the subjectAltName `san`
/// (`DNS:localhost,IP:127.0.0.1`); returns (cert, key), named by `tag`.
pub fn users_certificate(dir: &Path, tag: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{tag}-cert.pem"));
    let key = dir.join(format!("{tag}-key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
        ])
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", text(&out));
    (cert, key)
}
