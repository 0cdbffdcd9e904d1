//! The CPU cost, on one core, of the full-text index alone: every message of
//! a directory (e.g. a Maildir's `cur/`) is parsed first, untimed; then its
//! subject and text body go into an FTS5 table like `message_search` (same
//! tokenizer, `automerge` 16) in a fresh database, committing every 12 MB of
//! text as the writer does about every 64 MB of mail, once per `hashsize`.
//! This is how migration 0004's 8 MiB was chosen.
//!
//! Usage: index_cost DIR [HASHSIZE_MIB ...]   (default: 1 4 8 16 32)
//! Prints one line of JSON: text bytes and the seconds of each run.

use std::time::Instant;

use rusqlite::{Connection, params};

const COMMIT_TEXT_BYTES: usize = 12_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: index_cost DIR [HASHSIZE_MIB ...]");
        std::process::exit(2);
    };
    let mut sizes: Vec<u64> = args
        .map(|a| a.to_string_lossy().parse::<u64>())
        .collect::<Result<_, _>>()?;
    if sizes.is_empty() {
        sizes = vec![1, 4, 8, 16, 32];
    }
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let p = mailfeed::mime::parse(&std::fs::read(path)?);
            docs.push((p.subject, p.text_body));
        }
    }
    let text: usize = docs
        .iter()
        .map(|(s, b)| s.as_ref().map_or(0, String::len) + b.as_ref().map_or(0, String::len))
        .sum();
    let tmp = tempfile::tempdir()?;
    let mut results = Vec::new();
    for (run, mib) in sizes.into_iter().enumerate() {
        let path = tmp.path().join(format!("index-{run}.db"));
        let c = Connection::open(&path)?;
        c.execute_batch(&format!(
            "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE VIRTUAL TABLE s USING fts5(subject, body, content = '',
                 tokenize = 'unicode61 remove_diacritics 2');
             INSERT INTO s (s, rank) VALUES ('automerge', 16);
             INSERT INTO s (s, rank) VALUES ('hashsize', {});",
            mib << 20
        ))?;
        let t = Instant::now();
        c.execute_batch("BEGIN")?;
        let mut pending = 0;
        for (i, (subject, body)) in docs.iter().enumerate() {
            c.prepare_cached("INSERT INTO s (rowid, subject, body) VALUES (?1, ?2, ?3)")?
                .execute(params![i as i64 + 1, subject, body])?;
            pending +=
                subject.as_ref().map_or(0, String::len) + body.as_ref().map_or(0, String::len);
            if pending >= COMMIT_TEXT_BYTES {
                c.execute_batch("COMMIT; BEGIN")?;
                pending = 0;
            }
        }
        c.execute_batch("COMMIT")?;
        results.push(format!(
            "{{\"hashsize_mib\":{mib},\"seconds\":{:.3}}}",
            t.elapsed().as_secs_f64()
        ));
    }
    println!(
        "{{\"messages\":{},\"text_bytes\":{text},\"runs\":[{}]}}",
        docs.len(),
        results.join(",")
    );
    Ok(())
}
