//! What the server can say, as typed values. Produced by the grammar, consumed
//! by the session; nothing here knows how the bytes arrived.

use super::types::{ModSeq, SeqNum, Uid, UidSet, UidValidity};

/// The outcome word of a tagged reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }
}

/// The word of an untagged status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntaggedStatus {
    Ok,
    No,
    Bad,
    Preauth,
    Bye,
}

/// A bracketed response code (`[UIDVALIDITY 42]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    Capability(Vec<String>),
    UidValidity(u32),
    UidNext(u32),
    Unseen(u32),
    HighestModSeq(u64),
    NoModSeq,
    ReadOnly,
    ReadWrite,
    Closed,
    /// Any other code, with its argument text if there was one. Codes such as
    /// `UNAVAILABLE`, `AUTHENTICATIONFAILED` or `THROTTLED` arrive here.
    Other(String, Option<String>),
}

/// A tagged reply, or the text part of an untagged status response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusText {
    pub code: Option<Code>,
    pub text: String,
}

impl StatusText {
    /// The text as people should see it: with an unknown code's name in
    /// front (`[UNAVAILABLE] try later`), since that is often the reason.
    pub fn shown(&self) -> String {
        match &self.code {
            Some(Code::Other(name, _)) => format!("[{name}] {}", self.text),
            _ => self.text.clone(),
        }
    }
}

/// How the server delivered the `BODY[]` of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The complete bytes, exactly as sent.
    Full(Vec<u8>),
    /// The server announced more than the configured limit; only the first
    /// bytes were kept (enough for the header block) and the rest discarded.
    Truncated { prefix: Vec<u8>, declared: u64 },
    /// The server sent `NIL`: it has no content for this message.
    Nil,
}

/// The items of one FETCH response that mailfeed asks for; others are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchData {
    pub uid: Option<Uid>,
    pub flags: Option<Vec<String>>,
    pub internal_date: Option<String>,
    pub rfc822_size: Option<u64>,
    pub modseq: Option<ModSeq>,
    pub body: Option<Body>,
    /// Gmail's permanent message id (X-GM-EXT-1): the same in every folder
    /// the message is in.
    pub gm_msgid: Option<u64>,
    /// Gmail's thread id (X-GM-EXT-1).
    pub gm_thrid: Option<u64>,
    /// Gmail's labels as sent (modified UTF-7; system labels such as
    /// `\\Inbox` keep their backslash).
    pub gm_labels: Option<Vec<String>>,
}

/// One mailbox from a LIST response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub attributes: Vec<String>,
    pub delimiter: Option<char>,
    /// The name as sent on the wire (modified UTF-7 for non-ASCII names).
    pub name: String,
}

impl ListEntry {
    /// `\Noselect` or `\NonExistent` folders cannot be examined.
    pub fn is_selectable(&self) -> bool {
        !self.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }
}

/// Items of an ESEARCH response that mailfeed uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ESearch {
    pub tag: Option<String>,
    pub uid: bool,
    pub all: Option<UidSet>,
    pub count: Option<u32>,
}

/// An untagged (`*`) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    Status(UntaggedStatus, StatusText),
    Capability(Vec<String>),
    Enabled(Vec<String>),
    Flags(Vec<String>),
    Exists(u32),
    Recent(u32),
    Expunge(SeqNum),
    Fetch(SeqNum, Box<FetchData>),
    List(ListEntry),
    MailboxStatus {
        mailbox: String,
        items: Vec<(String, u64)>,
    },
    Search(Vec<u32>),
    ESearch(ESearch),
    Vanished {
        earlier: bool,
        uids: UidSet,
    },
    /// A response mailfeed does not use (NAMESPACE, ID, METADATA, ...).
    Other(String),
}

/// One complete response from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Tagged {
        tag: String,
        status: Status,
        text: StatusText,
    },
    Untagged(Untagged),
    /// A `+` continuation request, with its (possibly base64) text.
    Continuation(String),
}

impl Response {
    pub fn uidvalidity_code(&self) -> Option<UidValidity> {
        match self {
            Response::Untagged(Untagged::Status(
                _,
                StatusText {
                    code: Some(Code::UidValidity(v)),
                    ..
                },
            )) => Some(UidValidity(*v)),
            _ => None,
        }
    }
}
