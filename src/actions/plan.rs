//! The pure plan: given the actions that may run now (durably stored
//! messages, from the ledger) and what the server offers, which UIDs get
//! which commands, in ranges. No session, no database, no clock: every
//! decision here is a unit test.
//!
//! The commands, and why:
//! - `seen`: `UID STORE set +FLAGS.SILENT (\Seen)`.
//! - `move` with MOVE (RFC 6851): `UID MOVE set dest`, atomic on the server.
//! - `move` without MOVE: `UID COPY`, then `UID STORE +FLAGS.SILENT
//!   (\Deleted)` and `UID EXPUNGE set` (UIDPLUS). Before the copy the
//!   actions are recorded `copying`, after it `copied`, so a restart
//!   expunges instead of copying again; for one left `copying` (cut off
//!   before the server's answer) the destination is searched for the
//!   message's Message-ID first.
//! - `delete`: `UID STORE +FLAGS.SILENT (\Deleted)`, `UID EXPUNGE set`.
//!
//! Never a bare EXPUNGE: it would also remove every message another client
//! marked `\Deleted` and left for its user to undelete. Without UIDPLUS,
//! `delete` (and `move` without MOVE) is refused, not approximated.

use crate::imap::{Capabilities, Command, UidSet};
use crate::store::actions::{ActionKind, OpenAction};

/// At most this many messages per command (the set stays a short line even
/// when the UIDs are scattered).
pub const MAX_UIDS_PER_COMMAND: usize = 500;

/// One step of a batch, applied to the batch's UID set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    StoreSeen,
    StoreDeleted,
    Move(String),
    Copy(String),
    Expunge,
}

impl Op {
    /// The command for `set`.
    pub fn command(&self, set: &UidSet) -> Command {
        let set = set.to_string();
        match self {
            Op::StoreSeen => Command::UidStoreAdd {
                set,
                flags: vec!["\\Seen"],
            },
            Op::StoreDeleted => Command::UidStoreAdd {
                set,
                flags: vec!["\\Deleted"],
            },
            Op::Move(m) => Command::UidMove {
                set,
                mailbox: m.clone(),
            },
            Op::Copy(m) => Command::UidCopy {
                set,
                mailbox: m.clone(),
            },
            Op::Expunge => Command::UidExpunge { set },
        }
    }

    /// The destination folder, for a step that needs one to exist.
    pub fn destination(&self) -> Option<&str> {
        match self {
            Op::Move(m) | Op::Copy(m) => Some(m),
            _ => None,
        }
    }
}

/// Messages that get the same steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// (action id, UID), by UID.
    pub actions: Vec<(i64, u32)>,
    pub ops: Vec<Op>,
    /// After this step succeeds the actions are recorded `copied`...
    pub copied_after: Option<usize>,
    /// ... and before it is sent, `copying`.
    pub copying_before: Option<usize>,
    /// The actions were left `copying`: look in the destination for each
    /// message before copying it (again).
    pub verify: bool,
    /// Words for the `done` record.
    pub done: String,
}

impl Batch {
    pub fn uids(&self) -> UidSet {
        UidSet::from_uids(self.actions.iter().map(|(_, u)| *u))
    }
}

/// What the plan says about the open actions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub batches: Vec<Batch>,
    /// Actions that cannot run on this server, with the reason; they stay
    /// open (pending) and are not sent.
    pub refused: Vec<(Vec<i64>, String)>,
    /// Actions whose message was already expunged from the server: nothing
    /// is sent for them (the UID names nothing). A move or delete is done
    /// (the message has left the folder: a run cut off after its command,
    /// or another client); a `seen` failed.
    pub gone: Vec<(i64, ActionKind)>,
}

/// Why an action of this kind cannot run on a server with `caps`, if it
/// cannot. `copied`: only the expunge of a move is left.
pub fn refusal(kind: ActionKind, copied: bool, caps: &Capabilities) -> Option<String> {
    let uidplus = caps.has("UIDPLUS");
    let no_uidplus = "the server does not offer UIDPLUS (RFC 4315), so mailfeed cannot expunge only the messages it stored (a bare EXPUNGE would also remove messages other clients marked \\Deleted)";
    match kind {
        ActionKind::Seen => None,
        ActionKind::Delete if !uidplus => Some(format!("`delete` refused: {no_uidplus}")),
        ActionKind::Move if copied && !uidplus => {
            Some(format!("`move` cannot finish: {no_uidplus}"))
        }
        ActionKind::Move if !caps.has("MOVE") && !uidplus => Some(format!(
            "`move` refused: the server offers neither MOVE (RFC 6851) nor UIDPLUS; {no_uidplus}"
        )),
        _ => None,
    }
}

/// Actions that share their steps: kind, destination, copy made, copy
/// perhaps made.
type GroupKey = (ActionKind, Option<String>, bool, bool);

/// Groups the open actions into batches of the same steps.
pub fn plan(open: &[OpenAction], caps: &Capabilities) -> Plan {
    let mut out = Plan::default();
    // By (kind, target, copied), in order of first appearance.
    let mut groups: Vec<(GroupKey, Vec<(i64, u32)>)> = Vec::new();
    for a in open {
        if a.gone {
            out.gone.push((a.id, a.kind));
            continue;
        }
        if let Some(why) = refusal(a.kind, a.copied || a.copying, caps) {
            match out.refused.iter_mut().find(|(_, w)| *w == why) {
                Some((ids, _)) => ids.push(a.id),
                None => out.refused.push((vec![a.id], why)),
            }
            continue;
        }
        if a.kind == ActionKind::Move && a.target.is_none() {
            out.refused
                .push((vec![a.id], "`move` without a destination".into()));
            continue;
        }
        let key = (a.kind, a.target.clone(), a.copied, a.copying);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((a.id, a.uid)),
            None => groups.push((key, vec![(a.id, a.uid)])),
        }
    }
    for ((kind, target, copied, copying), mut actions) in groups {
        actions.sort_by_key(|(id, uid)| (*uid, *id));
        let dest = target.unwrap_or_default();
        let (ops, copied_after, done) = match kind {
            ActionKind::Seen => (vec![Op::StoreSeen], None, "flagged \\Seen".to_owned()),
            ActionKind::Delete => (
                vec![Op::StoreDeleted, Op::Expunge],
                None,
                "expunged".to_owned(),
            ),
            ActionKind::Move if copied => (
                vec![Op::StoreDeleted, Op::Expunge],
                None,
                format!("moved to {}", crate::imap::mutf7::decode(&dest)),
            ),
            ActionKind::Move if caps.has("MOVE") && !copying => (
                vec![Op::Move(dest.clone())],
                None,
                format!("moved to {}", crate::imap::mutf7::decode(&dest)),
            ),
            ActionKind::Move => (
                vec![Op::Copy(dest.clone()), Op::StoreDeleted, Op::Expunge],
                Some(0),
                format!("moved to {}", crate::imap::mutf7::decode(&dest)),
            ),
        };
        for chunk in actions.chunks(MAX_UIDS_PER_COMMAND) {
            out.batches.push(Batch {
                actions: chunk.to_vec(),
                ops: ops.clone(),
                copied_after,
                copying_before: copied_after,
                verify: copying,
                done: done.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(id: i64, uid: u32, kind: ActionKind, target: Option<&str>, copied: bool) -> OpenAction {
        OpenAction {
            id,
            uid,
            kind,
            target: target.map(str::to_owned),
            reason: "after_store".into(),
            copied,
            gone: false,
            copying: false,
            message_id: None,
        }
    }

    fn caps(c: &[&str]) -> Capabilities {
        Capabilities::new(c.iter().copied())
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.batches
            .iter()
            .flat_map(|b| {
                let set = b.uids();
                b.ops
                    .iter()
                    .map(move |o| o.command(&set).redacted("t"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn seen_is_one_ranged_store_on_exactly_the_stored_uids() {
        let a: Vec<_> = [1, 2, 3, 7, 9, 10]
            .iter()
            .enumerate()
            .map(|(i, u)| open(i as i64, *u, ActionKind::Seen, None, false))
            .collect();
        let p = plan(&a, &caps(&["IMAP4rev1"]));
        assert_eq!(lines(&p), ["t UID STORE 1:3,7,9:10 +FLAGS.SILENT (\\Seen)"]);
        assert!(p.refused.is_empty());
        // A message already expunged gets no command.
        let mut b = a.clone();
        b[0].gone = true;
        let p = plan(&b, &caps(&["IMAP4rev1"]));
        assert_eq!(lines(&p), ["t UID STORE 2:3,7,9:10 +FLAGS.SILENT (\\Seen)"]);
        assert_eq!(p.gone, [(0, ActionKind::Seen)]);
    }

    #[test]
    fn move_uses_move_when_offered_else_copy_store_uid_expunge() {
        let a = vec![
            open(1, 5, ActionKind::Move, Some("Processed"), false),
            open(2, 6, ActionKind::Move, Some("Processed"), false),
        ];
        let p = plan(&a, &caps(&["MOVE", "UIDPLUS"]));
        assert_eq!(lines(&p), ["t UID MOVE 5:6 Processed"]);
        let p = plan(&a, &caps(&["UIDPLUS"]));
        assert_eq!(
            lines(&p),
            [
                "t UID COPY 5:6 Processed",
                "t UID STORE 5:6 +FLAGS.SILENT (\\Deleted)",
                "t UID EXPUNGE 5:6"
            ]
        );
        assert_eq!(p.batches[0].copied_after, Some(0));
        // A copy made before a restart is not made again.
        let a = vec![open(1, 5, ActionKind::Move, Some("Processed"), true)];
        let p = plan(&a, &caps(&["UIDPLUS"]));
        assert_eq!(
            lines(&p),
            ["t UID STORE 5 +FLAGS.SILENT (\\Deleted)", "t UID EXPUNGE 5"]
        );
        // One whose copy may exist is looked for first, even with MOVE.
        let mut a = vec![open(1, 5, ActionKind::Move, Some("Processed"), false)];
        a[0].copying = true;
        let p = plan(&a, &caps(&["UIDPLUS", "MOVE"]));
        assert!(p.batches[0].verify);
        assert_eq!(
            lines(&p),
            [
                "t UID COPY 5 Processed",
                "t UID STORE 5 +FLAGS.SILENT (\\Deleted)",
                "t UID EXPUNGE 5"
            ]
        );
    }

    #[test]
    fn never_a_bare_expunge_without_uidplus() {
        let a = vec![
            open(1, 5, ActionKind::Delete, None, false),
            open(2, 6, ActionKind::Move, Some("P"), false),
            open(3, 7, ActionKind::Seen, None, false),
        ];
        let p = plan(&a, &caps(&["IMAP4rev1"]));
        assert_eq!(lines(&p), ["t UID STORE 7 +FLAGS.SILENT (\\Seen)"]);
        assert_eq!(p.refused.len(), 2);
        assert!(p.refused.iter().all(|(_, why)| why.contains("UIDPLUS")));
        for l in lines(&plan(&a, &caps(&["UIDPLUS", "MOVE"]))) {
            assert!(!l.ends_with(" EXPUNGE"), "bare EXPUNGE: {l}");
        }
        // MOVE alone suffices for a move.
        let p = plan(&a[1..2], &caps(&["MOVE"]));
        assert_eq!(lines(&p), ["t UID MOVE 6 P"]);
    }

    #[test]
    fn large_sets_are_cut_and_kinds_kept_apart() {
        let mut a: Vec<_> = (1..=1200)
            .map(|u| open(i64::from(u), u * 2, ActionKind::Delete, None, false))
            .collect();
        a.push(open(5000, 3, ActionKind::Seen, None, false));
        let p = plan(&a, &caps(&["UIDPLUS"]));
        let sizes: Vec<usize> = p.batches.iter().map(|b| b.actions.len()).collect();
        assert_eq!(sizes, [500, 500, 200, 1]);
        let all: usize = sizes.iter().sum();
        assert_eq!(all, a.len());
    }
}
