//! Test support shared by the integration tests: a private Dovecot per test
//! (`dovecot`), a tiny blocking IMAP client that is the "truth" the database is
//! compared with (`imap_truth`), deterministic test mail (`corpus`), private
//! Cyrus and Courier servers for the interop tests (`cyrus`, `courier`), and
//! what every private server offers the tests (`server::TestServer`), a
//! private PostgreSQL for the second store backend (`postgres`), the one
//! way a test chooses its store backend and reads what its database holds,
//! alike on both (`feed_db`), and certificates made as users make them
//! (`certificate`).
//!
//! Each integration test file does `mod support;`. Not every test file uses
//! every helper, hence the `dead_code` allowance. Typical use:
//!
//! ```ignore
//! let dc = support::dovecot::Dovecot::start_with_users(&[("alice", "secret")])
//!     .expect("starting a private Dovecot");
//! dc.create_folder("alice", "Archive")?;
//! dc.append_many("alice", "INBOX", &support::corpus::varied(100, 1))?;
//! // ... run mailfeed against 127.0.0.1:dc.tls_port() trusting dc.cert_path() ...
//! let truth = dc.fetch_all("alice", "INBOX")?; // Vec<(uid, BODY[] bytes)>
//! ```
//!
//! The Dovecot log is printed automatically when a test panics while an
//! instance is alive; `dc.print_log()` prints it on demand.
#![allow(dead_code)]

pub mod certificate;
pub mod corpus;
pub mod courier;
pub mod cyrus;
pub mod dovecot;
pub mod fake_server;
pub mod fault_proxy;
pub mod feed_db;
pub mod generations;
pub mod gmail;
pub mod http;
pub mod http_probe;
pub mod imap_truth;
pub mod mailfeed;
pub mod oauth2;
pub mod postgres;
pub mod rng;
pub mod run;
pub mod server;
pub mod webdriver;
