//! The command line: subcommands and their flags (clap), and the thin glue
//! that runs each one and prints its result. The only module, with main.rs,
//! that writes to stdout.

mod progress;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::config::{AccountConfig, Config, LogFormat, Security};
use crate::secret::scrub;
use crate::session::{Session, TapLine};
use crate::store::{self, StoreHandle};
use crate::sync::{Engine, FolderOutcome};

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

/// Exit codes: 0 success, 1 some work failed, 2 configuration or usage error.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;

pub fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(anyhow::Error::from)
}

/// Starts logging to stderr as the configuration says; `RUST_LOG` overrides
/// the level. No colours without a terminal, and no timestamps under
/// journald (which adds its own).
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        .with_ansi(ansi);
    let _ = match (format, journald) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

fn selected<'a>(config: &'a Config, account: &Option<String>) -> Result<Vec<&'a AccountConfig>> {
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

fn warn_plaintext(account: &AccountConfig) {
    if account.security == Security::Plain {
        tracing::warn!(
            account = %account.name,
            "security = \"plain\": the password and all mail travel unencrypted"
        );
    }
}

/// `mailfeed sync`
pub async fn cmd_sync(config: &Config, account: &Option<String>, quiet: bool) -> Result<i32> {
    let accounts = selected(config, account)?;
    let _lock = match config.store.postgres {
        None => Some(store::lock::DatabaseLock::acquire(&config.store.path)?),
        Some(_) => None,
    };
    let bars = progress::Bars::start(quiet);
    // Not `start_first_sync` (a rollback journal into an empty database):
    // measured slower so far (benches/README.md).
    let (store, writer) = StoreHandle::open(&config.store, config.sync.max_buffered_bytes)?;
    let mut jobs = Vec::new();
    for acc in &accounts {
        warn_plaintext(acc);
        let mut engine = Engine::new(
            store.clone(),
            crate::session::connect_options(config, acc)?,
            config.sync.clone(),
        )
        .with_daily_limit(acc.daily_download_limit)
        .with_actions(&acc.actions);
        if let Some(b) = &bars {
            engine = engine.with_sink(b.sink());
        }
        jobs.push(async move { crate::sync::sync_account(&engine, acc, &|| None).await });
    }
    let outcomes: Vec<FolderOutcome> = futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect();
    if let Some(b) = &bars {
        b.finish();
    }
    // The feed is committed; search catches up behind it, and `sync` exits
    // only when it has.
    tracing::info!("feed complete; completing the search index");
    let indexed = store.catch_up_search().await;
    drop(store);
    writer.join();
    let code = report(&outcomes);
    if let Err(e) = indexed {
        eprintln!("the search index is incomplete: {e}; the next start completes it");
        return Ok(EXIT_FAILED);
    }
    Ok(code)
}

/// Prints one line per failure (and a summary); returns the exit code.
pub fn report(outcomes: &[FolderOutcome]) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    let (mut new, mut refound) = (0, 0);
    let mut ok = 0;
    for o in outcomes {
        match &o.result {
            Ok(s) => {
                ok += 1;
                new += s.new;
                refound += s.refound;
            }
            // A pause the user asked for, not a failure.
            Err(e @ crate::sync::SyncError::DailyLimit { .. }) => {
                let _ = writeln!(out, "PAUSED {}/{}: {e}", o.account, o.folder);
            }
            Err(e) => {
                failed += 1;
                let hint = e
                    .hint()
                    .map(|h| format!(" (hint: {h})"))
                    .unwrap_or_default();
                let e = scrub(&e.to_string()).into_owned();
                let _ = writeln!(out, "FAILED {}/{}: {e}{hint}", o.account, o.folder);
            }
        }
    }
    let _ = writeln!(
        out,
        "synced {ok} folder(s), {new} new message(s){}{}",
        if refound > 0 {
            format!(", {refound} re-found after a UIDVALIDITY change")
        } else {
            String::new()
        },
        if failed > 0 {
            format!(", {failed} failure(s)")
        } else {
            String::new()
        }
    );
    if failed > 0 { EXIT_FAILED } else { 0 }
}

/// `mailfeed status`
pub fn cmd_status(config: &Config, json: bool, watch: bool) -> Result<i32> {
    if watch {
        return watch::every_second(|frame| status_table(config, false, frame));
    }
    status_table(config, json, &mut std::io::stdout().lock())?;
    Ok(0)
}

fn status_table(config: &Config, json: bool, out: &mut impl Write) -> Result<()> {
    if config.store.postgres.is_none() && !config.store.path.exists() {
        bail!(
            "no database at {} yet; run `mailfeed sync` first",
            config.store.path.display()
        );
    }
    let reader = store::Reader::open_store(&config.store)?;
    let rows = reader.status()?;
    let lag = reader.search_lag()?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:<24} {:>12} {:>8} {:>8} {:>6} {:>9} {:<24} LAST ERROR",
        "ACCOUNT", "FOLDER", "UIDVALIDITY", "LAST UID", "STORED", "TRUNC", "PARSE ERR", "LAST SYNC"
    )?;
    for r in &rows {
        let mut err = r.last_error.clone().unwrap_or_else(|| "-".into());
        if r.uidvalidity_changes > 0 {
            err = format!("{err} [UIDVALIDITY changed {}x]", r.uidvalidity_changes);
        }
        writeln!(
            out,
            "{:<12} {:<24} {:>12} {:>8} {:>8} {:>6} {:>9} {:<24} {}",
            r.account,
            r.mailbox,
            r.uidvalidity
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.last_uid,
            r.stored,
            r.truncated,
            r.parse_errors,
            r.last_sync_at.as_deref().unwrap_or("never"),
            err
        )?;
    }
    if lag.caught_up() {
        writeln!(out, "search index: up to date")?;
    } else {
        writeln!(out, "search index: {}", search_behind(&lag))?;
    }
    let leases = reader.leases()?;
    if !leases.is_empty() {
        writeln!(
            out,
            "\n{:<24} {:<40} {:>6} EXPIRES",
            "ACCOUNT", "INSTANCE", "FENCE"
        )?;
        for l in &leases {
            let expires = match (&l.owner, l.expires_in) {
                (None, _) => "free".to_owned(),
                (Some(_), s) if s < 0.0 => "expired".to_owned(),
                (Some(_), s) => format!("in {s:.0} s"),
            };
            writeln!(
                out,
                "{:<24} {:<40} {:>6} {}",
                l.account,
                l.owner.as_deref().unwrap_or("-"),
                l.fence,
                expires
            )?;
        }
    }
    Ok(())
}

/// "N message(s), S s behind the feed", for `status` and `search`.
fn search_behind(lag: &store::SearchLag) -> String {
    format!(
        "{} message(s), {:.1} s behind the feed",
        lag.messages, lag.seconds
    )
}

fn open_existing(config: &Config) -> Result<store::Reader> {
    if config.store.postgres.is_none() && !config.store.path.exists() {
        bail!(
            "no database at {} yet; run `mailfeed sync` first",
            config.store.path.display()
        );
    }
    Ok(store::Reader::open_store(&config.store)?)
}

/// `mailfeed search`
pub fn cmd_search(config: &Config, query: &str, limit: u32) -> Result<i32> {
    let reader = open_existing(config)?;
    let lag = reader.search_lag()?;
    if !lag.caught_up() {
        eprintln!("note: {}; they are not searched yet", search_behind(&lag));
    }
    let hits = reader
        .search(query, limit)
        .with_context(|| format!("searching for `{query}` (FTS5 query syntax)"))?;
    let mut out = std::io::stdout().lock();
    for h in &hits {
        let from = match (&h.from_name, &h.from) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (None, Some(a)) => a.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => "-".into(),
        };
        writeln!(
            out,
            "{:<20} {:<32} {:<48} {}/{}",
            h.date.as_deref().map_or("-", |d| d.get(..19).unwrap_or(d)),
            clip(&from, 32),
            clip(h.subject.as_deref().unwrap_or("(no subject)"), 48),
            h.account,
            h.mailbox
        )?;
    }
    if hits.is_empty() {
        eprintln!("no messages match `{query}`");
        return Ok(EXIT_FAILED);
    }
    Ok(0)
}

/// Cuts `s` to at most `n` characters, marking the cut with `…`.
fn clip(s: &str, n: usize) -> String {
    let s = s.replace(['\r', '\n', '\t'], " ");
    if s.chars().count() <= n {
        return s;
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// `mailfeed export`
pub fn cmd_export(
    config: &Config,
    format: crate::export::Format,
    filter: store::ExportFilter,
    dest: &Path,
) -> Result<i32> {
    let reader = open_existing(config)?;
    let mut sink = crate::export::open(format, dest)?;
    let mut count = 0u64;
    let mut bytes = 0u64;
    reader.for_each_export(&filter, |m| {
        count += 1;
        bytes += m.raw.len() as u64;
        sink.write(&m)
    })??;
    sink.finish()?;
    writeln!(
        std::io::stdout().lock(),
        "exported {count} message(s), {bytes} bytes, to {}",
        dest.display()
    )?;
    Ok(0)
}

/// Whether nobody reads our stdout any more (the read end of a pipe or
/// socket was closed), so `tail --follow` can stop without waiting for a
/// message to fail to write.
#[cfg(unix)]
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, zero timeout; poll only writes revents.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
}

#[cfg(not(unix))]
fn stdout_closed() -> bool {
    false
}

/// `mailfeed tail`: prints feed messages (JSON lines with `--json`); with
/// `--follow`, polls for rows above the last printed id every 200 ms until
/// SIGINT, SIGTERM or a closed stdout.
pub async fn cmd_tail(
    config: &Config,
    from_id: Option<i64>,
    follow: bool,
    json: bool,
) -> Result<i32> {
    const POLL: std::time::Duration = std::time::Duration::from_millis(200);
    const BATCH: u32 = 500;
    // A follower may start before the first sync has created the database.
    while follow && config.store.postgres.is_none() && !config.store.path.exists() {
        tokio::time::sleep(POLL).await;
    }
    let reader = open_existing(config)?;
    let mut last = match from_id {
        Some(n) => n.saturating_sub(1),
        None => reader.id_before_last(10)?,
    };
    // Registered once, before the loop, so a signal that arrives while a
    // query runs is not lost.
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let stdout = std::io::stdout();
    loop {
        let rows = reader.entries_after(last, BATCH)?;
        let mut out = stdout.lock();
        for e in &rows {
            let line = if json {
                serde_json::to_string(e)?
            } else {
                format!(
                    "{:>8} {:<20} {:<32} {:<48} {}/{}",
                    e.id,
                    e.date.as_deref().map_or("-", |d| d.get(..19).unwrap_or(d)),
                    clip(e.from.as_deref().unwrap_or("-"), 32),
                    clip(e.subject.as_deref().unwrap_or("(no subject)"), 48),
                    e.account,
                    e.mailbox
                )
            };
            let written = writeln!(out, "{line}");
            if let Err(err) = written.and_then(|()| out.flush()) {
                // The reader went away (`| head`): a normal end, not a failure.
                if err.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(0);
                }
                return Err(err).context("writing to stdout");
            }
            last = e.id;
        }
        drop(out);
        if rows.len() as u32 == BATCH {
            continue;
        }
        if !follow || stdout_closed() {
            return Ok(0);
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = sigint.recv() => return Ok(0),
            _ = sigterm.recv() => return Ok(0),
        }
    }
}

/// `mailfeed serve`: the page and the API over a database, read-only,
/// until SIGINT or SIGTERM.
pub async fn cmd_serve(
    config: &Config,
    listen: Option<std::net::SocketAddr>,
    db: Option<&Path>,
) -> Result<i32> {
    if db.is_none() && config.store.postgres.is_some() {
        bail!(
            "`mailfeed serve` is not supported with [store] url yet; give `--db` with a SQLite database, or use `[http]` of `mailfeed run` for /metrics and /status"
        );
    }
    let path = db.unwrap_or(&config.store.path);
    if !path.exists() {
        bail!(
            "no database at {}; give `--db` or run `mailfeed sync` first",
            path.display()
        );
    }
    let default = crate::http::settings::DEFAULT_LISTEN
        .parse()
        .context("the default listen address")?;
    let addr = listen
        .or(config.http.as_ref().map(|h| h.listen))
        .unwrap_or(default);
    let token = config.http.as_ref().and_then(|h| h.token.clone());
    let http = crate::http::settings::check(addr, token).map_err(anyhow::Error::msg)?;
    let archive = crate::http::Archive::open(path)?;
    let api = crate::http::ApiState::new(archive, None);
    let cancel = api.cancel.clone();
    let tracker = tokio_util::task::TaskTracker::new();
    let addr = crate::http::start(&http, None, api, &tracker).await?;
    tracker.close();
    println!(
        "serving {} read-only on http://{addr}/ (Ctrl-C stops)",
        path.display(),
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    // Ends event streams and stops accepting; a moment for answers in flight.
    cancel.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tracker.wait()).await;
    Ok(0)
}

/// `mailfeed check`: the conversation, annotated, then a verdict per folder.
pub async fn cmd_check(config: &Config, account: &Option<String>) -> Result<i32> {
    let accounts = selected(config, account)?;
    let mut all_ok = true;
    if let Some(limit) = crate::fd_limit::raise_soft_limit()
        && let Some(warning) =
            crate::fd_limit::headroom_warning(crate::fd_limit::planned_connections(config), limit)
    {
        println!("!! WARNING: {warning}");
    }
    for acc in accounts {
        println!(
            "== account `{}`: {}:{} ({:?})",
            acc.name, acc.host, acc.port, acc.security
        );
        if acc.security == Security::Plain {
            println!(
                "!! WARNING: security = \"plain\": the password and all mail travel unencrypted"
            );
        }
        let (opts, presented) = match crate::session::connect_options_observed(config, acc) {
            Ok(o) => o,
            Err(e) => {
                println!("FAILED: {e:#}");
                all_ok = false;
                continue;
            }
        };
        let tap: crate::session::Tap = Box::new(|line| {
            let mut out = std::io::stdout().lock();
            let _ = match line {
                TapLine::Client(s) => writeln!(out, "C: {}", scrub(s)),
                TapLine::Server { line, meaning } => {
                    writeln!(out, "S: {}\n     ↳ {}", scrub(&line), scrub(&meaning))
                }
                TapLine::Note(s) => writeln!(out, "-- {}", scrub(s)),
            };
        });
        let connected = Session::connect(acc, &opts, Some(tap)).await;
        let untrusted = matches!(&connected, Err(crate::session::SessionError::Transport(t)) if t.is_untrusted_certificate());
        print_certificate(&presented, untrusted);
        let mut session = match connected {
            Ok(s) => s,
            Err(e) => {
                all_ok = false;
                println!("FAILED: cannot log in: {}", scrub(&e.to_string()));
                if let Some(h) = e.hint() {
                    println!("hint: {h}");
                }
                continue;
            }
        };
        let folders = match crate::sync::resolve_folders(&mut session, &acc.folders).await {
            Ok(f) => f,
            Err(e) => {
                all_ok = false;
                println!("FAILED: listing folders: {}", scrub(&e.to_string()));
                continue;
            }
        };
        if folders.is_empty() {
            all_ok = false;
            println!(
                "FAILED: the folder patterns {:?} match no folder",
                acc.folders
            );
        }
        let mut verdicts = Vec::new();
        for f in &folders {
            let name = crate::imap::mutf7::decode(f);
            match session.examine(f, None).await {
                Ok(st) => verdicts.push(format!(
                    "ok      {name}: {} messages, UIDVALIDITY {}, next UID {}",
                    st.exists,
                    st.uidvalidity
                        .map(|v| v.0.to_string())
                        .unwrap_or_else(|| "none".into()),
                    st.uidnext
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "unknown".into())
                )),
                Err(e) => {
                    all_ok = false;
                    let hint = e
                        .hint()
                        .map(|h| format!("\n        hint: {h}"))
                        .unwrap_or_default();
                    let e = scrub(&e.to_string()).into_owned();
                    verdicts.push(format!("FAILED  {name}: {e}{hint}"));
                }
            }
            let actions = crate::actions::Actions::new(acc.actions.clone());
            verdicts.push(actions.check_line(f, session.capabilities()));
        }
        session.logout().await;
        println!("-- verdict for account `{}`:", acc.name);
        for v in verdicts {
            println!("   {v}");
        }
    }
    Ok(if all_ok { 0 } else { EXIT_FAILED })
}

/// What `check` says about the server's certificate; when it was not
/// trusted, the configuration line that would trust exactly it.
fn print_certificate(presented: &crate::transport::Presented, untrusted: bool) {
    use crate::transport::certificate::format_utc;
    let Some(c) = presented.last() else { return };
    println!("-- server certificate:");
    println!("   subject:     {}", c.subject);
    println!("   issuer:      {}", c.issuer);
    println!(
        "   valid:       {} to {}",
        format_utc(c.not_before),
        format_utc(c.not_after)
    );
    println!("   fingerprint: {}", c.fingerprint);
    if untrusted {
        println!(
            "-- to trust exactly this certificate (after checking the fingerprint with the server's administrator), add to the account:"
        );
        println!("   tls_fingerprint = \"{}\"", c.fingerprint);
        if c.is_self_issued() {
            println!("   (or set `ca_file` to this self-signed certificate's PEM file)");
        }
    }
}

/// `mailfeed auth ACCOUNT`: signs in once and stores the refresh token.
pub async fn cmd_auth(config: &Config, account: &str) -> Result<i32> {
    let acc = selected(config, &Some(account.to_owned()))?[0];
    let client = match &acc.auth {
        crate::config::Auth::OAuth2(crate::config::OAuth2Source::Client(c)) => c,
        _ => bail!(
            "account `{account}` has no `[accounts.oauth2]` table; `mailfeed auth` is for the built-in OAuth2 sign-in"
        ),
    };
    let tls = crate::transport::tls_config(acc.ca_file.as_deref())
        .with_context(|| format!("account `{account}`: setting up TLS"))?;
    let http = crate::oauth2::http::HttpClient::new(tls, config.sync.timeout);
    let mut out = std::io::stdout();
    crate::oauth2::flow::sign_in(account, client, &http, &mut out).await?;
    Ok(0)
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let config = match load_config(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailfeed: {e:#}");
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
            Cmd::Sync { account, quiet } => cmd_sync(&config, account, *quiet).await,
            Cmd::Run => crate::service::run(Arc::new(config.clone()), cli.config.clone())
                .await
                .map(|outcome| match outcome {
                    crate::service::Outcome::Stopped => 0,
                    crate::service::Outcome::WriterFailed => 1,
                }),
            Cmd::Check { account } => cmd_check(&config, account).await,
            Cmd::Status { json, watch } => cmd_status(&config, *json, *watch),
            Cmd::Auth { account } => cmd_auth(&config, account).await,
            Cmd::Search { query, limit } => cmd_search(&config, query, *limit),
            Cmd::Export {
                format,
                account,
                mailbox,
                since,
                dest,
            } => cmd_export(
                &config,
                *format,
                store::ExportFilter {
                    account: account.clone(),
                    mailbox: mailbox.clone(),
                    since: since.clone(),
                },
                dest,
            ),
            Cmd::Serve { listen, db } => cmd_serve(&config, *listen, db.as_deref()).await,
            Cmd::Tail {
                from_id,
                follow,
                json,
            } => cmd_tail(&config, *from_id, *follow, *json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailfeed: {}", scrub(&format!("{e:#}")));
            EXIT_FAILED
        }
    }
}
