//! Servers that are their own trust anchor, against a real Dovecot serving
//! the certificate a user makes with openssl's defaults (`openssl req
//! -x509`, no `-addext basicConstraints`: CA:TRUE):
//!
//! * `ca_file` = that very certificate syncs (no CaUsedAsEndEntity), and the
//!   host name is still checked on that path;
//! * `tls_fingerprint` pins it without any CA; a wrong pin is refused and
//!   `check` prints the certificate and the exact line that would trust it;
//! * an expired pinned certificate is reported as expired.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::certificate::{text, users_certificate};
use support::corpus;
use support::dovecot::{Dovecot, Options};
use support::mailfeed::{Account, Setup, assert_mirror};

const USER: &str = "selfhost";
const PASS: &str = "selfhost-pw-31";

/// An expired self-signed certificate (notAfter a day before notBefore).
fn expired_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, csr) = (
        dir.join("old-cert.pem"),
        dir.join("old-key.pem"),
        dir.join("old.csr"),
    );
    let out = Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("openssl req");
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new("openssl")
        .args(["x509", "-req", "-days", "-1", "-in"])
        .arg(&csr)
        .arg("-signkey")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl x509");
    assert!(out.status.success(), "{}", text(&out));
    (cert, key)
}

/// openssl's own SHA-256 fingerprint of a PEM file, as `sha256:AB:CD:…`.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    let t = String::from_utf8_lossy(&out.stdout);
    let hex = t.trim().rsplit('=').next().expect("fingerprint").to_owned();
    format!("sha256:{hex}")
}

fn dovecot_serving(cert: &Path, key: &Path) -> Dovecot {
    let dc = Dovecot::start_with(Options {
        users: support::server::owned_users(&[(USER, PASS)]),
        extra_config: format!(
            "ssl_cert = <{}\nssl_key = <{}\n",
            cert.display(),
            key.display()
        ),
    })
    .expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(4, 17))
        .expect("append");
    dc
}

fn account<'a>(dc: &'a Dovecot, ca: Option<&'a Path>, extra: &'a str) -> Account<'a> {
    let mut a = Account::tls(dc, Path::new("/"), USER, PASS, &["INBOX"]);
    a.ca_file = ca;
    a.extra = extra;
    a
}

#[test]
fn openssl_default_self_signed_certificate_is_trusted_by_ca_file_or_fingerprint() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (cert, key) = users_certificate(
        keys.path(),
        "default",
        "localhost",
        "DNS:localhost,IP:127.0.0.1",
    );
    // The point of the test: openssl made it a CA certificate.
    let shown = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&shown.stdout).contains("CA:TRUE"));
    let dc = dovecot_serving(&cert, &key);
    let right = openssl_fingerprint(&cert);

    // ca_file = the server's own certificate.
    let setup = Setup::new(&[account(&dc, Some(&cert), "")], "");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "test", "INBOX");

    // Pinned, no CA at all.
    let pin = format!("tls_fingerprint = \"{right}\"");
    let setup = Setup::new(&[account(&dc, None, &pin)], "");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "test", "INBOX");
    // The lower-case, colon-free form works too.
    let plain = right
        .replace(':', "")
        .to_lowercase()
        .replacen("sha256", "sha256:", 1);
    let setup = Setup::new(
        &[account(
            &dc,
            None,
            &format!("tls_fingerprint = \"{plain}\""),
        )],
        "",
    );
    setup.sync_ok();

    // A wrong pin is refused, and `check` shows the right one.
    let wrong = format!("tls_fingerprint = \"sha256:{}\"", "00".repeat(32));
    let setup = Setup::new(&[account(&dc, None, &wrong)], "");
    let out = setup.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is not the one pinned by `tls_fingerprint`"),
        "{}",
        text(&out)
    );
    assert!(setup.stored("test", "INBOX").is_empty());
    let out = setup.run(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("subject:     CN=localhost"), "{t}");
    assert!(t.contains("issuer:      CN=localhost"), "{t}");
    assert!(t.contains(&format!("fingerprint: {right}")), "{t}");
    assert!(
        t.contains(&format!("   tls_fingerprint = \"{right}\"")),
        "{t}"
    );

    // Untrusted (no ca_file, no pin): the same advice, and the line works.
    let setup = Setup::new(&[account(&dc, None, "")], "");
    let t = text(&setup.run(&["check"]));
    let line = t
        .lines()
        .find(|l| l.trim_start().starts_with("tls_fingerprint = "))
        .unwrap_or_else(|| panic!("no tls_fingerprint line in:\n{t}"))
        .trim()
        .to_owned();
    assert!(t.contains("or set `ca_file`"), "{t}");
    let setup = Setup::new(&[account(&dc, None, &line)], "");
    setup.sync_ok();
    let out = setup.run(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("valid:       "), "{}", text(&out));
}

#[test]
fn ca_file_with_the_servers_own_certificate_still_checks_the_host_name() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (cert, key) =
        users_certificate(keys.path(), "other", "localhost", "DNS:mail.other.example");
    let dc = dovecot_serving(&cert, &key);
    let setup = Setup::new(&[account(&dc, Some(&cert), "")], "");
    let out = setup.run(&["sync"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("not valid for name"), "{t}");
    assert!(
        t.contains("hint: the certificate is for another host name"),
        "{t}"
    );
    assert!(setup.stored("test", "INBOX").is_empty());
}

#[test]
fn an_expired_pinned_certificate_is_reported_as_expired() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (cert, key) = expired_certificate(keys.path());
    let dc = dovecot_serving(&cert, &key);
    let pin = format!("tls_fingerprint = \"{}\"", openssl_fingerprint(&cert));
    let setup = Setup::new(&[account(&dc, None, &pin)], "");
    let out = setup.run(&["sync"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("the certificate pinned by `tls_fingerprint` expired on"),
        "{t}"
    );
    assert!(setup.stored("test", "INBOX").is_empty());
}
