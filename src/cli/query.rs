//! `mailfeed search` and `mailfeed export`: reading stored messages back out.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::store;

use super::status::search_behind;
use super::{EXIT_FAILED, open_existing};

/// `mailfeed search`
pub(crate) fn cmd_search(config: &Config, query: &str, limit: u32) -> Result<i32> {
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
pub(super) fn clip(s: &str, n: usize) -> String {
    let s = s.replace(['\r', '\n', '\t'], " ");
    if s.chars().count() <= n {
        return s;
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// `mailfeed export`
pub(crate) fn cmd_export(
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
