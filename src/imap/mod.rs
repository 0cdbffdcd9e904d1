//! The sans-IO IMAP core: commands to bytes, bytes to responses, and the pure
//! decisions in between. Nothing here imports tokio, a socket, a clock or
//! rusqlite; every protocol behaviour can be replayed as a byte script. The
//! flows (`login`, `idle`, `notify`, `examine`, `tags`, `unasked`) are state machines
//! fed responses that say what happened and what to send.

pub mod capabilities;
pub mod command;
pub mod date;
pub mod describe;
pub mod examine;
pub mod folder;
mod grammar;
pub mod idle;
pub mod login;
pub mod mutf7;
pub mod notify;
pub mod reader;
pub mod response;
pub mod sasl;
pub mod tags;
pub mod types;
pub mod unasked;

pub use capabilities::{AuthMethod, AuthRefusal, Capabilities, choose_auth};
pub use command::{Command, FetchItems, FetchSet, Part, SearchArg};
pub use examine::{Examine, MAX_REPORTED_CHANGES, MailboxState};
pub use folder::Folder;
pub use idle::{Idle, IdleEvent};
pub use login::{Greeted, Login, LoginEvent, greeting};
pub use notify::{Notify, NotifyEvent, Seen};
pub use reader::{DEFAULT_MAX_LINE, Limits, ProtocolError, Received, ResponseReader};
pub use response::{
    Body, Code, FetchData, ListEntry, Response, Status, StatusText, Untagged, UntaggedStatus,
};
pub use sasl::{OAuthExchange, OAuthMechanism, choose_oauth};
pub use tags::{Asks, Tags};
pub use types::{ModSeq, SeqNum, Uid, UidRange, UidSet, UidValidity};
pub use unasked::{Reported, Unasked};
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;
