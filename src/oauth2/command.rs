//! `oauth2_token_command`: runs the user's command (oama, a token proxy's
//! helper, a script) and takes the access token it prints. The command runs
//! in its own process group, so a timeout kills whatever it started; its
//! output is bounded and must look like a bearer token (RFC 6750 b64token),
//! and is never quoted in an error.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::secret::Secret;

/// More than any real token; a command printing more is printing something else.
const MAX_OUTPUT: usize = 64 * 1024;

/// Runs `cmd` with `/bin/sh -c` and returns the token; the error is a short
/// phrase (the caller names the account).
pub async fn run(cmd: &str, timeout: Duration) -> Result<Secret, String> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("oauth2_token_command could not start: {e}"))?;
    let pid = child.id();
    let mut stdout = child
        .stdout
        .take()
        .ok_or("oauth2_token_command: no output pipe")?;
    let work = async {
        let mut out = Vec::new();
        let mut limited = (&mut stdout).take(MAX_OUTPUT as u64 + 1);
        limited
            .read_to_end(&mut out)
            .await
            .map_err(|e| format!("reading oauth2_token_command's output: {e}"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for oauth2_token_command: {e}"))?;
        Ok::<_, String>((status, out))
    };
    let (status, out) = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r?,
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: signals the process group the child leads (made
                // with process_group(0)); no memory is involved.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            return Err(format!(
                "oauth2_token_command did not finish within {timeout:?} (killed)"
            ));
        }
    };
    if !status.success() {
        return Err(format!("oauth2_token_command exited with {status}"));
    }
    token_from_output(out)
}

/// The token in a command's output: one line of b64token characters.
fn token_from_output(mut out: Vec<u8>) -> Result<Secret, String> {
    let result = (|| {
        if out.len() > MAX_OUTPUT {
            return Err(format!(
                "oauth2_token_command printed more than {MAX_OUTPUT} bytes; it should print only the access token"
            ));
        }
        let text = std::str::from_utf8(&out)
            .map_err(|_| "oauth2_token_command printed non-UTF-8 output, not a token".to_owned())?;
        let t = text.trim_end_matches(['\r', '\n']).trim();
        if t.is_empty() {
            return Err(
                "oauth2_token_command printed nothing; it should print an access token".into(),
            );
        }
        let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
        let body = t.trim_end_matches('=');
        if !body.chars().all(b64token) {
            let lines = t.lines().count();
            return Err(format!(
                "oauth2_token_command printed something that is not an access token ({} line(s), {} bytes; expected one line of letters, digits and -._~+/)",
                lines,
                t.len()
            ));
        }
        Ok(Secret::new(t).registered())
    })();
    for b in out.iter_mut() {
        *b = 0;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_taken_and_each_bad_command_gets_one_clear_line() {
        let t = Duration::from_secs(20);
        let s = run("printf 'eyJ0eXAi.abc-_~+/=\\n'", t)
            .await
            .expect("token");
        assert_eq!(s.expose(), "eyJ0eXAi.abc-_~+/=");
        let cases = [
            ("exit 3", "exited with"),
            ("true", "printed nothing"),
            ("echo '<html>Sign in</html>'", "not an access token"),
            ("printf 'secret-token-1\\nsecret-token-2\\n'", "2 line(s)"),
            ("head -c 70000 /dev/zero | tr '\\0' a", "more than"),
            ("/nonexistent/oama-please", "exited with"),
        ];
        for (cmd, words) in cases {
            let e = run(cmd, t).await.expect_err(cmd);
            assert!(e.contains(words), "{cmd}: {e}");
            assert!(!e.contains("secret-token") && !e.contains("html"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("still-running");
        let cmd = format!("(sleep 3; touch {}) & sleep 60", marker.display());
        let t0 = std::time::Instant::now();
        let e = run(&cmd, Duration::from_millis(500))
            .await
            .expect_err("timeout");
        assert!(e.contains("did not finish within"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            !marker.exists(),
            "the command's background child was killed too"
        );
    }
}
