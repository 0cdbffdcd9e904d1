//! `run` beside other instances on one PostgreSQL store: drives the
//! store's [`LeaseKeeper`] every third of the lease period on a thread of
//! its own (its client is synchronous, and no busy task may delay a
//! renewal), sends each tick's result to the service's loop, and hands
//! back surplus accounts only
//! after their tasks ended and the writer committed, so a hand-over never
//! cuts a batch; and [`PassLeases`], the leases of one `mailfeed sync`.
//! Which accounts to start or stop is the caller's; this file speaks
//! neither IMAP nor SQL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::PostgresStore;
use crate::store::{LeaseBook, LeaseKeeper, LeaseTick, StoreError, StoreHandle};
use tokio_util::sync::CancellationToken;

/// How long a surplus account's tasks may take to end before its lease is
/// handed back anyway (a late write then fails its fence check).
const HAND_OVER_WAIT: Duration = Duration::from_secs(30);

/// The keeper, shared by the loop and the hand-over tasks.
#[derive(Clone)]
pub(crate) struct Shares {
    keeper: Arc<Mutex<LeaseKeeper>>,
    pub(crate) book: Arc<LeaseBook>,
    pub(crate) interval: Duration,
}

/// The host name from uname(2), not /proc/sys/kernel/hostname, which the
/// shipped units hide (`ProcSubset=pid`).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Whether the process a lease row names (`host/pid/...`) is certainly
/// gone: on this host, and no process has its pid. A pid reused since is
/// taken as alive (the lease then runs out instead).
fn holder_gone(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<libc::pid_t>() else {
        return false;
    };
    if pid <= 0 || hostname().as_deref() != Some(host) {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only checks that the pid exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// This process as the lease rows name it: host, pid and start time (a
/// restarted process with the same pid is another instance).
fn instance_id() -> String {
    let host = hostname().unwrap_or_else(|| "localhost".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{host}/{}/{started}", std::process::id())
}

impl Shares {
    /// Connects the keeper for the configured `accounts`.
    pub(crate) async fn open(
        store: &PostgresStore,
        accounts: Vec<String>,
    ) -> Result<Shares, StoreError> {
        let store = store.clone();
        let keeper =
            tokio::task::spawn_blocking(move || LeaseKeeper::open(&store, instance_id(), accounts))
                .await
                .map_err(|e| StoreError::Stopped(format!("opening the lease connection: {e}")))??;
        tracing::info!(
            instance = keeper.book().owner(),
            "sharing accounts through leases"
        );
        Ok(Shares {
            book: keeper.book(),
            interval: keeper.interval(),
            keeper: Arc::new(Mutex::new(keeper)),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LeaseKeeper) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let keeper = self.keeper.clone();
        tokio::task::spawn_blocking(move || {
            let mut k = keeper.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut k)
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("lease task: {e}")))?
    }

    /// Starts the ticks: one now, then one every interval, each result
    /// sent to the receiver. A tick the database did not answer is logged
    /// and skipped: the leases held stay worked until a later tick says
    /// otherwise, and the writer's fence check guards every commit. The
    /// thread ends when the receiver is dropped or `stop` is set.
    pub(crate) fn ticks(
        &self,
    ) -> (
        tokio::sync::mpsc::UnboundedReceiver<LeaseTick>,
        Arc<AtomicBool>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (keeper, interval, stop2) = (self.keeper.clone(), self.interval, stop.clone());
        let spawned = std::thread::Builder::new()
            .name("mailfeed-leases".into())
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    let t0 = Instant::now();
                    let r = keeper.lock().unwrap_or_else(|p| p.into_inner()).tick();
                    match r {
                        Ok(t) => {
                            if tx.send(t).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("renewing leases failed (retrying next tick): {e}")
                        }
                    }
                    while t0.elapsed() < interval && !stop2.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the lease thread: {e}");
        }
        (rx, stop)
    }

    /// After a reload: the accounts this instance may claim.
    pub(crate) async fn set_accounts(&self, accounts: Vec<String>) {
        let _ = self
            .blocking(move |k| {
                k.set_accounts(accounts);
                Ok(())
            })
            .await;
    }

    /// Waits for the accounts' tasks (`finished`) to end, commits, then
    /// hands their leases back.
    pub(crate) async fn hand_over(
        &self,
        accounts: Vec<String>,
        finished: Vec<CancellationToken>,
        store: StoreHandle,
    ) {
        for f in finished {
            let _ = tokio::time::timeout(HAND_OVER_WAIT, f.cancelled()).await;
        }
        // A failed commit lost their uncommitted work with everyone's; the
        // leases go back all the same (the fences are dropped first, so no
        // later commit of this instance can write for them), and the next
        // holder starts from the committed cursors.
        if let Err(e) = store.commit().await {
            tracing::warn!("handing leases back after a failed commit: {e}");
        }
        if let Err(e) = self.blocking(move |k| k.release(&accounts)).await {
            tracing::warn!("handing leases back failed (they run out instead): {e}");
        }
    }

    /// On a clean stop, after the writer closed.
    pub(crate) async fn leave(&self) {
        let left = tokio::time::timeout(Duration::from_secs(3), self.blocking(|k| k.leave())).await;
        match left {
            Ok(Ok(())) => tracing::info!("leases handed back"),
            Ok(Err(e)) => tracing::warn!("handing leases back failed (they run out instead): {e}"),
            Err(_) => tracing::warn!("handing leases back timed out (they run out instead)"),
        }
    }
}

/// `mailfeed sync` on a PostgreSQL store: the leases of the accounts one
/// pass syncs, so it never works an account beside a running instance.
/// Claimed at the start (those a live instance holds are named and
/// skipped), renewed every third of the period on a thread of its own,
/// handed back at the end.
pub(crate) struct PassLeases {
    keeper: Arc<Mutex<LeaseKeeper>>,
    pub(crate) book: Arc<LeaseBook>,
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl PassLeases {
    /// Claims the leases of `accounts`; returns the leases and the
    /// accounts held by another instance, with their holder.
    pub(crate) async fn claim(
        store: &PostgresStore,
        accounts: Vec<String>,
    ) -> Result<(PassLeases, Vec<(String, String)>), StoreError> {
        let store = store.clone();
        let (keeper, others) = tokio::task::spawn_blocking(move || {
            let id = format!("{}/sync", instance_id());
            let mut keeper = LeaseKeeper::open(&store, id, accounts)?;
            let others = keeper.claim_for_pass(&holder_gone)?;
            Ok::<_, StoreError>((keeper, others))
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("claiming leases: {e}")))??;
        let (book, interval) = (keeper.book(), keeper.interval());
        let keeper = Arc::new(Mutex::new(keeper));
        let stop = Arc::new(AtomicBool::new(false));
        let (k, stop2) = (keeper.clone(), stop.clone());
        let renewer = std::thread::Builder::new()
            .name("mailfeed-leases".into())
            .spawn(move || {
                loop {
                    let t0 = Instant::now();
                    while t0.elapsed() < interval {
                        if stop2.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let r = k.lock().unwrap_or_else(|p| p.into_inner()).renew();
                    match r {
                        Ok(lost) => {
                            for account in lost {
                                tracing::error!(%account, "lease lost to a running instance; this pass's writes for it are refused");
                            }
                        }
                        Err(e) => {
                            tracing::warn!("renewing leases failed (retrying next tick): {e}")
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Stopped(format!("cannot start the lease thread: {e}")))?;
        Ok((
            PassLeases {
                keeper,
                book,
                stop,
                renewer: Some(renewer),
            },
            others,
        ))
    }

    /// After the writer closed: stops renewing and hands every lease back.
    pub(crate) async fn release(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let (keeper, renewer) = (self.keeper.clone(), self.renewer.take());
        let released = tokio::task::spawn_blocking(move || {
            if let Some(r) = renewer {
                let _ = r.join();
            }
            let mut k = keeper.lock().unwrap_or_else(|p| p.into_inner());
            let held = k.held();
            k.release(&held)
        })
        .await;
        match released {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("handing leases back failed (they run out instead): {e}"),
            Err(e) => tracing::warn!("handing leases back failed (they run out instead): {e}"),
        }
    }
}

impl Drop for PassLeases {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::{holder_gone, hostname};

    #[test]
    fn only_a_holder_on_this_host_without_a_process_is_gone() {
        let host = hostname().expect("host name");
        let me = std::process::id();
        assert!(!holder_gone(&format!("{host}/{me}/1")), "this process");
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead = child.id();
        child.wait().expect("wait");
        assert!(holder_gone(&format!("{host}/{dead}/1/sync")), "reaped");
        assert!(!holder_gone(&format!("elsewhere.example/{dead}/1")));
        assert!(!holder_gone("garbage"));
        assert!(!holder_gone(&format!("{host}/0/1")));
    }
}
