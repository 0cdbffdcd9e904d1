//! Test support shared by the integration tests: a private Dovecot per test
//! (`dovecot`), a tiny blocking IMAP client that is the "truth" the database is
//! compared with (`imap_truth`), and deterministic test mail (`corpus`).
//!
//! Each integration test file does `mod support;`. Not every test file uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod corpus;
pub mod dovecot;
pub mod fake_server;
pub mod fault_proxy;
pub mod imap_truth;
pub mod mailfeed;
