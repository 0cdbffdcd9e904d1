//! Feeds arbitrary server bytes to the response reader, in pieces whose
//! sizes come from the input itself, under small limits so the line, literal
//! and truncation bounds are all reached. It must never panic, and a reader
//! must report the same responses however the bytes were split.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfeed::imap::{Limits, ResponseReader};

fn limits() -> Limits {
    Limits {
        max_line: 512,
        max_literal: 300,
        truncated_keep: 64,
    }
}

/// Feeds `data` in pieces and returns what came out (responses rendered with
/// Debug, then the error if one ended the stream).
fn run(data: &[u8], cuts: &[u8]) -> (Vec<String>, Option<String>) {
    let mut r = ResponseReader::new(limits());
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if cuts.is_empty() {
            rest.len()
        } else {
            (usize::from(cuts[i % cuts.len()]) % 17 + 1).min(rest.len())
        };
        i += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if let Err(e) = r.feed(piece) {
            while let Some(x) = r.pop() {
                out.push(format!("{:?}", x.response));
            }
            return (out, Some(e.to_string()));
        }
        while let Some(x) = r.pop() {
            out.push(format!("{:?}", x.response));
        }
    }
    let _ = r.at_boundary();
    let _ = r.literal_remaining();
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    // The first bytes choose how the rest is cut.
    let split = input.first().map_or(0, |&b| usize::from(b % 8)).min(input.len());
    let (cuts, data) = input.split_at(split);
    let cuts = cuts.get(1..).unwrap_or_default();
    let whole = run(data, &[]);
    let pieces = run(data, cuts);
    assert_eq!(whole, pieces, "result depends on how the bytes were split");
});
