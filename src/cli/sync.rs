//! `mailfeed sync`: one pass over the selected accounts, then a summary and
//! the exit code. On PostgreSQL the pass takes the accounts' leases first:
//! an account a running instance holds is skipped (`SKIPPED` line, exit
//! code [`EXIT_BUSY`] when nothing failed), and the leases go back at the
//! end.

use std::io::Write;

use anyhow::Result;

use crate::config::Config;
use crate::secret::scrub;
use crate::service::leases::PassLeases;
use crate::store::{self, StoreHandle};
use crate::sync::{Engine, FolderOutcome};

use super::connect::warn_plaintext;
use super::{EXIT_BUSY, EXIT_FAILED, progress, selected};

/// `mailfeed sync`
pub(crate) async fn cmd_sync(
    config: &Config,
    account: &Option<String>,
    quiet: bool,
) -> Result<i32> {
    let mut accounts = selected(config, account)?;
    let _lock = match config.store.postgres {
        None => Some(store::lock::DatabaseLock::acquire(&config.store.path)?),
        Some(_) => None,
    };
    // Beside `run` instances, only the accounts none of them holds.
    let mut skipped = Vec::new();
    let leases = match &config.store.postgres {
        None => None,
        Some(pg) => {
            let names = accounts.iter().map(|a| a.name.clone()).collect();
            let (leases, held) = PassLeases::claim(pg, names).await?;
            for (name, holder) in held {
                println!(
                    "SKIPPED {name}: its lease is held by {holder}, a running `mailfeed run` that syncs it; nothing done for it here"
                );
                skipped.push(name);
            }
            accounts.retain(|a| !skipped.contains(&a.name));
            Some(leases)
        }
    };
    let bars = progress::Bars::start(quiet);
    // Not `start_first_sync` (a rollback journal into an empty database):
    // measured slower so far (benches/README.md).
    let (store, writer) = match &leases {
        None => StoreHandle::open(&config.store, config.sync.max_buffered_bytes)?,
        Some(l) => StoreHandle::open_leased(
            &config.store,
            config.sync.max_buffered_bytes,
            l.book.clone(),
        )?,
    };
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
    if let Some(l) = leases {
        l.release().await;
    }
    let code = report(&outcomes);
    if let Err(e) = indexed {
        eprintln!("the search index is incomplete: {e}; the next start completes it");
        return Ok(EXIT_FAILED);
    }
    if code == 0 && !skipped.is_empty() {
        return Ok(EXIT_BUSY);
    }
    Ok(code)
}

/// Prints one line per failure (and a summary); returns the exit code.
pub(crate) fn report(outcomes: &[FolderOutcome]) -> i32 {
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
