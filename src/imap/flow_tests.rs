//! Byte scripts for the flows: server bytes go through the reader (whole and
//! split at every byte), the responses into a flow, and what the flow did is
//! compared. No sockets.

use super::*;
use crate::secret::Secret;

/// The responses in `script`, the same however it is split.
fn responses(script: &[u8]) -> Vec<Response> {
    let feed = |chunks: &[&[u8]]| {
        let mut r = ResponseReader::new(Limits::default());
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c).expect("valid script");
            while let Some(rec) = r.pop() {
                out.push(rec.response);
            }
        }
        out
    };
    let whole = feed(&[script]);
    for i in 0..=script.len() {
        let (a, b) = script.split_at(i);
        assert_eq!(feed(&[a, b]), whole, "split at {i}");
    }
    whole
}

fn login_events(login: &mut Login, script: &[u8]) -> Vec<String> {
    responses(script)
        .into_iter()
        .map(|r| match login.received("a001", r) {
            LoginEvent::AnswerReady { bytes, shown } => {
                format!("answer {:?} shown {shown:?}", bytes.expose())
            }
            LoginEvent::CapabilitiesReceived(c) => format!("caps idle={}", c.idle()),
            LoginEvent::ByeReceived(t) => format!("bye {t}"),
            LoginEvent::Succeeded(c) => format!("ok caps={}", c.is_some()),
            LoginEvent::Refused(t) => format!("refused {t}"),
            LoginEvent::Ignored => "ignored".into(),
        })
        .collect()
}

#[test]
fn greetings_are_told_apart() {
    let one = |s: &[u8]| greeting(responses(s).remove(0));
    assert_eq!(
        one(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        Greeted::LoginNeeded(Some(Capabilities::new(["IMAP4rev1", "IDLE"])))
    );
    assert_eq!(one(b"* PREAUTH hi\r\n"), Greeted::Preauthenticated(None));
    assert_eq!(
        one(b"* BYE [UNAVAILABLE] busy\r\n"),
        Greeted::Refused("[UNAVAILABLE] busy".into())
    );
    assert!(matches!(one(b"* NO what\r\n"), Greeted::Unexpected(_)));
    assert!(matches!(one(b"a1 OK no\r\n"), Greeted::Unexpected(_)));
}

/// AUTHENTICATE PLAIN without SASL-IR answers the `+` with the PLAIN
/// response, shown only as `***`; capabilities on the OK are taken.
#[test]
fn plain_login_answers_the_continuation() {
    let password = Secret::new("pw");
    let (mut login, cmd) = Login::password(AuthMethod::Plain, "u", &password);
    assert_eq!(cmd.name(), "AUTHENTICATE");
    let events = login_events(
        &mut login,
        b"+ \r\n* CAPABILITY IMAP4rev1 IDLE\r\na001 OK [CAPABILITY IMAP4rev1] in\r\n",
    );
    assert_eq!(
        events,
        [
            "answer \"AHUAcHc=\\r\\n\" shown Some(\"*** (SASL PLAIN response)\")",
            "caps idle=true",
            "ok caps=true",
        ]
    );
}

/// LOGIN cannot be continued: a `+` is cancelled; a NO is refused with its
/// code shown; another tag's reply and a BYE do not end it.
#[test]
fn login_refusal_keeps_the_servers_words() {
    let password = Secret::new("pw");
    let (mut login, cmd) = Login::password(AuthMethod::Login, "u", &password);
    assert_eq!(cmd.name(), "LOGIN");
    let events = login_events(
        &mut login,
        b"+ go\r\nzz OK other\r\n* BYE going\r\na001 NO [AUTHENTICATIONFAILED] bad\r\n",
    );
    assert_eq!(
        events,
        [
            "answer \"*\\r\\n\" shown None",
            "ignored",
            "bye going",
            "refused [AUTHENTICATIONFAILED] bad",
        ]
    );
}

/// OAuth2 without SASL-IR: the first `+` gets the response, a second is the
/// error challenge, answered with the dummy reply and quoted in the refusal.
#[test]
fn oauth_error_challenge_is_quoted_in_the_refusal() {
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        br#"{"status":"401","schemes":"bearer"}"#,
    );
    let (mut login, cmd) = Login::oauth(OAuthMechanism::XOAuth2, Secret::new("XYZ"), false);
    assert_eq!(cmd.name(), "AUTHENTICATE");
    let script = format!("+ \r\n+ {challenge}\r\na001 NO denied\r\n");
    let events = login_events(&mut login, script.as_bytes());
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[0],
        "answer \"XYZ\\r\\n\" shown Some(\"*** (SASL response)\")"
    );
    assert_eq!(
        events[1],
        "answer \"\\r\\n\" shown Some(\"*** (SASL response)\")"
    );
    assert!(
        events[2].starts_with("refused ")
            && events[2].contains("401")
            && events[2].ends_with(": denied"),
        "{}",
        events[2]
    );
}

#[test]
fn idle_is_accepted_then_ended_by_a_change() {
    let (mut idle, cmd) = Idle::start();
    assert!(matches!(cmd, Command::Idle));
    let events: Vec<IdleEvent> = responses(
        b"* 3 EXISTS\r\n+ idling\r\n* OK still here\r\n* 4 EXISTS\r\n* 1 FETCH (FLAGS ())\r\n* BYE bye\r\n",
    )
    .iter()
    .map(|r| idle.received(r))
    .collect();
    assert_eq!(
        events,
        [
            IdleEvent::Ignored,
            IdleEvent::Accepted,
            IdleEvent::Ignored,
            IdleEvent::ChangeAnnounced,
            IdleEvent::ChangeAnnounced,
            IdleEvent::ByeReceived("bye".into()),
        ]
    );
    assert!(idle.is_idling());
    assert_eq!(idle.done(), b"DONE\r\n");
    assert!(!idle.is_idling());
}

#[test]
fn idle_refused_before_its_continuation() {
    let (mut idle, _) = Idle::start();
    let r = responses(b"a005 BAD not now\r\n");
    assert_eq!(
        idle.received(&r[0]),
        IdleEvent::Refused("BAD not now".into())
    );
    assert!(!idle.is_idling());
}

/// RFC 7162 `[CLOSED]`: what came before it was the old mailbox's.
#[test]
fn examine_forgets_what_came_before_closed() {
    let (mut ex, cmd) = Examine::start("INBOX", false, true, None);
    assert_eq!(cmd.name(), "EXAMINE");
    for r in responses(
        b"* 9 EXISTS\r\n* OK [UIDVALIDITY 1] old\r\n* VANISHED 1:3\r\n* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n\
          * OK [CLOSED] previous mailbox closed\r\n\
          * 4 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 5] n\r\n* OK [HIGHESTMODSEQ 90] m\r\n\
          * VANISHED (EARLIER) 2,4\r\n* 3 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (88))\r\n",
    ) {
        let Response::Untagged(u) = r else { panic!("untagged only") };
        ex.received(u);
    }
    let st = ex.finished();
    assert_eq!(st.exists, 4);
    assert_eq!(st.uidvalidity, Some(UidValidity(7)));
    assert_eq!(st.uidnext, Some(5));
    assert_eq!(st.highest_modseq, Some(ModSeq(90)));
    assert_eq!(st.vanished.ranges(), &[(2, 2), (4, 4)]);
    assert_eq!(
        st.changed,
        vec![(3, vec!["\\Flagged".to_owned()], Some(ModSeq(88)))]
    );
}

#[test]
fn examine_without_condstore_drops_highestmodseq() {
    let (mut ex, _) = Examine::start("INBOX", false, false, None);
    for r in responses(b"* OK [HIGHESTMODSEQ 9] m\r\n* OK [NOMODSEQ] n\r\n") {
        let Response::Untagged(u) = r else {
            panic!("untagged only")
        };
        ex.received(u);
    }
    let st = ex.finished();
    assert_eq!(st.highest_modseq, None);
    assert!(st.nomodseq);
}

/// Every tag is forgotten once its reply is read: a connection that idles
/// for months holds only the commands in flight.
#[test]
fn tags_hold_only_open_commands() {
    let mut tags = Tags::default();
    for i in 1..=10_000u32 {
        let t = tags.sent(&Command::Idle);
        assert_eq!(t, format!("a{i:03}"));
        assert!(tags.asking(Asks::Other));
        assert_eq!(tags.completed(&t), Some("IDLE"));
    }
    assert_eq!(tags.open(), 0);
    let examine = tags.sent(&Command::Examine {
        mailbox: "INBOX".into(),
        condstore: false,
        qresync: None,
    });
    let flags = tags.sent(&Command::UidFetch {
        set: crate::imap::FetchSet::From(1),
        items: crate::imap::FetchItems::Flags,
        changed_since: None,
        vanished: false,
    });
    assert!(tags.asking(Asks::Examine) && tags.asking(Asks::Flags));
    assert!(!tags.asking(Asks::UidFetch));
    assert_eq!(tags.name(&flags), Some("UID FETCH"));
    assert_eq!(tags.completed(&examine), Some("EXAMINE"));
    assert_eq!(tags.completed(&examine), None, "once");
    assert_eq!(tags.open(), 1);
}

/// Feeds `script` to a tracker with `tags` open.
fn track(unasked: &mut Unasked, tags: &Tags, script: &[u8]) {
    for r in responses(script) {
        unasked.received(&r, tags);
    }
}

/// Changes reported unasked are kept for the selected mailbox; EXAMINE's
/// own and the answers to a flag FETCH are not; sequence numbers follow
/// later EXPUNGEs; a VANISHED (EARLIER) is never unasked.
#[test]
fn unasked_changes_are_told_from_answers() {
    let mut tags = Tags::default();
    let mut u = Unasked::default();
    u.selecting();
    let ex = tags.sent(&Command::Examine {
        mailbox: "INBOX".into(),
        condstore: false,
        qresync: None,
    });
    track(
        &mut u,
        &tags,
        b"* 9 EXISTS\r\n* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* VANISHED (EARLIER) 2\r\n",
    );
    tags.completed(&ex);
    u.selected(Some(("INBOX".into(), UidValidity(5))));
    assert!(!u.take_changed());
    assert_eq!(u.take_reported(), None, "EXAMINE's own report");
    let scan = tags.sent(&Command::UidFetch {
        set: crate::imap::FetchSet::Range(1, 9),
        items: crate::imap::FetchItems::Flags,
        changed_since: None,
        vanished: false,
    });
    track(&mut u, &tags, b"* 3 FETCH (UID 3 FLAGS ())\r\n");
    tags.completed(&scan);
    assert!(!u.take_changed());
    assert_eq!(u.take_reported(), None, "answers to a flag scan");
    let body = tags.sent(&Command::UidFetch {
        set: crate::imap::FetchSet::Range(9, 9),
        items: crate::imap::FetchItems::Message,
        changed_since: None,
        vanished: false,
    });
    track(
        &mut u,
        &tags,
        b"* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\n* 6 FETCH (FLAGS (\\Seen))\r\n",
    );
    tags.completed(&body);
    assert!(
        !u.take_changed(),
        "FETCH during a UID FETCH is not a new change"
    );
    track(
        &mut u,
        &tags,
        b"* 8 FETCH (FLAGS (\\Draft))\r\n* 5 EXPUNGE\r\n* VANISHED 20:22\r\n* 2 FETCH (FLAGS (\\Answered))\r\n",
    );
    assert!(u.take_changed());
    assert!(!u.take_changed(), "taken once");
    let r = u.take_reported().expect("reported");
    assert_eq!(r.mailbox, Some(("INBOX".into(), UidValidity(5))));
    assert_eq!(r.flags, vec![(4, vec!["\\Flagged".to_owned()])]);
    assert_eq!(r.flag_seqs, vec![5, 7, 2]);
    assert_eq!(r.vanished, vec![(20, 22)]);
    assert!(r.expunged && !r.overflowed);
    assert_eq!(u.take_reported(), None, "taken once");
    track(&mut u, &tags, b"* 1 EXPUNGE\r\n");
    u.selecting();
    assert_eq!(u.take_reported(), None, "gone with the selection");
}

#[test]
fn too_many_unasked_changes_become_a_rescan() {
    let tags = Tags::default();
    let mut u = Unasked::default();
    u.selected(Some(("INBOX".into(), UidValidity(1))));
    let mut script = Vec::new();
    for i in 1..=MAX_REPORTED_CHANGES + 1 {
        script.extend_from_slice(format!("* VANISHED {}\r\n", i * 2).as_bytes());
    }
    let mut reader = ResponseReader::new(Limits::default());
    reader.feed(&script).expect("valid");
    while let Some(r) = reader.pop() {
        u.received(&r.response, &tags);
    }
    let r = u.take_reported().expect("reported");
    assert!(r.overflowed && r.vanished.is_empty());
}

/// Feeds `script` to a NOTIFY flow the way a session does: every response,
/// the tag table closing each command after its reply was seen.
fn notify_events(flow: &mut Notify, tags: &mut Tags, script: &[u8]) -> Vec<NotifyEvent> {
    responses(script)
        .iter()
        .map(|r| {
            let e = flow.received(r, tags);
            if let Response::Tagged { tag, .. } = r {
                tags.completed(tag);
            }
            e
        })
        .collect()
}

#[test]
fn notify_set_encodes_the_watched_mailboxes() {
    let (_, cmd) = Notify::start(vec!["INBOX".into(), "Sent Items".into(), "&AOQ-b".into()]);
    assert_eq!(cmd.name(), "NOTIFY");
    let wire: Vec<u8> = cmd
        .encode("a7", false)
        .into_iter()
        .flat_map(|p| match p {
            Part::Text(t) => t,
            Part::Literal { data, .. } => data,
        })
        .collect();
    assert_eq!(
        String::from_utf8(wire).expect("ascii"),
        "a7 NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
         (mailboxes (INBOX \"Sent Items\" &AOQ-b) (MessageNew MessageExpunge FlagChange))\r\n"
    );
}

/// What Dovecot 2.3 sends around `NOTIFY SET` and IDLE, with an explicit
/// STATUS, an unwatched mailbox, INBOX in lower case and an overflow mixed in.
#[test]
fn notify_names_the_watched_mailbox_that_changed() {
    let mut tags = Tags::default();
    let (mut flow, cmd) = Notify::start(vec!["INBOX".into(), "A".into(), "Sent Items".into()]);
    let set = tags.sent(&cmd);
    assert_eq!(set, "a001");
    let mut script = Vec::new();
    script.extend_from_slice(b"* STATUS A (MESSAGES 1 UIDNEXT 2)\r\na001 OK NOTIFY completed\r\n");
    let mut events = notify_events(&mut flow, &mut tags, &script);
    assert!(flow.is_set());
    // An explicit STATUS command: its answer is not an announcement, one
    // about another mailbox meanwhile is; a failed one expects no answer.
    flow.status_asked("A");
    let status = tags.sent(&Command::Status {
        mailbox: "A".into(),
        items: vec!["UIDNEXT"],
    });
    events.extend(notify_events(
        &mut flow,
        &mut tags,
        format!(
            "* STATUS \"Sent Items\" (UIDNEXT 3)\r\n* STATUS A (UIDNEXT 3)\r\n{status} OK done\r\n"
        )
        .as_bytes(),
    ));
    flow.status_asked("A");
    let status = tags.sent(&Command::Status {
        mailbox: "A".into(),
        items: vec!["UIDNEXT"],
    });
    events.extend(notify_events(
        &mut flow,
        &mut tags,
        format!("{status} NO gone\r\n* STATUS A (UIDNEXT 4)\r\n").as_bytes(),
    ));
    let idle = tags.sent(&Command::Idle);
    events.extend(notify_events(
        &mut flow,
        &mut tags,
        format!(
            "+ idling\r\n* STATUS \"Sent Items\" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n\
             * STATUS Other (MESSAGES 9)\r\n* STATUS inbox (MESSAGES 0)\r\n* 4 EXISTS\r\n\
             * OK [NOTIFICATIONOVERFLOW] too many\r\n{idle} OK Idle completed\r\n"
        )
        .as_bytes(),
    ));
    assert_eq!(
        events,
        [
            NotifyEvent::Changed("A".into()),
            NotifyEvent::Set,
            NotifyEvent::Changed("Sent Items".into()),
            NotifyEvent::Ignored,
            NotifyEvent::Ignored,
            NotifyEvent::Ignored,
            NotifyEvent::Changed("A".into()),
            NotifyEvent::Ignored,
            NotifyEvent::Changed("Sent Items".into()),
            NotifyEvent::Ignored,
            NotifyEvent::Changed("INBOX".into()),
            NotifyEvent::Ignored,
            NotifyEvent::Overflowed,
            NotifyEvent::Ignored,
        ]
    );
    assert_eq!(tags.open(), 0);
}

#[test]
fn notify_refused_watches_nothing() {
    let mut tags = Tags::default();
    let (mut flow, cmd) = Notify::start(vec!["A".into()]);
    tags.sent(&cmd);
    let events = notify_events(
        &mut flow,
        &mut tags,
        b"a001 NO [BADEVENT (MessageNew MessageExpunge)] not for these\r\n\
          * STATUS A (MESSAGES 1)\r\n",
    );
    assert_eq!(
        events,
        [
            NotifyEvent::Refused("NO [BADEVENT] not for these".into()),
            NotifyEvent::Ignored
        ]
    );
    assert!(!flow.is_set());
}

/// A folder moved on since its pass opened it when a STATUS answer differs
/// in any item asked; items the pass did not see tell nothing.
#[test]
fn seen_tells_a_folder_that_moved_on() {
    let (mut ex, _) = Examine::start("A", false, true, None);
    for r in responses(
        b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 10] n\r\n* OK [HIGHESTMODSEQ 50] m\r\n",
    ) {
        if let Response::Untagged(u) = r {
            ex.received(u);
        }
    }
    let seen = Seen::of(&ex.finished());
    let status = |s: &[u8]| match responses(s).remove(0) {
        Response::Untagged(Untagged::MailboxStatus { items, .. }) => items,
        r => panic!("{r:?}"),
    };
    let same = status(b"* STATUS A (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 7 HIGHESTMODSEQ 50)\r\n");
    assert!(!seen.moved_on(&same));
    for moved in [
        &b"* STATUS A (MESSAGES 4 UIDNEXT 10 UIDVALIDITY 7 HIGHESTMODSEQ 50)\r\n"[..],
        b"* STATUS A (MESSAGES 3 UIDNEXT 11 UIDVALIDITY 7 HIGHESTMODSEQ 50)\r\n",
        b"* STATUS A (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 8 HIGHESTMODSEQ 50)\r\n",
        b"* STATUS A (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 7 HIGHESTMODSEQ 51)\r\n",
    ] {
        assert!(
            seen.moved_on(&status(moved)),
            "{}",
            String::from_utf8_lossy(moved)
        );
    }
    assert_eq!(
        Seen::status_items(false),
        ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    );
    assert!(!seen.moved_on(&status(b"* STATUS A (UNSEEN 2)\r\n")));
}
