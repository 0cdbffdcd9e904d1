//! The CPU cost, on one core, of what mailfeed does to each message besides
//! moving it: SHA-256, the header summary stored in `messages`, and the full
//! MIME parse (`mailfeed::mime::parse`). Reads every file of a directory
//! (e.g. a Maildir's `cur/`) into memory first, so only computing is timed.
//!
//! Usage: parse_cost DIR
//! Prints one line of JSON with seconds and MiB/s per stage.

use std::time::Instant;

use sha2::{Digest, Sha256};

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: parse_cost DIR");
        std::process::exit(2);
    };
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            messages.push(std::fs::read(path)?);
        }
    }
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let mut stages = Vec::new();
    let mut sink = 0usize;

    let t = Instant::now();
    for m in &messages {
        sink ^= Sha256::digest(m)[0] as usize;
    }
    stages.push(("sha256", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    for m in &messages {
        if let Some(h) = mail_parser::MessageParser::default().parse_headers(m.as_slice()) {
            sink ^= h.subject().map_or(0, str::len) ^ h.message_id().map_or(0, str::len);
        }
    }
    stages.push(("header_summary", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    for m in &messages {
        let parsed = mailfeed::mime::parse(m);
        sink ^= parsed.attachments.len();
    }
    stages.push(("mime_parse", t.elapsed().as_secs_f64()));

    let stages: Vec<String> = stages
        .iter()
        .map(|(name, s)| {
            format!(
                "\"{name}\":{{\"seconds\":{s:.4},\"mib_per_s\":{:.1}}}",
                mib / s
            )
        })
        .collect();
    println!(
        "{{\"messages\":{},\"bytes\":{bytes},\"stages\":{{{}}},\"sink\":{sink}}}",
        messages.len(),
        stages.join(",")
    );
    Ok(())
}
