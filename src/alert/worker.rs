//! One worker per sink: sends that sink's pending outbox rows in arrival
//! order, no faster than the sink's rate limit (a token bucket), retrying a failed head row with capped exponential backoff and
//! jitter (the whole sink waits, so order holds), honouring `Retry-After`,
//! and moving a row to dead letters when retrying cannot help or it is
//! older than the sink's `max_age` (its [`crate::config::RetryPolicy`]). A sink that is broken itself (a revoked Slack
//! hook) is paused for [`UNHEALTHY_PAUSE`] at a time, its rows kept pending.
//! Nothing is dropped silently: every dead letter is
//! logged at error level and stays in the database.
//!
//! On cancellation a send in flight is finished; the rest stays pending for
//! the next start.
//!
//! A worker's database calls run on tokio's blocking pool ([`Outbox`]): a
//! write waits for the recorder's write lock, up to the busy timeout, and a
//! runtime thread held that long would hold up every task on it (the
//! folder's events, the other sinks' sends, the watchdog's heartbeat).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::{Quota, RateLimiter};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::alert::send::{SendError, Sender};
use crate::blocking::off_runtime;
use crate::config::SinkConfig;
use crate::service::{telemetry, DeliveryOutcome};
use crate::state::delivered::DeliveredLog;
use crate::state::{Delivery, Store, StoreError};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Pending rows a worker reads at once: one query per this many sends
/// instead of one per send. Still sent one by one, oldest first.
const WINDOW: usize = 64;
/// How often an idle worker looks at the outbox even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// How long an unhealthy sink (e.g. a revoked Slack hook) waits before trying again.
pub const UNHEALTHY_PAUSE: Duration = Duration::from_secs(300);

/// Delay before retry number `attempts` (1-based): doubling from 500 ms,
/// capped at `max_backoff`, with ±20 % jitter.
pub fn backoff(attempts: u32, max_backoff: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let base = FIRST_BACKOFF.saturating_mul(1 << exponent).min(max_backoff);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    base.mul_f64(jitter)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// True when a delivery queued at `created_at_ms` is older than `max_age`.
fn too_old(created_at_ms: i64, max_age: Duration) -> bool {
    Duration::from_millis((now_ms() - created_at_ms).max(0) as u64) >= max_age
}

/// A worker's connection to the database and its log of deliveries.
struct Outbox(Arc<Mutex<OutboxState>>);

struct OutboxState {
    store: Store,
    log: Option<DeliveredLog>,
}

impl Outbox {
    fn new(store: Store, log: Option<DeliveredLog>) -> Outbox {
        Outbox(Arc::new(Mutex::new(OutboxState { store, log })))
    }

    /// Runs `work` on the connection and the log, on tokio's blocking pool.
    /// The worker awaits each call before its next, so the lock is never
    /// contended.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store, &mut Option<DeliveredLog>) -> T + Send + 'static,
    ) -> T {
        let state = Arc::clone(&self.0);
        off_runtime(move || {
            let mut state = lock(&state);
            let OutboxState { store, log } = &mut *state;
            work(store, log)
        })
        .await
    }

    /// Records that row `seq` was delivered: appended to the log at once (16
    /// bytes to a file, no lock to wait for), or marked in the database when
    /// there is no log or appending to it failed.
    async fn delivered(&self, sink: &str, seq: i64, attempts: u32) -> Result<(), StoreError> {
        if let Some(log) = &mut lock(&self.0).log {
            match log.append(seq, attempts) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(sink = %sink, error = %e, "cannot log a delivery; marking it in the database")
                }
            }
        }
        self.run(move |store, _| store.mark_delivered(seq, attempts))
            .await
    }

    /// Reschedules row `seq` for `at_ms`.
    async fn retry(
        &self,
        seq: i64,
        attempts: u32,
        at_ms: i64,
        message: String,
    ) -> Result<(), StoreError> {
        self.run(move |store, _| store.schedule_retry(seq, attempts, at_ms, &message))
            .await
    }

    /// Makes row `seq` a dead letter.
    async fn dead(&self, seq: i64, attempts: u32, message: String) -> Result<(), StoreError> {
        self.run(move |store, _| store.mark_dead(seq, attempts, &message))
            .await
    }
}

fn lock(state: &Mutex<OutboxState>) -> MutexGuard<'_, OutboxState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs until `cancel` fires. `wake` is notified whenever new rows were
/// queued. Deliveries are marked in `log` as they are made and folded into
/// the outbox before each read of the next rows and at the end; without a
/// log, each is marked in the database at once.
pub async fn run_sink_worker(
    sink: SinkConfig,
    store: Store,
    log: Option<DeliveredLog>,
    sender: Arc<Sender>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    if sink.digest.is_some() {
        return run_digest_worker(sink, Outbox::new(store, None), sender, cancel).await;
    }
    let name = sink.name.clone();
    let outbox = Outbox::new(store, log);
    debug!(sink = %name, kind = sink.kind.type_name(), "sink worker started");
    let limiter = sink.rate_limit.and_then(|limit| {
        let burst = NonZeroU32::new(limit.burst)?;
        Some(RateLimiter::direct(
            Quota::with_period(limit.period)?.allow_burst(burst),
        ))
    });
    let mut unhealthy = false;
    // The sink's oldest pending rows, in order; only this worker changes
    // them, so they stay valid until one is not delivered (then re-read).
    let mut window: VecDeque<Delivery> = VecDeque::with_capacity(WINDOW);
    loop {
        if cancel.is_cancelled() {
            break;
        }
        if window.is_empty() {
            let sink_name = name.clone();
            let rows = outbox
                .run(move |store, log| {
                    // The rows just delivered must be marked before the next
                    // read returns them again.
                    if let Some(log) = log {
                        log.fold(store)
                            .map_err(|e| ("cannot mark deliveries in the outbox", e))?;
                    }
                    store
                        .pending_for_sink(&sink_name, WINDOW)
                        .map_err(|e| ("cannot read the outbox", e))
                })
                .await;
            match rows {
                Ok(rows) => window.extend(rows),
                Err((what, e)) => {
                    error!(sink = %name, error = %e, "{what}; retrying in 5 s");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            }
        }
        let Some(delivery) = window.pop_front() else {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        };
        let wait_ms = delivery.next_attempt_ms - now_ms();
        if wait_ms > 0 {
            window.clear();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
            continue;
        }
        if let Some(limiter) = &limiter {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = limiter.until_ready() => {}
            }
        }
        let attempts = delivery.attempts + 1;
        let result = sender
            .send(&sink, &delivery.alert_id, &delivery.payload)
            .await;
        let delivered = result.is_ok();
        let outcome = match result {
            Ok(()) => {
                if unhealthy {
                    unhealthy = false;
                    info!(sink = %name, "sink is healthy again");
                }
                info!(sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, "alert delivered");
                telemetry().delivery(&name, DeliveryOutcome::Delivered);
                outbox.delivered(&name, delivery.seq, attempts).await
            }
            Err(SendError::SinkUnhealthy(message))
                if !too_old(delivery.created_at_ms, sink.retry.max_age) =>
            {
                unhealthy = true;
                telemetry().delivery(&name, DeliveryOutcome::Retry);
                telemetry().health.sink_unhealthy(&name, &message);
                error!(
                    sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                    retry_in_s = UNHEALTHY_PAUSE.as_secs(),
                    "sink is unhealthy; pausing it, its deliveries stay pending until it is fixed"
                );
                let at = now_ms() + UNHEALTHY_PAUSE.as_millis() as i64;
                outbox.retry(delivery.seq, attempts, at, message).await
            }
            Err(SendError::SinkUnhealthy(message)) => {
                error!(
                    sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                    max_age_s = sink.retry.max_age.as_secs(), "sink unhealthy for max_age; kept as a dead letter"
                );
                telemetry().delivery(&name, DeliveryOutcome::Dead);
                outbox.dead(delivery.seq, attempts, message).await
            }
            Err(SendError::Permanent(message)) => {
                error!(
                    sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                    "delivery failed permanently; kept as a dead letter"
                );
                telemetry().delivery(&name, DeliveryOutcome::Dead);
                outbox.dead(delivery.seq, attempts, message).await
            }
            Err(SendError::Retryable {
                message,
                retry_after,
            }) => {
                if too_old(delivery.created_at_ms, sink.retry.max_age) {
                    error!(
                        sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                        max_age_s = sink.retry.max_age.as_secs(), "delivery still failing after max_age; kept as a dead letter"
                    );
                    telemetry().delivery(&name, DeliveryOutcome::Dead);
                    outbox.dead(delivery.seq, attempts, message).await
                } else {
                    let delay = backoff(attempts, sink.retry.max_backoff)
                        .max(retry_after.unwrap_or_default());
                    warn!(
                        sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                        retry_in_ms = delay.as_millis() as u64, "delivery failed, will retry"
                    );
                    telemetry().delivery(&name, DeliveryOutcome::Retry);
                    let at = now_ms() + delay.as_millis() as i64;
                    outbox.retry(delivery.seq, attempts, at, message).await
                }
            }
        };
        if !delivered || outcome.is_err() {
            // The head row was rescheduled, or its new state is unknown.
            window.clear();
        }
        if let Err(e) = outcome {
            error!(sink = %name, error = %e, "cannot update the outbox");
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    let folded = outbox
        .run(|store, log| log.as_mut().map(|log| log.fold(store)))
        .await;
    if let Some(Err(e)) = folded {
        warn!(sink = %name, error = %e, "cannot mark the last deliveries in the outbox; the next start will");
    }
    debug!(sink = %name, "sink worker stopped");
}

/// The most alerts in one digest; more wait for the next one.
const DIGEST_MAX_ALERTS: usize = 1000;

/// A digest sink's worker: every `digest` period, one message with every
/// pending alert of the sink (oldest first). A failed digest is retried with
/// backoff, its alerts kept pending; a permanent failure makes them dead
/// letters, like single alerts.
async fn run_digest_worker(
    sink: SinkConfig,
    outbox: Outbox,
    sender: Arc<Sender>,
    cancel: CancellationToken,
) {
    let name = sink.name.clone();
    let period = sink.digest.unwrap_or(Duration::from_secs(3600));
    debug!(sink = %name, period_s = period.as_secs(), "digest worker started");
    let mut attempts: u32 = 0;
    loop {
        let sink_name = name.clone();
        let last = outbox
            .run(move |store, _| {
                let last = store.last_digest(&sink_name)?;
                Ok::<_, StoreError>(last.unwrap_or_else(|| {
                    let now = now_ms();
                    if let Err(e) = store.record_digest(&sink_name, now) {
                        error!(sink = %sink_name, error = %e, "cannot record the digest time");
                    }
                    now
                }))
            })
            .await;
        let last = match last {
            Ok(last) => last,
            Err(e) => {
                error!(sink = %name, error = %e, "cannot read the outbox; retrying in 5 s");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        let wait_ms = last + period.as_millis() as i64 - now_ms();
        if wait_ms > 0 {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
        let sink_name = name.clone();
        let rows = outbox
            .run(move |store, _| store.pending_for_sink(&sink_name, DIGEST_MAX_ALERTS))
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                error!(sink = %name, error = %e, "cannot read the outbox");
                continue;
            }
        };
        let now = now_ms();
        if rows.is_empty() {
            let sink_name = name.clone();
            let _ = outbox
                .run(move |store, _| store.record_digest(&sink_name, now))
                .await;
            continue;
        }
        let format = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let payloads: Vec<String> = rows.iter().map(|row| row.payload.clone()).collect();
        attempts += 1;
        let result = sender
            .send_digest(&sink, &payloads, &format(last), &format(now))
            .await;
        let sink_name = name.clone();
        let outcome = match result {
            Ok(()) => {
                info!(sink = %name, alerts = rows.len(), attempts, "digest delivered");
                attempts = 0;
                outbox
                    .run(move |store, _| {
                        for row in &rows {
                            telemetry().delivery(&sink_name, DeliveryOutcome::Delivered);
                            if let Err(e) = store.mark_delivered(row.seq, row.attempts + 1) {
                                error!(sink = %sink_name, error = %e, "cannot update the outbox");
                            }
                        }
                        store.record_digest(&sink_name, now)
                    })
                    .await
            }
            Err(SendError::Permanent(message)) => {
                error!(sink = %name, alerts = rows.len(), error = %message, "digest failed permanently; its alerts are kept as dead letters");
                attempts = 0;
                outbox
                    .run(move |store, _| {
                        for row in &rows {
                            telemetry().delivery(&sink_name, DeliveryOutcome::Dead);
                            let _ = store.mark_dead(row.seq, row.attempts + 1, &message);
                        }
                    })
                    .await;
                Ok(())
            }
            Err(SendError::Retryable { message, .. } | SendError::SinkUnhealthy(message)) => {
                let delay = backoff(attempts, sink.retry.max_backoff);
                warn!(
                    sink = %name, alerts = rows.len(), attempts, error = %message,
                    retry_in_ms = delay.as_millis() as u64, "digest failed, will retry"
                );
                let max_age = sink.retry.max_age;
                outbox
                    .run(move |store, _| {
                        for row in &rows {
                            telemetry().delivery(&sink_name, DeliveryOutcome::Retry);
                            let result = if too_old(row.created_at_ms, max_age) {
                                store.mark_dead(row.seq, row.attempts + 1, &message)
                            } else {
                                store.schedule_retry(row.seq, row.attempts + 1, now_ms(), &message)
                            };
                            if let Err(e) = result {
                                error!(sink = %sink_name, error = %e, "cannot update the outbox");
                            }
                        }
                    })
                    .await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                Ok(())
            }
        };
        if let Err(e) = outcome {
            error!(sink = %name, error = %e, "cannot record the digest time");
        }
    }
    debug!(sink = %name, "digest worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::send_test::test_alert;
    use crate::config::{RetryPolicy, SinkKind};
    use crate::state::{FileKey, NewDelivery, ProcessedArticle};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A delivery is recorded in the database while another connection
    /// holds the write lock: the worker waits for it off the runtime, whose
    /// other tasks go on (here a ticker on the same, single runtime thread).
    #[test]
    fn waiting_for_the_database_does_not_hold_up_the_runtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let alerts = dir.path().join("alerts");
        let mut store = Store::open(&state).expect("open");
        let processed = ProcessedArticle {
            article_id: "article".to_string(),
            file: FileKey {
                path: "in/a.txt".to_string(),
                size: 1,
                mtime_ns: 1,
            },
            deliveries: vec![NewDelivery {
                sink: "archive".to_string(),
                alert_id: "alert".to_string(),
                rule: "tobruk".to_string(),
                payload: test_alert("2026-11-24T12:00:00Z").to_json(),
            }],
            now_ms: 1,
            ..ProcessedArticle::default()
        };
        assert!(store.commit_article(&processed).expect("commit"));
        let sink = SinkConfig {
            name: "archive".to_string(),
            kind: SinkKind::File {
                dir: alerts.clone(),
            },
            timeout: Duration::from_secs(5),
            rate_limit: None,
            retry: RetryPolicy::default(),
            digest: None,
        };
        // Another writer holds the database's write lock, until the alert
        // is written and the ticker has had 300 ms to tick.
        let ticks = Arc::new(AtomicUsize::new(0));
        let (locked, lock_taken) = std::sync::mpsc::channel();
        let holder = std::thread::spawn({
            let ticks = Arc::clone(&ticks);
            let database = state.join("newswatch.db");
            move || {
                let connection = rusqlite::Connection::open(database).expect("open");
                connection.execute_batch("BEGIN IMMEDIATE").expect("lock");
                locked.send(()).expect("test waits");
                let written = |dir: &std::path::Path| {
                    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
                };
                for _ in 0..1000 {
                    if written(&alerts) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert!(written(&alerts), "the alert was never sent");
                let before = ticks.load(Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(300));
                let during = ticks.load(Ordering::Relaxed) - before;
                connection.execute_batch("COMMIT").expect("unlock");
                during
            }
        });
        lock_taken.recv().expect("lock taken");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let cancel = CancellationToken::new();
            let worker = tokio::spawn(run_sink_worker(
                sink,
                Store::open_for_delivery(&state).expect("open"),
                None,
                Arc::new(Sender::new().expect("sender")),
                Arc::new(Notify::new()),
                cancel.clone(),
            ));
            let ticker = tokio::spawn({
                let ticks = Arc::clone(&ticks);
                async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        ticks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            // Once the lock is gone the delivery is marked.
            for _ in 0..1000 {
                if store
                    .pending_for_sink("archive", 10)
                    .expect("read")
                    .is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel();
            worker.await.expect("worker ends");
            ticker.abort();
        });
        let during = holder.join().expect("holder");
        // About 30 ticks; none while the runtime's one thread waited.
        assert!(during >= 5, "{during} ticks while the database was locked");
        assert!(store
            .pending_for_sink("archive", 10)
            .expect("read")
            .is_empty());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            let cap = Duration::from_secs(300);
            let first = backoff(1, cap);
            assert!(first >= Duration::from_millis(400) && first <= Duration::from_millis(600));
            let third = backoff(3, cap);
            assert!(third >= Duration::from_millis(1600) && third <= Duration::from_millis(2400));
            assert!(backoff(50, cap) <= cap.mul_f64(1.2));
            assert!(backoff(5, Duration::from_secs(1)) <= Duration::from_millis(1200));
        }
    }
}
