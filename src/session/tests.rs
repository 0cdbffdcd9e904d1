//! Sessions against scripted peers on loopback: timeouts, tracking, ID.

use super::*;
use crate::imap::{ModSeq, UidValidity};
use crate::testing::{Peer, listen, session_on};
use tokio::time::Instant;

// Real time with wide margins: tokio's paused clock does not see
// loopback bytes arriving, so these tests use short real intervals
// (chunks every timeout/5; a timing slip of 4/5 of a timeout would be
// needed to break them).

/// A FETCH of a 64 KiB message dripped over more than three timeouts:
/// slow but never silent for a whole timeout.
#[tokio::test]
async fn a_large_message_on_a_slow_link_arrives_whole() {
    let timeout = Duration::from_millis(500);
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        let tag = p.expect("NOOP").await;
        let body = vec![b'x'; 64 * 1024];
        p.send(format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len()))
            .await;
        for chunk in body.chunks(4096) {
            tokio::time::sleep(timeout / 5).await;
            p.send_bytes(chunk).await;
        }
        p.send(format!(")\r\n{tag} OK done\r\n")).await;
        p
    });
    let mut s = session_on(port, timeout).await;
    let t0 = Instant::now();
    let untagged = s.run(&Command::Noop).await.expect("the whole response");
    assert!(
        t0.elapsed() >= timeout * 3,
        "the drip took {:?}",
        t0.elapsed()
    );
    assert!(
        matches!(&untagged[..], [Untagged::Fetch(..)]),
        "{untagged:?}"
    );
    drop(server.await);
}

/// A fetch of a large message grows the read buffer to the read size; a
/// wait in IDLE gives it back, so thousands of waiting connections hold
/// a few KiB each.
#[tokio::test]
async fn the_read_buffer_grows_for_a_fetch_and_shrinks_while_idling() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        let tag = p.expect("NOOP").await;
        let body = vec![b'x'; 1 << 20];
        let mut reply = format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len()).into_bytes();
        reply.extend_from_slice(&body);
        reply.extend_from_slice(format!(")\r\n{tag} OK done\r\n").as_bytes());
        p.send_bytes(&reply).await;
        let tag = p.expect("IDLE").await;
        p.send("+ idling\r\n* 4 EXISTS\r\n".into()).await;
        p.expect("DONE").await;
        p.send(format!("{tag} OK done\r\n")).await;
        p
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    assert_eq!(s.buf.len(), super::READ_START);
    let untagged = s.run(&Command::Noop).await.expect("the fetch");
    assert!(matches!(&untagged[..], [Untagged::Fetch(..)]));
    assert!(
        s.buf.len() > super::READ_START && s.buf.len() <= super::READ_CHUNK,
        "{}",
        s.buf.len()
    );
    assert_eq!(s.begin_idle().await.expect("idle"), IdleBegun::Accepted);
    assert!(s.wait_in_idle(Duration::from_secs(5)).await.expect("wait"));
    s.end_idle().await.expect("done");
    assert_eq!(s.buf.len(), super::READ_START);
    drop(server.await);
}

/// Changes nobody asked for are noted; EXAMINE's own EXISTS and the
/// FETCH responses of our FETCH are not.
#[tokio::test]
async fn unsolicited_changes_are_noted() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        let tag = p.expect("EXAMINE").await;
        p.send(format!(
            "* 3 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n* OK [UIDNEXT 4] n\r\n{tag} OK [READ-ONLY] done\r\n"
        ))
        .await;
        let tag = p.expect("UID FETCH").await;
        p.send(format!("* 1 FETCH (UID 1)\r\n{tag} OK done\r\n"))
            .await;
        let tag = p.expect("NOOP").await;
        p.send(format!("{tag} OK done\r\n")).await;
        // After the listing: a new message the pass did not see.
        let tag = p.expect("UID FETCH").await;
        p.send(format!(
            "* 1 FETCH (UID 1)\r\n{tag} OK done\r\n* 4 EXISTS\r\n"
        ))
        .await;
        let tag = p.expect("NOOP").await;
        p.send(format!("* 2 FETCH (FLAGS (\\Seen))\r\n{tag} OK done\r\n"))
            .await;
        p
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    s.examine("INBOX", None).await.expect("examine");
    let listing = Command::UidFetch {
        set: crate::imap::FetchSet::From(1),
        items: crate::imap::FetchItems::Uid,
        changed_since: None,
        vanished: false,
    };
    s.run(&listing).await.expect("listing");
    s.run(&Command::Noop).await.expect("noop");
    assert!(!s.take_unsolicited_changes(), "all of it was asked for");
    s.run(&listing).await.expect("listing");
    s.run(&Command::Noop).await.expect("noop");
    assert!(s.take_unsolicited_changes(), "the EXISTS after the listing");
    assert!(!s.take_unsolicited_changes(), "taken once");
    drop(server.await);
}

/// Which flag changes and expunges are recorded as reported unasked:
/// not EXAMINE's own (a QRESYNC report) nor the answers to a FETCH of
/// flags; yes in the middle of a body FETCH, after a NOOP, in IDLE, as
/// VANISHED; sequence numbers follow later EXPUNGEs; nothing after the
/// selection changes.
#[tokio::test]
async fn changes_reported_unasked_are_kept_for_the_selected_mailbox() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        let tag = p.expect("EXAMINE").await;
        p.send(format!(
            "* 9 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* VANISHED (EARLIER) 2\r\n{tag} OK [READ-ONLY] done\r\n"
        ))
        .await;
        let tag = p.expect("UID FETCH 1:9 (UID FLAGS)").await;
        p.send(format!("* 3 FETCH (UID 3 FLAGS ())\r\n{tag} OK done\r\n"))
            .await;
        let tag = p.expect("BODY.PEEK").await;
        p.send(format!(
            "* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\n* 6 FETCH (FLAGS (\\Seen))\r\n{tag} OK done\r\n"
        ))
        .await;
        let tag = p.expect("NOOP").await;
        p.send(format!(
            "* 8 FETCH (FLAGS (\\Draft))\r\n* 5 EXPUNGE\r\n* VANISHED 20:22\r\n{tag} OK done\r\n"
        ))
        .await;
        let tag = p.expect("IDLE").await;
        p.send("+ idling\r\n* 2 FETCH (FLAGS (\\Answered))\r\n".into())
            .await;
        p.expect("DONE").await;
        p.send(format!("{tag} OK done\r\n")).await;
        let tag = p.expect("EXAMINE").await;
        p.send(format!(
            "* 0 EXISTS\r\n* OK [UIDVALIDITY 6] v\r\n{tag} OK done\r\n"
        ))
        .await;
        p
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    s.examine("INBOX", None).await.expect("examine");
    assert_eq!(s.take_reported(), None, "EXAMINE's own report");
    let scan = Command::UidFetch {
        set: crate::imap::FetchSet::Range(1, 9),
        items: crate::imap::FetchItems::Flags,
        changed_since: None,
        vanished: false,
    };
    s.run(&scan).await.expect("scan");
    assert_eq!(s.take_reported(), None, "answers to a flag scan");
    s.run(&Command::UidFetch {
        set: crate::imap::FetchSet::Range(9, 9),
        items: crate::imap::FetchItems::Message,
        changed_since: None,
        vanished: false,
    })
    .await
    .expect("fetch");
    s.run(&Command::Noop).await.expect("noop");
    let tag = s.send(&Command::Idle).await.expect("idle");
    s.next_response().await.expect("+");
    s.next_response().await.expect("change");
    s.send_done().await.expect("done");
    s.collect(&tag, "IDLE").await.expect("idle ends");
    let r = s.take_reported().expect("reported");
    assert_eq!(r.mailbox, Some(("INBOX".into(), UidValidity(5))));
    assert_eq!(r.flags, vec![(4, vec!["\\Flagged".to_owned()])]);
    // 6 and 8 were renumbered by the EXPUNGE of 5; 2 came after it.
    assert_eq!(r.flag_seqs, vec![5, 7, 2]);
    assert_eq!(r.vanished, vec![(20, 22)]);
    assert!(r.expunged && !r.overflowed);
    assert_eq!(s.take_reported(), None, "taken once");
    s.examine("Other", None).await.expect("examine other");
    assert_eq!(s.take_reported(), None);
    drop(server.await);
}

/// A QRESYNC EXAMINE answered by a `VANISHED (EARLIER)` of 200,000
/// scattered UIDs (a 1.3 MB line) and a 1 MB CAPABILITY, with the
/// default limits: both are read, nothing is lost.
#[tokio::test]
async fn long_legal_lines_are_read_with_the_default_limits() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        let tag = p.expect("CAPABILITY").await;
        let mut caps = String::from("* CAPABILITY IMAP4rev1");
        while caps.len() < 1024 * 1024 {
            caps.push_str(" X-LONG");
        }
        p.send(format!("{caps} CONDSTORE\r\n{tag} OK done\r\n"))
            .await;
        let tag = p.expect("EXAMINE").await;
        let mut line = String::from("* VANISHED (EARLIER) 1");
        for uid in (3..400_000).step_by(2) {
            line.push_str(&format!(",{uid}"));
        }
        p.send(format!(
            "* 5 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n{line}\r\n{tag} OK [READ-ONLY] done\r\n"
        ))
        .await;
        p
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    s.refresh_capabilities().await.expect("1 MB CAPABILITY");
    assert!(s.capabilities().condstore());
    let st = s
        .examine("INBOX", Some((UidValidity(5), ModSeq(9))))
        .await
        .expect("examine");
    assert_eq!(st.vanished.len(), 200_000);
    assert!(st.vanished.contains(399_999) && !st.vanished.contains(400_000));
    drop(server.await);
}

#[test]
fn provider_throttling_is_a_reason_to_wait_not_a_failure() {
    let failed = |code: Option<Code>, text: &str| SessionError::CommandFailed {
        command: "EXAMINE",
        status: "NO",
        text: text.into(),
        code,
    };
    let waits = [
        failed(
            Some(Code::Other("OVERQUOTA".into(), None)),
            "Quota exceeded",
        ),
        failed(Some(Code::Other("THROTTLED".into(), None)), "slow down"),
        failed(
            None,
            "Request is throttled. Suggested Backoff Time: 4162 milliseconds",
        ),
        failed(None, "User is authenticated but not connected."),
        SessionError::LoginFailed("[UNAVAILABLE] try later".into()),
        SessionError::Bye("[LIMIT] too many connections".into()),
    ];
    for e in &waits {
        assert!(e.server_asks_to_wait(), "{e}");
        assert!(!e.is_permanent(), "{e}");
    }
    assert!(!failed(None, "Mailbox doesn't exist").server_asks_to_wait());
    assert!(!SessionError::LoginFailed("Authentication failed".into()).server_asks_to_wait());
}

/// A server that offers ID is told who the client is, right after the
/// greeting (PREAUTH here) and before anything else; a NO is ignored.
#[tokio::test]
async fn id_is_sent_when_offered_and_its_refusal_ignored() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut p = Peer::from_stream(tcp);
        p.send("* PREAUTH [CAPABILITY IMAP4rev1 ID] hi\r\n".into())
            .await;
        let line = p.line().await.unwrap_or_default();
        let tag = line.split(' ').next().unwrap_or_default().to_owned();
        p.send(format!("{tag} NO not today\r\n")).await;
        let tag = p.expect("NOOP").await;
        p.send(format!("{tag} OK done\r\n")).await;
        line
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    s.run(&Command::Noop)
        .await
        .expect("noop after a refused ID");
    let line = server.await.expect("server");
    assert_eq!(
        line,
        format!(
            "a001 ID (\"name\" \"mailfeed\" \"version\" \"{}\")",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// Silence in the middle of a response is still bounded by the timeout,
/// counted from the last bytes that arrived.
#[tokio::test]
async fn a_server_silent_mid_response_is_dropped_after_the_timeout() {
    let timeout = Duration::from_millis(400);
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        p.expect("NOOP").await;
        p.send("* 1 FETCH (UID 1 BODY[] {100}\r\n0123456789".into())
            .await;
        tokio::time::sleep(timeout / 2).await;
        p.send("0123456789".into()).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        p
    });
    let mut s = session_on(port, timeout).await;
    let t0 = Instant::now();
    let e = s.run(&Command::Noop).await.expect_err("a timeout");
    assert!(
        matches!(
            e,
            SessionError::Transport(TransportError::ReadTimeout { .. })
        ),
        "{e}"
    );
    let took = t0.elapsed();
    assert!(
        took >= timeout + timeout / 2 && took < Duration::from_secs(10),
        "gave up after {took:?}"
    );
    server.abort();
}

/// A connection that idles for months holds only the commands in flight:
/// a tag is forgotten once its reply is read, also when the caller reads
/// it itself (the pipelined fetch) instead of through `collect`.
#[tokio::test]
async fn tags_are_forgotten_over_many_idle_cycles() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        for _ in 0..50 {
            let tag = p.expect("IDLE").await;
            p.send("+ idling\r\n* 4 EXISTS\r\n".into()).await;
            p.expect("DONE").await;
            p.send(format!("{tag} OK done\r\n")).await;
        }
        let tag = p.expect("NOOP").await;
        p.send(format!("{tag} OK done\r\n")).await;
        p
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    for _ in 0..50 {
        assert_eq!(s.begin_idle().await.expect("idle"), IdleBegun::Accepted);
        assert!(s.wait_in_idle(Duration::from_secs(5)).await.expect("wait"));
        s.end_idle().await.expect("done");
    }
    assert_eq!(s.tags.open(), 0);
    s.send(&Command::Noop).await.expect("noop");
    assert_eq!(s.tags.open(), 1);
    let r = s.next_response().await.expect("reply");
    assert!(matches!(r.response, Response::Tagged { .. }));
    assert_eq!(s.tags.open(), 0);
    drop(server.await);
}

/// A NOTIFY watch notes the folders named by unasked STATUS responses in
/// any command's replies and in IDLE (even one before IDLE's `+`), and
/// ends the IDLE wait; a refused watch notes nothing.
#[tokio::test]
async fn notify_notes_changed_folders_and_ends_the_idle_wait() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        let tag = p.expect("NOTIFY SET (selected").await;
        p.send(format!("{tag} OK NOTIFY completed\r\n")).await;
        let tag = p.expect("NOOP").await;
        p.send(format!(
            "* STATUS B (MESSAGES 1 UIDNEXT 2)\r\n* STATUS Z (MESSAGES 1)\r\n{tag} OK done\r\n"
        ))
        .await;
        let tag = p.expect("IDLE").await;
        p.send("* STATUS A (MESSAGES 4)\r\n+ idling\r\n".to_string())
            .await;
        p.expect("DONE").await;
        p.send(format!("{tag} OK Idle completed\r\n")).await;
        let tag = p.expect("IDLE").await;
        p.send("+ idling\r\n".to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.send("* OK [NOTIFICATIONOVERFLOW] lost count\r\n".to_string())
            .await;
        p.expect("DONE").await;
        p.send(format!("{tag} OK Idle completed\r\n")).await;
        let tag = p.expect("NOTIFY SET").await;
        p.send(format!("{tag} NO [BADEVENT (FlagChange)] no\r\n"))
            .await;
        let tag = p.expect("NOOP").await;
        p.send(format!("* STATUS A (MESSAGES 5)\r\n{tag} OK done\r\n"))
            .await;
        p
    });
    let mut s = session_on(port, Duration::from_secs(5)).await;
    let folders = vec!["A".to_string(), "B".to_string()];
    assert_eq!(
        s.notify_set(&folders).await.expect("set"),
        NotifyBegun::Accepted
    );
    s.run(&Command::Noop).await.expect("noop");
    let n = s.take_notified();
    assert_eq!(n.folders.into_iter().collect::<Vec<_>>(), ["B"]);
    assert!(!n.all);
    assert!(s.take_notified().is_empty());
    assert_eq!(s.begin_idle().await.expect("idle"), IdleBegun::Accepted);
    let t0 = Instant::now();
    assert!(s.wait_in_idle(Duration::from_secs(5)).await.expect("wait"));
    assert!(t0.elapsed() < Duration::from_secs(2));
    s.end_idle().await.expect("done");
    assert_eq!(
        s.take_notified().folders.into_iter().collect::<Vec<_>>(),
        ["A"]
    );
    assert_eq!(s.begin_idle().await.expect("idle"), IdleBegun::Accepted);
    assert!(s.wait_in_idle(Duration::from_secs(5)).await.expect("wait"));
    s.end_idle().await.expect("done");
    assert!(s.take_notified().all);
    assert_eq!(
        s.notify_set(&folders).await.expect("answered"),
        NotifyBegun::Refused("NO [BADEVENT] no".into())
    );
    s.run(&Command::Noop).await.expect("noop");
    assert!(s.take_notified().is_empty());
    drop(server.await);
}
