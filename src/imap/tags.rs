//! Tag bookkeeping: which commands are open, by tag. A tag is remembered from
//! the moment its command is sent until its tagged reply is read, whoever
//! reads it, so the table holds only commands in flight however long a
//! connection lives (an IDLE connection runs for months).

use std::collections::HashMap;

use super::command::Command;

/// What an open command asks the server for, as far as telling its answers
/// from changes reported unasked needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asks {
    /// EXAMINE (or SELECT): its EXISTS, FETCH and VANISHED describe the
    /// mailbox being opened.
    Examine,
    /// A FETCH of flags and no body: its flags are answers, not changes.
    Flags,
    /// A UID FETCH of bodies or UIDs: its FETCH responses are answers.
    UidFetch,
    /// Anything else.
    Other,
}

impl Asks {
    fn of(cmd: &Command) -> Asks {
        match cmd {
            Command::UidFetch { items, .. } | Command::Fetch { items, .. }
                if items.flags_only() =>
            {
                Asks::Flags
            }
            Command::Examine { .. } | Command::Select { .. } => Asks::Examine,
            Command::UidFetch { .. } => Asks::UidFetch,
            _ => Asks::Other,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Open {
    name: &'static str,
    asks: Asks,
}

/// The tags of one connection: the next to hand out and the commands open.
#[derive(Debug)]
pub struct Tags {
    next: u32,
    open: HashMap<String, Open>,
}

impl Default for Tags {
    fn default() -> Self {
        Tags {
            next: 1,
            open: HashMap::new(),
        }
    }
}

impl Tags {
    /// A fresh tag (`a001`, `a002`, ...) for `cmd`, now open.
    pub fn sent(&mut self, cmd: &Command) -> String {
        let tag = format!("a{:03}", self.next);
        self.next += 1;
        self.open.insert(
            tag.clone(),
            Open {
                name: cmd.name(),
                asks: Asks::of(cmd),
            },
        );
        tag
    }

    /// The name of the open command with `tag`.
    pub fn name(&self, tag: &str) -> Option<&'static str> {
        self.open.get(tag).map(|o| o.name)
    }

    /// The tagged reply to `tag` was read: the command is closed. Returns
    /// its name when it was open.
    pub fn completed(&mut self, tag: &str) -> Option<&'static str> {
        self.open.remove(tag).map(|o| o.name)
    }

    /// Whether a command asking for `what` is open.
    pub fn asking(&self, what: Asks) -> bool {
        self.open.values().any(|o| o.asks == what)
    }

    /// How many commands are open.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}
