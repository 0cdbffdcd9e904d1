//! Commit-ordered feed positions. Rows are written with `position` NULL;
//! just before COMMIT, [`publish`] locks the single `feed_positions` row,
//! numbers this transaction's new messages and events after the last
//! positions handed out, and moves the counters. The row lock is held until
//! COMMIT, so the next writer numbers its rows only after this one's are
//! visible: positions become visible in increasing order, and a consumer
//! that remembers the last `id` (or `seq`) it read never misses a row.
//! The lock is held for the numbering and the commit only, not while the
//! transaction gathers its rows, so writers overlap for everything else.

use super::{Pg, PgContext};
use crate::store::StoreError;

/// Numbers the open transaction's unnumbered rows. Call right before
/// COMMIT, inside the transaction.
pub(crate) fn publish(pg: &mut Pg) -> Result<(), StoreError> {
    let st =
        pg.st("SELECT last_message, last_event FROM feed_positions WHERE one = 1 FOR UPDATE")?;
    let row = pg
        .client
        .query_one(&st, &[])
        .pg("taking the feed position lock")?;
    let (last_message, last_event): (i64, i64) = (row.get(0), row.get(1));
    let st = pg.st("UPDATE messages m SET position = $1 + n.k
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS k
               FROM messages WHERE position IS NULL) n
         WHERE m.id = n.id")?;
    let messages = pg
        .client
        .execute(&st, &[&last_message])
        .pg("numbering new messages")?;
    let st = pg.st("UPDATE events e SET position = $1 + n.k
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS k
               FROM events WHERE position IS NULL) n
         WHERE e.id = n.id")?;
    let events = pg
        .client
        .execute(&st, &[&last_event])
        .pg("numbering new events")?;
    if messages + events > 0 {
        let st = pg.st("UPDATE feed_positions SET last_message = last_message + $1,
                                       last_event = last_event + $2 WHERE one = 1")?;
        pg.client
            .execute(&st, &[&(messages as i64), &(events as i64)])
            .pg("moving the feed positions")?;
    }
    Ok(())
}
