//! One pass over an account: the configured folders (exact names and LIST
//! patterns) resolved to wire names, then synced over up to
//! `max_connections` connections; a folder's failure is reported, not fatal.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{Engine, FolderOutcome, FolderStats, SyncError};
use crate::config::AccountConfig;
use crate::imap::{Folder, mutf7};
use crate::session::{Session, SessionError, Tap};

/// `INBOX` is case-insensitive (RFC 3501 5.1): `inbox`, `Inbox` and `INBOX`
/// are one folder, and must be one mailbox in the database, not three.
fn canonical_inbox(wire: String) -> String {
    if wire.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        wire
    }
}

/// Resolves the configured folder list (exact names and LIST patterns) to
/// folders, in configuration order without repeats; each wire name is
/// decoded here, once.
pub async fn resolve_folders(
    session: &mut Session,
    folders: &[String],
) -> Result<Vec<Folder>, SessionError> {
    let mut out: Vec<String> = Vec::new();
    for f in folders {
        if f.contains('*') || f.contains('%') {
            let entries = session.list(&mutf7::encode(f)).await?;
            for e in entries.into_iter().filter(|e| e.is_selectable()) {
                let name = canonical_inbox(e.name);
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        } else {
            let wire = canonical_inbox(mutf7::encode(f));
            if !out.contains(&wire) {
                out.push(wire);
            }
        }
    }
    Ok(out.into_iter().map(Folder::from_wire).collect())
}

/// One pass over an account: resolve folders, then sync them over up to
/// `max_connections` connections. Folder failures are reported, not fatal.
pub async fn sync_account(
    engine: &Engine,
    account: &AccountConfig,
    make_tap: &(dyn Fn() -> Option<Tap> + Sync),
) -> Vec<FolderOutcome> {
    let fail_all = |e: SyncError| {
        vec![FolderOutcome {
            account: account.name.clone(),
            folder: "(connect)".into(),
            result: Err(e),
        }]
    };
    let mut first = match Session::connect(account, &engine.opts, make_tap()).await {
        Ok(s) => s,
        Err(e) => return fail_all(e.into()),
    };
    let folders = match resolve_folders(&mut first, &account.folders).await {
        Ok(f) => f,
        Err(e) => return fail_all(e.into()),
    };
    let queue = Arc::new(Mutex::new(folders.iter().cloned().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    // Gmail's folders overlap (a message is in INBOX, its labels and All
    // Mail): taken one after another, each body is fetched once, by the
    // first folder that lists it; the others only record memberships.
    let gmail = first.capabilities().has("X-GM-EXT-1");
    let parallel = if gmail { 1 } else { account.max_connections };
    let workers = (parallel as usize).min(folders.len()).max(1);
    let mut sessions = vec![Some(first)];
    sessions.resize_with(workers, || None);
    let tasks = sessions.into_iter().map(|s| {
        let queue = queue.clone();
        let results = results.clone();
        async move {
            let mut session = s;
            while let Some(folder) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                if session.is_none() {
                    match Session::connect(account, &engine.opts, make_tap()).await {
                        Ok(s) => session = Some(s),
                        Err(e) => {
                            push(&results, account, &folder, Err(e.into()));
                            continue;
                        }
                    }
                }
                let Some(sess) = session.as_mut() else {
                    continue;
                };
                let r = engine.sync_folder(sess, &account.name, &folder).await;
                if r.as_ref().is_err_and(SyncError::breaks_connection) {
                    session = None;
                }
                push(&results, account, &folder, r);
            }
            if let Some(s) = session {
                s.logout().await;
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    let mut out = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    // Report in configuration order.
    out.sort_by_key(|o: &FolderOutcome| {
        folders
            .iter()
            .position(|f| f.name() == o.folder)
            .unwrap_or(usize::MAX)
    });
    out
}

fn push(
    results: &Mutex<Vec<FolderOutcome>>,
    account: &AccountConfig,
    folder: &Folder,
    result: Result<FolderStats, SyncError>,
) {
    if let Ok(mut r) = results.lock() {
        r.push(FolderOutcome {
            account: account.name.clone(),
            folder: folder.name().to_owned(),
            result,
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inbox_is_one_folder_in_any_case() {
        for n in ["inbox", "Inbox", "INBOX", "iNbOx"] {
            assert_eq!(super::canonical_inbox(n.to_owned()), "INBOX");
        }
        assert_eq!(super::canonical_inbox("Inbox/Sub".to_owned()), "Inbox/Sub");
        assert_eq!(super::canonical_inbox("Inboxes".to_owned()), "Inboxes");
    }
}
