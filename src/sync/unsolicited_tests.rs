//! Byte scripts for changes a server reports unasked, without CONDSTORE
//! (so nothing else would report them before a rescan): during the UID
//! listing, in the middle of the body FETCH, and in IDLE, by UID and by
//! sequence number, with an EXPUNGE renumbering what came before it. Each
//! must end as a change in the store, with its one event.

use std::time::Duration;

use crate::imap::Command;
use crate::store::{self, StoreHandle};
use crate::sync::Engine;
use crate::testing::{Peer, listen, options, session_on};

fn message(seq: u32, uid: u32) -> String {
    let body = format!("Subject: m{uid}\r\nMessage-ID: <m{uid}@t>\r\n\r\nbody {uid}\r\n");
    format!(
        "* {seq} FETCH (UID {uid} FLAGS () RFC822.SIZE {n} INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[] {{{n}}}\r\n{body})\r\n",
        n = body.len()
    )
}

fn examined(tag: &str, exists: u32, uidnext: u32) -> String {
    format!(
        "* {exists} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT {uidnext}] n\r\n{tag} OK [READ-ONLY] done\r\n"
    )
}

fn settings() -> crate::config::SyncConfig {
    crate::config::SyncConfig {
        batch_size: 500,
        max_message_size: 100_000_000,
        max_line_size: crate::imap::DEFAULT_MAX_LINE as u64,
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(300),
        idle_refresh: Duration::from_secs(25 * 60),
        max_buffered_bytes: 1 << 20,
        // Never rescan on schedule: only what the server reported counts.
        rescan_every: 0,
    }
}

#[tokio::test]
async fn changes_reported_unasked_are_recorded_wherever_they_arrive() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        // Pass 1: three messages, no flags.
        let t = p.expect("EXAMINE INBOX").await;
        p.send(examined(&t, 3, 4)).await;
        let t = p.expect("UID FETCH 1:* (UID)").await;
        p.send(format!(
            "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\n{t} OK done\r\n"
        ))
        .await;
        let t = p.expect("UID FETCH 1:3 (UID FLAGS").await;
        p.send(format!(
            "{}{}{}{t} OK done\r\n",
            message(1, 1),
            message(2, 2),
            message(3, 3)
        ))
        .await;
        // Pass 2: a fourth message; during the listing message 1 is seen
        // (by number), during the body FETCH UID 2 is flagged (by UID).
        let t = p.expect("EXAMINE INBOX").await;
        p.send(examined(&t, 4, 5)).await;
        let t = p.expect("UID FETCH 4:* (UID)").await;
        p.send(format!(
            "* 4 FETCH (UID 4)\r\n* 1 FETCH (FLAGS (\\Seen))\r\n{t} OK done\r\n"
        ))
        .await;
        let t = p.expect("UID FETCH 4:4 (UID FLAGS").await;
        p.send(format!(
            "* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n{}{t} OK done\r\n",
            message(4, 4)
        ))
        .await;
        // Learning the UID of message 1, still selected.
        let t = p.expect("FETCH 1 (UID FLAGS)").await;
        p.send(format!(
            "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n{t} OK done\r\n"
        ))
        .await;
        // IDLE: message 3 answered, then message 1 expunged, so what was
        // message 3 is message 2 by the time DONE is answered.
        let t = p.expect("IDLE").await;
        p.send("+ idling\r\n".into()).await;
        p.send("* 3 FETCH (FLAGS (\\Answered))\r\n* 1 EXPUNGE\r\n".into())
            .await;
        p.expect("DONE").await;
        p.send(format!("{t} OK done\r\n")).await;
        // Pass 3: the flag change by number first, then the folder, then
        // the listing the expunge calls for.
        let t = p.expect("FETCH 2 (UID FLAGS)").await;
        p.send(format!(
            "* 2 FETCH (UID 3 FLAGS (\\Answered))\r\n{t} OK done\r\n"
        ))
        .await;
        let t = p.expect("EXAMINE INBOX").await;
        p.send(examined(&t, 3, 5)).await;
        let t = p.expect("UID FETCH 1:4 (UID FLAGS)").await;
        p.send(format!(
            "* 1 FETCH (UID 2 FLAGS (\\Flagged))\r\n* 2 FETCH (UID 3 FLAGS (\\Answered))\r\n* 3 FETCH (UID 4 FLAGS ())\r\n{t} OK done\r\n"
        ))
        .await;
        p
    });
    let conn = store::open_in_memory().expect("db");
    let (h, writer) = StoreHandle::start_with(conn, 1 << 20);
    let engine = Engine::new(h.clone(), options(Duration::from_secs(10)), settings());
    let mut s = session_on(port, Duration::from_secs(10)).await;
    let first = engine
        .sync_folder(&mut s, "t", &crate::imap::Folder::from_wire("INBOX"))
        .await
        .expect("pass 1");
    assert_eq!((first.fetched, first.new), (3, 3));
    let second = engine
        .sync_folder(&mut s, "t", &crate::imap::Folder::from_wire("INBOX"))
        .await
        .expect("pass 2");
    assert_eq!(second.new, 1);
    let tag = s.send(&Command::Idle).await.expect("idle");
    loop {
        let r = s.next_response().await.expect("response");
        if matches!(r.response, crate::imap::Response::Continuation(_)) {
            break;
        }
    }
    // Wait for the change and the expunge, then end IDLE.
    for _ in 0..2 {
        s.next_response().await.expect("change");
    }
    s.send_done().await.expect("done");
    s.collect(&tag, "IDLE").await.expect("idle ends");
    engine
        .sync_folder(&mut s, "t", &crate::imap::Folder::from_wire("INBOX"))
        .await
        .expect("pass 3");
    h.commit().await.expect("commit");
    let _peer = server.await.expect("server");
    let events = h
        .call(|c| {
            let mut st = c
                .prepare(
                    "SELECT kind, uid, coalesce(detail, '') FROM message_events
                     WHERE kind <> 'new' ORDER BY seq",
                )
                .map_err(|e| store::StoreError::Sql {
                    doing: "test",
                    source: e,
                })?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(|e| store::StoreError::Sql {
                    doing: "test",
                    source: e,
                })?;
            Ok(rows)
        })
        .await
        .expect("events");
    let kinds: Vec<(&str, u32)> = events.iter().map(|(k, u, _)| (k.as_str(), *u)).collect();
    assert_eq!(
        kinds,
        vec![("flags", 2), ("flags", 1), ("flags", 3), ("expunged", 1)],
        "{events:?}"
    );
    assert!(events[0].2.contains("\\\\Flagged") && events[2].2.contains("\\\\Answered"));
    drop(h);
    drop(engine);
    writer.join();
}
