//! Measures the per-message cost of storing mail: MIME parsing alone, then
//! the whole insert (raw row, parse, addresses, bodies, attachments, FTS5)
//! through the real writer into a database file.
//!
//! Usage: cargo run --release --example store_bench [-- N [DIR]]
//! N messages (default 10000) cycled from the message files under DIR
//! (default tests/data/mail), each given a distinct Message-ID line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mailfeed::config::Synchronous;
use mailfeed::imap::{Uid, UidValidity};
use mailfeed::store::{NewMessage, StoreHandle};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            files(&p, out);
        } else if name.ends_with(".eml") || (name.starts_with("msg_") && name.ends_with(".txt")) {
            out.push(p);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "tests/data/mail".into()));
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    let corpus: Vec<Vec<u8>> = paths.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    if corpus.is_empty() {
        return Err(format!("no messages under {}", dir.display()).into());
    }
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut m = format!("X-Bench: {i}\r\n").into_bytes();
            m.extend_from_slice(&corpus[i % corpus.len()]);
            m
        })
        .collect();
    let bytes: usize = messages.iter().map(Vec::len).sum();

    let started = Instant::now();
    for m in &messages {
        std::hint::black_box(mailfeed::mime::parse(m));
    }
    let parse = started.elapsed();

    let tmp = std::env::temp_dir().join(format!("mailfeed-bench-{}.db", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    rt.block_on(async {
        let (h, t) = StoreHandle::start(&tmp, Synchronous::Normal, 64 << 20)?;
        let (mb, _) = h.ensure_mailbox("bench", "INBOX").await?;
        h.begin_generation(mb, UidValidity(1)).await?;
        for (i, raw) in messages.into_iter().enumerate() {
            h.save(NewMessage {
                mailbox: mb,
                uidvalidity: UidValidity(1),
                uid: Uid(i as u32 + 1),
                internal_date: None,
                flags: vec![],
                modseq: None,
                size: raw.len() as u64,
                raw,
                truncated: false,
                gmail: None,
            })
            .await?;
        }
        h.commit().await?;
        drop(h);
        t.join();
        Ok::<_, mailfeed::store::StoreError>(())
    })?;
    let store = started.elapsed();
    let db_size = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{n} messages, {:.1} MB: parse {:.1} µs/message; store (raw + parse + index, one writer) {:.1} µs/message, {:.0} messages/s; database {:.1} MB",
        bytes as f64 / 1e6,
        per(parse),
        per(store),
        n as f64 / store.as_secs_f64(),
        db_size as f64 / 1e6
    );
    Ok(())
}
