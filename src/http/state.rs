//! What the routes read: the service's [`Board`] (a cheap copy per
//! request), the writer's handle (alive? bytes queued?), and the database's
//! totals through the store boundary, read at most once a second whatever
//! the number of scrapes (one read at a time; the others wait for it and
//! share its answer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::HttpError;
use crate::health::Board;
use crate::store::StoreHandle;
use crate::store::totals::MailboxTotals;

/// How long the database's totals are reused.
pub const TOTALS_MAX_AGE: Duration = Duration::from_secs(1);

/// The accounts and folders the configuration names (folder labels are
/// limited to these and to the folders the watchers resolved).
#[derive(Debug, Clone)]
pub struct Configured {
    pub account: String,
    pub folders: Vec<String>,
}

/// Shared by every route. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    pub board: Board,
    pub store: StoreHandle,
    pub store_config: crate::config::StoreConfig,
    pub configured: Arc<Vec<Configured>>,
    totals: Arc<Mutex<Option<Cached>>>,
}

/// The last totals read, and when.
type Cached = (Instant, Arc<DbTotals>);

/// What the database holds, as of `read_at`.
#[derive(Debug, Clone, Default)]
pub struct DbTotals {
    pub mailboxes: Vec<MailboxTotals>,
    pub database_bytes: u64,
    pub search_index_lag: Option<u64>,
    /// Which instance holds each account (PostgreSQL; empty on SQLite).
    pub leases: Vec<crate::store::LeaseStatus>,
}

impl Ops {
    pub fn new(
        board: Board,
        store: StoreHandle,
        store_config: crate::config::StoreConfig,
        configured: Vec<Configured>,
    ) -> Self {
        Ops {
            board,
            store,
            store_config,
            configured: Arc::new(configured),
            totals: Arc::default(),
        }
    }

    /// The database's totals, at most [`TOTALS_MAX_AGE`] old.
    pub async fn totals(&self) -> Result<Arc<DbTotals>, HttpError> {
        let mut cached = self.totals.lock().await;
        if let Some((at, t)) = cached.as_ref()
            && at.elapsed() < TOTALS_MAX_AGE
        {
            return Ok(t.clone());
        }
        let store_config = self.store_config.clone();
        let fresh = tokio::task::spawn_blocking(move || {
            let reader = crate::store::Reader::open_store(&store_config)?;
            Ok::<_, crate::store::StoreError>(DbTotals {
                mailboxes: reader.totals()?,
                database_bytes: reader.database_bytes()?,
                search_index_lag: Some(u64::try_from(reader.search_lag()?.messages).unwrap_or(0)),
                leases: reader.leases()?,
            })
        })
        .await
        .map_err(|e| HttpError::Task(e.to_string()))??;
        let fresh = Arc::new(fresh);
        *cached = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}
