//! Progress bars for `mailfeed sync` at a terminal: one per folder being
//! fetched (messages and bytes of the totals the listing gave, rate, ETA)
//! and an overall line. Drawn on stdout only when it is a terminal and
//! `--quiet` is not given. Log lines (stderr) are written through
//! [`LogWriter`], which lifts the bars for the moment of the write, so a
//! log line never tears a bar.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sync::progress::{ProgressEvent, ProgressSink};

/// The bars being drawn, if any: the log writer needs to find them.
static DRAWING: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Where log lines go: stderr, around the bars when they are drawn, with every
/// registered secret masked (see [`crate::secret::scrub_bytes`]).
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing's formatter hands over each whole line in one call, so a
        // secret is never split between two writes.
        let line = crate::secret::scrub_bytes(buf);
        let drawing = DRAWING.lock().ok().and_then(|d| d.clone());
        match drawing {
            Some(m) => m.suspend(|| std::io::stderr().write_all(&line))?,
            None => std::io::stderr().write_all(&line)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

struct Folder {
    bar: ProgressBar,
    bytes: u64,
    total_bytes: u64,
    started: Instant,
}

struct Totals {
    messages: u64,
    bytes: u64,
    total_messages: u64,
    total_bytes: u64,
}

/// The bars of one `sync`.
pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    folders: Mutex<HashMap<(String, String), Folder>>,
    totals: Mutex<Totals>,
    started: Instant,
}

/// Bytes of the total and the rates since `since`.
fn bytes_line(messages: u64, done: u64, total: u64, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64().max(0.001);
    format!(
        "{}/{}  {}/s  {:.0} msg/s",
        HumanBytes(done),
        HumanBytes(total),
        HumanBytes((done as f64 / secs) as u64),
        messages as f64 / secs
    )
}

impl Bars {
    /// Bars on stdout, or `None` when stdout is not a terminal or `quiet`.
    pub fn start(quiet: bool) -> Option<Arc<Bars>> {
        use std::io::IsTerminal;
        if quiet || !std::io::stdout().is_terminal() {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:<28!} [{bar:30}] {pos}/{len} msgs  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("overall");
        if let Ok(mut d) = DRAWING.lock() {
            *d = Some(multi.clone());
        }
        Some(Arc::new(Bars {
            multi,
            overall,
            folders: Mutex::default(),
            totals: Mutex::new(Totals {
                messages: 0,
                bytes: 0,
                total_messages: 0,
                total_bytes: 0,
            }),
            started: Instant::now(),
        }))
    }

    /// The engine's side of the bars.
    pub fn sink(self: &Arc<Self>) -> ProgressSink {
        let me = self.clone();
        Arc::new(move |e| me.on(e))
    }

    fn on(&self, event: ProgressEvent<'_>) {
        let (Ok(mut folders), Ok(mut totals)) = (self.folders.lock(), self.totals.lock()) else {
            return;
        };
        match event {
            ProgressEvent::FolderStarted {
                account,
                folder,
                messages,
                bytes,
            } => {
                if messages == 0 {
                    return;
                }
                let bar = self
                    .multi
                    .insert_before(&self.overall, ProgressBar::new(messages));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:<28!} [{bar:30}] {pos}/{len} msgs  {msg}  ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{account}/{folder}"));
                bar.set_message(bytes_line(0, 0, bytes, Instant::now()));
                totals.total_messages += messages;
                totals.total_bytes += bytes;
                self.overall.set_length(totals.total_messages);
                folders.insert(
                    (account.to_owned(), folder.to_owned()),
                    Folder {
                        bar,
                        bytes: 0,
                        total_bytes: bytes,
                        started: Instant::now(),
                    },
                );
            }
            ProgressEvent::MessageReceived {
                account,
                folder,
                bytes,
            } => {
                if let Some(f) = folders.get_mut(&(account.to_owned(), folder.to_owned())) {
                    f.bytes += bytes;
                    f.bar.inc(1);
                    f.bar.set_message(bytes_line(
                        f.bar.position(),
                        f.bytes,
                        f.total_bytes,
                        f.started,
                    ));
                }
                totals.messages += 1;
                totals.bytes += bytes;
                self.overall.inc(1);
                self.overall.set_message(bytes_line(
                    totals.messages,
                    totals.bytes,
                    totals.total_bytes,
                    self.started,
                ));
            }
            ProgressEvent::FolderFinished {
                account,
                folder,
                ok,
            } => {
                if let Some(f) = folders.remove(&(account.to_owned(), folder.to_owned())) {
                    let word = if ok { "done" } else { "FAILED" };
                    let line = bytes_line(f.bar.position(), f.bytes, f.total_bytes, f.started);
                    f.bar.abandon_with_message(format!("{line}  {word}"));
                }
            }
        }
    }

    /// Leaves the final state on screen.
    pub fn finish(&self) {
        if let Ok(t) = self.totals.lock() {
            self.overall
                .set_message(bytes_line(t.messages, t.bytes, t.total_bytes, self.started));
        }
        self.overall.abandon();
        // The last bar leaves the cursor at its end; what follows starts on a
        // line of its own.
        println!();
        // The bars are final: later log lines go straight to stderr below them
        // (lifting finished bars for a write would erase them).
        if let Ok(mut d) = DRAWING.lock() {
            *d = None;
        }
    }
}
