//! The backfill window recorded per mailbox (`mailbox_windows`), and the
//! stored UIDs a widened window is compared with. Through the writer, so
//! the record commits with (after) the messages a backfill stored.

use rusqlite::{OptionalExtension, params};

use super::writer::Db;
use super::{Context, MailboxId, StoreError, StoreHandle};
use crate::imap::{UidSet, UidValidity};

impl StoreHandle {
    /// The window key the mailbox was last synced under (`None`: never
    /// recorded, i.e. everything — mail stored before windows existed).
    pub async fn recorded_window(&self, mailbox: MailboxId) -> Result<Option<String>, StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => c
                .query_row(
                    "SELECT window FROM mailbox_windows WHERE mailbox_id = ?1",
                    params![mailbox.0],
                    |r| r.get(0),
                )
                .optional()
                .doing("reading the mailbox's window"),
            Db::Postgres(pg) => super::postgres::window::recorded(pg, mailbox),
        })
        .await
    }

    /// Records the window key the mailbox is now synced under.
    pub async fn set_window(&self, mailbox: MailboxId, key: String) -> Result<(), StoreError> {
        self.call_db(move |db| match db {
            Db::Sqlite(c) => {
                c.execute(
                    "INSERT INTO mailbox_windows (mailbox_id, window) VALUES (?1, ?2)
                     ON CONFLICT (mailbox_id) DO UPDATE SET window = excluded.window",
                    params![mailbox.0, key],
                )
                .doing("recording the mailbox's window")?;
                Ok(())
            }
            Db::Postgres(pg) => super::postgres::window::set(pg, mailbox, &key),
        })
        .await
    }

    /// The UIDs stored in a generation up to `up_to`.
    pub async fn stored_uids(
        &self,
        mailbox: MailboxId,
        uidvalidity: UidValidity,
        up_to: u32,
    ) -> Result<UidSet, StoreError> {
        self.call_db(move |db| {
            let c = match db {
                Db::Sqlite(c) => c,
                Db::Postgres(pg) => {
                    return super::postgres::window::stored_uids(pg, mailbox, uidvalidity, up_to);
                }
            };
            let mut s = c
                .prepare_cached(
                    "SELECT uid FROM messages WHERE mailbox_id = ?1 AND uidvalidity = ?2
                     AND uid <= ?3 ORDER BY uid",
                )
                .doing("listing stored UIDs")?;
            let mut ranges: Vec<(u32, u32)> = Vec::new();
            let mut rows = s
                .query(params![mailbox.0, uidvalidity.0, up_to])
                .doing("listing stored UIDs")?;
            while let Some(r) = rows.next().doing("listing stored UIDs")? {
                let uid: u32 = r.get(0).doing("listing stored UIDs")?;
                match ranges.last_mut() {
                    Some(last) if last.1.checked_add(1) == Some(uid) => last.1 = uid,
                    _ => ranges.push((uid, uid)),
                }
            }
            Ok(UidSet::from_ranges(ranges))
        })
        .await
    }
}
