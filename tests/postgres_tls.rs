//! TLS to a private PostgreSQL (`ssl = on`, `hostssl` alone in pg_hba.conf,
//! so no login succeeds in plain text) serving a certificate made the way
//! users make one (`openssl req -x509 -newkey … -nodes`, which openssl
//! marks CA:TRUE), with the trust rules of IMAP:
//!
//! * `store.ca_file` = that certificate: `sync` stores the mailbox and the
//!   feed equals the server;
//! * without it: refused (its issuer unknown), one line naming `store.ca_file`;
//! * a certificate for another name: refused, naming the host;
//! * `sslmode=disable` against the TLS-only server: refused, naming
//!   `sslmode=require`.
//!
//! The password is in the URL each time and in no error.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use mailfeed::config::{PostgresStore, StoreConfig, Synchronous};
use mailfeed::secret::Secret;
use mailfeed::store::Reader;
use support::certificate::{text, users_certificate};
use support::corpus;
use support::dovecot::Dovecot;
use support::mailfeed::{Account, Setup};
use support::postgres::{PASSWORD, Postgres, ServerTls, USER};

const MAIL_USER: &str = "tlsuser";
const MAIL_PASS: &str = "tlsuser-pw-88";

/// A server whose certificate is `cert`, TLS-only, with one database;
/// returns it and the database name.
fn tls_server(cert: &Path, key: &Path) -> (Postgres, String) {
    let pg = Postgres::start_tls(&ServerTls {
        cert,
        key,
        tls_only: true,
    })
    .expect("postgres with TLS");
    let url = pg.create_database().expect("database");
    let name = url.rsplit('/').next().expect("name").to_owned();
    (pg, name)
}

/// A configuration for one Dovecot account whose store is `url`, with
/// `ca_file` when given.
fn setup(dc: &Dovecot, url: &str, ca_file: Option<&Path>) -> Setup {
    let s = Setup::new(
        &[Account::plain(dc, MAIL_USER, MAIL_PASS, &["INBOX"])],
        "batch_size = 20",
    );
    let mut store = format!("url = \"{url}\"");
    if let Some(ca) = ca_file {
        store.push_str(&format!("\nca_file = \"{}\"", ca.display()));
    }
    let config = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(&s.config, config.replace("path = \"mail.db\"", &store)).expect("config");
    s
}

/// Runs `sync`, expecting a refusal; returns its output, checked to be
/// free of the password.
fn refused(s: &Setup) -> String {
    let out = s.run(&["sync"]);
    let t = text(&out);
    assert!(!out.status.success(), "sync should have been refused: {t}");
    assert!(!t.contains(PASSWORD), "the password leaked: {t}");
    t
}

#[test]
fn tls_to_postgres_is_verified_with_the_trust_rules_of_imap() {
    let work = tempfile::tempdir().expect("temp dir");
    let (cert, key) =
        users_certificate(work.path(), "good", "db.test", "DNS:localhost,IP:127.0.0.1");
    // The point of the self-signed case: openssl made it a CA certificate.
    let shown = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    assert!(text(&shown).contains("CA:TRUE"), "{}", text(&shown));

    let dc = Dovecot::start_with_users(&[(MAIL_USER, MAIL_PASS)]).expect("dovecot");
    dc.append_many(MAIL_USER, "INBOX", &corpus::varied(30, 16))
        .expect("append");
    let (pg, db) = tls_server(&cert, &key);
    let url = format!(
        "postgresql://{USER}:{PASSWORD}@localhost:{}/{db}?sslmode=verify-full",
        pg.port()
    );

    // Trusted through `store.ca_file`: syncs, and the feed is the server's.
    let good = setup(&dc, &url, Some(&cert));
    let out = good.sync_ok();
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));
    let reader = Reader::open_store(&StoreConfig {
        path: PathBuf::new(),
        synchronous: Synchronous::Normal,
        postgres: Some(PostgresStore {
            url: Secret::new(url.clone()),
            password_file: None,
            ca_file: Some(cert.clone()),
            lease_period: mailfeed::config::DEFAULT_LEASE_PERIOD,
        }),
    })
    .expect("reader over TLS");
    let stored: Vec<(u32, Vec<u8>)> = reader
        .feed_of("test", "INBOX")
        .expect("feed")
        .into_iter()
        .map(|m| (m.uid, m.raw))
        .collect();
    assert_eq!(stored, dc.fetch_all(MAIL_USER, "INBOX").expect("truth"));
    // The same trust through libpq's own spelling, sslrootcert.
    let rooted = setup(&dc, &format!("{url}&sslrootcert={}", cert.display()), None);
    rooted.sync_ok();

    // Not trusted: the system's roots do not know a self-signed cert.
    let t = refused(&setup(&dc, &url, None));
    let line = t
        .lines()
        .find(|l| l.contains("store.ca_file"))
        .unwrap_or_else(|| panic!("no line names `store.ca_file`: {t}"));
    // webpki names a self-signed CA:TRUE certificate it has no root for
    // CaUsedAsEndEntity rather than UnknownIssuer; the words say which.
    assert!(
        (line.contains("UnknownIssuer") || line.contains("CaUsedAsEndEntity"))
            && line.contains("issuer is unknown"),
        "{line}"
    );
    assert!(line.contains(&format!("localhost:{}", pg.port())), "{line}");

    // Loopback with no sslmode but a CA file: TLS too, and verified.
    let default_url = format!(
        "postgresql://{USER}:{PASSWORD}@127.0.0.1:{}/{db}",
        pg.port()
    );
    setup(&dc, &default_url, Some(&cert)).sync_ok();

    // Plain text chosen against a server that insists on TLS.
    let t = refused(&setup(&dc, &format!("{default_url}?sslmode=disable"), None));
    assert!(
        t.contains("no encryption") && t.contains("sslmode=require"),
        "{t}"
    );
    drop(pg);

    // A trusted certificate for another name: refused, naming the host.
    let (other, other_key) =
        users_certificate(work.path(), "other", "db.test", "DNS:db.example.org");
    let (pg, db) = tls_server(&other, &other_key);
    let url = format!(
        "postgresql://{USER}:{PASSWORD}@127.0.0.1:{}/{db}?sslmode=require",
        pg.port()
    );
    let t = refused(&setup(&dc, &url, Some(&other)));
    assert!(
        t.contains("not valid for name") && t.contains("does not name this host"),
        "{t}"
    );
}
