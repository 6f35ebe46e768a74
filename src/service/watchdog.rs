//! The heartbeat: at half the systemd watchdog interval (or every
//! [`STATUS_EVERY`] without a watchdog) it asks the pipeline (the reader
//! thread, which passes the ping on to the recorder thread) to
//! answer a ping and checks that the ingest task is still running. Only
//! when both hold does it send WATCHDOG=1, so a stuck pipeline or a dead
//! ingest task gets the service restarted by systemd. It also refreshes the
//! STATUS= line with the pending delivery count.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::notify::Notifier;
use super::reload::LiveConfig;
use super::status_line;
use crate::state::Store;

/// How often the status line is refreshed when there is no watchdog.
pub const STATUS_EVERY: Duration = Duration::from_secs(15);

/// A question to the pipeline; the recorder thread answers between two batches.
pub type Ping = oneshot::Sender<()>;

pub struct Heartbeat {
    pub notifier: Arc<Notifier>,
    pub live: LiveConfig,
    pub store: Store,
    pub pings: mpsc::Sender<Ping>,
    pub ingest: JoinHandle<()>,
}

impl Heartbeat {
    pub async fn run(self, cancel: CancellationToken) {
        let watchdog = self.notifier.watchdog_interval();
        let every = watchdog.map_or(STATUS_EVERY, |interval| interval / 2);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = String::new();
        let mut complained = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let alive = pipeline_answers(&self.pings, every).await && !self.ingest.is_finished();
            let status = status_line(&self.live.load(), self.store.pending_count().ok());
            if status != last_status {
                self.notifier.status(&status);
                last_status = status;
            }
            if alive {
                complained = false;
                if watchdog.is_some() {
                    self.notifier.watchdog();
                }
            } else if !complained && !cancel.is_cancelled() {
                complained = true;
                warn!(
                    ingest_running = !self.ingest.is_finished(),
                    "the pipeline or the ingest task is not responding; not confirming liveness to the watchdog"
                );
            }
        }
    }
}

async fn pipeline_answers(pings: &mpsc::Sender<Ping>, within: Duration) -> bool {
    let (answer_tx, answer_rx) = oneshot::channel();
    if pings.try_send(answer_tx).is_err() {
        return false;
    }
    matches!(tokio::time::timeout(within, answer_rx).await, Ok(Ok(())))
}
