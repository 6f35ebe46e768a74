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
use crate::ingest::{run_ingest, watch_folder};
use crate::pipeline::{fired_at_now, Outcome, Pipeline};
use crate::state::Store;

/// How long in-flight sends may take after a stop was asked for.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Paths waiting for the pipeline (bounded: back-pressure on the watcher).
const READY_QUEUE: usize = 1024;
const RAW_EVENT_QUEUE: usize = 4096;

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
    let watcher = watch_folder(&watch_dir, raw_tx)
        .with_context(|| format!("cannot watch {}", watch_dir.display()))?;
    let pipeline = Pipeline::new(config.clone(), store);
    let pipeline_cancel = cancel.child_token();
    let pipeline_task = tokio::task::spawn_blocking(move || {
        run_pipeline(pipeline, ready_rx, wakes, pipeline_cancel)
    });
    tracker.spawn(run_ingest(
        watch_dir.clone(),
        config.watch.extensions.clone(),
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
    drop(watcher);
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

/// The pipeline thread: one file at a time, in the order they became ready.
fn run_pipeline(
    mut pipeline: Pipeline,
    mut ready: mpsc::Receiver<PathBuf>,
    wakes: HashMap<String, Arc<Notify>>,
    cancel: CancellationToken,
) {
    while let Some(path) = ready.blocking_recv() {
        if cancel.is_cancelled() {
            break;
        }
        let started = Instant::now();
        match pipeline.process_path(&path, &fired_at_now()) {
            Ok(Outcome::Processed { article_id, alerts }) => {
                let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
                info!(
                    file = %path.display(),
                    id = &article_id[..12],
                    rules = ?rules,
                    took_us = started.elapsed().as_micros() as u64,
                    "article processed"
                );
                if !alerts.is_empty() {
                    for wake in wakes.values() {
                        wake.notify_one();
                    }
                }
            }
            Ok(Outcome::Duplicate { article_id }) => {
                info!(file = %path.display(), id = &article_id[..12], "same content as an article already processed; no alerts")
            }
            Ok(Outcome::Unchanged) => debug!(file = %path.display(), "already processed"),
            Ok(Outcome::Skipped(reason)) => {
                warn!(file = %path.display(), reason = %reason, "file skipped")
            }
            Ok(Outcome::Unreadable(reason)) => {
                warn!(file = %path.display(), error = %reason, "cannot read file")
            }
            Err(e) => {
                error!(file = %path.display(), error = %e, "cannot record the article; it will be retried at the next scan")
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
