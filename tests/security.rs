//! Security and resource bounds, against a real Dovecot:
//!
//! * certificate verification is on by default: an untrusted self-signed
//!   certificate is refused unless trusted through `ca_file`, and a trusted
//!   certificate for another name is refused too;
//! * plaintext needs `security = "plain"` *and* `allow_plaintext = true`
//!   (STARTTLS stripping is in tests/hostile.rs: not offered, refused,
//!   PREAUTH, injected plaintext — each aborts before credentials are sent);
//! * a distinctive password never appears in anything mailfeed writes at
//!   `RUST_LOG=trace` — sync, check, a failed login, status, a config error —
//!   nor in the database files; the database is created with mode 0600;
//! * a message larger than `max_message_size` is stored headers-only,
//!   flagged `truncated` (shown by `status`), without holding it in memory.

mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::corpus;
use support::dovecot::{Dovecot, Options};
use support::mailfeed::{Account, Mode, Setup, assert_mirror};

const USER: &str = "sec";
/// Distinctive enough that any appearance is a leak.
const PASS: &str = "Pw-7f3Q-zebra-quartz-91";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn failed_with(out: &Output, words: &str) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(words), "expected {words:?} in:\n{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn untrusted_self_signed_certificate_is_refused_unless_trusted() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(3, 1))
        .expect("append");
    let cert = dc.cert_path();

    // No ca_file: only the system's roots, which do not know this cert.
    let mut acc = Account::tls(&dc, &cert, USER, PASS, &["INBOX"]);
    acc.ca_file = None;
    let setup = Setup::new(&[acc], "");
    let out = setup.run(&["sync"]);
    failed_with(&out, "invalid peer certificate");
    assert!(text(&out).contains("hint: the server's certificate is not trusted"));
    assert!(setup.stored("test", "INBOX").is_empty());
    // STARTTLS verifies the same way.
    let mut acc = Account::tls(&dc, &cert, USER, PASS, &["INBOX"]);
    acc.ca_file = None;
    acc.mode = Mode::StartTls;
    acc.port = dc.plain_port();
    let out = Setup::new(&[acc], "").run(&["sync"]);
    failed_with(&out, "invalid peer certificate");
    // `check` says so too.
    let out = setup.run(&["check"]);
    failed_with(&out, "certificate is not trusted");

    // Trusted through ca_file: works.
    let setup = Setup::new(&[Account::tls(&dc, &cert, USER, PASS, &["INBOX"])], "");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "test", "INBOX");
}

/// A self-signed certificate for `other.example` only, in `dir`.
fn foreign_cert(dir: &Path) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "3650"])
        .args(["-subj", "/CN=other.example"])
        .args(["-addext", "subjectAltName=DNS:other.example"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "keyUsage=critical,digitalSignature"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn trusted_certificate_for_another_name_is_refused() {
    let certs = tempfile::tempdir().expect("tempdir");
    foreign_cert(certs.path());
    let cert = certs.path().join("cert.pem");
    let dc = Dovecot::start_with(Options {
        users: vec![(USER.into(), PASS.into())],
        extra_config: format!(
            "ssl_cert = <{}\nssl_key = <{}\n",
            cert.display(),
            certs.path().join("key.pem").display()
        ),
    })
    .expect("dovecot");
    // The cert is trusted (ca_file) but names other.example, not 127.0.0.1.
    let setup = Setup::new(&[Account::tls(&dc, &cert, USER, PASS, &["INBOX"])], "");
    let out = setup.run(&["sync"]);
    failed_with(&out, "invalid peer certificate");
    assert!(
        text(&out).contains("NotValidForName") || text(&out).contains("not valid for name"),
        "{}",
        text(&out)
    );
}

#[test]
fn plaintext_needs_plain_and_allow_plaintext() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    // security = "plain" alone is a configuration error naming the fix.
    let mut acc = Account::plain(&dc, USER, PASS, &["INBOX"]);
    acc.mode = Mode::Plain;
    let setup = Setup::new(&[acc], "");
    let config = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(
        &setup.config,
        config.replace("allow_plaintext = true", "allow_plaintext = false"),
    )
    .expect("write");
    let out = setup.run(&["sync"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("allow_plaintext"), "{}", text(&out));
    assert!(!setup.db.exists(), "nothing may happen on a refused config");

    // The default is TLS: pointed at the plaintext port, the handshake
    // fails; mailfeed does not fall back to plaintext.
    std::fs::write(
        &setup.config,
        config
            .replace("security = \"plain\"\n", "")
            .replace("allow_plaintext = true\n", ""),
    )
    .expect("write");
    let out = setup.run(&["sync"]);
    failed_with(&out, "TLS handshake");

    // With both set, plaintext works (and is warned about).
    std::fs::write(&setup.config, &config).expect("write");
    let out = setup.sync_ok();
    assert!(text(&out).contains("unencrypted"), "{}", text(&out));
}

/// Runs a subcommand at `RUST_LOG=trace`, with a hard deadline.
fn traced(setup: &Setup, args: &[&str]) -> Output {
    let mut child = setup
        .command(args)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let so = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let se = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout: so.join().expect("stdout"),
        stderr: se.join().expect("stderr"),
    }
}

/// The forms a password could leak in: as is, and inside the SASL PLAIN
/// response (base64 of `\0user\0password`, at each alignment).
fn leak_forms(user: &str, password: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![password.as_bytes().to_vec()];
    let sasl = format!("\0{user}\0{password}");
    forms.push(b64.encode(sasl.as_bytes()).into_bytes());
    for shift in 0..3 {
        // The middle of an encoding at any offset, which does not depend on
        // what precedes it.
        let enc = b64.encode(&password.as_bytes()[shift..]);
        forms.push(enc.as_bytes()[..enc.len().saturating_sub(4)].to_vec());
    }
    forms
}

fn assert_no_leak(what: &str, bytes: &[u8], forms: &[Vec<u8>]) {
    for f in forms {
        assert!(
            !bytes.windows(f.len()).any(|w| w == f.as_slice()),
            "{what} contains the password (as {:?})",
            String::from_utf8_lossy(f)
        );
    }
}

#[test]
fn password_never_appears_anywhere_even_at_trace() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(5, 2))
        .expect("append");
    let cert = dc.cert_path();
    let forms = leak_forms(USER, PASS);
    // The detector itself works: it finds the password in what mailfeed
    // really sends on the wire (SASL PLAIN), at any offset.
    let wire = mailfeed::imap::Command::sasl_plain(USER, &mailfeed::secret::Secret::new(PASS));
    for prefix in ["", "x", "xy"] {
        let mut line = prefix.as_bytes().to_vec();
        line.extend_from_slice(&wire);
        let found = std::panic::catch_unwind(|| assert_no_leak("wire", &line, &forms));
        assert!(found.is_err(), "the leak detector missed the SASL response");
    }
    let mut outputs: Vec<(String, Output)> = Vec::new();

    // Over TLS, STARTTLS and plaintext: sync, check, status.
    for mode in [Mode::Tls, Mode::StartTls, Mode::Plain] {
        let mut acc = Account::tls(&dc, &cert, USER, PASS, &["INBOX", "Missing"]);
        acc.mode = mode;
        if mode != Mode::Tls {
            acc.port = dc.plain_port();
        }
        let setup = Setup::new(&[acc], "");
        for args in [
            &["sync"][..],
            &["check"],
            &["status"],
            &["status", "--json"],
        ] {
            let out = traced(&setup, args);
            // Missing folder: sync and check report one failure.
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "{mode:?} {args:?}: {}",
                text(&out)
            );
            outputs.push((format!("{mode:?} {args:?}"), out));
        }
        assert!(
            outputs
                .iter()
                .any(|(_, o)| String::from_utf8_lossy(&o.stderr).contains("C: a")),
            "trace shows the conversation"
        );
        // The database files (and WAL) hold no trace of it either.
        for entry in std::fs::read_dir(setup.dir.path()).expect("dir") {
            let p = entry.expect("entry").path();
            if p.to_string_lossy().contains("mail.db") {
                let bytes = std::fs::read(&p).expect("read db file");
                assert_no_leak(&p.display().to_string(), &bytes, &forms);
                let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is readable by others", p.display());
            }
        }
        let mode = std::fs::metadata(&setup.db)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "database file mode");
    }

    // A failed login with a (different, equally distinctive) wrong password,
    // and an inline password in a config with a mistake.
    let wrong = "Wrong-zebra-quartz-77";
    let setup = Setup::new(&[Account::plain(&dc, USER, wrong, &["INBOX"])], "");
    for args in [&["sync"][..], &["check"]] {
        let out = traced(&setup, args);
        failed_with(&out, "login failed");
        assert_no_leak(
            &format!("failed login {args:?}"),
            &out.stdout,
            &leak_forms(USER, wrong),
        );
        assert_no_leak(
            &format!("failed login {args:?}"),
            &out.stderr,
            &leak_forms(USER, wrong),
        );
    }
    let config = std::fs::read_to_string(&setup.config).expect("config");
    let pw_line = config
        .lines()
        .find(|l| l.starts_with("password_file"))
        .expect("password_file line")
        .to_string();
    std::fs::write(
        &setup.config,
        config.replace(
            &pw_line,
            &format!("password = \"{PASS}\"\nfolderz = [\"x\"]"),
        ),
    )
    .expect("write");
    let out = traced(&setup, &["sync"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    outputs.push(("config error".into(), out));
    std::fs::write(
        &setup.config,
        config.replace(
            &pw_line,
            &format!("password = \"{PASS}\"\nsecurity = \"plain\""),
        ),
    )
    .expect("write");
    let out = traced(&setup, &["sync"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    outputs.push(("duplicate key config error".into(), out));

    for (what, out) in &outputs {
        assert_no_leak(&format!("stdout of {what}"), &out.stdout, &forms);
        assert_no_leak(&format!("stderr of {what}"), &out.stderr, &forms);
    }
}

/// Peak RSS (KiB) of a running child, sampled until it exits.
fn run_measured(setup: &Setup, args: &[&str]) -> (Output, u64) {
    let mut child = setup
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak = 0;
    let mut out = child.stdout.take().expect("stdout");
    let so = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let mut err = child.stderr.take().expect("stderr");
    let se = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        Output {
            status,
            stdout: so.join().expect("stdout"),
            stderr: se.join().expect("stderr"),
        },
        peak,
    )
}

#[test]
fn message_over_max_message_size_is_stored_headers_only() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let small = corpus::varied(4, 3);
    // One 40 MB message between the small ones.
    let huge = corpus::sized(1, 9, 40_000_000, 40_000_000).remove(0);
    let mut msgs = small[..2].to_vec();
    msgs.push(huge.clone());
    msgs.extend_from_slice(&small[2..]);
    dc.append_many(USER, "INBOX", &msgs).expect("append");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX"])],
        "max_message_size = \"1MB\"",
    );
    let (out, peak_kb) = run_measured(&setup, &["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    // Never held: far below the message's size.
    assert!(
        peak_kb < 30 * 1024,
        "peak RSS {peak_kb} KiB while skipping a 40 MB message"
    );
    let truth = dc.fetch_all(USER, "INBOX").expect("truth");
    let db = setup.db();
    let rows: Vec<(u32, Vec<u8>, bool, i64)> = db
        .prepare("SELECT uid, raw, truncated, size FROM message_feed ORDER BY uid")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), truth.len());
    for ((uid, raw, truncated, size), (tuid, tbody)) in rows.iter().zip(&truth) {
        assert_eq!(uid, tuid);
        if tbody.len() > 1_000_000 {
            assert!(*truncated, "UID {uid} must be flagged truncated");
            let head_end = tbody
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("header end")
                + 4;
            assert_eq!(raw, &tbody[..head_end], "UID {uid}: the header block only");
            assert_eq!(*size as usize, tbody.len(), "size is the server's");
        } else {
            assert!(!truncated, "UID {uid}");
            assert!(raw == tbody, "UID {uid}: bytes differ");
        }
    }
    let status = setup.run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json[0]["truncated"], 1, "{json}");
    let table = String::from_utf8_lossy(&setup.run(&["status"]).stdout).into_owned();
    assert!(table.contains("TRUNC"), "{table}");
    // A second pass neither refetches nor doubles it.
    let out = setup.sync_ok();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 new message(s)"));
    assert_eq!(setup.message_rows(), truth.len() as i64);
}

/// OAuth2's secrets — access tokens, refresh tokens, the client secret —
/// never appear in anything mailfeed writes at `RUST_LOG=trace` (sync,
/// check, status, a refused token, a config error) nor in the database:
/// only the refresh token's own file holds a refresh token.
#[test]
fn oauth2_tokens_and_client_secret_never_appear_anywhere_even_at_trace() {
    use support::oauth2::{CLIENT_ID, CLIENT_SECRET, OAuthServer};
    let server = OAuthServer::start();
    let conf = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(conf.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dc = Dovecot::start_with(Options {
        users: support::server::owned_users(&[(USER, PASS)]),
        extra_config: server.dovecot_config(conf.path(), "xoauth2 oauthbearer"),
    })
    .expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(3, 4))
        .expect("append");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let token_file = work.path().join("rt");
    let rt = server.with(|s| {
        s.rotate = true;
        s.issue_refresh(USER)
    });
    std::fs::write(&token_file, &rt).expect("rt");
    // Inline client secret: the form most likely to leak.
    let table = format!(
        "auth = \"oauth2\"\n[accounts.oauth2]\nprovider = \"custom\"\ntoken_url = \"{}\"\nscope = \"imap\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\ntoken_file = \"{}\"\n",
        server.url("/token"),
        token_file.display()
    );
    let mut acc = Account::tls(&dc, &cert, USER, "", &["INBOX"]);
    acc.extra = &table;
    let setup = Setup::new(&[acc], "");
    let mut outputs: Vec<(String, Output)> = Vec::new();
    for args in [&["sync"][..], &["check"], &["status"], &["sync"]] {
        let out = traced(&setup, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        outputs.push((format!("{args:?}"), out));
    }
    assert!(
        String::from_utf8_lossy(&outputs[0].1.stderr).contains("AUTHENTICATE"),
        "trace shows the conversation"
    );
    // A token the server refuses (from a command), and a config mistake
    // next to an inline client secret.
    let refused = "at-refused-Zebra-4411";
    let extra = format!("auth = \"oauth2\"\noauth2_token_command = \"echo {refused}\"\n");
    let mut acc = Account::tls(&dc, &cert, USER, "", &["INBOX"]);
    acc.extra = &extra;
    let bad = Setup::new(&[acc], "");
    for args in [&["sync"][..], &["check"]] {
        let out = traced(&bad, args);
        failed_with(&out, "refused the token");
        outputs.push((format!("refused {args:?}"), out));
    }
    let config = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(&setup.config, config.replace("scope = ", "scopes = ")).expect("write");
    let out = traced(&setup, &["sync"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    outputs.push(("config error".into(), out));

    let mut secrets = server.with(|s| {
        let mut v = s.issued_access.clone();
        v.extend(s.issued_refresh.iter().cloned());
        v
    });
    assert!(secrets.len() >= 4, "tokens were issued: {secrets:?}");
    secrets.push(CLIENT_SECRET.to_owned());
    secrets.push(refused.to_owned());
    for secret in &secrets {
        let forms = leak_forms(USER, secret);
        for (what, out) in &outputs {
            assert_no_leak(&format!("stdout of {what}"), &out.stdout, &forms);
            assert_no_leak(&format!("stderr of {what}"), &out.stderr, &forms);
        }
        for entry in std::fs::read_dir(setup.dir.path()).expect("dir") {
            let p = entry.expect("entry").path();
            if p.to_string_lossy().contains("mail.db") {
                let bytes = std::fs::read(&p).expect("read db file");
                assert_no_leak(&p.display().to_string(), &bytes, &forms);
            }
        }
    }
}
