//! `mailfeed run` as a child of a test: started with its log in `run.log`
//! of the setup's folder, killed when the test ends, the log printed when
//! the test fails (or always with `MAILFEED_TEST_SHOW_LOG`); signals to it;
//! and [`wait_for`], the one way tests wait for a condition.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mailfeed::Setup;

/// A `mailfeed run` child and the file its stderr (the log) goes to.
pub struct Running(pub Child, pub PathBuf);

impl Running {
    /// `mailfeed run` with `RUST_LOG=mailfeed=<level>`.
    pub fn start(setup: &Setup, level: &str) -> Running {
        let mut cmd = setup.command(&["run"]);
        cmd.env("RUST_LOG", format!("mailfeed={level}"));
        Running::spawn(setup, cmd)
    }

    /// A prepared `run` command (for its own environment), stdout dropped
    /// and stderr to `run.log`.
    pub fn spawn(setup: &Setup, mut cmd: Command) -> Running {
        let path = setup.dir.path().join("run.log");
        let log = std::fs::File::create(&path).expect("run.log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mailfeed run");
        Running(child, path)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc_kill(self.0.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub const SIGHUP: i32 = 1;
pub const SIGTERM: i32 = 15;

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() || std::env::var_os("MAILFEED_TEST_SHOW_LOG").is_some() {
            eprintln!("--- mailfeed run log ---\n{}", self.log());
        }
    }
}

/// Polls `f` until it holds; returns how long that took, or panics naming
/// `what` after `limit`. Polls every 5 ms: often enough that the time
/// returned can be reported as a latency, seldom enough not to crowd the
/// process under test on a loaded machine.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}
