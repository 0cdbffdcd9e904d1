//! Changes after storage, against a real Dovecot: flag changes and expunges
//! made on the server appear as events after the next sync, with QRESYNC and
//! without CONDSTORE/QRESYNC (the rescan fallback). Nothing is deleted.

mod support;

use support::corpus;
use support::dovecot::{Dovecot, Options};
use support::mailfeed::{Account, Setup};

const USER: &str = "erin";
const PASS: &str = "erin-pw";

fn events(setup: &Setup, kind: &str) -> Vec<u32> {
    let conn = setup.db();
    let mut st = conn
        .prepare(
            "SELECT m.uid FROM events e JOIN messages m ON m.id = e.message_id
             WHERE e.kind = ?1 ORDER BY m.uid",
        )
        .expect("prepare");
    st.query_map([kind], |r| r.get(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

fn flags_of(setup: &Setup, uid: u32) -> String {
    setup
        .db()
        .query_row(
            "SELECT flags FROM message_feed WHERE uid = ?1",
            [uid],
            |r| r.get(0),
        )
        .expect("flags")
}

fn run_scenario(dc: &Dovecot, extra: &str) -> Setup {
    dc.append_many(USER, "INBOX", &corpus::varied(10, 11))
        .expect("append");
    let mut acc = Account::plain(dc, USER, PASS, &["INBOX"]);
    acc.extra = extra;
    let setup = Setup::new(&[acc], "rescan_every = 1");
    setup.sync_ok();
    assert!(events(&setup, "flags").is_empty());

    let mut c = dc.login(USER).expect("login");
    c.select("INBOX").expect("select");
    c.add_flags(&[2, 3], &["\\Flagged"]).expect("flag");
    c.add_flags(&[6], &["$Label1"]).expect("flag");
    c.delete_uids(&[4, 5]).expect("delete");
    c.logout().expect("logout");

    setup.sync_ok();
    assert_eq!(events(&setup, "flags"), vec![2, 3, 6]);
    assert_eq!(events(&setup, "expunged"), vec![4, 5]);
    assert!(flags_of(&setup, 2).contains("\\Flagged"));
    assert!(flags_of(&setup, 6).contains("$Label1"));
    // The archive keeps expunged messages, marked.
    let marked: i64 = setup
        .db()
        .query_row(
            "SELECT count(*) FROM message_feed WHERE expunged_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(marked, 2);
    assert_eq!(setup.message_rows(), 10);

    // Nothing changed: nothing recorded.
    setup.sync_ok();
    assert_eq!(events(&setup, "flags").len(), 3);
    assert_eq!(events(&setup, "expunged").len(), 2);

    // Expunging the newest message must not make the folder look new forever.
    let mut c = dc.login(USER).expect("login");
    c.select("INBOX").expect("select");
    c.delete_uids(&[10]).expect("delete");
    c.logout().expect("logout");
    setup.sync_ok();
    assert_eq!(events(&setup, "expunged"), vec![4, 5, 10]);
    setup
}

fn highest_modseq(setup: &Setup) -> Option<i64> {
    setup
        .db()
        .query_row("SELECT highest_modseq FROM mailboxes", [], |r| r.get(0))
        .expect("modseq")
}

#[test]
fn flags_and_expunges_with_qresync() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let caps = dc.login(USER).expect("login").capabilities().expect("caps");
    assert!(
        caps.iter().any(|c| c == "QRESYNC"),
        "Dovecot offers QRESYNC: {caps:?}"
    );
    let setup = run_scenario(&dc, "");
    // The QRESYNC path was taken: the cursor carries a HIGHESTMODSEQ.
    assert!(highest_modseq(&setup).is_some());
}

#[test]
fn flags_and_expunges_without_condstore() {
    let dc = Dovecot::start_with(Options {
        users: vec![(USER.into(), PASS.into())],
        extra_config: "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ENABLE IDLE UIDPLUS\n".into(),
    })
    .expect("dovecot");
    let caps = dc.login(USER).expect("login").capabilities().expect("caps");
    assert!(
        !caps.iter().any(|c| c == "CONDSTORE" || c == "QRESYNC"),
        "{caps:?}"
    );
    let setup = run_scenario(&dc, "");
    assert_eq!(highest_modseq(&setup), None);
}
