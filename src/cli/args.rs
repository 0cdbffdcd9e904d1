//! The command line's shape: subcommands and their flags (clap), and the
//! parsing of flag values. Runs nothing.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mailfeed",
    version,
    about = "Feeds mail from IMAP servers into SQLite, exactly once"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "MAILFEED_CONFIG",
        default_value = "/etc/mailfeed/mailfeed.toml",
        global = true
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// One pass over every account and folder, then exit (0 when all synced).
    Sync {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// No progress bars (they are drawn only when stdout is a terminal).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run as a service: sync, then wait for new mail (IDLE or polling).
    Run,
    /// Connect, log in, examine each folder and show the conversation.
    Check {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Sign in to an OAuth2 account once (device code or browser) and keep its refresh token.
    Auth {
        /// The account's `name`.
        account: String,
    },
    /// Per folder: UIDVALIDITY, last UID, stored count, last sync, last error.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Redraw the table every second until interrupted.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
    },
    /// Full-text search (FTS5 query syntax): date, from, subject, folder.
    Search {
        /// E.g. `invoice`, `subject:report`, `attachments:pdf`, `"exact phrase"`.
        query: String,
        /// At most this many matches, best first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Write stored messages out, byte for byte, as .eml files, mbox or Maildir.
    Export {
        #[arg(long, value_enum)]
        format: crate::export::Format,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Only this folder (readable name, e.g. `Archive/2024`).
        #[arg(long)]
        mailbox: Option<String>,
        /// Only messages dated (Date header, else arrival) on or after this
        /// date: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC).
        #[arg(long, value_parser = parse_since)]
        since: Option<String>,
        /// Directory (eml, maildir) or new file (mbox).
        dest: PathBuf,
    },
    /// Serve the web page and the read-only API over the database, without
    /// syncing (opens it read-only; another process may sync it meanwhile).
    Serve {
        /// Address and port, instead of `[http] listen` (default
        /// 127.0.0.1:9925). Beyond loopback, `[http]` must set a token.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Database file, instead of `[store] path`.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Print messages as they are stored: the last 10, or from an id on.
    Tail {
        /// Start at this feed id (inclusive) instead of the last 10 messages.
        #[arg(long)]
        from_id: Option<i64>,
        /// Keep running and print new messages as they are committed.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn parse_since(s: &str) -> std::result::Result<String, String> {
    let ok = s.len() >= 10
        && s.bytes().enumerate().take(10).all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
        && (s.len() == 10 || crate::export::asctime(s).is_some());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"
        ))
    }
}
