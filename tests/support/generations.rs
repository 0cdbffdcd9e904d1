//! One story for every server: a folder's UIDVALIDITY changes with flags
//! changed and messages expunged around it, and the rows consumers see end
//! exactly equal to the server, every difference one event, and the counts
//! of `sync` and `status` those of `message_feed`.

use std::collections::HashMap;
use std::time::Duration;

use super::mailfeed::Setup;
use super::server::TestServer;

/// Plays the story on `folder` of `user` (which must not exist yet) with
/// ten messages `msgs` and two `fresh` ones. `setup` syncs that folder as
/// account `test` (with a rescan every pass where the server lacks
/// CONDSTORE).
///
/// 1. The ten are stored; then #2 gets `\Flagged` and #3 is expunged.
/// 2. The folder is deleted and created again (a new UIDVALIDITY) holding
///    the ten but #5 and #6, #1 with `\Seen`, #2 without `\Flagged`, #3 back,
///    and the two fresh ones.
/// 3. After that sync, #4 gets `\Answered` and #7 is expunged.
pub fn uidvalidity_story<S: TestServer>(
    srv: &S,
    user: &str,
    setup: &Setup,
    folder: &str,
    msgs: &[Vec<u8>],
    fresh: &[Vec<u8>],
) {
    let kind = srv.kind();
    assert_eq!((msgs.len(), fresh.len()), (10, 2));
    srv.create_folder(user, folder).expect("create");
    let uids = srv.append_many(user, folder, msgs).expect("append");
    setup.sync_ok();
    let mut c = srv.login(user).expect("login");
    c.select(folder).expect("select");
    c.add_flags(&[uids[1]], &["\\Flagged"]).expect("flag #2");
    c.delete_uids(&[uids[2]]).expect("expunge #3");
    c.logout().expect("logout");
    setup.sync_ok();
    let before = feed_rows(setup, folder);
    assert_eq!(before.len(), 10, "{kind}");
    assert_eq!(before.iter().filter(|r| !r.live).count(), 1, "{kind}: #3");
    let seq0 = last_seq(setup);
    let uv1 = srv.uid_validity(user, folder).expect("uidvalidity");

    srv.delete_folder(user, folder).expect("delete");
    std::thread::sleep(Duration::from_millis(1100));
    srv.create_folder(user, folder).expect("create again");
    let mut c = srv.login(user).expect("login");
    for (i, m) in msgs.iter().enumerate() {
        match i {
            4 | 5 => {}
            0 => {
                c.append(folder, &["\\Seen"], m).expect("append #1");
            }
            _ => {
                c.append(folder, &[], m).expect("append");
            }
        }
    }
    for m in fresh {
        c.append(folder, &[], m).expect("append fresh");
    }
    c.logout().expect("logout");
    assert_ne!(srv.uid_validity(user, folder).expect("uv"), uv1, "{kind}");
    let out = stdout(&setup.sync_ok());
    assert!(
        out.contains("2 new message(s), 8 re-found after a UIDVALIDITY change"),
        "{kind}: {out}"
    );
    assert_eq!(feed_rows(setup, folder).len(), 12, "{kind}: 2 rows added");

    let mut c = srv.login(user).expect("login");
    c.select(folder).expect("select");
    let by_body: HashMap<Vec<u8>, u32> = c
        .fetch_all()
        .expect("fetch")
        .into_iter()
        .map(|(u, b)| (b, u))
        .collect();
    let uid_of = |m: &Vec<u8>| *by_body.get(m).expect("on the server");
    c.add_flags(&[uid_of(&msgs[3])], &["\\Answered"])
        .expect("flag #4");
    c.delete_uids(&[uid_of(&msgs[6])]).expect("expunge #7");
    c.logout().expect("logout");
    let out = stdout(&setup.sync_ok());
    assert!(out.contains("0 new message(s)"), "{kind}: {out}");
    assert!(!out.contains("re-found"), "{kind}: {out}");

    // The visible rows are the server: its messages with their flags, live;
    // every other row expunged.
    let mut c = srv.login(user).expect("login");
    c.examine(folder).expect("examine");
    let bodies = c.fetch_all().expect("fetch");
    let flags: HashMap<u32, String> = c
        .fetch_flags()
        .expect("flags")
        .into_iter()
        .map(|(u, f)| (u, f.join(" ")))
        .collect();
    c.logout().expect("logout");
    let mut truth: Vec<(Vec<u8>, String)> = bodies
        .into_iter()
        .map(|(u, b)| (b, flags.get(&u).cloned().unwrap_or_default()))
        .collect();
    truth.sort();
    let rows = feed_rows(setup, folder);
    let mut live: Vec<(Vec<u8>, String)> = rows
        .iter()
        .filter(|r| r.live)
        .map(|r| (r.raw.clone(), r.flags.clone()))
        .collect();
    live.sort();
    assert_eq!(live.len(), 9, "{kind}: live rows");
    assert!(
        live == truth,
        "{kind}: the live feed rows differ from the server"
    );
    assert_eq!(rows.len(), 12, "{kind}: each message once");

    // Every difference since the change is exactly one event.
    let id_of = |m: &Vec<u8>| {
        rows.iter()
            .find(|r| &r.raw == m)
            .map(|r| r.id)
            .expect("in the feed")
    };
    let mut want: Vec<(String, i64)> = vec![
        ("flags".into(), id_of(&msgs[0])),
        ("flags".into(), id_of(&msgs[1])),
        ("restored".into(), id_of(&msgs[2])),
        ("flags".into(), id_of(&msgs[3])),
        ("expunged".into(), id_of(&msgs[4])),
        ("expunged".into(), id_of(&msgs[5])),
        ("expunged".into(), id_of(&msgs[6])),
        ("new".into(), id_of(&fresh[0])),
        ("new".into(), id_of(&fresh[1])),
    ];
    want.sort();
    let mut got = events_since(setup, seq0);
    let uidvalidity = got.iter().filter(|(k, _)| k == "uidvalidity").count();
    assert_eq!(uidvalidity, 1, "{kind}");
    got.retain(|(k, _)| k != "uidvalidity");
    got.sort();
    assert_eq!(got, want, "{kind}: one event per difference");

    // `status` counts what consumers see.
    let status = setup.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let row = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["mailbox"] == folder))
        .expect("status row");
    assert_eq!(row["stored"], 12, "{kind}: {row}");
    assert_eq!(row["expunged"], 3, "{kind}: {row}");
    let parse_errors = rows.iter().filter(|r| r.parse_error).count();
    assert_eq!(row["parse_errors"], parse_errors, "{kind}: {row}");
}

struct Row {
    id: i64,
    raw: Vec<u8>,
    flags: String,
    live: bool,
    parse_error: bool,
}

fn feed_rows(setup: &Setup, folder: &str) -> Vec<Row> {
    let conn = setup.db();
    let mut st = conn
        .prepare(
            "SELECT id, raw, flags, expunged_at IS NULL, parse_error IS NOT NULL
             FROM message_feed WHERE account = 'test' AND mailbox = ?1 ORDER BY id",
        )
        .expect("prepare");
    st.query_map([folder], |r| {
        Ok(Row {
            id: r.get(0)?,
            raw: r.get(1)?,
            flags: r.get(2)?,
            live: r.get(3)?,
            parse_error: r.get(4)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn last_seq(setup: &Setup) -> i64 {
    setup
        .db()
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM message_events",
            [],
            |r| r.get(0),
        )
        .expect("seq")
}

fn events_since(setup: &Setup, seq: i64) -> Vec<(String, i64)> {
    let conn = setup.db();
    let mut st = conn
        .prepare(
            "SELECT kind, coalesce(feed_id, 0) FROM message_events WHERE seq > ?1 ORDER BY seq",
        )
        .expect("prepare");
    st.query_map([seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("events")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
