//! mailfeed: feeds mail from IMAP servers into a local SQLite database,
//! exactly once. See ARCHITECTURE.md for the map of modules.

// Errors carry context (account, folder, server text); they travel on cold
// paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub(crate) mod actions;
pub(crate) mod alerts;
pub mod cli;
pub mod config;
pub mod conversation;
pub(crate) mod export;
pub mod fd_limit;
pub(crate) mod health;
pub(crate) mod http;
pub mod imap;
pub mod mime;
pub mod oauth2;
pub mod secret;
pub mod service;
pub mod session;
pub mod store;
pub mod sync;
pub(crate) mod transport;
pub mod utc;
pub(crate) mod window;

#[cfg(test)]
pub(crate) mod testing;
