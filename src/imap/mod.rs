//! The sans-IO IMAP core: commands to bytes, bytes to responses, and the pure
//! decisions in between. Nothing here imports tokio, a socket, a clock or
//! rusqlite; every protocol behaviour can be replayed as a byte script.

pub mod capabilities;
pub mod command;
pub mod date;
pub mod describe;
mod grammar;
pub mod mutf7;
pub mod reader;
pub mod response;
pub mod sasl;
pub mod types;

pub use capabilities::{AuthMethod, AuthRefusal, Capabilities, choose_auth};
pub use command::{Command, Part, SearchArg};
pub use reader::{DEFAULT_MAX_LINE, Limits, ProtocolError, Received, ResponseReader};
pub use response::{
    Body, Code, FetchData, ListEntry, Response, Status, StatusText, Untagged, UntaggedStatus,
};
pub use sasl::{OAuthExchange, OAuthMechanism, choose_oauth};
pub use types::{ModSeq, SeqNum, Uid, UidRange, UidSet, UidValidity};
#[cfg(test)]
mod tests;
