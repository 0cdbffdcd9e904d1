//! The command line: subcommands and their flags (clap), and the thin glue
//! that runs each one and prints its result. The only module, with main.rs,
//! that writes to stdout and chooses exit codes. One file a subcommand.

mod args;
mod auth;
mod check;
mod connect;
mod logging;
mod progress;
mod query;
mod serve;
mod status;
mod sync;
mod tail;
mod watch;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::config::{AccountConfig, Config};
use crate::secret::scrub;
use crate::store;

pub use args::{Cli, Cmd};
pub use logging::init_logging;

/// Exit codes: 0 success, 1 some work failed, 2 configuration or usage
/// error, 75 (`EX_TEMPFAIL`) `sync` skipped accounts a running instance
/// holds on PostgreSQL and nothing failed.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;
pub const EXIT_BUSY: i32 = 75;

pub fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(anyhow::Error::from)
}

pub(super) fn selected<'a>(
    config: &'a Config,
    account: &Option<String>,
) -> Result<Vec<&'a AccountConfig>> {
    let list: Vec<&AccountConfig> = config
        .accounts
        .iter()
        .filter(|a| account.as_ref().is_none_or(|n| &a.name == n))
        .collect();
    if list.is_empty() {
        let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "no account named `{}` in the configuration (accounts: {})",
            account.as_deref().unwrap_or_default(),
            names.join(", ")
        );
    }
    Ok(list)
}

/// The store for a command that reads it, or a clear error when no sync has
/// created it yet.
pub(super) fn open_existing(config: &Config) -> Result<store::Reader> {
    if config.store.postgres.is_none() && !config.store.path.exists() {
        bail!(
            "no database at {} yet; run `mailfeed sync` first",
            config.store.path.display()
        );
    }
    Ok(store::Reader::open_store(&config.store)?)
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let config = match load_config(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailfeed: {}", one_line(&e));
            return EXIT_CONFIG;
        }
    };
    init_logging(config.log.format, &config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailfeed: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Cmd::Sync { account, quiet } => sync::cmd_sync(&config, account, *quiet).await,
            Cmd::Run => crate::service::run(Arc::new(config.clone()), cli.config.clone())
                .await
                .map(|outcome| match outcome {
                    crate::service::Outcome::Stopped => 0,
                    crate::service::Outcome::WriterFailed => EXIT_FAILED,
                })
                .map_err(anyhow::Error::from),
            Cmd::Check { account } => check::cmd_check(&config, account).await,
            Cmd::Status { json, watch } => status::cmd_status(&config, *json, *watch),
            Cmd::Auth { account } => auth::cmd_auth(&config, account).await,
            Cmd::Search { query, limit } => query::cmd_search(&config, query, *limit),
            Cmd::Export {
                format,
                account,
                mailbox,
                since,
                dest,
            } => query::cmd_export(
                &config,
                *format,
                store::ExportFilter {
                    account: account.clone(),
                    mailbox: mailbox.clone(),
                    since: since.clone(),
                },
                dest,
            ),
            Cmd::Serve { listen, db } => serve::cmd_serve(&config, *listen, db.as_deref()).await,
            Cmd::Tail {
                from_id,
                follow,
                json,
            } => tail::cmd_tail(&config, *from_id, *follow, *json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailfeed: {}", scrub(&one_line(&e)));
            EXIT_FAILED
        }
    }
}

/// An error and its causes in one line, each cause once: many errors name
/// their cause in their own message already, and printing the chain as is
/// would then say it twice ("connecting to …: refused: refused").
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("connecting to db: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_named_in_the_message_is_said_once() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::new(Outer { source: refused() });
        assert_eq!(one_line(&e), "connecting to db: refused");
        let e = anyhow::Error::new(refused()).context("opening the store");
        assert_eq!(one_line(&e), "opening the store: refused");
    }
}
