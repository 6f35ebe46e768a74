//! The outbox: one row per (alert, sink), sent in arrival order by that
//! sink's worker, retried until delivered or moved to dead letters. Rows are
//! never deleted silently: a delivered row is marked `delivered`, a row that
//! could not be delivered in time is marked `dead` and stays for an operator.

use rusqlite::{params, OptionalExtension, Row};

use super::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    fn from_db(text: &str) -> DeliveryStatus {
        match text {
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// A queued delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: i64,
    pub id: String,
    pub sink: String,
    pub alert_id: String,
    pub rule: String,
    pub article_id: String,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
}

/// `SELECT` of the columns of a [`Delivery`], from `outbox` joined with its
/// alert's payload, followed by the rest of the query.
macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT outbox.seq, outbox.id, outbox.sink, outbox.alert_id, outbox.rule, outbox.article_id, alert_payloads.payload, outbox.status, outbox.attempts, outbox.created_at_ms, outbox.next_attempt_ms, outbox.last_error
             FROM outbox JOIN alert_payloads ON alert_payloads.id = outbox.payload_id ",
            $rest
        )
    };
}

// `status != 'delivered'` in these queries lets SQLite use the outbox's
// index, which holds only the rows not yet delivered (see the schema).
const PENDING_COUNT: &str =
    "SELECT COUNT(*) FROM outbox WHERE status != 'delivered' AND status = 'pending'";
const UNDELIVERED: &str =
    select_deliveries!("WHERE outbox.status != 'delivered' ORDER BY outbox.seq");
/// Row `?1` delivered after `?2` attempts.
const MARK_DELIVERED: &str =
    "UPDATE outbox SET status = 'delivered', attempts = ?2, last_error = NULL WHERE seq = ?1";
const REQUEUE_ALL: &str =
    "UPDATE outbox SET status = 'pending', attempts = 0, created_at_ms = ?1, next_attempt_ms = ?1
     WHERE status != 'delivered' AND status = 'dead'";
const REQUEUE_ONE: &str =
    "UPDATE outbox SET status = 'pending', attempts = 0, created_at_ms = ?1, next_attempt_ms = ?1
     WHERE status != 'delivered' AND status = 'dead' AND id = ?2";
/// A sink's oldest pending rows, at most `limit`. The limit is written into
/// the SQL instead of bound: SQLite reads a bound `LIMIT` while planning the
/// statement, so binding one makes it re-prepare (parse and plan again) at
/// every run, ~0.1 ms for this query, paid by a worker for every window of
/// rows it reads. The statement cache keeps one statement per limit used.
fn pending_for_sink_sql(limit: usize) -> String {
    format!(
        concat!(
            select_deliveries!(
                "WHERE outbox.sink = ?1 AND outbox.status != 'delivered' AND outbox.status = 'pending' ORDER BY outbox.seq "
            ),
            "LIMIT {}"
        ),
        limit
    )
}

fn delivery(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = row.get(7)?;
    Ok(Delivery {
        seq: row.get(0)?,
        id: row.get(1)?,
        sink: row.get(2)?,
        alert_id: row.get(3)?,
        rule: row.get(4)?,
        article_id: row.get(5)?,
        payload: row.get(6)?,
        status: DeliveryStatus::from_db(&status),
        attempts: row.get(8)?,
        created_at_ms: row.get(9)?,
        next_attempt_ms: row.get(10)?,
        last_error: row.get(11)?,
    })
}

impl Store {
    /// The oldest pending delivery of `sink` (due or not: a sink delivers in order).
    pub fn next_pending(&self, sink: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self.pending_for_sink(sink, 1)?.pop())
    }

    /// One transaction per row, so that a crash right after it re-sends
    /// nothing but the send in flight: a digest's rows, or a worker's
    /// delivery when its [`super::delivered::DeliveredLog`] cannot take it.
    pub fn mark_delivered(&self, seq: i64, attempts: u32) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(MARK_DELIVERED)?
            .execute(params![seq, attempts])?;
        Ok(())
    }

    /// Marks many rows delivered in one transaction (a sink worker's
    /// [`super::delivered::DeliveredLog`] folded into the outbox). Marking
    /// a row twice leaves it as it was.
    pub fn mark_delivered_many(
        &mut self,
        marks: &[super::delivered::Mark],
    ) -> Result<(), StoreError> {
        let transaction = self.connection.transaction()?;
        {
            let mut mark = transaction.prepare_cached(MARK_DELIVERED)?;
            for m in marks {
                mark.execute(params![m.seq, m.attempts])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    pub fn schedule_retry(
        &self,
        seq: i64,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE seq = ?1",
            params![seq, attempts, next_attempt_ms, error],
        )?;
        Ok(())
    }

    pub fn mark_dead(&self, seq: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE outbox SET status = 'dead', attempts = ?2, last_error = ?3 WHERE seq = ?1",
            params![seq, attempts, error],
        )?;
        Ok(())
    }

    /// Deliveries not yet made, over all sinks.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .connection
            .query_row(PENDING_COUNT, [], |row| row.get(0))?)
    }

    /// Pending and dead deliveries, oldest first.
    pub fn undelivered(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut statement = self.connection.prepare(UNDELIVERED)?;
        let rows = statement.query_map([], delivery)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Store {
    /// The oldest pending deliveries of `sink`, at most `limit`, oldest
    /// first (a digest, or a worker's next few sends).
    pub fn pending_for_sink(&self, sink: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached(&pending_for_sink_sql(limit))?;
        let rows = statement.query_map([sink], delivery)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// When `sink` last sent (or skipped, having nothing) a digest.
    pub fn last_digest(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT at_ms FROM sink_digests WHERE sink = ?1",
                [sink],
                |row| row.get(0),
            )
            .optional()?)
    }

    pub fn record_digest(&self, sink: &str, at_ms: i64) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR REPLACE INTO sink_digests (sink, at_ms) VALUES (?1, ?2)",
            params![sink, at_ms],
        )?;
        Ok(())
    }

    /// Puts dead letters back in the queue with a fresh `max_age` budget: the one
    /// with delivery id `id`, or every one when `id` is None. Returns how many.
    /// Both read the index of undelivered rows, not the whole outbox.
    pub fn requeue_dead(&self, id: Option<&str>, now_ms: i64) -> Result<usize, StoreError> {
        let changed = match id {
            Some(id) => self.connection.execute(REQUEUE_ONE, params![now_ms, id])?,
            None => self.connection.execute(REQUEUE_ALL, params![now_ms])?,
        };
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FileKey, NewDelivery, ProcessedArticle};
    use super::*;

    #[test]
    fn a_sink_sees_its_deliveries_in_arrival_order_until_each_is_settled() {
        let mut store = Store::open_in_memory().expect("open");
        for (article, rule) in [("a1", "r1"), ("a2", "r2")] {
            store
                .commit_article(&ProcessedArticle {
                    article_id: article.to_string(),
                    file: FileKey {
                        path: format!("{article}.txt"),
                        size: 1,
                        mtime_ns: 1,
                    },
                    seen: Vec::new(),
                    deliveries: ["slack", "file"]
                        .iter()
                        .map(|sink| NewDelivery {
                            sink: sink.to_string(),
                            alert_id: format!("{article}{rule}"),
                            rule: rule.to_string(),
                            payload: "{}".to_string(),
                        })
                        .collect(),
                    now_ms: 7,
                    ..ProcessedArticle::default()
                })
                .expect("commit");
        }
        let payloads = |store: &Store| -> i64 {
            store
                .connection
                .query_row("SELECT COUNT(*) FROM alert_payloads", [], |row| row.get(0))
                .expect("count")
        };
        assert_eq!(payloads(&store), 2, "one per alert, not one per sink");
        let first = store
            .next_pending("slack")
            .expect("query")
            .expect("a delivery");
        assert_eq!(
            (first.alert_id.as_str(), first.id.as_str()),
            ("a1r1", "a1r1:slack")
        );
        store
            .schedule_retry(first.seq, 1, 5000, "HTTP 500")
            .expect("retry");
        let again = store
            .next_pending("slack")
            .expect("query")
            .expect("a delivery");
        assert_eq!(
            (again.seq, again.attempts, again.next_attempt_ms),
            (first.seq, 1, 5000)
        );
        store.mark_delivered(first.seq, 2).expect("delivered");
        let second = store
            .next_pending("slack")
            .expect("query")
            .expect("a delivery");
        assert_eq!(second.alert_id, "a2r2");
        store.mark_dead(second.seq, 3, "HTTP 404").expect("dead");
        assert!(store.next_pending("slack").expect("query").is_none());
        assert_eq!(
            store.pending_count().expect("count"),
            2,
            "the file sink still has two"
        );
        let undelivered = store.undelivered().expect("list");
        assert_eq!(undelivered.len(), 3);
        assert_eq!(undelivered[1].status, DeliveryStatus::Dead);
        assert_eq!(undelivered[1].last_error.as_deref(), Some("HTTP 404"));
        assert_eq!(
            store.requeue_dead(Some("no-such-id"), 9).expect("requeue"),
            0
        );
        assert_eq!(
            store.requeue_dead(Some("a2r2:slack"), 9).expect("requeue"),
            1
        );
        let requeued = store
            .next_pending("slack")
            .expect("query")
            .expect("a delivery");
        assert_eq!(
            (
                requeued.alert_id.as_str(),
                requeued.attempts,
                requeued.created_at_ms
            ),
            ("a2r2", 0, 9)
        );
    }

    #[test]
    fn a_workers_next_window_reuses_the_prepared_query() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .commit_article(&ProcessedArticle {
                article_id: "a1".to_string(),
                deliveries: vec![NewDelivery {
                    sink: "hook".to_string(),
                    alert_id: "a1r1".to_string(),
                    rule: "r1".to_string(),
                    payload: "{}".to_string(),
                }],
                ..ProcessedArticle::default()
            })
            .expect("commit");
        for _ in 0..3 {
            assert_eq!(store.pending_for_sink("hook", 64).expect("read").len(), 1);
        }
        let statement = store
            .connection
            .prepare_cached(&pending_for_sink_sql(64))
            .expect("cached");
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the query was parsed and planned again"
        );
    }

    #[test]
    fn the_workers_queries_read_the_index_of_undelivered_rows_not_the_outbox() {
        let store = Store::open_in_memory().expect("open");
        for sql in [
            PENDING_COUNT,
            &pending_for_sink_sql(64),
            super::super::counts::OUTBOX_COUNTS,
            REQUEUE_ALL,
            REQUEUE_ONE,
        ] {
            let mut explain = store
                .connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare");
            let unbound = rusqlite::params_from_iter(std::iter::repeat_n(
                rusqlite::types::Null,
                explain.parameter_count(),
            ));
            let plan: Vec<String> = explain
                .query_map(unbound, |row| row.get(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            assert!(
                plan.iter().any(
                    |step| step.contains("USING COVERING INDEX outbox_undelivered")
                        || step.contains("USING INDEX outbox_undelivered")
                ),
                "{sql}: {plan:?}"
            );
        }
    }
}
