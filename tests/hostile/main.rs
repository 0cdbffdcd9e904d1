//! Hostile servers: a scripted fake server plays byte streams no sane server
//! sends, and `mailfeed sync` must answer each with no panic, no hang (every
//! run is bounded by `[sync] timeout = "2s"` and a hard deadline here),
//! bounded memory (peak RSS measured), a clear error or a correct recovery,
//! and an intact database. After every case a second run against a
//! well-behaved server (on the same database) must end with exactly the
//! server's three messages, each stored once.
//!
//! The table is [`table::cases`], one row per attack with the behaviour
//! expected, grouped by phase in `table/`; `rows.rs` makes each row a test of
//! its own (`cargo test --test hostile literal_size_negative` runs one), and
//! `run.rs` runs a row. Byte-level attacks on the response reader
//! (allocation bounds) are in `reader.rs`; `check`'s transcript in `check.rs`.

#[path = "../support/mod.rs"]
mod support;

mod check;
mod reader;
mod rows;
mod run;
mod script;
mod table;
