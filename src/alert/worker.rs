//! One worker per sink: sends that sink's pending outbox rows in arrival
//! order, retrying a failed head row with capped exponential backoff and
//! jitter (the whole sink waits, so order holds), honouring `Retry-After`,
//! and moving a row to dead letters when retrying cannot help or it is
//! older than [`MAX_AGE`]. Nothing is dropped silently: every dead letter is
//! logged at error level and stays in the database.
//!
//! On cancellation a send in flight is finished; the rest stays pending for
//! the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::alert::send::{SendError, Sender};
use crate::config::SinkConfig;
use crate::service::{telemetry, DeliveryOutcome};
use crate::state::Store;

/// A delivery still failing after this long becomes a dead letter.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often an idle worker looks at the outbox even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Delay before retry number `attempts` (1-based): doubling from 500 ms,
/// capped at 5 minutes, with ±20 % jitter.
pub fn backoff(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let base = FIRST_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    base.mul_f64(jitter)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs until `cancel` fires. `wake` is notified whenever new rows were queued.
pub async fn run_sink_worker(
    sink: SinkConfig,
    store: Store,
    sender: Arc<Sender>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let name = sink.name.clone();
    debug!(sink = %name, kind = sink.kind.type_name(), "sink worker started");
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let next = match store.next_pending(&name) {
            Ok(next) => next,
            Err(e) => {
                error!(sink = %name, error = %e, "cannot read the outbox; retrying in 5 s");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        let Some(delivery) = next else {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        };
        let wait_ms = delivery.next_attempt_ms - now_ms();
        if wait_ms > 0 {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
            continue;
        }
        let attempts = delivery.attempts + 1;
        let result = sender.send(&sink, &delivery.payload).await;
        let outcome = match result {
            Ok(()) => {
                info!(sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, "alert delivered");
                telemetry().delivery(&name, DeliveryOutcome::Delivered);
                store.mark_delivered(delivery.seq, attempts)
            }
            Err(SendError::Permanent(message)) => {
                error!(
                    sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                    "delivery failed permanently; kept as a dead letter"
                );
                telemetry().delivery(&name, DeliveryOutcome::Dead);
                store.mark_dead(delivery.seq, attempts, &message)
            }
            Err(SendError::Retryable {
                message,
                retry_after,
            }) => {
                let age = Duration::from_millis((now_ms() - delivery.created_at_ms).max(0) as u64);
                if age >= MAX_AGE {
                    error!(
                        sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                        "delivery still failing after 24 h; kept as a dead letter"
                    );
                    telemetry().delivery(&name, DeliveryOutcome::Dead);
                    store.mark_dead(delivery.seq, attempts, &message)
                } else {
                    let delay = backoff(attempts).max(retry_after.unwrap_or_default());
                    warn!(
                        sink = %name, rule = %delivery.rule, alert = %delivery.alert_id, attempts, error = %message,
                        retry_in_ms = delay.as_millis() as u64, "delivery failed, will retry"
                    );
                    telemetry().delivery(&name, DeliveryOutcome::Retry);
                    store.schedule_retry(
                        delivery.seq,
                        attempts,
                        now_ms() + delay.as_millis() as i64,
                        &message,
                    )
                }
            }
        };
        if let Err(e) = outcome {
            error!(sink = %name, error = %e, "cannot update the outbox");
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    debug!(sink = %name, "sink worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(400) && first <= Duration::from_millis(600));
            let third = backoff(3);
            assert!(third >= Duration::from_millis(1600) && third <= Duration::from_millis(2400));
            assert!(backoff(50) <= MAX_BACKOFF.mul_f64(1.2));
        }
    }
}
