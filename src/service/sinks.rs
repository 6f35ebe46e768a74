//! The set of running sink workers, one per configured sink, so that a
//! reload can start workers for added sinks, stop those of removed sinks,
//! and restart a sink whose settings changed (a new URL or credential). The
//! old worker of a changed sink finishes its send in flight and stops
//! before the new one starts, so the sink never has two senders.
//!
//! Owns the map of wake-ups the pipeline uses to tell workers that rows were
//! queued; never sends anything itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::alert::send::Sender;
use crate::alert::worker::run_sink_worker;
use crate::config::SinkConfig;
use crate::state::delivered::DeliveredLog;
use crate::state::{Store, StoreError};

/// How long a stopping worker may take to finish its send in flight.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Sink name -> the worker's wake-up, swapped whole when the set changes.
pub type Wakes = Arc<ArcSwap<BTreeMap<String, Arc<Notify>>>>;

/// Wakes every worker: rows were queued.
pub fn wake_all(wakes: &Wakes) {
    for wake in wakes.load().values() {
        wake.notify_one();
    }
}

struct RunningWorker {
    config: SinkConfig,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// What a reload did to the sinks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SinkChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl SinkChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

pub struct SinkWorkers {
    state_dir: PathBuf,
    sender: Arc<Sender>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    running: BTreeMap<String, RunningWorker>,
    wakes: Wakes,
}

impl SinkWorkers {
    /// No workers yet; each one is spawned on `tracker` with a child of `cancel`.
    pub fn new(
        state_dir: PathBuf,
        sender: Arc<Sender>,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> SinkWorkers {
        SinkWorkers {
            state_dir,
            sender,
            tracker,
            cancel,
            running: BTreeMap::new(),
            wakes: Arc::new(ArcSwap::from_pointee(BTreeMap::new())),
        }
    }

    pub fn wakes(&self) -> Wakes {
        self.wakes.clone()
    }

    /// Starts a worker for `sink` (it opens its own database connection
    /// and log of deliveries).
    pub fn start(&mut self, sink: &SinkConfig) -> Result<(), StoreError> {
        let store = Store::open_for_delivery(&self.state_dir)?;
        let log = match DeliveredLog::create(&self.state_dir) {
            Ok(log) => Some(log),
            Err(e) => {
                warn!(sink = %sink.name, error = %e, "cannot create the log of deliveries; marking each in the database");
                None
            }
        };
        let wake = Arc::new(Notify::new());
        let cancel = self.cancel.child_token();
        let handle = self.tracker.spawn(run_sink_worker(
            sink.clone(),
            store,
            log,
            self.sender.clone(),
            wake.clone(),
            cancel.clone(),
        ));
        self.running.insert(
            sink.name.clone(),
            RunningWorker {
                config: sink.clone(),
                cancel,
                handle,
            },
        );
        let mut wakes = BTreeMap::clone(&self.wakes.load());
        wakes.insert(sink.name.clone(), wake.clone());
        self.wakes.store(Arc::new(wakes));
        // Rows may be waiting already (queued before a restart or a reload).
        wake.notify_one();
        Ok(())
    }

    async fn stop(&mut self, name: &str) {
        let mut wakes = BTreeMap::clone(&self.wakes.load());
        wakes.remove(name);
        self.wakes.store(Arc::new(wakes));
        if let Some(worker) = self.running.remove(name) {
            worker.cancel.cancel();
            if tokio::time::timeout(STOP_DEADLINE, worker.handle)
                .await
                .is_err()
            {
                warn!(sink = %name, "sink worker did not stop in time");
            }
        }
    }

    /// Makes the running workers match `sinks`.
    pub async fn reconcile(&mut self, sinks: &[SinkConfig]) -> SinkChanges {
        let mut changes = SinkChanges::default();
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            match sinks.iter().find(|sink| sink.name == name) {
                None => {
                    self.stop(&name).await;
                    changes.removed.push(name);
                }
                Some(sink) if self.running[&name].config != *sink => {
                    self.stop(&name).await;
                    changes.changed.push(name);
                }
                Some(_) => {}
            }
        }
        for sink in sinks {
            if self.running.contains_key(&sink.name) {
                continue;
            }
            if !changes.changed.contains(&sink.name) {
                changes.added.push(sink.name.clone());
            }
            match self.start(sink) {
                Ok(()) => {
                    info!(sink = %sink.name, kind = sink.kind.type_name(), "sink worker started")
                }
                Err(e) => {
                    warn!(sink = %sink.name, error = %e, "cannot start the sink worker; its alerts stay queued")
                }
            }
        }
        changes
    }

    pub fn names(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }
}
