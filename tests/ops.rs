//! Operating `mailfeed run` without reading logs, against a real Dovecot:
//! `/metrics` (checked by `promtool check metrics` and against the
//! database), `/healthz` and `/readyz` through a server outage, alerts to
//! loopback receivers (once when failing, once on recovery; retried through
//! 500s, redirects, hangs and refused connections), bearer tokens, a port
//! in use, and a thousand scrapes at once.

mod support;

use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::{Dovecot, reserve_port};
use support::http_probe::{Answer, Receiver, get};
use support::mailfeed::{Account, Setup};
use support::run::{Running, wait_for};

const USER: &str = "olive";
const PASS: &str = "olive-pw-31";
const TOKEN: &str = "7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e";

/// The value of the sample `name{labels}` in an exposition, if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

fn ready(port: u16) -> bool {
    get(port, "/readyz", None).is_ok_and(|(s, _)| s == 200)
}

#[test]
fn metrics_pass_promtool_and_match_the_database() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.create_folder(USER, "Archive").expect("folder");
    dc.append_many(USER, "INBOX", &corpus::varied(40, 3))
        .expect("append");
    dc.append_many(USER, "Archive", &corpus::varied(7, 4))
        .expect("append");
    // One message over max_message_size, stored as headers only.
    let mut big = b"From: a@example.org\r\nSubject: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    dc.append(USER, "Archive", &big).expect("append big");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX", "Archive"])],
        "max_message_size = \"2KB\"",
    );
    let (port, _lock) = reserve_port().expect("port");
    setup.append_config(&format!("[http]\nlisten = \"127.0.0.1:{port}\""));
    let run = Running::start(&setup, "debug");
    wait_for("readiness", Duration::from_secs(60), || ready(port));
    let (status, text) = get(port, "/metrics", None).expect("scrape");
    assert_eq!(status, 200, "{text}");

    let file = setup.dir.path().join("metrics.txt");
    std::fs::write(&file, &text).expect("write");
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("open"))
        .output()
        .expect("promtool (Debian package `prometheus`, see scripts/install-deps)");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let db = setup.db();
    for folder in ["INBOX", "Archive"] {
        let (n, bytes, truncated): (i64, i64, i64) = db
            .query_row(
                "SELECT count(*), sum(m.size), sum(m.truncated) FROM messages m
                 JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = ?1",
                [folder],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("count");
        let l = format!("{{account=\"test\",folder=\"{folder}\"}}");
        assert_eq!(
            sample(&text, &format!("mailfeed_messages_stored{l}")),
            Some(n as f64),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("mailfeed_stored_bytes{l}")),
            Some(bytes as f64)
        );
        assert_eq!(
            sample(&text, &format!("mailfeed_truncated_messages{l}")),
            Some(truncated as f64)
        );
        assert!(
            sample(
                &text,
                &format!("mailfeed_last_success_timestamp_seconds{l}")
            )
            .is_some_and(|t| t > 1.7e9)
        );
        assert_eq!(
            sample(
                &text,
                &format!("mailfeed_state{{account=\"test\",folder=\"{folder}\",state=\"idle\"}}")
            ),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "mailfeed_messages_stored{account=\"test\",folder=\"INBOX\"}"
        ),
        Some(40.0)
    );
    assert!(
        sample(
            &text,
            "mailfeed_truncated_messages{account=\"test\",folder=\"Archive\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "the big message is counted"
    );
    // Dovecot offers NOTIFY: one connection, in IDLE, watches both folders.
    assert_eq!(
        sample(&text, "mailfeed_idle_connections{account=\"test\"}"),
        Some(1.0)
    );
    let page_bytes: i64 = db
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .expect("size");
    let reported = sample(&text, "mailfeed_database_bytes").expect("database size");
    assert!(
        reported > 0.0 && reported <= page_bytes as f64,
        "{reported} vs {page_bytes}"
    );
    assert_eq!(sample(&text, "mailfeed_writer_up"), Some(1.0));
    let (status, body) = get(port, "/healthz", None).expect("healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    drop(run);
}

#[test]
fn an_outage_flips_readiness_and_alerts_once_each_way() {
    let mut dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(5, 7))
        .expect("append");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX"])],
        "timeout = \"2s\"",
    );
    let (port, _lock) = reserve_port().expect("port");
    let hook = Receiver::start(vec![Answer::Ok]);
    let stdin_file = setup.dir.path().join("alerts.jsonl");
    setup.append_config(
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[[alerts]]\nwebhook = \"http://127.0.0.1:{}/hook\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\nafter = \"3s\"",
            hook.port,
            stdin_file.display(),
            stdin_file.display()
        ),
    );
    let run = Running::start(&setup, "debug");
    wait_for("readiness", Duration::from_secs(60), || ready(port));

    // /healthz is watched throughout, from another thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, p2) = (stop.clone(), port);
    let health = std::thread::spawn(move || {
        let mut checks = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let (status, body) = get(p2, "/healthz", None).expect("healthz answers");
            assert_eq!(status, 200, "{body}");
            checks += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        checks
    });

    dc.stop().expect("stop dovecot");
    let took = wait_for("/readyz to fail", Duration::from_secs(2), || !ready(port));
    let (status, body) = get(port, "/readyz", None).expect("readyz");
    assert_eq!(status, 503);
    assert!(body.contains("test/INBOX"), "{body}");
    eprintln!("readiness failed {took:?} after the server stopped: {body}");
    let (_, text) = get(port, "/metrics", None).expect("scrape");
    let failing_state = ["backing_off", "failed", "starting", "syncing"]
        .iter()
        .any(|s| {
            sample(
                &text,
                &format!("mailfeed_state{{account=\"test\",folder=\"INBOX\",state=\"{s}\"}}"),
            ) == Some(1.0)
        });
    assert!(failing_state, "{text}");
    assert_eq!(
        sample(
            &text,
            "mailfeed_state{account=\"test\",folder=\"INBOX\",state=\"idle\"}"
        ),
        Some(0.0)
    );
    // Dovecot says BYE as it stops (a server error), or the link drops
    // (a network error).
    let errors: f64 = ["server", "network"]
        .iter()
        .filter_map(|k| {
            sample(
                &text,
                &format!("mailfeed_errors_total{{account=\"test\",folder=\"INBOX\",kind=\"{k}\"}}"),
            )
        })
        .sum();
    assert!(errors >= 1.0, "{text}");

    wait_for("the failing alert", Duration::from_secs(30), || {
        !hook.bodies().is_empty()
    });
    let alert: serde_json::Value = serde_json::from_str(&hook.bodies()[0]).expect("alert is JSON");
    assert_eq!(alert["event"], "failing");
    assert_eq!(alert["account"], "test");
    assert_eq!(alert["folder"], "INBOX");
    assert!(
        alert["failing_since"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(
        alert["last_error"].as_str().is_some_and(|s| !s.is_empty()),
        "{alert}"
    );
    assert_eq!(alert["check"], "mailfeed check --account test");
    assert!(!hook.bodies()[0].contains(PASS), "no secret in the payload");

    dc.start_again().expect("start dovecot again");
    wait_for("readiness again", Duration::from_secs(60), || ready(port));
    wait_for("the recovery alert", Duration::from_secs(30), || {
        hook.bodies().len() >= 2
    });
    // Nothing more arrives: exactly one of each.
    std::thread::sleep(Duration::from_secs(4));
    let events: Vec<String> = hook
        .bodies()
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).expect("JSON");
            format!("{}:{}", v["event"].as_str().unwrap_or(""), v["folder"])
        })
        .collect();
    assert_eq!(
        events,
        ["failing:\"INBOX\"", "recovered:\"INBOX\""],
        "{events:?}"
    );
    let lines: Vec<String> = std::fs::read_to_string(&stdin_file)
        .expect("command output")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "the command got each alert once: {lines:?}");
    assert!(lines[0].contains("\"failing\"") && lines[1].contains("\"recovered\""));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = health.join().expect("/healthz stayed 200");
    assert!(checks > 10, "{checks} health checks");
    assert!(!run.log().contains(PASS));
}

#[test]
fn a_receiver_that_fails_in_every_way_still_gets_the_alert_once() {
    let mut dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX"])],
        "timeout = \"2s\"",
    );
    let hook = Receiver::start(vec![
        Answer::Status500,
        Answer::Redirect,
        Answer::Hang,
        Answer::Ok,
    ]);
    // A port nothing listens on: every attempt is refused.
    let (closed, _lock) = reserve_port().expect("port");
    setup.append_config(
        &format!(
            "[[alerts]]\nwebhook = \"http://127.0.0.1:{}/hook\"\nafter = \"1s\"\n\n[[alerts]]\nwebhook = \"http://127.0.0.1:{closed}/\"\nafter = \"1s\"",
            hook.port
        ),
    );
    dc.stop().expect("stop dovecot");
    let run = Running::start(&setup, "debug");
    wait_for(
        "delivery through the faults",
        Duration::from_secs(90),
        || !hook.bodies().is_empty(),
    );
    let tried = hook.requests.lock().expect("lock").clone();
    assert_eq!(
        tried,
        [
            Answer::Status500,
            Answer::Redirect,
            Answer::Hang,
            Answer::Ok
        ],
        "retried after each fault, in order"
    );
    let log = run.log();
    assert!(log.contains("answered 500"), "{log}");
    assert!(log.contains("redirects are not followed"), "{log}");
    assert!(log.contains("did not answer within"), "{log}");
    assert!(
        log.contains(&format!("cannot connect to http://127.0.0.1:{closed}")),
        "{log}"
    );
    assert!(!log.contains("/hook"), "webhook paths stay out of logs");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.bodies().len(), 1, "one alert, however many attempts");
    dc.start_again().expect("dovecot");
}

#[test]
fn tokens_guard_the_listener() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    let (port, _lock) = reserve_port().expect("port");
    let token_file = setup.dir.path().join("http.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    setup.append_config(&format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"",
        token_file.display()
    ));
    let run = Running::start(&setup, "debug");
    let good = format!("Bearer {TOKEN}");
    wait_for("the listener", Duration::from_secs(30), || {
        get(port, "/healthz", Some(&good)).is_ok_and(|(s, _)| s == 200)
    });
    let wrong = "Bearer not-the-token-0123456789";
    for path in ["/metrics", "/healthz", "/readyz", "/nonexistent"] {
        assert_eq!(
            get(port, path, None).expect("get").0,
            401,
            "{path} without a token"
        );
        assert_eq!(
            get(port, path, Some(wrong)).expect("get").0,
            401,
            "{path} wrong token"
        );
        assert_eq!(
            get(port, path, Some(TOKEN)).expect("get").0,
            401,
            "{path} not a bearer"
        );
    }
    assert_eq!(get(port, "/metrics", Some(&good)).expect("get").0, 200);
    let log = run.log();
    assert!(log.contains("refused, wrong bearer token"), "{log}");
    assert!(log.contains("refused, no bearer token"), "{log}");
    assert!(
        !log.contains("not-the-token") && !log.contains(TOKEN),
        "tokens stay out of logs"
    );
}

#[test]
fn bad_listener_settings_fail_start_up_clearly() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let cases: [(&str, &str); 3] = [
        (
            "[http]\nlisten = \"0.0.0.0:9925\"",
            "`http.listen` = \"0.0.0.0:9925\" is reachable beyond this machine",
        ),
        (
            "[http]\nlisten = \"127.0.0.1:9925\"\ntoken_file = \"/nonexistent/token\"",
            "`http.token_file`",
        ),
        (
            "[[alerts]]\nwebhook = \"http://hooks.example.com/\"",
            "`alerts[0].webhook` uses plain http",
        ),
    ];
    for (extra, says) in cases {
        let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
        setup.append_config(extra);
        let out = setup.run(&["run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
        assert!(err.contains(says), "{extra}: {err}");
    }

    // A port in use: start-up fails at once, naming the address and key.
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    let (port, _lock) = reserve_port().expect("port");
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    setup.append_config(&format!("[http]\nlisten = \"127.0.0.1:{port}\""));
    let t0 = Instant::now();
    let out = setup
        .command(&["run"])
        .env("NOTIFY_SOCKET", "")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "failed at once");
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (`http.listen`)"
        )),
        "{err}"
    );
}

#[test]
fn a_thousand_scrapes_at_once_are_served_and_bounded() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.append_many(USER, "INBOX", &corpus::varied(300, 11))
        .expect("append");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX"])],
        "batch_size = 20",
    );
    let (port, _lock) = reserve_port().expect("port");
    setup.append_config(&format!("[http]\nlisten = \"127.0.0.1:{port}\""));
    let run = Running::start(&setup, "debug");
    wait_for("the listener", Duration::from_secs(30), || {
        get(port, "/healthz", None).is_ok_and(|(s, _)| s == 200)
    });
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(1000));
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            let b = barrier.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    b.wait();
                    get(port, "/metrics", None).map(|(s, _)| s)
                })
                .expect("thread")
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("join").expect("answered"))
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The sync went on meanwhile and finished.
    wait_for("the first sync", Duration::from_secs(60), || {
        setup.feed_count("INBOX") == 300
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.0.id())).expect("status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    assert!(rss_kb < 200 * 1024, "peak RSS {rss_kb} kB");
}
