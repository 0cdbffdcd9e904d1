//! OAuth2 logins against a real Dovecot that checks bearer tokens with
//! `passdb { driver = oauth2 }` through a loopback introspection endpoint,
//! and a test token endpoint standing in for the provider's
//! (tests/support/oauth2.rs):
//!
//! * `sync` logs in with XOAUTH2 and with OAUTHBEARER (Dovecot offering only
//!   one at a time), from a token command and from the built-in client
//!   (refresh-token and client-credentials grants);
//! * a token command is run again once after the server refuses its token;
//! * a rotated refresh token is stored (mode 0600) and the old one is never
//!   presented again;
//! * while `run` is in IDLE the access token expires and the connection is
//!   dropped: mailfeed gets a new token, reconnects, and the next message
//!   arrives exactly once;
//! * `invalid_grant` stops that account with the `mailfeed auth` hint while
//!   another account keeps syncing;
//! * `mailfeed auth` obtains the first refresh token by device code, and by
//!   the loopback redirect with PKCE (the test plays the browser).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::{Dovecot, Options};
use support::mailfeed::{Account, Setup, assert_mirror};
use support::oauth2::{CLIENT_ID, CLIENT_SECRET, OAuthServer, reused};
use support::run::{Running, wait_for};

const USER: &str = "olivia";
const PASS: &str = "olivia-pw-5";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A Dovecot that accepts `mechanisms` with tokens `server` says are
/// active (and passwords for the test's own truth client).
fn dovecot(server: &OAuthServer, conf_dir: &Path, mechanisms: &str) -> Dovecot {
    let dc = Dovecot::start_with(Options {
        users: support::server::owned_users(&[(USER, PASS)]),
        // Dovecot logs what clients say in ID (RFC 2971).
        extra_config: format!(
            "{}imap_id_log = *\n",
            server.dovecot_config(conf_dir, mechanisms)
        ),
    })
    .expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(5, 23))
        .expect("append");
    dc
}

/// A world-readable dir for Dovecot's oauth2 settings file.
fn conf_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn oauth_account<'a>(
    dc: &'a Dovecot,
    cert: &'a Path,
    name: &'a str,
    extra: &'a str,
) -> Account<'a> {
    let mut a = Account::tls(dc, cert, USER, "", &["INBOX"]);
    a.name = name;
    a.extra = extra;
    a
}

/// `[accounts.oauth2]` for the test endpoint.
fn client_table(server: &OAuthServer, dir: &Path, grant: &str) -> (String, PathBuf) {
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).expect("secret");
    let token_file = dir.join("state").join("rt");
    (
        format!(
            "auth = \"oauth2\"\n[accounts.oauth2]\nprovider = \"custom\"\ngrant = \"{grant}\"\ntoken_url = \"{}\"\ndevice_url = \"{}\"\nscope = \"imap offline_access\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\ntoken_file = \"{}\"\n",
            server.url("/token"),
            server.url("/device"),
            secret_file.display(),
            token_file.display()
        ),
        token_file,
    )
}

#[test]
fn sync_logs_in_with_xoauth2_and_oauthbearer_from_a_token_command() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    for mech in ["xoauth2", "oauthbearer"] {
        let dc = dovecot(&server, conf.path(), mech);
        let cert = dc.cert_path();
        let work = tempfile::tempdir().expect("tempdir");
        // The command's first token is refused (expired); the second, which
        // it prints when run again, is good.
        let good = work.path().join("good");
        std::fs::write(&good, server.with(|s| s.issue_access(USER))).expect("token");
        let ran = work.path().join("ran");
        let cmd = format!(
            "if [ -e {ran} ]; then cat {good}; else touch {ran}; echo at-expired-token; fi",
            ran = ran.display(),
            good = good.display()
        );
        let extra = format!("auth = \"oauth2\"\noauth2_token_command = \"{cmd}\"\n");
        let setup = Setup::new(&[oauth_account(&dc, &cert, "test", &extra)], "");
        let out = setup.sync_ok();
        assert_mirror(&setup, &dc, USER, "test", "INBOX");
        let log = dc.log();
        assert!(
            log.contains(&format!("method={}", mech.to_uppercase())),
            "Dovecot did not log a {mech} login:\n{log}"
        );
        assert!(ran.exists());
        assert!(log.contains("name=mailfeed"), "ID was not sent:\n{log}");
        let t = text(&out);
        assert!(!t.contains("at-expired-token") && !t.contains("at-"), "{t}");
    }
}

#[test]
fn token_command_failures_are_one_clear_line_naming_the_account() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "xoauth2 oauthbearer");
    let cert = dc.cert_path();
    for (cmd, words) in [
        ("exit 4", "oauth2_token_command exited with"),
        ("true", "printed nothing"),
        (
            "echo '<html><body>Sign in</body></html>'",
            "not an access token",
        ),
    ] {
        let extra = format!("auth = \"oauth2\"\noauth2_token_command = \"{cmd}\"\n");
        let setup = Setup::new(&[oauth_account(&dc, &cert, "work", &extra)], "");
        let out = setup.run(&["sync"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        let line = t
            .lines()
            .find(|l| l.contains(words))
            .unwrap_or_else(|| panic!("{words:?} not in:\n{t}"));
        assert!(line.contains("account `work`"), "{line}");
        assert!(!t.contains("Sign in") && !t.contains("panicked"), "{t}");
    }
}

#[test]
fn refresh_token_grant_rotates_and_stores_and_client_credentials_work() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "xoauth2");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let (table, token_file) = client_table(&server, work.path(), "refresh_token");

    // No refresh token yet: a permanent error that says what to run.
    let setup = Setup::new(&[oauth_account(&dc, &cert, "work", &table)], "");
    let out = setup.run(&["sync"]);
    assert!(
        text(&out).contains("run `mailfeed auth work` once to sign in"),
        "{}",
        text(&out)
    );

    std::fs::create_dir_all(token_file.parent().expect("dir")).expect("dir");
    let first = server.with(|s| {
        s.rotate = true;
        s.issue_refresh(USER)
    });
    std::fs::write(&token_file, &first).expect("rt");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "work", "INBOX");
    let second = std::fs::read_to_string(&token_file)
        .expect("rt")
        .trim()
        .to_owned();
    assert_ne!(second, first, "the rotated refresh token was stored");
    assert_eq!(
        std::fs::metadata(&token_file).expect("meta").mode() & 0o777,
        0o600
    );
    // Each sync is a new process with an empty cache: it refreshes again,
    // with the newest token.
    dc.append(USER, "INBOX", &corpus::varied(1, 99)[0])
        .expect("append");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "work", "INBOX");
    let presented = server.with(|s| s.presented_refresh.clone());
    assert_eq!(presented.len(), 2, "{presented:?}");
    assert_eq!(presented[0], first);
    assert_eq!(presented[1], second);
    assert!(reused(&presented).is_empty());

    // Client credentials (Microsoft's app-only access): no refresh token.
    server.with(|s| s.app_user = Some(USER.to_owned()));
    let (table, token_file) = client_table(&server, work.path(), "client_credentials");
    let _ = std::fs::remove_file(&token_file);
    let setup = Setup::new(&[oauth_account(&dc, &cert, "app", &table)], "");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "app", "INBOX");
    assert!(!token_file.exists());
}

fn count(setup: &Setup, account: &str) -> usize {
    if !setup.db.exists() {
        return 0;
    }
    let Ok(conn) = rusqlite::Connection::open(&setup.db) else {
        return 0;
    };
    conn.query_row(
        "SELECT count(*) FROM message_feed WHERE account = ?1",
        [account],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
    .unwrap_or(0)
}

#[test]
fn run_gets_a_new_token_after_expiry_mid_idle_and_the_next_message_arrives_once() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "oauthbearer");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let (table, token_file) = client_table(&server, work.path(), "refresh_token");
    std::fs::create_dir_all(token_file.parent().expect("dir")).expect("dir");
    let rt = server.with(|s| {
        s.rotate = true;
        s.issue_refresh(USER)
    });
    std::fs::write(&token_file, &rt).expect("rt");
    let setup = Setup::new(&[oauth_account(&dc, &cert, "work", &table)], "");
    let run = Running::start(&setup, "trace");
    wait_for("initial sync", Duration::from_secs(30), || {
        count(&setup, "work") == 5
    });
    let idles = || {
        std::fs::read_to_string(&run.1)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" IDLE account="))
            .count()
    };
    wait_for("IDLE", Duration::from_secs(30), || idles() >= 1);
    assert!(dc.log().contains("method=OAUTHBEARER"));
    let mut latencies = Vec::new();
    for round in 0..3u64 {
        // The provider expires every access token and the server drops the
        // connection: the cached token is now worthless.
        let idles_before = idles();
        let before = server.with(|s| {
            s.expire_access_tokens();
            s.presented_refresh.len()
        });
        let kicked = std::process::Command::new("doveadm")
            .arg("-c")
            .arg(dc.config_path())
            .args(["kick", USER])
            .output()
            .expect("doveadm kick");
        assert!(kicked.status.success(), "{}", text(&kicked));
        let t0 = Instant::now();
        dc.append(USER, "INBOX", &corpus::varied(1, 500 + round)[0])
            .expect("append");
        let want = 6 + round as usize;
        wait_for("the next message", Duration::from_secs(60), || {
            count(&setup, "work") >= want
        });
        latencies.push(t0.elapsed());
        assert_eq!(count(&setup, "work"), want, "no duplicate");
        assert!(
            server.with(|s| s.presented_refresh.len()) > before,
            "a new access token was obtained with the refresh token"
        );
        wait_for("IDLE again", Duration::from_secs(30), || {
            idles() > idles_before
        });
    }
    let run_log = run.1.clone();
    drop(run);
    assert_mirror(&setup, &dc, USER, "work", "INBOX");
    let presented = server.with(|s| s.presented_refresh.clone());
    assert!(
        reused(&presented).is_empty(),
        "a refresh token was reused: {presented:?}"
    );
    let stored = std::fs::read_to_string(&token_file)
        .expect("rt")
        .trim()
        .to_owned();
    assert_eq!(
        Some(&stored),
        server.with(|s| s.issued_refresh.last().cloned()).as_ref()
    );
    let log = std::fs::read_to_string(&run_log).unwrap_or_default();
    for secret in server.with(|s| {
        let mut all: Vec<String> = s.issued_refresh.clone();
        all.extend(s.issued_access.iter().cloned());
        all.push(CLIENT_SECRET.to_owned());
        all
    }) {
        assert!(
            !log.contains(&secret),
            "a token or the client secret is in the trace log"
        );
    }
    // Dovecot answered the stale token with RFC 7628's error challenge,
    // which mailfeed answered and reported before trying a fresh token.
    assert!(
        log.contains("the server refused the token (status invalid_token)"),
        "no error challenge seen"
    );
    latencies.sort();
    eprintln!(
        "expiry + reconnect + delivery latency, median of 3: {:?}",
        latencies[1]
    );
}

/// An access token is used until shortly before its `expires_in`, then
/// replaced before a login needs it: the reconnect after a dropped
/// connection presents a token that is still good, with no refused attempt.
#[test]
fn run_renews_the_access_token_before_it_expires() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "xoauth2");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let (table, token_file) = client_table(&server, work.path(), "refresh_token");
    std::fs::create_dir_all(token_file.parent().expect("dir")).expect("dir");
    // Tokens live 6 s at the endpoint; mailfeed uses each for half of that.
    let rt = server.with(|s| {
        s.expires_in = 6;
        s.issue_refresh(USER)
    });
    std::fs::write(&token_file, &rt).expect("rt");
    let setup = Setup::new(&[oauth_account(&dc, &cert, "work", &table)], "");
    let run = Running::start(&setup, "trace");
    wait_for("initial sync", Duration::from_secs(30), || {
        count(&setup, "work") == 5
    });
    let refreshes = server.with(|s| s.presented_refresh.len());
    // Past the cached token's usable life, but before the endpoint's expiry.
    std::thread::sleep(Duration::from_millis(3500));
    let kicked = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(dc.config_path())
        .args(["kick", USER])
        .output()
        .expect("doveadm kick");
    assert!(kicked.status.success(), "{}", text(&kicked));
    dc.append(USER, "INBOX", &corpus::varied(1, 61)[0])
        .expect("append");
    wait_for("the next message", Duration::from_secs(30), || {
        count(&setup, "work") == 6
    });
    assert!(
        server.with(|s| s.presented_refresh.len()) > refreshes,
        "a new access token was fetched for the reconnect"
    );
    let log = std::fs::read_to_string(&run.1).unwrap_or_default();
    assert!(
        !log.contains("refused the token"),
        "a stale token was presented"
    );
    assert!(!dc.log().contains("Authentication failed"), "{}", dc.log());
    drop(run);
}

#[test]
fn invalid_grant_stops_that_account_with_the_hint_while_another_keeps_syncing() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "xoauth2");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let (table, token_file) = client_table(&server, work.path(), "refresh_token");
    std::fs::create_dir_all(token_file.parent().expect("dir")).expect("dir");
    // A refresh token the endpoint never issued: revoked, as far as it knows.
    std::fs::write(&token_file, "rt-revoked-long-ago").expect("rt");
    // The other account: `run` with XOAUTH2 from a token command.
    let token = work.path().join("token");
    std::fs::write(&token, server.with(|s| s.issue_access(USER))).expect("token");
    let fine = format!(
        "auth = \"oauth2\"\noauth2_token_command = \"cat {}\"\n",
        token.display()
    );
    let setup = Setup::new(
        &[
            oauth_account(&dc, &cert, "revoked", &table),
            oauth_account(&dc, &cert, "fine", &fine),
        ],
        "",
    );
    let run = Running::start(&setup, "trace");
    wait_for("the other account's sync", Duration::from_secs(30), || {
        count(&setup, "fine") == 5
    });
    let log = || std::fs::read_to_string(&run.1).unwrap_or_default();
    wait_for("the invalid_grant report", Duration::from_secs(30), || {
        log().contains("invalid_grant")
    });
    let l = log();
    let line = l
        .lines()
        .find(|x| x.contains("invalid_grant"))
        .expect("line");
    assert!(line.contains("ERROR"), "reported loudly: {line}");
    assert!(line.contains("run `mailfeed auth revoked`"), "{line}");
    dc.append(USER, "INBOX", &corpus::varied(1, 77)[0])
        .expect("append");
    wait_for(
        "new mail on the other account",
        Duration::from_secs(30),
        || count(&setup, "fine") == 6,
    );
    assert_eq!(count(&setup, "revoked"), 0);
    assert!(dc.log().contains("method=XOAUTH2"));
    // The long auth backoff: one refresh attempt, not a stream of them.
    std::thread::sleep(Duration::from_secs(2));
    let attempts = server.with(|s| s.presented_refresh.len());
    assert!(attempts <= 2, "{attempts} refresh attempts");
    drop(run);
}

#[test]
fn mailfeed_auth_by_device_code_then_sync() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "xoauth2");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let (table, token_file) = client_table(&server, work.path(), "refresh_token");
    server.with(|s| {
        s.device_pending = 2;
        s.device_user = Some(USER.to_owned());
    });
    let setup = Setup::new(&[oauth_account(&dc, &cert, "work", &table)], "");
    let out = setup.run(&["auth", "work"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("open https://example.test/device and enter the code WDJB-MJHT"),
        "{t}"
    );
    assert!(token_file.exists(), "{t}");
    let polls = server.with(|s| {
        s.requests
            .iter()
            .filter(|r| r.contains("device_code"))
            .count()
    });
    assert_eq!(polls, 3, "polled through authorization_pending");
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "work", "INBOX");
}

/// GET `url` on loopback; returns the status line and the Location header.
fn http_get(url: &str) -> (String, Option<String>) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let status = answer.lines().next().unwrap_or("").to_owned();
    let location = answer
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .map(str::to_owned);
    (status, location)
}

#[test]
fn mailfeed_auth_by_loopback_redirect_with_pkce_then_sync() {
    let server = OAuthServer::start();
    let conf = conf_dir();
    let dc = dovecot(&server, conf.path(), "oauthbearer");
    let cert = dc.cert_path();
    let work = tempfile::tempdir().expect("tempdir");
    let (table, token_file) = client_table(&server, work.path(), "refresh_token");
    // No device endpoint (like Google): the browser flow.
    let table = table.replace(
        &format!("device_url = \"{}\"", server.url("/device")),
        &format!("auth_url = \"{}\"", server.url("/authorize")),
    );
    server.with(|s| s.browser_user = Some(USER.to_owned()));
    let setup = Setup::new(&[oauth_account(&dc, &cert, "work", &table)], "");
    let mut child = setup
        .command(&["auth", "work"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auth");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let l = lines.next().expect("a line").expect("utf-8");
        if l.starts_with("http://") {
            break l;
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{url}"
    );
    // The browser: the provider's page redirects to mailfeed's listener.
    let (status, location) = http_get(&url);
    assert!(status.contains("302"), "{status}");
    let location = location.expect("redirect");
    // A stray request without the state is ignored, not taken as the answer.
    let stray = location.split('?').next().expect("base").to_owned() + "favicon.ico";
    assert!(http_get(&stray).0.contains("404"));
    let (status, _) = http_get(&location);
    assert!(status.contains("200"), "{status}");
    let exit = child.wait().expect("wait");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(exit.success(), "{rest:?}");
    assert!(token_file.exists());
    setup.sync_ok();
    assert_mirror(&setup, &dc, USER, "work", "INBOX");
}
