//! `mailfeed status --watch`: the status table redrawn every second, in
//! place, until interrupted.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

/// Redraws what `draw` writes every second; ends only on error or signal.
pub fn every_second(mut draw: impl FnMut(&mut Vec<u8>) -> Result<()>) -> Result<i32> {
    loop {
        let mut frame = Vec::new();
        // Home the cursor and clear the screen, then the table and the time.
        frame.extend_from_slice(b"\x1b[H\x1b[2J");
        draw(&mut frame)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        writeln!(
            frame,
            "\n{}  (every 1s; Ctrl-C to stop)",
            crate::utc::format_utc(now)
        )?;
        let mut out = std::io::stdout().lock();
        out.write_all(&frame)?;
        out.flush()?;
        drop(out);
        std::thread::sleep(Duration::from_secs(1));
    }
}
