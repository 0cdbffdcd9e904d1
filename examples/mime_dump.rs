//! Prints mailfeed's view of each message file named on the command line as one JSON object
//! per line (attachment bytes left out), for `scripts/crosscheck_mime.py`.

use std::io::Write;

fn main() -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in std::env::args_os().skip(1) {
        let raw = std::fs::read(&path)?;
        let parsed = mailfeed::mime::parse(&raw);
        let line = serde_json::json!({
            "path": path.to_string_lossy(),
            "message": parsed,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
