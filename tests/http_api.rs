//! The read-only HTTP API against a database synced from a private Dovecot:
//! its answers equal the consumer views for the same cursor ranges, bad
//! input is a 4xx (never a 5xx), tokens are required beyond loopback, a
//! 60 MB attachment streams with bounded memory, and `serve` reads a
//! database while `sync` writes it. The cases about the archive's answers
//! are written once and run on both store backends (`…_on_sqlite`,
//! `…_on_postgres`).

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::corpus;
use support::dovecot::{Dovecot, reserve_port};
use support::feed_db::{Backend, FeedDb, P, on_both};
use support::http::{Served, add_http, request};
use support::mailfeed::{Account, Setup};
use support::run::wait_for;

const USER: &str = "alice";
const PASS: &str = "wonderland-7";
const TOKEN: &str = "test-token-0123456789abcdef";

fn dovecot() -> Dovecot {
    Dovecot::start_with_users(&[(USER, PASS)]).expect("start dovecot")
}

/// A message with a hostile attachment name, an HTML body and a text body.
fn named_attachment_message() -> Vec<u8> {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let b64 = String::from_utf8(corpus::base64_lines(&data)).expect("base64 is ASCII");
    format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: quarterly figures\r\n\
         Message-ID: <figures@example.org>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe figures are attached.\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"../../evil\\\";x.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}--b1--\r\n"
    )
    .into_bytes()
}

/// Dovecot with a varied corpus, synced into `store`; `serve` on loopback.
fn synced_and_served(
    store: &Backend,
    extra: &[Vec<u8>],
) -> (Dovecot, Setup, Served, std::fs::File) {
    let dc = dovecot();
    dc.append_many(USER, "INBOX", &corpus::varied(45, 11))
        .expect("append corpus");
    dc.append(USER, "INBOX", &named_attachment_message())
        .expect("append");
    for m in extra {
        dc.append(USER, "INBOX", m).expect("append");
    }
    let mut setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    store.attach(&mut setup);
    setup.sync_ok();
    let (port, lock) = reserve_port().expect("port");
    add_http(&setup, &format!("127.0.0.1:{port}"), None);
    let served = Served::start(&setup, &["serve"], port, None);
    (dc, setup, served, lock)
}

/// Rows of a query on the consumer views as JSON objects, booleans as
/// the API gives them.
fn sql_rows(db: &FeedDb, sql: &str, args: &[P<'_>]) -> Vec<Value> {
    db.json_rows(sql, args)
        .into_iter()
        .map(|mut o| {
            for n in ["truncated", "has_attachments"] {
                if let Some(v) = o.get_mut(n) {
                    *v = json!(v.as_i64() == Some(1));
                }
            }
            Value::Object(o)
        })
        .collect()
}

const FEED_COLUMNS: &str = "id, account, mailbox, uidvalidity, uid, internal_date, size, flags,
     message_id, subject, truncated, stored_at, expunged_at, sent_at, date_raw, from_name,
     from_address, in_reply_to, reference_ids, has_attachments, attachment_count, parse_error";

fn assert_nosniff(a: &support::http::Answer, what: &str) {
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
}

on_both!(
    api_answers_equal_the_sql_views,
    api_answers_equal_the_sql_views_on_sqlite,
    api_answers_equal_the_sql_views_on_postgres
);
fn api_answers_equal_the_sql_views(store: Backend) {
    let (_dc, setup, served, _lock) = synced_and_served(&store, &[]);
    let conn = setup.feed_db();

    // The feed, walked with a small page so cursors matter.
    let mut after = 0i64;
    let mut pages = 0;
    loop {
        let got = served.json(&format!("/api/v1/messages?after_id={after}&limit=7"));
        let want = sql_rows(
            &conn,
            &format!("SELECT {FEED_COLUMNS} FROM message_feed WHERE id > $1 ORDER BY id LIMIT 7"),
            &[P::I(after)],
        );
        assert_eq!(
            got["messages"],
            Value::Array(want.clone()),
            "page after {after}"
        );
        assert_eq!(got["limit"], json!(7));
        if want.is_empty() {
            assert_eq!(got["next_after_id"], json!(after));
            break;
        }
        after = want.last().and_then(|r| r["id"].as_i64()).expect("id");
        assert_eq!(got["next_after_id"], json!(after));
        pages += 1;
    }
    let total = conn.count("SELECT count(*) FROM message_feed", &[]);
    assert_eq!(total, 46);
    assert_eq!(pages, 7);

    // The change log, the same way.
    let mut after = 0i64;
    loop {
        let got = served.json(&format!("/api/v1/events?after_seq={after}&limit=10"));
        let want = sql_rows(
            &conn,
            "SELECT seq, kind, feed_id, account, mailbox, uid, at, detail FROM message_events
             WHERE seq > $1 ORDER BY seq LIMIT 10",
            &[P::I(after)],
        );
        assert_eq!(
            got["events"],
            Value::Array(want.clone()),
            "events after {after}"
        );
        let Some(last) = want.last() else { break };
        after = last["seq"].as_i64().expect("seq");
    }

    // Every message: parsed form, raw bytes, attachments.
    let ids = conn.column::<i64>("SELECT id FROM message_feed ORDER BY id", &[]);
    let mut hashes = BTreeSet::new();
    for id in &ids {
        let m = served.json(&format!("/api/v1/messages/{id}"));
        let row = &sql_rows(
            &conn,
            &format!("SELECT {FEED_COLUMNS} FROM message_feed WHERE id = $1"),
            &[P::I(*id)],
        )[0];
        for (k, v) in row.as_object().expect("row") {
            assert_eq!(&m[k], v, "message {id} column {k}");
        }
        let atts = sql_rows(
            &conn,
            "SELECT position, filename, content_type, content_id, disposition, size, sha256
             FROM message_attachments WHERE feed_id = $1 ORDER BY position",
            &[P::I(*id)],
        );
        assert_eq!(m["attachments"], Value::Array(atts.clone()), "message {id}");
        let addrs = sql_rows(
            &conn,
            "SELECT role, position, name, address FROM message_addresses
             WHERE feed_id = $1 ORDER BY role, position",
            &[P::I(*id)],
        );
        assert_eq!(m["addresses"], Value::Array(addrs), "message {id}");
        let bodies = sql_rows(
            &conn,
            "SELECT text, html FROM message_bodies WHERE feed_id = $1",
            &[P::I(*id)],
        );
        let (text, html) = bodies
            .first()
            .map(|b| (b["text"].clone(), b["html"].clone()))
            .unwrap_or((Value::Null, Value::Null));
        assert_eq!(m["text"], text, "message {id}");
        assert_eq!(m["html"], html, "message {id}");
        assert_eq!(m["expunged"], json!(!row["expunged_at"].is_null()));
        assert!(
            m["headers"].as_array().is_some_and(|h| !h.is_empty()),
            "message {id} headers"
        );

        let raw = conn.one::<Vec<u8>>("SELECT raw FROM message_feed WHERE id = $1", &[P::I(*id)]);
        let a = served.get(&format!("/api/v1/messages/{id}/raw"));
        assert_eq!(a.status, 200);
        assert_eq!(a.body, raw, "raw bytes of {id}");
        assert_eq!(a.header("content-type"), Some("message/rfc822"));
        assert_nosniff(&a, "raw");
        let etag = a.header("etag").expect("etag").to_owned();
        let again = served.get_with(
            &format!("/api/v1/messages/{id}/raw"),
            &[("If-None-Match", &etag)],
        );
        assert_eq!(again.status, 304, "raw {id} with its ETag");
        assert!(again.body.is_empty());
        for a in atts {
            hashes.insert(a["sha256"].as_str().expect("sha").to_owned());
        }
    }
    assert!(hashes.len() >= 3, "the corpus has attachments");
    for sha in &hashes {
        let data = conn.one::<Vec<u8>>(
            "SELECT data FROM attachment_data WHERE sha256 = $1",
            &[P::T(sha)],
        );
        let a = served.get(&format!("/api/v1/attachments/{sha}"));
        assert_eq!(a.status, 200);
        assert_eq!(a.body, data, "attachment {sha}");
        assert_nosniff(&a, "attachment");
        let cd = a.header("content-disposition").expect("disposition");
        assert!(cd.starts_with("attachment; filename=\""), "{cd}");
        assert_eq!(a.header("etag"), Some(format!("\"{sha}\"").as_str()));
    }
    // The hostile file name is cut to its last component, quotes gone.
    let hostile = sql_rows(
        &conn,
        "SELECT sha256 FROM message_attachments WHERE filename LIKE '%evil%'",
        &[],
    )[0]["sha256"]
        .as_str()
        .expect("the hostile attachment")
        .to_owned();
    let a = served.get(&format!("/api/v1/attachments/{hostile}"));
    let cd = a.header("content-disposition").expect("disposition");
    assert!(
        cd.starts_with("attachment; filename=\"evil_;x.bin\"")
            || cd.starts_with("attachment; filename=\"evil__x.bin\""),
        "{cd}"
    );
    assert!(!cd.contains(".."), "{cd}");

    // Search: the same ids, in the same order, as the query of
    // docs/consumer-contract.md on each backend.
    let got = served.json("/api/v1/search?q=message&limit=500");
    let want = conn.column::<i64>(
        if conn.is_postgres() {
            "SELECT f.id FROM message_search s JOIN messages m ON m.id = s.message_id
             JOIN message_feed f ON f.id = m.position
             WHERE s.document @@ websearch_to_tsquery('simple', 'message')
             ORDER BY ts_rank(s.document, websearch_to_tsquery('simple', 'message')) DESC, f.id
             LIMIT 500"
        } else {
            "SELECT f.id FROM message_search s JOIN message_feed f ON f.id = s.rowid
             WHERE message_search MATCH 'message' ORDER BY s.rank LIMIT 500"
        },
        &[],
    );
    let got_ids: Vec<i64> = got["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got_ids, want);
    // A word of the bodies: snippets mark it.
    let got = served.json("/api/v1/search?q=meeting&limit=500");
    let snippets: Vec<&str> = got["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["snippet"].as_str())
        .collect();
    assert!(
        snippets
            .iter()
            .any(|s| s.to_lowercase().contains("[meeting]")),
        "a snippet marks the match in a body: {snippets:?}"
    );

    // Status: what `status --json` prints.
    let out = setup.run(&["status", "--json"]);
    assert!(out.status.success());
    let cli: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(served.json("/api/v1/status"), cli);

    // The page and its assets, and the document, with their headers.
    for path in [
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/api/v1/openapi.json",
        "/api/v1/nothing",
    ] {
        let a = served.get(path);
        assert_nosniff(&a, path);
    }
    let page = served.get("/");
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'"))
    );
    let doc = served.get("/api/v1/openapi.json");
    assert_eq!(
        serde_json::from_slice::<Value>(&doc.body).expect("json"),
        serde_json::from_str::<Value>(&std::fs::read_to_string("docs/openapi.json").expect("file"))
            .expect("json")
    );
    // `serve` does not sync, so it has no conversation to show.
    assert_eq!(served.get("/api/v1/conversation/live").status, 404);
}

on_both!(
    bad_input_is_a_clear_4xx_never_a_5xx,
    bad_input_is_a_clear_4xx_never_a_5xx_on_sqlite,
    bad_input_is_a_clear_4xx_never_a_5xx_on_postgres
);
fn bad_input_is_a_clear_4xx_never_a_5xx(store: Backend) {
    let (_dc, setup, served, _lock) = synced_and_served(&store, &[]);
    let conn = setup.feed_db();
    let max_id = conn.count("SELECT max(id) FROM message_feed", &[]);
    let mut cases: Vec<(String, u16, &str)> = vec![
        (
            "/api/v1/messages/..%2F..%2F..%2Fetc%2Fpasswd".into(),
            404,
            "no message",
        ),
        ("/api/v1/messages/../../etc/passwd".into(), 404, ""),
        ("/api/v1/messages/1%00".into(), 404, "no message"),
        ("/api/v1/messages/-1".into(), 404, "no message"),
        (
            format!("/api/v1/messages/{}", max_id + 1),
            404,
            "no message",
        ),
        (
            format!("/api/v1/messages/{}/raw", max_id + 1000),
            404,
            "no message",
        ),
        (
            "/api/v1/messages/99999999999999999999999".into(),
            404,
            "no message",
        ),
        (
            "/api/v1/attachments/..%2F..%2Fetc%2Fpasswd".into(),
            404,
            "no attachment",
        ),
        ("/api/v1/attachments/ABCDEF".into(), 404, "no attachment"),
        (
            format!("/api/v1/attachments/{}", "0".repeat(64)),
            404,
            "no attachment",
        ),
        (
            format!("/api/v1/attachments/{}", "A".repeat(64)),
            404,
            "no attachment",
        ),
        ("/api/v1/messages?limit=0".into(), 400, "limit"),
        ("/api/v1/messages?limit=-5".into(), 400, "limit"),
        ("/api/v1/messages?after_id=abc".into(), 400, "after_id"),
        ("/api/v1/events?after_seq=1.5".into(), 400, "after_seq"),
        ("/api/v1/search".into(), 400, "`q` is missing"),
        (
            format!("/api/v1/search?q={}", "a".repeat(2000)),
            400,
            "longer",
        ),
        ("/api/v1/nowhere".into(), 404, "no such page"),
    ];
    if let Backend::Sqlite = store {
        // FTS5's syntax; PostgreSQL's websearch_to_tsquery takes any text.
        cases.extend([
            ("/api/v1/search?q=%22unbalanced".into(), 400, "FTS5"),
            (
                "/api/v1/search?q=nosuchcolumn%3Afoo".into(),
                400,
                "no such column",
            ),
            ("/api/v1/search?q=AND".into(), 400, "syntax error"),
            ("/api/v1/search?q=(a".into(), 400, "FTS5"),
        ]);
    } else {
        for q in ["%22unbalanced", "nosuchcolumn%3Afoo", "AND", "(a", "%00%ff"] {
            let a = served.get(&format!("/api/v1/search?q={q}"));
            assert_eq!(a.status, 200, "search {q}: {}", a.text());
        }
    }
    for (path, status, says) in &cases {
        let a = served.get(path);
        assert_eq!(a.status, *status, "GET {path}: {}", a.text());
        assert!(
            a.text().contains(says),
            "GET {path}: {} should say {says:?}",
            a.text()
        );
        assert_nosniff(&a, path);
    }
    // A huge limit is clamped, and the answer says to what.
    let got = served.json("/api/v1/messages?limit=100000000000000000000000");
    assert_eq!(got["limit"], json!(1000));
    assert_eq!(got["messages"].as_array().map(Vec::len), Some(46));
    let got = served.json("/api/v1/search?q=message&limit=99999");
    assert_eq!(got["limit"], json!(500));
    // Still serving after all that.
    assert_eq!(served.get("/api/v1/status").status, 200);
}

#[test]
fn a_token_is_required_beyond_loopback_and_never_logged() {
    let dc = dovecot();
    dc.append_many(USER, "INBOX", &corpus::varied(5, 3))
        .expect("append");
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    setup.sync_ok();

    // Beyond loopback without a token: refused when the config is read.
    let (port, _lock) = reserve_port().expect("port");
    add_http(&setup, &format!("0.0.0.0:{port}"), None);
    let out = setup.run(&["serve"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.listen") && err.contains("token"),
        "{err}"
    );

    // With one: wrong and missing tokens are 401, the right one works.
    let text = std::fs::read_to_string(&setup.config).expect("config");
    let text = text.replace(&format!("\n[http]\nlisten = \"0.0.0.0:{port}\"\n"), "");
    std::fs::write(&setup.config, text).expect("config");
    add_http(&setup, &format!("0.0.0.0:{port}"), Some(TOKEN));
    let log = setup.dir.path().join("serve.log");
    let mut child = setup
        .command(&["serve"])
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while request::<&str, &str>(&format!("{base}/"), &[]).is_err() {
        assert!(Instant::now() < deadline, "serve never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    let get =
        |path: &str, h: &[(&str, &str)]| request(&format!("{base}{path}"), h).expect("request");
    let none = get("/api/v1/status", &[]);
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    assert_nosniff(&none, "401");
    let wrong = format!("Bearer {TOKEN}x");
    assert_eq!(
        get("/api/v1/status", &[("Authorization", &wrong)]).status,
        401
    );
    assert_eq!(
        get("/api/v1/status", &[("Authorization", "Bearer ")]).status,
        401
    );
    assert_eq!(get("/api/v1/messages/1/raw", &[]).status, 401);
    assert_eq!(get("/api/v1/attachments/x", &[]).status, 401);
    let right = format!("Bearer {TOKEN}");
    assert_eq!(
        get("/api/v1/status", &[("Authorization", &right)]).status,
        200
    );
    let cookie = format!("mailfeed_token={TOKEN}");
    assert_eq!(get("/api/v1/messages", &[("Cookie", &cookie)]).status, 200);
    // The page itself holds no data and loads without the token.
    assert_eq!(get("/", &[]).status, 200);
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("refused"),
        "the refusals are logged: {logged}"
    );
    assert!(!logged.contains(TOKEN), "the token leaked into the log");
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmHWM")
}

on_both!(
    a_60_mb_attachment_streams_with_bounded_memory,
    a_60_mb_attachment_streams_with_bounded_memory_on_sqlite,
    a_60_mb_attachment_streams_with_bounded_memory_on_postgres
);
fn a_60_mb_attachment_streams_with_bounded_memory(store: Backend) {
    const SIZE: usize = 60 * 1024 * 1024;
    let mut rng = support::rng::Rng::new(60);
    let data = rng.bytes(SIZE);
    let want = Sha256::digest(&data);
    let mut msg = b"From: big@example.org\r\nTo: alice@example.org\r\nSubject: the big one\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nsixty megabytes follow\r\n\
        --b\r\nContent-Type: application/octet-stream\r\n\
        Content-Disposition: attachment; filename=\"big.bin\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    msg.extend_from_slice(&corpus::base64_lines(&data));
    msg.extend_from_slice(b"--b--\r\n");
    drop(data);
    let (_dc, setup, served, _lock) = synced_and_served(&store, &[msg]);
    let sha = hex(&want);
    let before = peak_rss_kib(served.pid());

    let url = format!("{}/api/v1/attachments/{sha}", served.base);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let mut res = agent.get(&url).call().expect("download");
    assert_eq!(
        res.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(SIZE.to_string().as_str())
    );
    let mut reader = res.body_mut().with_config().limit(u64::MAX).reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got += n;
        hasher.update(&buf[..n]);
    }
    assert_eq!(got, SIZE);
    assert_eq!(hasher.finalize(), want, "the downloaded bytes");

    // The raw message (about 81 MB) too.
    let db = setup.feed_db();
    let raw_len = db.count(
        if db.is_postgres() {
            "SELECT octet_length(raw) FROM message_feed WHERE subject = 'the big one'"
        } else {
            "SELECT length(raw) FROM message_feed WHERE subject = 'the big one'"
        },
        &[],
    );
    let id = db.count(
        "SELECT id FROM message_feed WHERE subject = 'the big one'",
        &[],
    );
    let mut res = agent
        .get(&format!("{}/api/v1/messages/{id}/raw", served.base))
        .call()
        .expect("raw");
    let n = std::io::copy(
        &mut res.body_mut().with_config().limit(u64::MAX).reader(),
        &mut std::io::sink(),
    )
    .expect("raw body");
    assert_eq!(n as i64, raw_len);

    let after = peak_rss_kib(served.pid());
    eprintln!(
        "serve peak RSS: {before} KiB before, {after} KiB after streaming 60 MiB + {raw_len} bytes"
    );
    assert!(
        after < before + 24 * 1024,
        "serving a 60 MiB attachment raised the peak RSS from {before} to {after} KiB"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

on_both!(
    serve_reads_a_database_while_sync_writes_it,
    serve_reads_a_database_while_sync_writes_it_on_sqlite,
    serve_reads_a_database_while_sync_writes_it_on_postgres
);
fn serve_reads_a_database_while_sync_writes_it(store: Backend) {
    let (dc, setup, served, _lock) = synced_and_served(&store, &[]);
    dc.append_many(USER, "INBOX", &corpus::sized(600, 5, 2_000, 20_000))
        .expect("append more");
    let mut sync = setup
        .command(&["sync"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sync");
    let mut seen: Vec<i64> = Vec::new();
    let mut after = 0i64;
    let mut pages_during_sync = 0;
    let walk = |after: &mut i64, seen: &mut Vec<i64>| -> usize {
        let got = served.json(&format!("/api/v1/messages?after_id={after}&limit=50"));
        let rows = got["messages"].as_array().expect("messages").clone();
        for r in &rows {
            seen.push(r["id"].as_i64().expect("id"));
        }
        *after = got["next_after_id"].as_i64().expect("cursor");
        rows.len()
    };
    loop {
        let done = sync.try_wait().expect("wait").is_some();
        walk(&mut after, &mut seen);
        if done {
            break;
        }
        pages_during_sync += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sync.wait().expect("sync").success());
    while walk(&mut after, &mut seen) > 0 {}
    let want = setup
        .feed_db()
        .column::<i64>("SELECT id FROM message_feed ORDER BY id", &[]);
    assert_eq!(want.len(), 646);
    assert_eq!(
        seen, want,
        "the cursor walk saw every message once, in order"
    );
    assert!(
        pages_during_sync > 3,
        "the API answered while the sync ran ({pages_during_sync} pages)"
    );
}

/// PostgreSQL restarted under `serve`: the reads that find their pooled
/// connection cut fail (a 5xx saying so), the connections are dropped, and
/// the API answers again without a restart of mailfeed.
#[test]
fn the_api_answers_again_after_postgresql_restarts() {
    let store = Backend::postgres();
    let (_dc, _setup, served, _lock) = synced_and_served(&store, &[]);
    // Several connections in the pool: a stream and pages at once.
    let served = &served;
    let pages = |n: usize| {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .map(|i| s.spawn(move || served.get(&format!("/api/v1/messages?after_id={i}"))))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("request").status)
                .collect::<Vec<_>>()
        })
    };
    assert!(pages(6).iter().all(|s| *s == 200));
    let Backend::Postgres(pg) = &store else {
        unreachable!()
    };
    pg.restart().expect("restart PostgreSQL");
    let mut failed = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = served.get("/api/v1/messages?limit=5");
        if a.status == 200 {
            let v: Value = serde_json::from_slice(&a.body).expect("json");
            assert_eq!(v["messages"].as_array().map(Vec::len), Some(5));
            break;
        }
        assert_eq!(a.status, 500, "{}", a.text());
        failed += 1;
        assert!(Instant::now() < deadline, "never answered again");
    }
    // At most one failure per pooled connection (2 readers + 8 streams).
    assert!(failed <= 10, "{failed} failures before answering again");
    assert!(pages(6).iter().all(|s| *s == 200));
}

#[test]
fn event_streams_are_bounded_and_the_api_still_answers() {
    use std::net::TcpStream;
    let (_dc, _setup, served, _lock) = synced_and_served(&Backend::sqlite(), &[]);
    let addr = served.base.trim_start_matches("http://").to_owned();
    let open = |path: &str| {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        std::io::Write::write_all(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .expect("send");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).expect("status line");
        (s, String::from_utf8_lossy(&head).into_owned())
    };
    let mut streams = Vec::new();
    for _ in 0..64 {
        let (s, head) = open("/api/v1/status/live");
        assert_eq!(head, "HTTP/1.1 200", "a stream within the bound");
        streams.push(s);
    }
    // The first event of a stream is the status itself.
    let mut first = vec![0u8; 4096];
    let n = streams[0].read(&mut first).expect("event");
    let text = String::from_utf8_lossy(&first[..n]);
    assert!(
        text.contains("event: status") || text.contains("text/event-stream"),
        "{text}"
    );
    let (_, head) = open("/api/v1/status/live");
    assert_eq!(head, "HTTP/1.1 503", "the 65th stream is refused");
    // Ordinary requests are not affected by the open streams.
    assert_eq!(served.get("/api/v1/messages?limit=1").status, 200);
    drop(streams);
    wait_for(
        "the streams to be released",
        Duration::from_secs(30),
        || open("/api/v1/status/live").1 == "HTTP/1.1 200",
    );
}

#[test]
fn run_with_a_port_in_use_fails_at_start_with_a_clear_error() {
    let dc = dovecot();
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    let (port, _lock) = reserve_port().expect("port");
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("occupy the port");
    add_http(&setup, &format!("127.0.0.1:{port}"), None);
    let started = Instant::now();
    let out = setup.command(&["run"]).output().expect("run");
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("http.listen"),
        "{err}"
    );
}

#[test]
fn open_connections_are_bounded() {
    use std::net::TcpStream;
    let (_dc, _setup, served, _lock) = synced_and_served(&Backend::sqlite(), &[]);
    let addr = served.base.trim_start_matches("http://").to_owned();
    // 256 clients that connect and say nothing hold every slot...
    let idle: Vec<TcpStream> = (0..256)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut late = TcpStream::connect(&addr).expect("the kernel still accepts");
    late.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    std::io::Write::write_all(
        &mut late,
        format!("GET /api/v1/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    let mut buf = [0u8; 12];
    assert!(
        late.read_exact(&mut buf).is_err(),
        "the 257th connection was served at once"
    );
    // ...and once they go, the waiting one is answered.
    drop(idle);
    late.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    late.read_exact(&mut buf)
        .expect("answered after the others left");
    assert_eq!(&buf, b"HTTP/1.1 200");
}
