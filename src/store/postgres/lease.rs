//! Leases: which of several instances sharing one PostgreSQL store works
//! which account. [`LeaseKeeper`] (its own connection, driven by the
//! service every third of the lease period) renews this instance's row in
//! `instances` and its leases, claims free or expired ones up to its share
//! (`ceil(accounts / live instances)`) with `FOR UPDATE SKIP LOCKED`, and
//! names the surplus to hand back. A claim adds one to the row's fence;
//! [`check`], run by the writer right before each commit, re-reads the
//! lease rows of the accounts the transaction wrote (`FOR KEY SHARE`, so no
//! claim can slip in before the commit) and fails unless this instance's
//! fence is still on each. Time is the database's `now()` alone: no two
//! clocks are compared. Knows no IMAP and no tasks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Pg, PgContext, PgTarget};
use crate::config::PostgresStore;
use crate::store::StoreError;

/// The leases this instance holds, with their fences: written by the
/// keeper, read by the writer's check.
#[derive(Debug)]
pub struct LeaseBook {
    owner: String,
    period: Duration,
    fences: Mutex<HashMap<String, i64>>,
}

impl LeaseBook {
    fn new(owner: String, period: Duration) -> LeaseBook {
        LeaseBook {
            owner,
            period,
            fences: Mutex::new(HashMap::new()),
        }
    }

    /// The lease period (`[store] lease_period`).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// This instance's id as the `leases` and `instances` rows name it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn fences(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.fences.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fence this instance holds for `account`, if it holds its lease.
    pub fn fence(&self, account: &str) -> Option<i64> {
        self.fences().get(account).copied()
    }

    /// Notes leases just claimed (committed), with their new fences.
    fn record_claimed(&self, claimed: Vec<(String, i64)>, what: &'static str) {
        let mut fences = self.fences();
        for (account, fence) in claimed {
            tracing::info!(%account, fence, "{what}");
            fences.insert(account, fence);
        }
    }

    fn held(&self) -> Vec<String> {
        let mut v: Vec<String> = self.fences().keys().cloned().collect();
        v.sort();
        v
    }
}

/// What one [`LeaseKeeper::tick`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LeaseTick {
    /// Accounts this instance holds and should work (those being handed
    /// back excluded).
    pub held: Vec<String>,
    /// Accounts whose lease another instance took (or that vanished):
    /// stop working them at once.
    pub lost: Vec<String>,
    /// Accounts above this instance's share: stop them, commit, then
    /// [`LeaseKeeper::release`] them.
    pub surplus: Vec<String>,
    /// Instances whose row has not expired, this one included.
    pub live_instances: i64,
}

/// This instance's side of the leases, on a connection of its own.
pub struct LeaseKeeper {
    target: PgTarget,
    pg: Option<Pg>,
    book: Arc<LeaseBook>,
    period: Duration,
    accounts: Vec<String>,
    releasing: HashSet<String>,
    /// Set by [`LeaseKeeper::leave`]: no tick claims anything after it.
    left: bool,
}

impl LeaseKeeper {
    /// Connects (applying migrations, as every store connection does).
    /// `instance` names this process in `status`, e.g. `host/pid/start`.
    pub fn open(
        store: &PostgresStore,
        instance: String,
        accounts: Vec<String>,
    ) -> Result<LeaseKeeper, StoreError> {
        let target = PgTarget::parse(store)?;
        let mut keeper = LeaseKeeper {
            target,
            pg: None,
            book: Arc::new(LeaseBook::new(instance, store.lease_period)),
            period: store.lease_period,
            accounts,
            releasing: HashSet::new(),
            left: false,
        };
        let pg = keeper.target.open()?;
        keeper.pg = Some(keeper.with_timeout(pg)?);
        Ok(keeper)
    }

    /// The book the writer checks its commits against.
    pub fn book(&self) -> Arc<LeaseBook> {
        self.book.clone()
    }

    /// How often [`LeaseKeeper::tick`] should run: a third of the period,
    /// so two renewals may fail before the lease runs out.
    pub fn interval(&self) -> Duration {
        self.period / 3
    }

    /// The accounts of this instance's configuration (after a reload);
    /// it claims no other.
    pub fn set_accounts(&mut self, accounts: Vec<String>) {
        self.accounts = accounts;
    }

    fn connection(&mut self) -> Result<&mut Pg, StoreError> {
        if self.pg.is_none() {
            // The schema is there since the first connection (`open`).
            let pg = self.target.connect()?;
            self.pg = Some(self.with_timeout(pg)?);
        }
        self.pg
            .as_mut()
            .ok_or_else(|| StoreError::Stopped("no lease connection".into()))
    }

    /// A statement that hangs must not outlast the lease it renews.
    fn with_timeout(&self, mut pg: Pg) -> Result<Pg, StoreError> {
        let ms = (self.period.as_millis() / 2).max(1000);
        pg.client
            .batch_execute(&format!("SET statement_timeout = {ms}"))
            .pg("setting the lease statement timeout")?;
        Ok(pg)
    }

    /// Renews, claims up to this instance's share and names the surplus.
    /// A failed tick drops the connection (the next one reconnects); the
    /// leases then run out unless a later tick renews them in time.
    pub fn tick(&mut self) -> Result<LeaseTick, StoreError> {
        if self.left {
            return Ok(LeaseTick::default());
        }
        let r = self.tick_on_connection();
        if r.is_err() {
            self.pg = None;
        }
        r
    }

    fn tick_on_connection(&mut self) -> Result<LeaseTick, StoreError> {
        let period = self.period.as_secs_f64();
        let me = self.book.owner.clone();
        let accounts = self.accounts.clone();
        let held = self.book.held();
        let pg = self.connection()?;
        let st = pg.st("INSERT INTO instances (id, expires_at)
             VALUES ($1, now() + $2 * interval '1 second')
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at")?;
        pg.client
            .execute(&st, &[&me, &period])
            .pg("renewing this instance's row")?;
        let st = pg.st("INSERT INTO leases (account) SELECT unnest($1::text[])
             ON CONFLICT (account) DO NOTHING")?;
        pg.client
            .execute(&st, &[&accounts])
            .pg("adding lease rows for the configured accounts")?;
        let lost = self.renew_held(held)?;
        let pg = self.connection()?;
        let st = pg.st("SELECT count(*) FROM instances WHERE expires_at > now()")?;
        let live: i64 = pg
            .client
            .query_one(&st, &[])
            .pg("counting live instances")?
            .get(0);
        // Accounts someone works plus the ones this instance could: an
        // account configured nowhere any more is not waited for.
        let st = pg.st("SELECT count(*) FROM leases
             WHERE (owner IS NOT NULL AND expires_at > now()) OR account = ANY($1)")?;
        let total: i64 = pg
            .client
            .query_one(&st, &[&accounts])
            .pg("counting accounts")?
            .get(0);
        let share = share(total, live);
        let releasing = self.releasing.len() as i64;
        let have = self.book.fences().len() as i64 - releasing;
        if have < share {
            let held = self.book.held();
            let pg = self.connection()?;
            let mut tx = pg.client.transaction().pg("starting a lease claim")?;
            let free: Vec<String> = tx
                .query(
                    "SELECT account FROM leases
                     WHERE account = ANY($1) AND NOT (account = ANY($2))
                       AND (owner IS NULL OR expires_at <= now())
                     ORDER BY account LIMIT $3 FOR UPDATE SKIP LOCKED",
                    &[&accounts, &held, &(share - have)],
                )
                .pg("finding free leases")?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let claimed: Vec<(String, i64)> = tx
                .query(
                    "UPDATE leases SET owner = $1, fence = fence + 1,
                            expires_at = now() + $3 * interval '1 second'
                     WHERE account = ANY($2) RETURNING account, fence",
                    &[&me, &free, &period],
                )
                .pg("claiming leases")?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            tx.commit().pg("committing a lease claim")?;
            self.book.record_claimed(claimed, "lease claimed");
        }
        // Accounts dropped from the configuration go back first.
        let mut surplus: Vec<String> = self
            .book
            .held()
            .into_iter()
            .filter(|a| !self.accounts.contains(a) && !self.releasing.contains(a))
            .collect();
        self.releasing.extend(surplus.iter().cloned());
        let have = self.book.fences().len() as i64 - self.releasing.len() as i64;
        if have > share {
            let mut candidates: Vec<String> = self
                .book
                .held()
                .into_iter()
                .filter(|a| !self.releasing.contains(a))
                .collect();
            let keep = usize::try_from(share).unwrap_or(0);
            let over = candidates.split_off(keep.min(candidates.len()));
            self.releasing.extend(over.iter().cloned());
            surplus.extend(over);
        }
        let held = self
            .book
            .held()
            .into_iter()
            .filter(|a| !self.releasing.contains(a))
            .collect();
        Ok(LeaseTick {
            held,
            lost,
            surplus,
            live_instances: live,
        })
    }

    /// Renews the leases in `held`; returns those that are no longer
    /// this instance's (and forgets their fences).
    fn renew_held(&mut self, held: Vec<String>) -> Result<Vec<String>, StoreError> {
        let period = self.period.as_secs_f64();
        let me = self.book.owner.clone();
        let pg = self.connection()?;
        // Renewed while the row still names this instance: nobody claimed
        // it since, so the fence is still ours even if it ran out meanwhile.
        let st = pg.st(
            "UPDATE leases SET expires_at = now() + $3 * interval '1 second'
             WHERE owner = $1 AND account = ANY($2) RETURNING account, fence",
        )?;
        let renewed: HashMap<String, i64> = pg
            .client
            .query(&st, &[&me, &held, &period])
            .pg("renewing leases")?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut lost = Vec::new();
        {
            let mut fences = self.book.fences();
            fences.retain(|account, fence| {
                let kept = renewed.get(account) == Some(fence);
                if !kept {
                    lost.push(account.clone());
                }
                kept
            });
        }
        for account in &lost {
            self.releasing.remove(account);
        }
        Ok(lost)
    }

    /// For one pass (`mailfeed sync`): claims every configured account
    /// whose lease is free, run out, or this process's, whatever the
    /// shares; returns the others with the instance holding each. Adds no
    /// `instances` row: a pass is not an instance taking a share, so the
    /// running instances' shares stay as they are, and they claim what the
    /// pass holds only after it hands it back (or it runs out).
    ///
    /// `gone` says of a holder (`host/pid/start`) that it certainly no
    /// longer runs (a killed `sync` or `run` on this host): its leases are
    /// claimed at once instead of after they run out. A holder wrongly
    /// called gone only loses its fence: its commits are refused.
    pub fn claim_for_pass(
        &mut self,
        gone: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let r = self.claim_for_pass_on_connection(gone);
        if r.is_err() {
            self.pg = None;
        }
        r
    }

    fn claim_for_pass_on_connection(
        &mut self,
        gone: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let period = self.period.as_secs_f64();
        let me = self.book.owner.clone();
        let accounts = self.accounts.clone();
        let pg = self.connection()?;
        let st = pg.st("INSERT INTO leases (account) SELECT unnest($1::text[])
             ON CONFLICT (account) DO NOTHING")?;
        pg.client
            .execute(&st, &[&accounts])
            .pg("adding lease rows for the configured accounts")?;
        let st = pg.st("SELECT DISTINCT owner FROM leases
             WHERE account = ANY($1) AND owner IS NOT NULL AND owner <> $2")?;
        let dead: Vec<String> = pg
            .client
            .query(&st, &[&accounts, &me])
            .pg("reading the holders of the leases")?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|o| gone(o))
            .collect();
        let mut tx = pg.client.transaction().pg("starting a lease claim")?;
        // Rows another claim has locked right now are skipped: that claim
        // is a live instance's, so they count as held below.
        let claimed: Vec<(String, i64)> = tx
            .query(
                "UPDATE leases SET owner = $1, fence = fence + 1,
                        expires_at = now() + $3 * interval '1 second'
                 WHERE account IN (
                     SELECT account FROM leases
                     WHERE account = ANY($2)
                       AND (owner IS NULL OR owner = $1 OR expires_at <= now()
                            OR owner = ANY($4))
                     FOR UPDATE SKIP LOCKED)
                 RETURNING account, fence",
                &[&me, &accounts, &period, &dead],
            )
            .pg("claiming leases")?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let held: Vec<(String, String)> = tx
            .query(
                "SELECT account, coalesce(owner, 'another claim') FROM leases
                 WHERE account = ANY($1) AND owner IS DISTINCT FROM $2
                 ORDER BY account",
                &[&accounts, &me],
            )
            .pg("reading the leases held by others")?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        tx.commit().pg("committing a lease claim")?;
        self.book
            .record_claimed(claimed, "lease claimed for this pass");
        Ok(held)
    }

    /// Renews the leases this process holds, without claiming any or
    /// renewing an `instances` row (a pass's renewal); returns the
    /// accounts lost meanwhile. A failure drops the connection.
    pub fn renew(&mut self) -> Result<Vec<String>, StoreError> {
        let held = self.book.held();
        let r = self.renew_held(held);
        if r.is_err() {
            self.pg = None;
        }
        r
    }

    /// The accounts whose lease this process holds.
    pub fn held(&self) -> Vec<String> {
        self.book.held()
    }

    /// Hands leases back (their accounts stopped and committed): they are
    /// free for any instance at once.
    pub fn release(&mut self, accounts: &[String]) -> Result<(), StoreError> {
        {
            let mut fences = self.book.fences();
            for a in accounts {
                fences.remove(a);
                self.releasing.remove(a);
            }
        }
        let me = self.book.owner.clone();
        let pg = self.connection()?;
        // Only rows that still name this process are handed back, and only
        // those are logged: a lease claimed by another meanwhile was not
        // this process's to give.
        let st = pg.st("UPDATE leases SET owner = NULL, expires_at = '-infinity'
             WHERE owner = $1 AND account = ANY($2) RETURNING account")?;
        let released = pg
            .client
            .query(&st, &[&me, &accounts])
            .pg("releasing leases")?;
        for row in released {
            let account: String = row.get(0);
            tracing::info!(%account, "lease released");
        }
        Ok(())
    }

    /// On a clean stop (after the writer closed): every lease back and
    /// this instance's row gone, so the others take over at their next
    /// tick instead of after a period.
    pub fn leave(&mut self) -> Result<(), StoreError> {
        self.left = true;
        let held = self.book.held();
        self.release(&held)?;
        let me = self.book.owner.clone();
        let pg = self.connection()?;
        pg.client
            .execute("DELETE FROM instances WHERE id = $1", &[&me])
            .pg("removing this instance's row")?;
        Ok(())
    }
}

impl Drop for LeaseKeeper {
    /// The synchronous client closes by running its own small runtime,
    /// which must not happen on a thread driving async tasks (the keeper
    /// may be dropped by one): it closes on a thread of its own.
    fn drop(&mut self) {
        if let Some(pg) = self.pg.take() {
            let _ = std::thread::spawn(move || drop(pg)).join();
        }
    }
}

/// Each live instance's share of `accounts`, rounded up so the shares
/// cover every account.
fn share(accounts: i64, live: i64) -> i64 {
    let live = live.max(1);
    (accounts.max(0) + live - 1) / live
}

/// The writer's check, right before COMMIT: every account the transaction
/// wrote must still carry this instance's fence. The rows stay locked
/// `FOR KEY SHARE` until the commit: a claim (`FOR UPDATE`) skips or waits
/// for them, and a claim made before fails the check; a renewal (an UPDATE
/// of the expiry alone) does not wait for a commit in progress.
pub(crate) fn check(pg: &mut Pg) -> Result<(), StoreError> {
    let Some(book) = pg.leases.clone() else {
        return Ok(());
    };
    if pg.touched.is_empty() {
        return Ok(());
    }
    let mailboxes: Vec<i64> = pg.touched.iter().copied().collect();
    let st = pg.st(
        "SELECT DISTINCT a.name FROM mailboxes m JOIN accounts a ON a.id = m.account_id
         WHERE m.id = ANY($1)",
    )?;
    let names: Vec<String> = pg
        .client
        .query(&st, &[&mailboxes])
        .pg("finding the accounts of this transaction")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let st = pg.st(
        "SELECT account, owner, fence FROM leases WHERE account = ANY($1)
         ORDER BY account FOR KEY SHARE",
    )?;
    let rows: HashMap<String, (Option<String>, i64)> = pg
        .client
        .query(&st, &[&names])
        .pg("checking the leases of this transaction")?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for account in names {
        let (holder, fence) = rows.get(&account).cloned().unwrap_or((None, 0));
        let ours = holder.as_deref() == Some(book.owner()) && book.fence(&account) == Some(fence);
        if !ours {
            return Err(StoreError::LeaseLost {
                account,
                holder: holder.unwrap_or_else(|| "nobody".into()),
                instance: book.owner().to_owned(),
            });
        }
    }
    Ok(())
}

/// One row of `status`'s lease table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseStatus {
    pub account: String,
    /// The instance named in the row; `None` when free.
    pub owner: Option<String>,
    /// Seconds until the lease runs out (negative: it has).
    pub expires_in: f64,
    pub fence: i64,
}

pub(crate) fn status(pg: &mut Pg) -> Result<Vec<LeaseStatus>, StoreError> {
    let st = pg.st("SELECT account, owner,
                CASE WHEN expires_at = '-infinity' THEN -1e9
                     ELSE extract(epoch FROM expires_at - now())::float8 END,
                fence
         FROM leases ORDER BY account")?;
    Ok(pg
        .client
        .query(&st, &[])
        .pg("reading the leases")?
        .iter()
        .map(|r| LeaseStatus {
            account: r.get(0),
            owner: r.get(1),
            expires_in: r.get(2),
            fence: r.get(3),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_cover_every_account() {
        assert_eq!(share(30, 3), 10);
        assert_eq!(share(31, 3), 11);
        assert_eq!(share(30, 0), 30);
        assert_eq!(share(0, 2), 0);
        for accounts in 0..50 {
            for live in 1..7 {
                assert!(share(accounts, live) * live >= accounts);
            }
        }
    }
}
