//! mailfeed: feeds mail from IMAP servers into a local SQLite database,
//! exactly once. See ARCHITECTURE.md for the map of modules.

pub mod config;
pub mod imap;
pub mod secret;
pub mod session;
pub mod transport;
pub mod store;
pub mod sync;
pub mod cli;
pub mod service;
