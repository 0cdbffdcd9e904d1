//! `mailfeed check`: the conversation with each server, annotated, the
//! certificate it presents, and a verdict per folder.

use std::io::Write;

use anyhow::Result;

use crate::config::{Config, Security};
use crate::secret::scrub;
use crate::session::{Session, TapLine};

use super::{EXIT_FAILED, selected};

/// `mailfeed check`: the conversation, annotated, then a verdict per folder.
pub(crate) async fn cmd_check(config: &Config, account: &Option<String>) -> Result<i32> {
    let accounts = selected(config, account)?;
    let mut all_ok = true;
    if let Some(limit) = crate::fd_limit::raise_soft_limit()
        && let Some(warning) =
            crate::fd_limit::headroom_warning(crate::fd_limit::planned_connections(config), limit)
    {
        println!("!! WARNING: {warning}");
    }
    for acc in accounts {
        println!(
            "== account `{}`: {}:{} ({:?})",
            acc.name, acc.host, acc.port, acc.security
        );
        if acc.security == Security::Plain {
            println!(
                "!! WARNING: security = \"plain\": the password and all mail travel unencrypted"
            );
        }
        let (opts, presented) = match crate::session::connect_options_observed(config, acc) {
            Ok(o) => o,
            Err(e) => {
                println!("FAILED: {e:#}");
                all_ok = false;
                continue;
            }
        };
        let tap: crate::session::Tap = Box::new(|line| {
            let mut out = std::io::stdout().lock();
            let _ = match line {
                TapLine::Client(s) => writeln!(out, "C: {}", scrub(s)),
                TapLine::Server { line, meaning } => {
                    writeln!(out, "S: {}\n     ↳ {}", scrub(&line), scrub(&meaning))
                }
                TapLine::Note(s) => writeln!(out, "-- {}", scrub(s)),
            };
        });
        let connected = Session::connect(acc, &opts, Some(tap)).await;
        let untrusted = matches!(&connected, Err(crate::session::SessionError::Transport(t)) if t.is_untrusted_certificate());
        print_certificate(&presented, untrusted);
        let mut session = match connected {
            Ok(s) => s,
            Err(e) => {
                all_ok = false;
                println!("FAILED: cannot log in: {}", scrub(&e.to_string()));
                if let Some(h) = e.hint() {
                    println!("hint: {h}");
                }
                continue;
            }
        };
        let folders = match crate::sync::resolve_folders(&mut session, &acc.folders).await {
            Ok(f) => f,
            Err(e) => {
                all_ok = false;
                println!("FAILED: listing folders: {}", scrub(&e.to_string()));
                continue;
            }
        };
        if folders.is_empty() {
            all_ok = false;
            println!(
                "FAILED: the folder patterns {:?} match no folder",
                acc.folders
            );
        }
        let mut verdicts = Vec::new();
        for f in &folders {
            let name = f;
            match session.examine(f.wire(), None).await {
                Ok(st) => verdicts.push(format!(
                    "ok      {name}: {} messages, UIDVALIDITY {}, next UID {}",
                    st.exists,
                    st.uidvalidity
                        .map(|v| v.0.to_string())
                        .unwrap_or_else(|| "none".into()),
                    st.uidnext
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "unknown".into())
                )),
                Err(e) => {
                    all_ok = false;
                    let hint = e
                        .hint()
                        .map(|h| format!("\n        hint: {h}"))
                        .unwrap_or_default();
                    let e = scrub(&e.to_string()).into_owned();
                    verdicts.push(format!("FAILED  {name}: {e}{hint}"));
                }
            }
            let actions = crate::actions::Actions::new(acc.actions.clone());
            verdicts.push(actions.check_line(f, session.capabilities()));
        }
        session.logout().await;
        println!("-- verdict for account `{}`:", acc.name);
        for v in verdicts {
            println!("   {v}");
        }
    }
    Ok(if all_ok { 0 } else { EXIT_FAILED })
}

/// What `check` says about the server's certificate; when it was not
/// trusted, the configuration line that would trust exactly it.
fn print_certificate(presented: &crate::transport::Presented, untrusted: bool) {
    use crate::transport::certificate::format_utc;
    let Some(c) = presented.last() else { return };
    println!("-- server certificate:");
    println!("   subject:     {}", c.subject);
    println!("   issuer:      {}", c.issuer);
    println!(
        "   valid:       {} to {}",
        format_utc(c.not_before),
        format_utc(c.not_after)
    );
    println!("   fingerprint: {}", c.fingerprint);
    if untrusted {
        println!(
            "-- to trust exactly this certificate (after checking the fingerprint with the server's administrator), add to the account:"
        );
        println!("   tls_fingerprint = \"{}\"", c.fingerprint);
        if c.is_self_issued() {
            println!("   (or set `ca_file` to this self-signed certificate's PEM file)");
        }
    }
}
