//! mailfeed: feeds mail from IMAP servers into a local SQLite database,
//! exactly once. See ARCHITECTURE.md for the map of modules.

// Errors carry context (account, folder, server text); they travel on cold
// paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod actions;
pub mod alerts;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod export;
pub mod fd_limit;
pub mod health;
pub mod http;
pub mod imap;
pub mod mime;
pub mod oauth2;
pub mod secret;
pub mod service;
pub mod session;
pub mod store;
pub mod sync;
pub mod transport;
pub mod utc;
pub mod window;

#[cfg(test)]
pub(crate) mod testing;
