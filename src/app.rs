//! The daemon: the one place that knows every task. Opens the state
//! database, starts one delivery worker per sink, the pipeline thread, the
//! folder watch, the config reloader, the heartbeat and (with `[server]`)
//! the health and metrics server. It tells systemd READY=1 only once all of
//! that is running, then waits for SIGTERM or Ctrl-C; on either it sends
//! STOPPING=1, cancels the shared token, stops taking new files, and gives
//! in-flight work [`SHUTDOWN_DEADLINE`] to finish (what is left stays
//! pending in the outbox for the next start).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::alert::send::Sender;
use crate::config::Config;
use crate::ingest::{run_ingest, scan_folder, FolderWatch};
use crate::pipeline::{fired_at_now, Outcome, Pipeline};
use crate::service::metrics::SkipReason;
use crate::service::notify::Notifier;
use crate::service::reload::{unix_now, watch_config_file, LiveConfig, Reloader};
use crate::service::server::{serve, ServerState};
use crate::service::sinks::{wake_all, SinkWorkers, Wakes};
use crate::service::watchdog::{Heartbeat, Ping};
use crate::service::{status_line, telemetry};
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
    // SIGHUP's default action ends the process: take it over first.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let notifier = Arc::new(Notifier::new());
    let telemetry = telemetry();
    let watch_dir = config.watch.dir.clone();
    if !watch_dir.is_dir() {
        anyhow::bail!(
            "watched folder {} does not exist or is not a folder",
            watch_dir.display()
        );
    }
    let open_store = || {
        Store::open(&config.state_dir).with_context(|| {
            format!(
                "cannot open the state database in {}",
                config.state_dir.display()
            )
        })
    };
    let store = open_store()?;
    let pending = store.pending_count().context("cannot read the outbox")?;
    let (reloader_store, heartbeat_store, server_store) =
        (open_store()?, open_store()?, open_store()?);
    let listener = match &config.server {
        Some(server) => Some(
            tokio::net::TcpListener::bind(server.listen)
                .await
                .with_context(|| format!("cannot listen on {}", server.listen))?,
        ),
        None => None,
    };

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sender = Arc::new(Sender::new().context("cannot create the HTTP client")?);
    let mut sinks = SinkWorkers::new(
        config.state_dir.clone(),
        sender,
        tracker.clone(),
        cancel.clone(),
    );
    for sink in &config.sinks {
        sinks
            .start(sink)
            .context("cannot open the state database")?;
    }

    let config_path = config.path.clone();
    let live: LiveConfig = Arc::new(ArcSwap::from_pointee(config));
    let config = live.load_full();
    let (ready_tx, ready_rx) = mpsc::channel::<PathBuf>(READY_QUEUE);
    let (raw_tx, raw_rx) = mpsc::channel(RAW_EVENT_QUEUE);
    let watch = FolderWatch::arm(&watch_dir, raw_tx)
        .with_context(|| format!("cannot watch {}", watch_dir.display()))?;
    // Listed after the watch is armed, so a file is either listed or seen
    // by the watch; READY=1 comes only after this (the startup scan queued).
    let startup_files = scan_folder(&watch_dir, &config.watch.extensions)
        .with_context(|| format!("cannot list {}", watch_dir.display()))?;
    telemetry.health.set_watch_armed(true);
    let (ping_tx, ping_rx) = mpsc::channel::<Ping>(1);
    let pipeline = Pipeline::new(config.clone(), store);
    let pipeline_cancel = cancel.child_token();
    let (pipeline_live, wakes, runtime) = (
        live.clone(),
        sinks.wakes(),
        tokio::runtime::Handle::current(),
    );
    let pipeline_task = tokio::task::spawn_blocking(move || {
        run_pipeline(PipelineThread {
            pipeline,
            live: pipeline_live,
            ready: ready_rx,
            pings: ping_rx,
            wakes,
            cancel: pipeline_cancel,
            runtime,
        })
    });
    let ingest = tracker.spawn(run_ingest(
        watch_dir.clone(),
        config.watch.extensions.clone(),
        startup_files,
        watch,
        raw_rx,
        ready_tx,
        cancel.child_token(),
    ));
    if let Some(listener) = listener {
        info!(address = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
        let state = Arc::new(ServerState {
            config: live.clone(),
            store: Mutex::new(server_store),
            telemetry,
        });
        tracker.spawn(serve(listener, state, cancel.child_token()));
    }
    let (config_watcher, saves) = match watch_config_file(&config_path) {
        Ok((watcher, saves)) => (Some(watcher), Some(saves)),
        Err(e) => {
            warn!(file = %config_path.display(), error = %e, "cannot watch the config file; reload with SIGHUP");
            (None, None)
        }
    };
    let reloader = Reloader {
        path: config_path,
        live: live.clone(),
        sinks,
        notifier: notifier.clone(),
        telemetry,
        store: reloader_store,
    };
    tracker.spawn(reloader.run(hangups, saves, cancel.child_token()));
    telemetry.metrics.config_loaded(unix_now());
    info!(
        dir = %watch_dir.display(),
        rules = config.rules.len(),
        sinks = config.sinks.len(),
        pending_deliveries = pending,
        "newswatch is watching"
    );
    notifier.ready(&status_line(&config, Some(pending)));
    drop(config);
    // After READY=1: systemd counts watchdog pings from readiness on.
    let heartbeat = Heartbeat {
        notifier: notifier.clone(),
        live: live.clone(),
        store: heartbeat_store,
        pings: ping_tx,
        ingest,
    };
    tracker.spawn(heartbeat.run(cancel.child_token()));
    tracker.close();

    wait_for_stop().await;
    notifier.stopping();
    info!("stopping: no new files; letting in-flight deliveries finish");
    cancel.cancel();
    drop(config_watcher);
    telemetry.health.set_watch_armed(false);
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

/// What the pipeline thread owns.
struct PipelineThread {
    pipeline: Pipeline,
    /// Read before each article: a reload applies from the next article on.
    live: LiveConfig,
    ready: mpsc::Receiver<PathBuf>,
    /// The heartbeat's pings, answered between articles.
    pings: mpsc::Receiver<Ping>,
    wakes: Wakes,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
}

enum Next {
    Path(PathBuf),
    Ping(Ping),
    Closed,
}

/// The pipeline thread: one file at a time, in the order they became ready.
fn run_pipeline(thread: PipelineThread) {
    let PipelineThread {
        mut pipeline,
        live,
        mut ready,
        mut pings,
        wakes,
        cancel,
        runtime,
    } = thread;
    let metrics = &telemetry().metrics;
    loop {
        let next = runtime.block_on(async {
            tokio::select! {
                path = ready.recv() => path.map_or(Next::Closed, Next::Path),
                Some(ping) = pings.recv() => Next::Ping(ping),
            }
        });
        let first = match next {
            Next::Path(path) => path,
            Next::Ping(ping) => {
                let _ = ping.send(());
                continue;
            }
            Next::Closed => break,
        };
        if cancel.is_cancelled() {
            break;
        }
        // Whatever else is waiting joins the batch: one transaction for all.
        let mut paths = vec![first];
        while paths.len() < MAX_BATCH {
            match ready.try_recv() {
                Ok(path) => paths.push(path),
                Err(_) => break,
            }
        }
        let current = live.load_full();
        if !Arc::ptr_eq(pipeline.config(), &current) {
            pipeline.set_config(current);
        }
        let started = Instant::now();
        let outcomes = match pipeline.process_batch(&paths, &fired_at_now()) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                for _ in &paths {
                    metrics.article_skipped(SkipReason::DatabaseError);
                }
                error!(files = paths.len(), error = %e, "cannot record articles; they will be retried at the next scan");
                continue;
            }
        };
        let took = started.elapsed() / paths.len() as u32;
        let mut any_alert = false;
        for (path, outcome) in paths.iter().zip(outcomes) {
            match outcome {
                Outcome::Processed { article_id, alerts } => {
                    any_alert |= !alerts.is_empty();
                    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
                    metrics.article_processed(took, rules.iter().copied());
                    info!(
                        file = %path.display(),
                        id = &article_id[..12],
                        rules = ?rules,
                        took_us = took.as_micros() as u64,
                        "article processed"
                    );
                }
                Outcome::Duplicate { article_id } => {
                    metrics.article_skipped(SkipReason::Duplicate);
                    info!(file = %path.display(), id = &article_id[..12], "same content as an article already processed; no alerts")
                }
                Outcome::Unchanged => {
                    metrics.article_skipped(SkipReason::Unchanged);
                    debug!(file = %path.display(), "already processed")
                }
                Outcome::Skipped(reason) => {
                    metrics.article_skipped(SkipReason::NotAnArticle);
                    warn!(file = %path.display(), reason = %reason, "file skipped")
                }
                Outcome::Unreadable(reason) => {
                    metrics.article_skipped(SkipReason::Unreadable);
                    warn!(file = %path.display(), error = %reason, "cannot read file")
                }
            }
        }
        if any_alert {
            wake_all(&wakes);
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
