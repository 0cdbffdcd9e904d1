use std::path::{Path, PathBuf};

use super::sizes::{SizeValue, parse_size};
use super::*;

#[test]
fn syntax_errors_name_the_place_but_never_quote_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.toml");
    for (text, line) in [
        ("password = hunter2secret\n", 7),
        ("password = \"hunter2secret\n", 7),
        ("password = 'hunter2secret\"\n", 7),
    ] {
        let file = format!(
            "[store]\npath = \"x.db\"\n[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n{text}folders = [\"INBOX\"]\n"
        );
        std::fs::write(&path, file).expect("write");
        let err = match Config::load(&path) {
            Ok(_) => panic!("a syntax error was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(err.matches("m.toml").count(), 1, "{err}");
    }
}

fn parse(text: &str) -> Result<Config, String> {
    Config::from_toml(text, Path::new("/etc/mailfeed")).map_err(|e| e.to_string())
}

const MINIMAL: &str = r#"
    [store]
    path = "mail.db"
    [[accounts]]
    name = "work"
    host = "imap.example.org"
    username = "me"
    password_env = "PW"
    folders = ["INBOX"]
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).expect("valid");
    assert_eq!(c.store.path, PathBuf::from("/etc/mailfeed/mail.db"));
    let a = &c.accounts[0];
    assert_eq!(
        (a.port, a.security, a.idle, a.max_connections),
        (993, Security::Tls, true, 5)
    );
    assert_eq!(c.sync.batch_size, 500);
    assert_eq!(c.sync.max_message_size, 100_000_000);
    assert_eq!(a.poll_interval, Duration::from_secs(300));
}

/// Gmail refuses a 16th connection (all clients together): fewer by
/// default, more than 15 refused with the key named; the daily limit
/// reads like other sizes.
#[test]
fn gmail_limits() {
    let gmail = MINIMAL.replace("imap.example.org", "imap.gmail.com");
    let c = parse(&gmail).expect("valid");
    assert_eq!(c.accounts[0].max_connections, 3);
    assert_eq!(c.accounts[0].daily_download_limit, None);
    let e = parse(&gmail.replace("username", "max_connections = 16\nusername"))
        .expect_err("over Gmail's limit")
        .to_string();
    assert!(
        e.contains("accounts[0].max_connections") && e.contains("15"),
        "{e}"
    );
    let c =
        parse(&gmail.replace("username", "max_connections = 15\nusername")).expect("at the limit");
    assert_eq!(c.accounts[0].max_connections, 15);
    let c = parse(&MINIMAL.replace("username", "daily_download_limit = \"2500MB\"\nusername"))
        .expect("valid");
    assert_eq!(c.accounts[0].daily_download_limit, Some(2_500_000_000));
    let e = parse(&MINIMAL.replace("username", "daily_download_limit = \"0MB\"\nusername"))
        .expect_err("zero")
        .to_string();
    assert!(e.contains("accounts[0].daily_download_limit"), "{e}");
}

#[test]
fn store_url_selects_postgresql() {
    let c = parse(&MINIMAL.replace(
        "path = \"mail.db\"",
        "url = \"postgresql://feed:pg-secret-93@db.example/mail\"\npassword_file = \"pw\"",
    ))
    .expect("parse");
    let pg = c.store.postgres.expect("postgres store");
    assert_eq!(
        pg.url.expose(),
        "postgresql://feed:pg-secret-93@db.example/mail"
    );
    assert!(pg.password_file.expect("file").ends_with("pw"));
    assert!(!format!("{:?}", c.store.path).contains("secret"));
    assert!(
        !crate::secret::scrub("x postgresql://feed:pg-secret-93@db.example/mail")
            .contains("pg-secret-93")
    );
}

/// Only the password of a store URL is secret: a URL without one stays
/// readable in errors, which name the server they could not reach.
#[test]
fn store_url_without_a_password_is_not_masked() {
    let url = "postgresql://feed-nopw@db-nopw.example:5433/mail";
    let c =
        parse(&MINIMAL.replace("path = \"mail.db\"", &format!("url = \"{url}\""))).expect("parse");
    assert!(c.store.postgres.is_some());
    let line = format!("connecting to {url}: refused");
    assert_eq!(crate::secret::scrub(&line), line);
}

#[test]
fn lease_period_defaults_validates_and_is_postgresql_only() {
    let pg = |extra: &str| {
        parse(&MINIMAL.replace(
            "path = \"mail.db\"",
            &format!("url = \"postgresql://feed@db.example/mail\"\n{extra}"),
        ))
    };
    let c = pg("").expect("default");
    assert_eq!(
        c.store.postgres.expect("pg").lease_period,
        Duration::from_secs(30)
    );
    let c = pg("lease_period = \"1m\"").expect("1m");
    assert_eq!(
        c.store.postgres.expect("pg").lease_period,
        Duration::from_secs(60)
    );
    for bad in [
        "lease_period = \"1s\"",
        "lease_period = \"2h\"",
        "lease_period = \"soon\"",
    ] {
        let e = pg(bad).expect_err(bad);
        assert!(e.contains("store.lease_period"), "{e}");
    }
    let e = parse(&MINIMAL.replace(
        "path = \"mail.db\"",
        "path = \"mail.db\"\nlease_period = \"30s\"",
    ))
    .expect_err("sqlite");
    assert!(
        e.contains("store.lease_period") && e.contains("store.url"),
        "{e}"
    );
}

#[test]
fn store_ca_file_is_resolved_and_postgresql_only() {
    let c = parse(&MINIMAL.replace(
        "path = \"mail.db\"",
        "url = \"postgresql://feed@db.example/mail\"\nca_file = \"db-ca.pem\"",
    ))
    .expect("ca_file");
    let ca = c.store.postgres.expect("pg").ca_file.expect("ca_file");
    assert!(ca.is_absolute() && ca.ends_with("db-ca.pem"), "{ca:?}");
    let e = parse(&MINIMAL.replace(
        "path = \"mail.db\"",
        "path = \"mail.db\"\nca_file = \"db-ca.pem\"",
    ))
    .expect_err("sqlite");
    assert!(
        e.contains("store.ca_file") && e.contains("store.url"),
        "{e}"
    );
}

#[test]
fn mistakes_name_the_key_and_the_fix() {
    let cases = [
        (MINIMAL.replace("host =", "hots ="), "hots"),
        (
            MINIMAL.replace("password_env = \"PW\"", ""),
            "exactly one of",
        ),
        (
            MINIMAL.replace("folders = [\"INBOX\"]", "folders = []"),
            "accounts[0].folders",
        ),
        (
            MINIMAL.replace("username", "security = \"plain\"\nusername"),
            "allow_plaintext",
        ),
        (
            MINIMAL.replace("[store]", "[sync]\ntimeout = \"5 fortnights\"\n[store]"),
            "sync.timeout",
        ),
        (
            MINIMAL.replace("[store]", "[sync]\nmax_message_size = \"1PB\"\n[store]"),
            "max_message_size",
        ),
        (
            MINIMAL.replace("[store]", "[sync]\nmax_line_size = \"1KB\"\n[store]"),
            "sync.max_line_size",
        ),
        (MINIMAL.replace("path = \"mail.db\"", ""), "store.path"),
        (
            MINIMAL.replace(
                "path = \"mail.db\"",
                "path = \"mail.db\"\nurl = \"postgresql://u@h/d\"",
            ),
            "`store.path` and `store.url` are both set",
        ),
        (
            MINIMAL.replace(
                "path = \"mail.db\"",
                "path = \"mail.db\"\npassword_file = \"pw\"",
            ),
            "needs `store.url`",
        ),
        (
            MINIMAL.replace("path = \"mail.db\"", "url = \"mysql://u@h/d\""),
            "`store.url` must start with postgresql://",
        ),
        (
            MINIMAL
                .replace("security", "x")
                .replace("host =", "security = \"ssl\"\nhost ="),
            "security",
        ),
    ];
    for (text, needle) in cases {
        let e = parse(&text).expect_err("should be refused");
        assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
    }
}

#[test]
fn durations_and_sizes() {
    let d = |s: &str| parse_duration("k", &DurationValue::Text(s.into()));
    assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
    assert!(d("soon").is_err());
    assert_eq!(d("1d"), Ok(Duration::from_secs(86400)));
    assert!(d("8d").is_err());
    assert!(d("100000000000000000000s").is_err());
    assert!(parse_duration("k", &DurationValue::Seconds(u64::MAX)).is_err());
    let s = |t: &str| parse_size("k", &SizeValue::Text(t.into()));
    assert_eq!(s("100MB"), Ok(100_000_000));
    assert_eq!(s("64KiB"), Ok(65536));
    assert!(s("12 parsecs").is_err());
}

#[test]
fn every_duration_key_has_a_range() {
    let with_sync = |line: &str| MINIMAL.replace("[store]", &format!("[sync]\n{line}\n[store]"));
    let with_account = |line: &str| MINIMAL.replace("username", &format!("{line}\nusername"));
    let refused = [
        // Values `Duration` cannot hold must be errors, not panics.
        (
            with_sync("timeout = \"100000000000000000000s\""),
            "`sync.timeout`",
        ),
        (
            with_sync("poll_interval = \"1e400s\""),
            "`sync.poll_interval`",
        ),
        (
            with_sync("idle_refresh = \"99999999999999999999h\""),
            "`sync.idle_refresh`",
        ),
        (
            with_account("poll_interval = \"100000000000000000000s\""),
            "`accounts[0].poll_interval`",
        ),
        // Integers that fit but would overflow deadlines built from them.
        (with_sync("timeout = 9223372036854775807"), "`sync.timeout`"),
        (with_sync("timeout = \"2h\""), "`sync.timeout`"),
        (
            with_sync("poll_interval = 9223372036854775807"),
            "`sync.poll_interval`",
        ),
        (with_sync("poll_interval = \"3d\""), "`sync.poll_interval`"),
        // A poller that never pauses.
        (
            with_account("poll_interval = 0"),
            "`accounts[0].poll_interval`",
        ),
        (
            with_account("poll_interval = \"0s\""),
            "`accounts[0].poll_interval`",
        ),
        (
            with_account("poll_interval = \"2d\""),
            "`accounts[0].poll_interval`",
        ),
        (with_sync("timeout = 0"), "`sync.timeout`"),
    ];
    for (text, key) in refused {
        let e = parse(&text).expect_err(&format!("{key} should be refused in {text}"));
        assert!(e.contains(key), "error {e:?} should name {key}");
        assert!(
            e.contains("use ") || e.contains("up to"),
            "error {e:?} should say what to write"
        );
    }
    let c = parse(&with_account("poll_interval = \"30s\"")).expect("valid");
    assert_eq!(c.accounts[0].poll_interval, Duration::from_secs(30));
    let c = parse(&with_sync("timeout = \"1h\"\npoll_interval = \"24h\"")).expect("valid");
    assert_eq!(c.sync.timeout, Duration::from_secs(3600));
    assert_eq!(c.accounts[0].poll_interval, Duration::from_secs(24 * 3600));
}

#[test]
fn oauth2_sources_are_exactly_one_and_mistakes_name_the_key() {
    let base = MINIMAL.replace("password_env = \"PW\"\n", "");
    let with = |lines: &str| base.replace("folders", &format!("{lines}\nfolders"));
    let table = |t: &str| format!("{}\n[accounts.oauth2]\n{t}\n", with("auth = \"oauth2\""));
    let refused = [
        (with("auth = \"oauth2\""), "needs a token source"),
        (
            with("auth = \"oauth2\"\npassword_env = \"PW\""),
            "takes no password",
        ),
        (
            with("oauth2_token_command = \"oama access x\""),
            "`accounts[0].auth` = \"oauth2\"",
        ),
        (
            table("client_id = \"c\""),
            "`accounts[0].oauth2.provider` is missing",
        ),
        (
            table("provider = \"google\""),
            "`accounts[0].oauth2.client_id` is missing",
        ),
        (
            table("provider = \"custom\"\nclient_id = \"c\"\nscope = \"s\""),
            "`accounts[0].oauth2.token_url` is missing",
        ),
        (
            table(
                "provider = \"custom\"\nclient_id = \"c\"\nscope = \"s\"\ntoken_url = \"http://idp.example/token\"",
            ),
            "must be an https:// URL",
        ),
        (
            table(
                "provider = \"microsoft\"\nclient_id = \"c\"\ngrant = \"client_credentials\"\nclient_secret = \"x\"",
            ),
            "must name your tenant",
        ),
        (
            table(
                "provider = \"microsoft\"\nclient_id = \"c\"\ntenant = \"contoso.onmicrosoft.com\"\ngrant = \"client_credentials\"",
            ),
            "needs `accounts[0].oauth2.client_secret`",
        ),
        (
            table(
                "provider = \"google\"\nclient_id = \"c\"\nclient_secret = \"a\"\nclient_secret_file = \"b\"",
            ),
            "set only one of",
        ),
        (
            table("provider = \"google\"\nclient_id = \"c\"\ntenant = \"common\""),
            "for provider = \"microsoft\" only",
        ),
        (
            MINIMAL.replace("folders", "tls_fingerprint = \"sha1:00\"\nfolders"),
            "`accounts[0].tls_fingerprint`",
        ),
    ];
    for (text, needle) in refused {
        let e = parse(&text).expect_err(&format!("should be refused: {text}"));
        assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
    }
}

#[test]
fn oauth2_providers_fill_in_their_endpoints() {
    let base = MINIMAL.replace("password_env = \"PW\"\n", "auth = \"oauth2\"\n");
    let c = parse(&format!(
        "{base}\n[accounts.oauth2]\nprovider = \"microsoft\"\nclient_id = \"c\"\ntenant = \"contoso.com\"\nclient_secret_file = \"$CREDENTIALS_DIRECTORY/secret\"\n"
    ))
    .expect("valid");
    let Auth::OAuth2(OAuth2Source::Client(o)) = &c.accounts[0].auth else {
        panic!("not an OAuth2 client: {:?}", c.accounts[0].auth)
    };
    assert_eq!(
        o.token_url,
        "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    );
    assert!(o.scope.contains("IMAP.AccessAsUser.All") && o.scope.contains("offline_access"));
    assert_eq!(o.grant, Grant::RefreshToken);
    // Beside the database, named after the account.
    assert_eq!(
        o.token_file,
        PathBuf::from("/etc/mailfeed/work.oauth2-token")
    );
    let c = parse(&format!(
        "{base}\n[accounts.oauth2]\nprovider = \"google\"\nclient_id = \"c\"\n"
    ))
    .expect("valid");
    let Auth::OAuth2(OAuth2Source::Client(o)) = &c.accounts[0].auth else {
        panic!("not an OAuth2 client")
    };
    assert_eq!(
        o.device_url, None,
        "Google's device flow refuses the mail scope"
    );
    assert_eq!(o.scope, "https://mail.google.com/");
    let c = parse(&base.replace(
        "auth = \"oauth2\"",
        "auth = \"oauth2\"\noauth2_token_command = \"oama access me\"",
    ))
    .expect("valid");
    assert_eq!(
        c.accounts[0].auth,
        Auth::OAuth2(OAuth2Source::Command("oama access me".into()))
    );
}

#[test]
fn password_sources_resolve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("pw");
    std::fs::write(&f, "s3cret\n").expect("write");
    let s = PasswordSource::File(f).resolve("a").expect("file");
    assert_eq!(s.expose(), "s3cret");
    let s = PasswordSource::Command("printf 'from-cmd\\n'".into())
        .resolve("a")
        .expect("command");
    assert_eq!(s.expose(), "from-cmd");
    assert!(
        PasswordSource::Env("MAILFEED_TEST_SURELY_UNSET".into())
            .resolve("a")
            .is_err()
    );
}
