//! The daemon: the one place that knows every task. Opens the state
//! database, starts one delivery worker per sink, the pipeline thread and
//! the folder watch, then waits for SIGTERM or Ctrl-C; on either it cancels
//! the shared token, stops taking new files, and gives in-flight work
//! [`SHUTDOWN_DEADLINE`] to finish (what is left stays pending in the
//! outbox for the next start).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::alert::send::Sender;
use crate::alert::worker::run_sink_worker;
use crate::config::Config;
use crate::ingest::{run_ingest, FolderWatch};
use crate::pipeline::{fired_at_now, Outcome, Pipeline};
use crate::state::Store;

/// How long in-flight sends may take after a stop was asked for.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Paths waiting for the pipeline (bounded: back-pressure on the watcher).
const READY_QUEUE: usize = 1024;
const RAW_EVENT_QUEUE: usize = 4096;
/// The most files recorded in one transaction.
const MAX_BATCH: usize = 256;

/// Runs the daemon until a stop signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let watch_dir = config.watch.dir.clone();
    if !watch_dir.is_dir() {
        anyhow::bail!(
            "watched folder {} does not exist or is not a folder",
            watch_dir.display()
        );
    }
    let store = Store::open(&config.state_dir).with_context(|| {
        format!(
            "cannot open the state database in {}",
            config.state_dir.display()
        )
    })?;
    let pending = store.pending_count().context("cannot read the outbox")?;

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sender = Arc::new(Sender::new().context("cannot create the HTTP client")?);

    let mut wakes: HashMap<String, Arc<Notify>> = HashMap::new();
    for sink in &config.sinks {
        let wake = Arc::new(Notify::new());
        wakes.insert(sink.name.clone(), wake.clone());
        let worker_store =
            Store::open(&config.state_dir).context("cannot open the state database")?;
        tracker.spawn(run_sink_worker(
            sink.clone(),
            worker_store,
            sender.clone(),
            wake,
            cancel.child_token(),
        ));
    }

    let (ready_tx, ready_rx) = mpsc::channel::<PathBuf>(READY_QUEUE);
    let (raw_tx, raw_rx) = mpsc::channel(RAW_EVENT_QUEUE);
    let watch = FolderWatch::arm(&watch_dir, raw_tx)
        .with_context(|| format!("cannot watch {}", watch_dir.display()))?;
    let pipeline = Pipeline::new(config.clone(), store);
    let pipeline_cancel = cancel.child_token();
    let pipeline_task = tokio::task::spawn_blocking(move || {
        run_pipeline(pipeline, ready_rx, wakes, pipeline_cancel)
    });
    tracker.spawn(run_ingest(
        watch_dir.clone(),
        config.watch.extensions.clone(),
        watch,
        raw_rx,
        ready_tx,
        cancel.child_token(),
    ));
    tracker.close();
    info!(
        dir = %watch_dir.display(),
        rules = config.rules.len(),
        sinks = config.sinks.len(),
        pending_deliveries = pending,
        "newswatch is watching"
    );

    wait_for_stop().await;
    info!("stopping: no new files; letting in-flight deliveries finish");
    cancel.cancel();
    let stopped = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
        tracker.wait().await;
        let _ = pipeline_task.await;
    })
    .await;
    if stopped.is_err() {
        warn!(
            deadline_s = SHUTDOWN_DEADLINE.as_secs(),
            "some tasks did not stop in time; their work stays pending"
        );
    }
    info!("stopped");
    Ok(())
}

/// The pipeline thread: files in the order they became ready, in batches of
/// whatever is waiting (up to [`MAX_BATCH`]) committed in one transaction.
fn run_pipeline(
    mut pipeline: Pipeline,
    mut ready: mpsc::Receiver<PathBuf>,
    wakes: HashMap<String, Arc<Notify>>,
    cancel: CancellationToken,
) {
    while let Some(first) = ready.blocking_recv() {
        if cancel.is_cancelled() {
            break;
        }
        let mut paths = vec![first];
        while paths.len() < MAX_BATCH {
            match ready.try_recv() {
                Ok(path) => paths.push(path),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcomes = match pipeline.process_batch(&paths, &fired_at_now()) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                error!(files = paths.len(), error = %e, "cannot record articles; they will be retried at the next scan");
                continue;
            }
        };
        let took_us = started.elapsed().as_micros() as u64 / paths.len() as u64;
        let mut any_alert = false;
        for (path, outcome) in paths.iter().zip(outcomes) {
            match outcome {
                Outcome::Processed { article_id, alerts } => {
                    any_alert |= !alerts.is_empty();
                    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
                    info!(file = %path.display(), id = &article_id[..12], rules = ?rules, took_us, "article processed");
                }
                Outcome::Duplicate { article_id } => info!(
                    file = %path.display(),
                    id = &article_id[..12],
                    "same content as an article already processed; no alerts"
                ),
                Outcome::Unchanged => debug!(file = %path.display(), "already processed"),
                Outcome::Skipped(reason) => {
                    warn!(file = %path.display(), reason = %reason, "file skipped")
                }
                Outcome::Unreadable(reason) => {
                    warn!(file = %path.display(), error = %reason, "cannot read file")
                }
            }
        }
        if any_alert {
            for wake in wakes.values() {
                wake.notify_one();
            }
        }
    }
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(e) => warn!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
