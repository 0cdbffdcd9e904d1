//! Writes stored messages to files in the usual mail formats: one `.eml`
//! per message, an mbox (mboxrd quoting), or a Maildir. The stored bytes go
//! out unchanged, except the one thing mbox cannot represent (see
//! [`Mbox`]). Knows files, not SQL: the messages come from
//! `store::Reader::for_each_export`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::store::ExportMessage;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{doing} {path}: {source}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'p>(doing: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> ExportError + 'p {
    move |source| ExportError::Io {
        doing,
        path: path.to_owned(),
        source,
    }
}

/// The output formats of `mailfeed export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One file per message, `<id>.eml`, in the DEST directory.
    Eml,
    /// One mbox file (mboxrd: `>From ` quoting), DEST must not exist.
    Mbox,
    /// A Maildir (tmp/new/cur) at DEST; messages go to `cur` with their flags.
    Maildir,
}

/// Something that takes messages one by one and writes them out.
pub trait Sink {
    fn write(&mut self, m: &ExportMessage) -> Result<(), ExportError>;
    /// Flushes and syncs what was written.
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

/// Opens the sink for `format` at `dest`.
pub fn open(format: Format, dest: &Path) -> Result<Box<dyn Sink>, ExportError> {
    Ok(match format {
        Format::Eml => Box::new(Eml::create(dest)?),
        Format::Mbox => Box::new(Mbox::create(dest)?),
        Format::Maildir => Box::new(Maildir::create(dest)?),
    })
}

/// `<dest>/<id>.eml`, byte-identical to the stored message.
pub struct Eml {
    dir: PathBuf,
}

impl Eml {
    pub fn create(dir: &Path) -> Result<Self, ExportError> {
        fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        Ok(Eml {
            dir: dir.to_owned(),
        })
    }
}

impl Sink for Eml {
    fn write(&mut self, m: &ExportMessage) -> Result<(), ExportError> {
        let path = self.dir.join(format!("{}.eml", m.id));
        write_new(&path, &m.raw)
    }

    fn finish(self: Box<Self>) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Writes a file that must not exist yet, and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("creating", path))?;
    f.write_all(bytes).map_err(io_err("writing", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

/// An mbox file in the mboxrd variant: each message starts with
/// `From MAILER-DAEMON <asctime>` (the Date header's time in UTC, else the
/// INTERNALDATE), every line of the message matching `^>*From ` gets one more
/// `>`, and a blank line follows each message. Reversing the quoting (drop
/// one `>` from lines matching `^>+From `) gives back the stored bytes.
///
/// mbox cannot hold a message whose last line has no line end: such a
/// message is written with `\n` added, the one change export makes.
pub struct Mbox {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Mbox {
    pub fn create(path: &Path) -> Result<Self, ExportError> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err("creating", path))?;
        Ok(Mbox {
            path: path.to_owned(),
            out: BufWriter::with_capacity(1 << 16, f),
        })
    }
}

impl Sink for Mbox {
    fn write(&mut self, m: &ExportMessage) -> Result<(), ExportError> {
        let date = m
            .sent_at
            .as_deref()
            .or(m.internal_date.as_deref())
            .and_then(asctime)
            .unwrap_or_else(|| "Thu Jan  1 00:00:00 1970".to_owned());
        write_mboxrd(&mut self.out, &date, &m.raw).map_err(io_err("writing", &self.path))
    }

    fn finish(self: Box<Self>) -> Result<(), ExportError> {
        let path = self.path;
        let f = self
            .out
            .into_inner()
            .map_err(|e| io_err("writing", &path)(e.into_error()))?;
        f.sync_all().map_err(io_err("syncing", &path))
    }
}

/// One mboxrd entry: From line, quoted message, blank line.
pub fn write_mboxrd(out: &mut impl Write, asctime: &str, raw: &[u8]) -> io::Result<()> {
    writeln!(out, "From MAILER-DAEMON {asctime}")?;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let after_quotes = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if line[after_quotes..].starts_with(b"From ") {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    if !raw.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

/// A Maildir at `dest`: each message is written to `tmp/` and renamed into
/// `cur/` with an info suffix made of its IMAP flags (`:2,FRS`...).
pub struct Maildir {
    root: PathBuf,
    host: String,
    started: u64,
}

impl Maildir {
    pub fn create(root: &Path) -> Result<Self, ExportError> {
        for sub in ["tmp", "new", "cur"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(io_err("creating directory", &d))?;
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| fs::read_to_string("/etc/hostname"))
            .unwrap_or_default()
            .trim()
            .replace('/', "\\057")
            .replace(':', "\\072");
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(Maildir {
            root: root.to_owned(),
            host: if host.is_empty() {
                "localhost".to_owned()
            } else {
                host
            },
            started,
        })
    }
}

impl Sink for Maildir {
    fn write(&mut self, m: &ExportMessage) -> Result<(), ExportError> {
        // Unique per export run (time, pid) and per message (feed id).
        let unique = format!(
            "{}.M{}P{}.{}",
            self.started,
            m.id,
            std::process::id(),
            self.host
        );
        let tmp = self.root.join("tmp").join(&unique);
        write_new(&tmp, &m.raw)?;
        let cur = self
            .root
            .join("cur")
            .join(format!("{unique}:2,{}", maildir_flags(&m.flags)));
        fs::rename(&tmp, &cur).map_err(io_err("moving into cur/", &cur))
    }

    fn finish(self: Box<Self>) -> Result<(), ExportError> {
        Ok(())
    }
}

/// IMAP system flags as Maildir info letters, in ASCII order.
pub fn maildir_flags(imap_flags: &str) -> String {
    let mut letters: Vec<char> = imap_flags
        .split_whitespace()
        .filter_map(|f| match f.to_ascii_lowercase().as_str() {
            "\\draft" => Some('D'),
            "\\flagged" => Some('F'),
            "\\answered" => Some('R'),
            "\\seen" => Some('S'),
            "\\deleted" => Some('T'),
            _ => None,
        })
        .collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

/// `YYYY-MM-DDTHH:MM:SS...` as C's asctime: `Thu Jan  1 00:00:00 1970`.
pub fn asctime(iso: &str) -> Option<String> {
    let b = iso.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = iso.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[crate::utc::days_from_civil(y, mo, d).rem_euclid(7) as usize];
    let month = MONTHS[(mo - 1) as usize];
    Some(format!(
        "{weekday} {month} {d:>2} {h:02}:{mi:02}:{s:02} {y}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_formats_and_rejects() {
        assert_eq!(
            asctime("1970-01-01T00:00:00Z").as_deref(),
            Some("Thu Jan  1 00:00:00 1970")
        );
        assert_eq!(
            asctime("2024-02-29T13:05:09.123Z").as_deref(),
            Some("Thu Feb 29 13:05:09 2024")
        );
        assert_eq!(
            asctime("2003-07-01T08:52:37Z").as_deref(),
            Some("Tue Jul  1 08:52:37 2003")
        );
        assert_eq!(asctime("yesterday"), None);
        assert_eq!(asctime("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn mboxrd_quotes_from_lines_and_ends_each_message_with_a_blank_line() {
        let mut out = Vec::new();
        write_mboxrd(
            &mut out,
            "Thu Jan  1 00:00:00 1970",
            b"From: a\r\n\r\nFrom here\r\n>From there\r\nFromage\r\n",
        )
        .expect("write");
        write_mboxrd(&mut out, "Thu Jan  1 00:00:00 1970", b"S: x\n\nno newline").expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n\
             From: a\r\n\r\n>From here\r\n>>From there\r\nFromage\r\n\n\
             From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n\
             S: x\n\nno newline\n\n"
        );
    }

    #[test]
    fn maildir_flags_map_system_flags() {
        assert_eq!(maildir_flags("\\Seen \\Flagged $Junk \\Answered"), "FRS");
        assert_eq!(maildir_flags(""), "");
        assert_eq!(maildir_flags("\\Deleted \\Draft"), "DT");
    }
}
