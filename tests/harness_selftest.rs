//! Proves the test harness itself works: private Dovecot instances, the
//! `imap_truth` client and the corpus generators. If these fail, no other
//! integration test can be trusted.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::Dovecot;
use support::imap_truth::ImapClient;

fn start_alice() -> Dovecot {
    Dovecot::start_with_users(&[("alice", "secret")]).expect("starting a private Dovecot")
}

/// What the server should send back for BODY[]: bare LF becomes CRLF.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn two_instances_in_parallel_store_and_return_mail() {
    let handles: Vec<_> = (0..2u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let dc = start_alice();
                let mail = corpus::varied(40, seed);
                let uids = dc
                    .append_many("alice", "INBOX", &mail)
                    .expect("append_many");
                assert_eq!(uids, (1..=40).collect::<Vec<u32>>());
                let mut c = dc.login("alice").expect("login");
                c.examine("INBOX").expect("examine");
                let fetched = c.fetch_all().expect("fetch");
                assert_eq!(fetched.len(), mail.len());
                for ((uid, body), sent) in fetched.iter().zip(&mail) {
                    assert!(
                        *body == crlf(sent),
                        "UID {uid} differs from what was appended ({} vs {} bytes)",
                        body.len(),
                        sent.len()
                    );
                }
                (
                    dc.plain_port(),
                    dc.tls_port(),
                    dc.instance_name().to_string(),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_ne!(results[0].0, results[1].0);
    assert_ne!(results[0].1, results[1].1);
    assert_ne!(results[0].2, results[1].2);
}

#[test]
fn single_append_and_users_added_later() {
    let mut dc = Dovecot::start().expect("start");
    dc.add_user("bob", "pw2").expect("add user while running");
    let uid = dc
        .append("bob", "INBOX", b"Subject: hi\r\n\r\nhello\r\n")
        .expect("append");
    assert_eq!(uid, 1);
    let all = dc.fetch_all("bob", "INBOX").expect("fetch");
    assert_eq!(all, vec![(1, b"Subject: hi\r\n\r\nhello\r\n".to_vec())]);
    assert!(ImapClient::connect_login(dc.plain_port(), "bob", "wrong").is_err());
}

#[test]
fn capabilities_include_what_sync_relies_on() {
    let dc = start_alice();
    let mut c = dc.login("alice").expect("login");
    let caps = c.capabilities().expect("capabilities");
    for needed in [
        "IDLE",
        "CONDSTORE",
        "QRESYNC",
        "UIDPLUS",
        "LITERAL+",
        "MULTIAPPEND",
        "ENABLE",
    ] {
        assert!(
            caps.iter().any(|c| c == needed),
            "missing {needed} in {caps:?}"
        );
    }
    let sel = c.select("INBOX").expect("select");
    assert!(
        sel.highest_modseq.is_some(),
        "SELECT (CONDSTORE) gave no HIGHESTMODSEQ"
    );
}

#[test]
fn tls_port_presents_the_test_certificate() {
    let dc = start_alice();
    let pem = std::fs::read(dc.cert_path()).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("PEM")).expect("trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    for name in ["127.0.0.1", "localhost"] {
        let server_name = rustls::pki_types::ServerName::try_from(name).expect("name");
        let conn =
            rustls::ClientConnection::new(Arc::new(config.clone()), server_name).expect("tls");
        let sock = TcpStream::connect(("127.0.0.1", dc.tls_port())).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut greeting = [0u8; 5];
        tls.read_exact(&mut greeting)
            .expect("TLS handshake and greeting");
        assert_eq!(&greeting, b"* OK ");
        tls.write_all(b"a LOGOUT\r\n").expect("write");
    }
}

#[test]
fn stop_and_start_again_keep_mail_and_ports() {
    let mut dc = start_alice();
    let mail = corpus::varied(5, 7);
    dc.append_many("alice", "INBOX", &mail).expect("append");
    let before = dc.fetch_all("alice", "INBOX").expect("fetch");
    let validity = dc.uid_validity("alice", "INBOX").expect("status");
    let (plain, tls) = (dc.plain_port(), dc.tls_port());
    let mut held = dc.login("alice").expect("login");

    dc.stop().expect("stop");
    assert!(!dc.is_running());
    assert!(
        TcpStream::connect(("127.0.0.1", plain)).is_err(),
        "port still open after stop"
    );
    assert!(held.capabilities().is_err(), "client survived stop");

    dc.start_again().expect("start again");
    assert_eq!((dc.plain_port(), dc.tls_port()), (plain, tls));
    assert_eq!(dc.fetch_all("alice", "INBOX").expect("fetch"), before);
    assert_eq!(dc.uid_validity("alice", "INBOX").expect("status"), validity);
}

#[test]
fn delete_and_create_change_uidvalidity() {
    let dc = start_alice();
    dc.create_folder("alice", "Archive/2024").expect("create");
    dc.append("alice", "Archive/2024", b"Subject: a\r\n\r\nx\r\n")
        .expect("append");
    let first = dc.uid_validity("alice", "Archive/2024").expect("status");
    dc.delete_folder("alice", "Archive/2024").expect("delete");
    dc.create_folder("alice", "Archive/2024")
        .expect("create again");
    let second = dc.uid_validity("alice", "Archive/2024").expect("status");
    assert_ne!(first, second);
    let uid = dc
        .append("alice", "Archive/2024", b"Subject: b\r\n\r\ny\r\n")
        .expect("append");
    assert_eq!(uid, 1, "UIDs restart after re-creation");

    let mut c = dc.login("alice").expect("login");
    c.create("Größe & Co").expect("non-ASCII folder");
    assert!(
        c.list()
            .expect("list")
            .iter()
            .any(|l| l.contains("Gr&APYA3w-e &- Co"))
    );
}

#[test]
fn flags_and_expunge_are_visible() {
    let dc = start_alice();
    dc.append_many("alice", "INBOX", &corpus::varied(6, 3))
        .expect("append");
    let mut c = dc.login("alice").expect("login");
    c.select("INBOX").expect("select");
    let modseq = c.status("INBOX").expect("status").highest_modseq;
    c.add_flags(&[2, 3], &["\\Seen", "\\Flagged"])
        .expect("store");
    c.remove_flags(&[3], &["\\Flagged"]).expect("store");
    let flags = c.fetch_flags().expect("flags");
    assert_eq!(
        flags[1],
        (2, vec!["\\Flagged".to_string(), "\\Seen".to_string()])
    );
    assert_eq!(flags[2], (3, vec!["\\Seen".to_string()]));
    assert!(c.status("INBOX").expect("status").highest_modseq > modseq);
    c.delete_uids(&[1, 4]).expect("expunge");
    assert_eq!(c.uids().expect("search"), vec![2, 3, 5, 6]);
}

#[test]
fn idle_announces_new_mail_quickly() {
    let dc = start_alice();
    let mut idler = dc.login("alice").expect("login");
    idler.select("INBOX").expect("select");
    let appender = {
        let port = dc.plain_port();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut c = ImapClient::connect_login(port, "alice", "secret").expect("login");
            c.append("INBOX", &[], b"Subject: new\r\n\r\nnew\r\n")
                .expect("append");
        })
    };
    let started = Instant::now();
    let seen = idler.idle_wait(Duration::from_secs(5)).expect("idle");
    appender.join().expect("appender");
    assert!(
        seen.iter().any(|l| l.ends_with("EXISTS")),
        "no EXISTS in {seen:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "IDLE took {:?}",
        started.elapsed()
    );
}

#[test]
fn bulk_append_is_fast() {
    let dc = start_alice();
    let mail = corpus::sized(2000, 1, 1_000, 20_000);
    let started = Instant::now();
    let uids = dc.append_many("alice", "INBOX", &mail).expect("append");
    let took = started.elapsed();
    assert_eq!(uids.len(), 2000);
    assert!(
        took < Duration::from_secs(30),
        "2000 messages took {took:?}"
    );
    let mut c = dc.login("alice").expect("login");
    assert_eq!(c.examine("INBOX").expect("examine").exists, 2000);
}

#[test]
fn corpus_is_deterministic_and_varied() {
    assert_eq!(corpus::varied(30, 9), corpus::varied(30, 9));
    assert_ne!(corpus::varied(30, 9), corpus::varied(30, 10));
    let samples = corpus::varied_samples(corpus::KINDS.len() * 2, 1);
    let sizes: Vec<usize> = samples.iter().map(|s| s.bytes.len()).collect();
    assert!(*sizes.iter().min().expect("some") >= 300, "{sizes:?}");
    assert!(*sizes.iter().max().expect("some") >= 100_000, "{sizes:?}");
    let bare_lf = samples
        .iter()
        .find(|s| s.kind == "bare-lf")
        .expect("bare-lf");
    assert!(!bare_lf.bytes.contains(&b'\r'));
    assert!(samples.iter().any(|s| s.message_id.is_none()));
    assert!(samples.iter().any(|s| !s.bytes.is_ascii()));

    let sized = corpus::sized(50, 2, 500, 5_000);
    assert!(sized.iter().all(|m| (500..=5_000).contains(&m.len())));
}

#[test]
fn mail_parser_samples_load_into_dovecot() {
    let samples = corpus::mail_parser_samples();
    assert!(
        samples.len() > 50,
        "mail-parser test messages not found (run `cargo fetch`)"
    );
    let dc = start_alice();
    let without_nul: Vec<&[u8]> = samples
        .iter()
        .map(|(_, b)| b.as_slice())
        .filter(|b| !b.contains(&0))
        .collect();
    let uids = dc
        .append_many("alice", "INBOX", &without_nul)
        .expect("append");
    assert_eq!(uids.len(), without_nul.len());
}
