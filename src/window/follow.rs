//! Following a change of the window: after a pass's fetch, if the folder's
//! recorded window differs from the configured one, the UIDs the cursor
//! covered before this pass are searched with the new window and the
//! matches not stored are fetched (through the engine's own pipeline, so
//! the same exactly-once rules hold). Then the new window is recorded,
//! behind those messages in the writer's queue.

use crate::store::MailboxCursor;
use crate::sync::{Engine, FetchCtx, FolderStats, SyncError, batches};

impl Engine {
    /// See the module's doc. A first pass (or a new generation) only
    /// records the window it fetched under.
    pub(crate) async fn follow_window(
        &self,
        session: &mut crate::session::Session,
        ctx: &FetchCtx<'_>,
        before: &MailboxCursor,
        stats: &mut FolderStats,
    ) -> Result<(), SyncError> {
        let window = &self.actions.config.for_folder(&ctx.folder).window;
        let key = window.key();
        let recorded = self.store.recorded_window(ctx.mailbox).await?;
        if recorded.as_deref().unwrap_or("") == key {
            return Ok(());
        }
        let covered = before.last_uid;
        if before.uidvalidity == Some(ctx.uidvalidity) && covered > 0 {
            let wanted = super::search(session, format!("1:{covered}"), window).await?;
            let stored = self
                .store
                .stored_uids(ctx.mailbox, ctx.uidvalidity, covered)
                .await?;
            let missing = super::minus(&wanted, &stored);
            if !missing.is_empty() {
                tracing::info!(account = ctx.account, folder = %ctx.folder, count = missing.len(),
                    window = %key, "the window changed: fetching the messages it adds");
                let plan = batches(0, &missing, self.settings.batch_size as usize);
                self.fetch_batches(session, ctx, &missing, plan, stats)
                    .await?;
            }
        }
        self.store.set_window(ctx.mailbox, key).await?;
        Ok(())
    }
}
