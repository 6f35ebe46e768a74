//! Cheap questions the health and metrics server asks the database: how
//! many deliveries are pending or dead, and can it still write. Reads only;
//! the write probe takes the write lock and rolls back at once.

use std::time::Duration;

use super::store::{Store, StoreError};

/// Outbox rows not yet delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub dead: u64,
}

/// Uses the outbox's index of undelivered rows, whatever the outbox's size.
pub(super) const OUTBOX_COUNTS: &str =
    "SELECT status, COUNT(*) FROM outbox WHERE status != 'delivered' GROUP BY status";

impl Store {
    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut statement = self.connection.prepare_cached(OUTBOX_COUNTS)?;
        let mut counts = OutboxCounts::default();
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
        })?;
        for row in rows {
            let (status, count) = row?;
            match status.as_str() {
                "dead" => counts.dead = count,
                _ => counts.pending += count,
            }
        }
        Ok(counts)
    }

    /// Takes the database's write lock (waiting at most `wait`) and lets go.
    pub fn probe_writable(&self, wait: Duration) -> Result<(), StoreError> {
        self.connection.busy_timeout(wait)?;
        let result = self.connection.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
        if result.is_err() {
            let _ = self.connection.execute_batch("ROLLBACK;");
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_outbox_counts_zero_and_is_writable() {
        let store = Store::open_in_memory().expect("store");
        assert_eq!(
            store.outbox_counts().expect("counts"),
            OutboxCounts::default()
        );
        store
            .probe_writable(Duration::from_millis(100))
            .expect("writable");
    }
}
