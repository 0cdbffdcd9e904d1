//! `mailfeed sync`'s progress bars, checked in a real terminal: tmux runs
//! the sync in a pane, and the pane's text must show a finished bar per
//! folder, the overall line with the final counts, and log lines that the
//! bars did not tear. Without a terminal, or with `--quiet`, no bars.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::corpus;
use support::dovecot::Dovecot;
use support::mailfeed::{Account, Setup};

const USER: &str = "pia";
const PASS: &str = "pia-pw-12";

/// A private tmux server (its own socket), killed when the test ends.
struct Tmux(String);

impl Tmux {
    fn new() -> Tmux {
        Tmux(format!("mailfeed-test-{}", std::process::id()))
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.0, "-f", "/dev/null"]);
        c
    }

    /// Runs `shell` in a new 200x50 session, then waits for `EXIT=` and
    /// returns the pane's text.
    fn run(&self, name: &str, shell: &str) -> String {
        let status = self
            .cmd()
            .args(["new-session", "-d", "-s", name, "-x", "200", "-y", "50"])
            .arg(format!("{shell}; echo EXIT=$?; sleep 600"))
            .status()
            .expect("tmux (Debian package `tmux`, see scripts/install-deps)");
        assert!(status.success());
        let t0 = Instant::now();
        loop {
            let out = self
                .cmd()
                .args(["capture-pane", "-p", "-J", "-t", name])
                .output()
                .expect("capture-pane");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if text.contains("EXIT=") {
                return text;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "no end:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn sync_draws_bars_in_a_terminal_and_stays_quiet_otherwise() {
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    dc.create_folder(USER, "Archive").expect("folder");
    dc.append_many(USER, "INBOX", &corpus::varied(1200, 5))
        .expect("append");
    dc.append_many(USER, "Archive", &corpus::varied(300, 6))
        .expect("append");
    let setup = Setup::new(
        &[Account::plain(&dc, USER, PASS, &["INBOX", "Archive"])],
        "batch_size = 100",
    );
    let bin = env!("CARGO_BIN_EXE_mailfeed");
    let tmux = Tmux::new();
    let sync = format!(
        "{} -c {} sync",
        shell_quote(bin),
        shell_quote(&setup.config.display().to_string())
    );
    let pane = tmux.run("bars", &sync);
    eprintln!("--- the pane ---\n{pane}");
    let lines: Vec<&str> = pane.lines().collect();
    let bar_of = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix) && l.contains("[="))
            .unwrap_or_else(|| panic!("no bar for {prefix}:\n{pane}"))
            .to_string()
    };
    let inbox = bar_of("test/INBOX");
    assert!(
        inbox.contains("1200/1200 msgs") && inbox.contains("done"),
        "{inbox}"
    );
    assert!(
        inbox.contains("[==============================]"),
        "a full bar: {inbox}"
    );
    let archive = bar_of("test/Archive");
    assert!(
        archive.contains("300/300 msgs") && archive.contains("done"),
        "{archive}"
    );
    let overall = bar_of("overall");
    assert!(overall.contains("1500/1500 msgs"), "{overall}");
    // Bytes of the total: the RFC822.SIZE sum the listing reported.
    let db = setup.db();
    let bytes: i64 = db
        .query_row("SELECT sum(size) FROM messages", [], |r| r.get(0))
        .expect("sum");
    let shown = indicatif_bytes(bytes as u64);
    assert!(
        overall.contains(&format!("{shown}/{shown}")),
        "{overall} vs {shown}"
    );
    assert!(
        pane.contains("synced 2 folder(s), 1500 new message(s)"),
        "{pane}"
    );
    assert!(pane.contains("EXIT=0"), "{pane}");
    // Log lines (INFO "batch stored") stay whole, never mixed into a bar.
    let logs: Vec<&&str> = lines.iter().filter(|l| l.contains(" INFO ")).collect();
    assert!(!logs.is_empty(), "logs go to the same terminal:\n{pane}");
    for l in &logs {
        assert!(!l.contains("msgs") && !l.contains("[="), "torn: {l}");
    }

    // New mail, synced with --quiet in the terminal: no bars.
    dc.append_many(USER, "INBOX", &corpus::varied(20, 8))
        .expect("append");
    let pane = tmux.run("quiet", &format!("{sync} --quiet"));
    assert!(
        pane.contains("synced 2 folder(s), 20 new message(s)"),
        "{pane}"
    );
    assert!(!pane.contains("msgs"), "{pane}");

    // Not a terminal: the same summary, nothing else on stdout.
    dc.append_many(USER, "Archive", &corpus::varied(5, 9))
        .expect("append");
    let out = setup.sync_ok();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "synced 2 folder(s), 5 new message(s)\n"
    );

    // `status --watch` redraws the table in place every second.
    let watch = format!(
        "{} -c {} status --watch",
        shell_quote(bin),
        shell_quote(&setup.config.display().to_string())
    );
    tmux.cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "200",
            "-y",
            "50",
            &watch,
        ])
        .status()
        .expect("tmux");
    let capture = || {
        let out = tmux
            .cmd()
            .args(["capture-pane", "-p", "-t", "watch"])
            .output()
            .expect("capture");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let stamp = |pane: &str| {
        pane.lines()
            .find(|l| l.contains("(every 1s"))
            .map(str::to_owned)
    };
    let t0 = Instant::now();
    let first = loop {
        let pane = capture();
        if let Some(s) = stamp(&pane) {
            break (pane, s);
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no table:\n{pane}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        first.0.starts_with("ACCOUNT"),
        "drawn from the top:\n{}",
        first.0
    );
    let inbox = first
        .0
        .lines()
        .find(|l| l.starts_with("test") && l.contains("INBOX"))
        .unwrap_or_else(|| panic!("no INBOX row:\n{}", first.0));
    assert!(
        inbox.split_whitespace().any(|w| w == "1220"),
        "stored count: {inbox}"
    );
    loop {
        let pane = capture();
        if stamp(&pane).is_some_and(|s| s != first.1) {
            assert_eq!(
                pane.matches("ACCOUNT").count(),
                1,
                "redrawn in place:\n{pane}"
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not redrawn:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bytes as the bars print them (indicatif's HumanBytes: binary units,
/// two decimals).
fn indicatif_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}
