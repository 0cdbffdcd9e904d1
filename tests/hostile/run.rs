//! Running one row: the hostile run, bounded in time and memory, then the
//! checks (exit, message, stored rows, no secret anywhere) and the recovery
//! run on the same database.

use std::io::Read;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::script::*;
use crate::support::fake_server::{FakeServer, Step, send};
use crate::support::mailfeed::{Account, Mode, Setup};

/// Runs `mailfeed sync` with a hard deadline, measuring its peak RSS.
pub(crate) fn run_bounded(setup: &Setup, args: &[&str]) -> (Output, u64, Duration) {
    let t = Instant::now();
    let mut child = setup
        .command(args)
        .env("RUST_LOG", "mailfeed=trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailfeed");
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let so = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let se = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut peak_kb = 0;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if t.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mailfeed {args:?} hung for {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: so.join().expect("stdout thread"),
        stderr: se.join().expect("stderr thread"),
    };
    (output, peak_kb, t.elapsed())
}

pub(crate) fn stored(setup: &Setup) -> Vec<(u32, u32, Vec<u8>)> {
    setup.stored("test", "INBOX")
}

/// Where a form of the credentials appears, if anywhere: stdout, the
/// trace log on stderr, or any file of the database (WAL included; not
/// the configuration, which holds the password by design).
pub(crate) fn leaked(setup: &Setup, stdout: &str, stderr: &str) -> Option<String> {
    for form in secret_forms() {
        if stdout.contains(&form) {
            return Some(format!("stdout (`{form}`)"));
        }
        if stderr.contains(&form) {
            return Some(format!("the log (`{form}`)"));
        }
        let db_name = setup.db.file_name()?.to_string_lossy().into_owned();
        let dir = setup.db.parent()?;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&db_name) {
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            if bytes.windows(form.len()).any(|w| w == form.as_bytes()) {
                return Some(format!("{} (`{form}`)", entry.path().display()));
            }
        }
    }
    None
}

/// Runs one case; returns a description of what went wrong, if anything.
pub(crate) fn run_case(c: Case) -> Result<String, String> {
    let name = c.name;
    let recover = c.mode == Mode::Plain && !c.deletes;
    let recovery = vec![send(GREETING), Step::Serve(mailbox())];
    let server = FakeServer::start(vec![c.script, recovery]);
    let acc = Account {
        name: "test",
        port: server.port(),
        mode: c.mode,
        ca_file: None,
        user: "hostile",
        password: PASSWORD,
        folders: &["INBOX"],
        extra: "",
    };
    // A line bound below the default, so the 1 MB line without CRLF is
    // refused quickly.
    let setup = Setup::new(&[acc], "timeout = \"2s\"\nmax_line_size = \"64KiB\"");
    let (out, peak_kb, took) = run_bounded(&setup, &["sync"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ctx = || {
        format!(
            "exit {:?} after {took:?}\n--- stdout\n{stdout}--- stderr\n{stderr}--- sent by mailfeed\n{}\n--- script problems\n{:?}",
            out.status.code(),
            server.transcript().join("\n"),
            server.problems()
        )
    };
    if stderr.contains("panicked") || stdout.contains("panicked") {
        return Err(format!("{name}: panicked\n{}", ctx()));
    }
    if let Some(leak) = leaked(&setup, &stdout, &stderr) {
        return Err(format!("{name}: a secret appeared in {leak}\n{}", ctx()));
    }
    if peak_kb > MAX_RSS_KB {
        return Err(format!("{name}: peak RSS {peak_kb} KiB\n{}", ctx()));
    }
    let want_stored: &[u32] = match c.expect {
        Stores(uids) => {
            if !out.status.success() {
                return Err(format!("{name}: expected success\n{}", ctx()));
            }
            uids
        }
        Fails { any, stored } => {
            if out.status.code() != Some(1) {
                return Err(format!("{name}: expected exit 1\n{}", ctx()));
            }
            let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAILED")).collect();
            if failed.len() != 1 {
                return Err(format!("{name}: expected one FAILED line\n{}", ctx()));
            }
            let line = failed[0].to_ascii_lowercase();
            if !any.iter().any(|a| line.contains(&a.to_ascii_lowercase())) {
                return Err(format!(
                    "{name}: FAILED line should say one of {any:?}\n{}",
                    ctx()
                ));
            }
            stored
        }
    };
    for shown in c.shows {
        if !stdout.contains(shown) && !stderr.contains(shown) {
            return Err(format!(
                "{name}: mailfeed did not show `{shown}`\n{}",
                ctx()
            ));
        }
    }
    for secret in c.never_sent {
        if server.transcript().iter().any(|l| l.contains(secret)) {
            return Err(format!("{name}: mailfeed sent `{secret}`\n{}", ctx()));
        }
    }
    if setup.db.exists() {
        let db = setup.db();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| format!("{name}: integrity_check: {e}"))?;
        if ok != "ok" {
            return Err(format!("{name}: integrity_check says {ok}"));
        }
        let got = stored(&setup);
        let uids: Vec<u32> = got.iter().map(|(_, u, _)| *u).collect();
        if uids != want_stored {
            return Err(format!(
                "{name}: stored {uids:?}, expected {want_stored:?}\n{}",
                ctx()
            ));
        }
        if let Some((v, u, _)) = got
            .iter()
            .find(|(v, u, raw)| *v != UIDVALIDITY || *raw != body(*u))
        {
            return Err(format!(
                "{name}: UID {u} (UIDVALIDITY {v}) stored wrong\n{}",
                ctx()
            ));
        }
    } else if !want_stored.is_empty() {
        return Err(format!("{name}: no database, expected {want_stored:?}"));
    }
    if !recover {
        return Ok(format!("{name}: ok in {took:?}, {peak_kb} KiB"));
    }
    // Recovery on the same database, from a well-behaved server.
    let (out2, _, _) = run_bounded(&setup, &["sync"]);
    if !out2.status.success() {
        return Err(format!(
            "{name}: recovery run failed\n{}\n{}",
            String::from_utf8_lossy(&out2.stdout),
            String::from_utf8_lossy(&out2.stderr)
        ));
    }
    let got = stored(&setup);
    let expected: Vec<(u32, u32, Vec<u8>)> = (1..=3).map(|u| (UIDVALIDITY, u, body(u))).collect();
    if got != expected {
        return Err(format!(
            "{name}: after recovery the database holds {:?}",
            got.iter().map(|(v, u, _)| (v, u)).collect::<Vec<_>>()
        ));
    }
    let db = setup.db();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let events: i64 = db
        .query_row("SELECT count(*) FROM events WHERE kind = 'new'", [], |r| {
            r.get(0)
        })
        .map_err(|e| e.to_string())?;
    if (rows, events) != (3, 3) {
        return Err(format!(
            "{name}: {rows} rows and {events} new events after recovery"
        ));
    }
    Ok(format!("{name}: ok in {took:?}, {peak_kb} KiB, recovered"))
}
