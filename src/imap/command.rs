//! Commands as values, and their encoding into wire bytes. Each command
//! encodes twice: once for the wire, once for people (`LOGIN alice ***`), so
//! a log or a `check` transcript can never carry a secret.

use base64::Engine;

use super::types::{ModSeq, UidSet, UidValidity};
use crate::secret::Secret;

/// A command mailfeed sends.
#[derive(Debug, Clone)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        username: String,
        password: Secret,
    },
    /// SASL PLAIN; with SASL-IR the response rides on the command line,
    /// otherwise it follows a continuation request.
    AuthenticatePlain {
        username: String,
        password: Secret,
        initial_response: bool,
    },
    /// SASL OAUTHBEARER or XOAUTH2; the base64 response on the command
    /// line with SASL-IR, else after the server's `+` ([`super::sasl`]).
    AuthenticateOAuth {
        mechanism: super::sasl::OAuthMechanism,
        initial_response: Option<Secret>,
    },
    Enable(Vec<String>),
    /// RFC 2971: who the client is (some providers want it before SELECT).
    Id,
    Compress,
    List {
        reference: String,
        pattern: String,
    },
    /// Read-only select; with QRESYNC parameters when known (RFC 7162 §3.2.5).
    Examine {
        mailbox: String,
        condstore: bool,
        qresync: Option<(UidValidity, ModSeq)>,
    },
    Status {
        mailbox: String,
        items: Vec<&'static str>,
    },
    /// `UID FETCH set (items) [(CHANGEDSINCE n [VANISHED])]`
    UidFetch {
        set: FetchSet,
        items: FetchItems,
        changed_since: Option<ModSeq>,
        vanished: bool,
    },
    UidSearch {
        criteria: String,
        esearch: bool,
    },
    /// `FETCH set (items)` by message sequence number: only to learn the
    /// UIDs of messages a server reported by number (a flag change in IDLE
    /// without QRESYNC), while their numbers are still valid.
    Fetch {
        set: FetchSet,
        items: FetchItems,
    },
    Idle,
    /// RFC 3691: closes the selected mailbox without expunging anything.
    Unselect,
    /// `NOTIFY SET` (RFC 5465): the selected mailbox reports as usual, and
    /// new, expunged and changed messages in `mailboxes` (wire names) are
    /// announced by `STATUS` while they are not selected.
    NotifySet {
        mailboxes: Vec<String>,
    },
    /// Read-write select, for a folder mailfeed is configured to change
    /// (`after_store`, `delete_after`); otherwise EXAMINE.
    Select {
        mailbox: String,
        condstore: bool,
        qresync: Option<(UidValidity, ModSeq)>,
    },
    /// `UID STORE set +FLAGS.SILENT (flags)`: adds flags without asking for
    /// the new flags back.
    UidStoreAdd {
        set: String,
        flags: Vec<&'static str>,
    },
    /// `UID COPY set mailbox`
    UidCopy {
        set: String,
        mailbox: String,
    },
    /// `UID MOVE set mailbox` (RFC 6851)
    UidMove {
        set: String,
        mailbox: String,
    },
    /// `UID EXPUNGE set` (RFC 4315): removes only these UIDs, never another
    /// client's `\Deleted` messages as a bare EXPUNGE would.
    UidExpunge {
        set: String,
    },
    /// `CREATE mailbox`
    Create {
        mailbox: String,
    },
    /// `UID SEARCH [RETURN (ALL)] [CHARSET UTF-8] args`, with strings as
    /// quoted strings or, when not 7-bit, literals (RFC 3501 forbids 8-bit
    /// in quoted strings); `CHARSET UTF-8` is added when one is not ASCII.
    UidSearchArgs {
        args: Vec<SearchArg>,
        esearch: bool,
    },
}

/// One piece of SEARCH criteria.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchArg {
    /// Sent as is: keys, numbers, dates, UID sets, parentheses.
    Atom(String),
    /// A string argument (e.g. after SUBJECT).
    Str(String),
}

/// Which messages a FETCH names (UIDs for `UID FETCH`, numbers for `FETCH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchSet {
    /// `first:last`
    Range(u32, u32),
    /// `first:*` — a server also answers with the last message when every
    /// number is below `first`, so callers filter.
    From(u32),
    /// An explicit set, written compactly (`1:3,7`).
    Set(UidSet),
}

impl std::fmt::Display for FetchSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchSet::Range(a, b) => write!(f, "{a}:{b}"),
            FetchSet::From(a) => write!(f, "{a}:*"),
            FetchSet::Set(s) => write!(f, "{s}"),
        }
    }
}

/// What a FETCH asks for: the few item lists mailfeed uses, so no caller
/// writes protocol text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchItems {
    /// `UID`: which messages exist.
    Uid,
    /// `UID RFC822.SIZE`: which exist and their sizes (for progress totals).
    UidSize,
    /// `UID FLAGS`: a flag scan (its answers are not changes to record).
    Flags,
    /// Everything stored about a message, its bytes untouched.
    Message,
    /// `UID X-GM-MSGID`: Gmail's listing, to skip bodies stored already.
    GmailIds,
    /// A message with Gmail's ids and labels (X-GM-EXT-1).
    GmailMessage,
    /// `UID X-GM-MSGID X-GM-LABELS`: a label scan of stored messages.
    GmailLabels,
}

impl FetchItems {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchItems::Uid => "UID",
            FetchItems::UidSize => "UID RFC822.SIZE",
            FetchItems::Flags => "UID FLAGS",
            FetchItems::Message => "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]",
            FetchItems::GmailIds => "UID X-GM-MSGID",
            FetchItems::GmailMessage => {
                "UID FLAGS INTERNALDATE RFC822.SIZE X-GM-MSGID X-GM-THRID X-GM-LABELS BODY.PEEK[]"
            }
            FetchItems::GmailLabels => "UID X-GM-MSGID X-GM-LABELS",
        }
    }

    /// True for a fetch of flags alone: its FETCH answers are not changes
    /// the server reports unasked.
    pub fn flags_only(self) -> bool {
        matches!(self, FetchItems::Flags)
    }
}

/// A piece of an encoded command: text, or a literal that (when synchronizing)
/// must wait for the server's `+` before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Vec<u8>),
    Literal { data: Vec<u8>, synchronizing: bool },
}

/// How a string argument must be written.
fn astring(s: &str, literal_plus: bool, out: &mut Encoder) {
    let b = s.as_bytes();
    let atom_ok = !b.is_empty()
        && b.iter().all(|&c| {
            c > 0x20
                && c < 0x7f
                && !matches!(
                    c,
                    b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
                )
        });
    if atom_ok {
        out.text(b);
    } else if b
        .iter()
        .all(|&c| c != 0 && c != b'\r' && c != b'\n' && c < 0x80)
    {
        out.text(b"\"");
        for &c in b {
            if c == b'"' || c == b'\\' {
                out.text(b"\\");
            }
            out.text(&[c]);
        }
        out.text(b"\"");
    } else {
        out.literal(b, literal_plus);
    }
}

/// Like [`astring`] but a mailbox pattern may keep `*` and `%` unquoted.
fn list_mailbox(s: &str, literal_plus: bool, out: &mut Encoder) {
    if !s.is_empty()
        && s.bytes().all(|c| {
            c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b' ' | b'"' | b'\\' | b']')
        })
    {
        out.text(s.as_bytes());
    } else {
        astring(s, literal_plus, out);
    }
}

struct Encoder {
    parts: Vec<Part>,
}

impl Encoder {
    fn text(&mut self, b: &[u8]) {
        match self.parts.last_mut() {
            Some(Part::Text(t)) => t.extend_from_slice(b),
            _ => self.parts.push(Part::Text(b.to_vec())),
        }
    }

    fn literal(&mut self, b: &[u8], literal_plus: bool) {
        let marker = if literal_plus {
            format!("{{{}+}}\r\n", b.len())
        } else {
            format!("{{{}}}\r\n", b.len())
        };
        self.text(marker.as_bytes());
        self.parts.push(Part::Literal {
            data: b.to_vec(),
            synchronizing: !literal_plus,
        });
    }
}

impl Command {
    /// The command's name, for messages such as "tagged reply to a02 LOGIN".
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capability => "CAPABILITY",
            Command::Noop => "NOOP",
            Command::Logout => "LOGOUT",
            Command::StartTls => "STARTTLS",
            Command::Login { .. } => "LOGIN",
            Command::AuthenticatePlain { .. } | Command::AuthenticateOAuth { .. } => "AUTHENTICATE",
            Command::Enable(_) => "ENABLE",
            Command::Id => "ID",
            Command::Compress => "COMPRESS",
            Command::List { .. } => "LIST",
            Command::Examine { .. } => "EXAMINE",
            Command::Status { .. } => "STATUS",
            Command::UidFetch { .. } => "UID FETCH",
            Command::UidSearch { .. } => "UID SEARCH",
            Command::Fetch { .. } => "FETCH",
            Command::Idle => "IDLE",
            Command::Unselect => "UNSELECT",
            Command::NotifySet { .. } => "NOTIFY",
            Command::Select { .. } => "SELECT",
            Command::UidStoreAdd { .. } => "UID STORE",
            Command::UidCopy { .. } => "UID COPY",
            Command::UidMove { .. } => "UID MOVE",
            Command::UidExpunge { .. } => "UID EXPUNGE",
            Command::Create { .. } => "CREATE",
            Command::UidSearchArgs { .. } => "UID SEARCH",
        }
    }

    /// The SASL PLAIN response (`\0user\0password`, base64), for
    /// AUTHENTICATE without SASL-IR, sent after the server's `+`.
    pub fn sasl_plain(username: &str, password: &Secret) -> Vec<u8> {
        let mut raw = Vec::with_capacity(username.len() + password.expose().len() + 2);
        raw.push(0);
        raw.extend_from_slice(username.as_bytes());
        raw.push(0);
        raw.extend_from_slice(password.expose().as_bytes());
        let mut out = base64::engine::general_purpose::STANDARD
            .encode(&raw)
            .into_bytes();
        for b in raw.iter_mut() {
            *b = 0;
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Wire bytes, split where synchronizing literals must wait.
    pub fn encode(&self, tag: &str, literal_plus: bool) -> Vec<Part> {
        self.encode_with(tag, literal_plus, false)
    }

    /// The command as people may see it, secrets replaced by `***`.
    pub fn redacted(&self, tag: &str) -> String {
        let mut s = String::new();
        for part in self.encode_with(tag, true, true) {
            match part {
                Part::Text(t) => s.push_str(&String::from_utf8_lossy(&t)),
                Part::Literal { data, .. } => s.push_str(&format!("<{} bytes>", data.len())),
            }
        }
        s.trim_end().replace("\r\n", " ")
    }

    fn encode_with(&self, tag: &str, lp: bool, redact: bool) -> Vec<Part> {
        let mut e = Encoder { parts: Vec::new() };
        e.text(tag.as_bytes());
        e.text(b" ");
        match self {
            Command::Capability
            | Command::Noop
            | Command::Logout
            | Command::StartTls
            | Command::Idle
            | Command::Unselect => e.text(self.name().as_bytes()),
            Command::Compress => e.text(b"COMPRESS DEFLATE"),
            Command::Id => e.text(
                format!(
                    "ID (\"name\" \"mailfeed\" \"version\" \"{}\")",
                    env!("CARGO_PKG_VERSION")
                )
                .as_bytes(),
            ),
            Command::Login { username, password } => {
                e.text(b"LOGIN ");
                astring(username, lp, &mut e);
                e.text(b" ");
                if redact {
                    e.text(b"***");
                } else {
                    astring(password.expose(), lp, &mut e);
                }
            }
            Command::AuthenticatePlain {
                username,
                password,
                initial_response,
            } => {
                e.text(b"AUTHENTICATE PLAIN");
                if *initial_response {
                    e.text(b" ");
                    if redact {
                        e.text(b"***");
                    } else {
                        let mut ir = Self::sasl_plain(username, password);
                        ir.truncate(ir.len() - 2);
                        e.text(&ir);
                    }
                }
            }
            Command::AuthenticateOAuth {
                mechanism,
                initial_response,
            } => {
                e.text(b"AUTHENTICATE ");
                e.text(mechanism.name().as_bytes());
                if let Some(ir) = initial_response {
                    e.text(b" ");
                    e.text(if redact {
                        b"***"
                    } else {
                        ir.expose().as_bytes()
                    });
                }
            }
            Command::Enable(caps) => {
                e.text(b"ENABLE");
                for c in caps {
                    e.text(b" ");
                    e.text(c.as_bytes());
                }
            }
            Command::List { reference, pattern } => {
                e.text(b"LIST ");
                astring_or_empty(reference, lp, &mut e);
                e.text(b" ");
                list_mailbox(pattern, lp, &mut e);
            }
            Command::Examine {
                mailbox,
                condstore,
                qresync,
            } => {
                e.text(b"EXAMINE ");
                astring(mailbox, lp, &mut e);
                if let Some((v, m)) = qresync {
                    e.text(format!(" (QRESYNC ({} {}))", v.0, m.0).as_bytes());
                } else if *condstore {
                    e.text(b" (CONDSTORE)");
                }
            }
            Command::NotifySet { mailboxes } => {
                const EVENTS: &[u8] = b"(MessageNew MessageExpunge FlagChange)";
                e.text(b"NOTIFY SET (selected ");
                e.text(EVENTS);
                e.text(b") (mailboxes (");
                for (i, m) in mailboxes.iter().enumerate() {
                    if i > 0 {
                        e.text(b" ");
                    }
                    astring(m, lp, &mut e);
                }
                e.text(b") ");
                e.text(EVENTS);
                e.text(b")");
            }
            Command::Status { mailbox, items } => {
                e.text(b"STATUS ");
                astring(mailbox, lp, &mut e);
                e.text(format!(" ({})", items.join(" ")).as_bytes());
            }
            Command::UidFetch {
                set,
                items,
                changed_since,
                vanished,
            } => {
                e.text(format!("UID FETCH {set} ({})", items.as_str()).as_bytes());
                if let Some(m) = changed_since {
                    if *vanished {
                        e.text(format!(" (CHANGEDSINCE {} VANISHED)", m.0).as_bytes());
                    } else {
                        e.text(format!(" (CHANGEDSINCE {})", m.0).as_bytes());
                    }
                }
            }
            Command::Fetch { set, items } => {
                e.text(format!("FETCH {set} ({})", items.as_str()).as_bytes());
            }
            Command::UidSearch { criteria, esearch } => {
                if *esearch {
                    e.text(format!("UID SEARCH RETURN (ALL) {criteria}").as_bytes());
                } else {
                    e.text(format!("UID SEARCH {criteria}").as_bytes());
                }
            }
            Command::Select {
                mailbox,
                condstore,
                qresync,
            } => {
                e.text(b"SELECT ");
                astring(mailbox, lp, &mut e);
                if let Some((v, m)) = qresync {
                    e.text(format!(" (QRESYNC ({} {}))", v.0, m.0).as_bytes());
                } else if *condstore {
                    e.text(b" (CONDSTORE)");
                }
            }
            Command::UidStoreAdd { set, flags } => {
                e.text(format!("UID STORE {set} +FLAGS.SILENT ({})", flags.join(" ")).as_bytes());
            }
            Command::UidCopy { set, mailbox } => {
                e.text(format!("UID COPY {set} ").as_bytes());
                astring(mailbox, lp, &mut e);
            }
            Command::UidMove { set, mailbox } => {
                e.text(format!("UID MOVE {set} ").as_bytes());
                astring(mailbox, lp, &mut e);
            }
            Command::UidExpunge { set } => e.text(format!("UID EXPUNGE {set}").as_bytes()),
            Command::Create { mailbox } => {
                e.text(b"CREATE ");
                astring(mailbox, lp, &mut e);
            }
            Command::UidSearchArgs { args, esearch } => {
                e.text(b"UID SEARCH");
                if *esearch {
                    e.text(b" RETURN (ALL)");
                }
                if args
                    .iter()
                    .any(|a| matches!(a, SearchArg::Str(s) if !s.is_ascii()))
                {
                    e.text(b" CHARSET UTF-8");
                }
                for a in args {
                    e.text(b" ");
                    match a {
                        SearchArg::Atom(t) => e.text(t.as_bytes()),
                        SearchArg::Str(t) => quoted_or_literal(t, lp, &mut e),
                    }
                }
            }
        }
        e.text(b"\r\n");
        e.parts
    }
}

/// A string argument: always quoted when 7-bit (an atom-looking word such
/// as `FROM` must stay a string), else a literal.
fn quoted_or_literal(s: &str, lp: bool, e: &mut Encoder) {
    if s.bytes()
        .all(|c| c > 0 && c < 0x80 && c != b'\r' && c != b'\n')
    {
        let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
        e.text(format!("\"{escaped}\"").as_bytes());
    } else {
        e.literal(s.as_bytes(), lp);
    }
}

fn astring_or_empty(s: &str, lp: bool, e: &mut Encoder) {
    if s.is_empty() {
        e.text(b"\"\"");
    } else {
        astring(s, lp, e);
    }
}

/// Formats a UID set for a command.
pub fn uid_set(set: &UidSet) -> String {
    set.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(c: &Command, lp: bool) -> Vec<Part> {
        c.encode("a1", lp)
    }

    #[test]
    fn login_quotes_and_redacts() {
        let c = Command::Login {
            username: "alice".into(),
            password: Secret::new("p\"w d"),
        };
        assert_eq!(
            wire(&c, false),
            vec![Part::Text(b"a1 LOGIN alice \"p\\\"w d\"\r\n".to_vec())]
        );
        assert_eq!(c.redacted("a1"), "a1 LOGIN alice ***");
    }

    #[test]
    fn eight_bit_password_goes_as_literal() {
        let c = Command::Login {
            username: "bob".into(),
            password: Secret::new("pä"),
        };
        let parts = wire(&c, false);
        assert_eq!(parts[0], Part::Text(b"a1 LOGIN bob {3}\r\n".to_vec()));
        assert_eq!(
            parts[1],
            Part::Literal {
                data: "pä".as_bytes().to_vec(),
                synchronizing: true
            }
        );
        assert_eq!(parts[2], Part::Text(b"\r\n".to_vec()));
        assert!(!c.redacted("a1").contains("pä"));
    }

    #[test]
    fn sasl_plain_with_initial_response() {
        let c = Command::AuthenticatePlain {
            username: "u".into(),
            password: Secret::new("p"),
            initial_response: true,
        };
        assert_eq!(
            wire(&c, true),
            vec![Part::Text(b"a1 AUTHENTICATE PLAIN AHUAcA==\r\n".to_vec())]
        );
        assert_eq!(c.redacted("a1"), "a1 AUTHENTICATE PLAIN ***");
    }

    #[test]
    fn examine_with_qresync_and_fetch_changedsince() {
        let c = Command::Examine {
            mailbox: "Sent Items".into(),
            condstore: true,
            qresync: Some((UidValidity(7), ModSeq(99))),
        };
        assert_eq!(
            wire(&c, true),
            vec![Part::Text(
                b"a1 EXAMINE \"Sent Items\" (QRESYNC (7 99))\r\n".to_vec()
            )]
        );
        let f = Command::UidFetch {
            set: FetchSet::From(1),
            items: FetchItems::Flags,
            changed_since: Some(ModSeq(5)),
            vanished: true,
        };
        assert_eq!(
            wire(&f, true),
            vec![Part::Text(
                b"a1 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 5 VANISHED)\r\n".to_vec()
            )]
        );
    }

    #[test]
    fn commands_that_change_the_server() {
        let one = |c: Command| match &wire(&c, true)[..] {
            [Part::Text(t)] => String::from_utf8_lossy(t).into_owned(),
            other => panic!("not one line: {other:?}"),
        };
        assert_eq!(
            one(Command::Select {
                mailbox: "INBOX".into(),
                condstore: true,
                qresync: None
            }),
            "a1 SELECT INBOX (CONDSTORE)\r\n"
        );
        assert_eq!(
            one(Command::UidStoreAdd {
                set: "1:3,7".into(),
                flags: vec!["\\Seen"]
            }),
            "a1 UID STORE 1:3,7 +FLAGS.SILENT (\\Seen)\r\n"
        );
        assert_eq!(
            one(Command::UidMove {
                set: "4".into(),
                mailbox: "Done Items".into()
            }),
            "a1 UID MOVE 4 \"Done Items\"\r\n"
        );
        assert_eq!(
            one(Command::UidCopy {
                set: "4:5".into(),
                mailbox: "Processed".into()
            }),
            "a1 UID COPY 4:5 Processed\r\n"
        );
        assert_eq!(
            one(Command::UidExpunge { set: "4:5".into() }),
            "a1 UID EXPUNGE 4:5\r\n"
        );
        assert_eq!(
            one(Command::Create {
                mailbox: "Processed".into()
            }),
            "a1 CREATE Processed\r\n"
        );
    }

    #[test]
    fn search_strings_are_quoted_or_literals_with_charset() {
        let c = Command::UidSearchArgs {
            args: vec![
                SearchArg::Atom("UID".into()),
                SearchArg::Atom("5:*".into()),
                SearchArg::Atom("SUBJECT".into()),
                SearchArg::Str("a \"b\"".into()),
            ],
            esearch: true,
        };
        assert_eq!(
            wire(&c, true),
            vec![Part::Text(
                b"a1 UID SEARCH RETURN (ALL) UID 5:* SUBJECT \"a \\\"b\\\"\"\r\n".to_vec()
            )]
        );
        let c = Command::UidSearchArgs {
            args: vec![
                SearchArg::Atom("SUBJECT".into()),
                SearchArg::Str("Grüße".into()),
            ],
            esearch: false,
        };
        let parts = wire(&c, false);
        assert_eq!(
            parts[0],
            Part::Text(b"a1 UID SEARCH CHARSET UTF-8 SUBJECT {7}\r\n".to_vec())
        );
        assert_eq!(
            parts[1],
            Part::Literal {
                data: "Grüße".as_bytes().to_vec(),
                synchronizing: true
            }
        );
    }

    #[test]
    fn list_keeps_wildcards() {
        let c = Command::List {
            reference: String::new(),
            pattern: "Archive/*".into(),
        };
        assert_eq!(
            wire(&c, true),
            vec![Part::Text(b"a1 LIST \"\" Archive/*\r\n".to_vec())]
        );
    }
}
