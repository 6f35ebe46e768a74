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
use crate::ingest::{run_ingest, scan_folder, FolderWatch, ReadyFile};
use crate::pipeline::{fired_at_now, read_file, Outcome, Pipeline, ReadFile};
use crate::service::metrics::SkipReason;
use crate::service::notify::Notifier;
use crate::service::reload::{unix_now, watch_config_file, LiveConfig, Reloader};
use crate::service::server::{serve, ServerState};
use crate::service::sinks::{wake_all, SinkWorkers, Wakes};
use crate::service::watchdog::{Heartbeat, Ping};
use crate::service::{status_line, telemetry};
use crate::state::{delivered, Store};

/// How long in-flight sends may take after a stop was asked for.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Paths waiting for the pipeline (bounded: back-pressure on the watcher).
const READY_QUEUE: usize = 1024;
const RAW_EVENT_QUEUE: usize = 4096;
/// The most files recorded in one transaction.
const MAX_BATCH: usize = 256;
/// Files the reader thread reads and scans before handing them on: small,
/// so that recording starts early in a burst.
const READ_CHUNK: usize = 32;
/// Chunks the reader may be ahead of the recorder. Bounds the articles
/// held in memory; when the recorder is slower (a slow fsync), the waiting
/// chunks are recorded together, up to [`MAX_BATCH`].
const READ_AHEAD: usize = 8;
/// The most threads that read and scan one chunk (the reader and its
/// helpers), fewer on a machine with fewer cores.
const MAX_READERS: usize = 4;
/// Files below which a chunk is not worth splitting between threads.
const MIN_SPLIT: usize = 4;

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
    let open_with = |open: fn(&std::path::Path) -> Result<Store, _>| {
        open(&config.state_dir).with_context(|| {
            format!(
                "cannot open the state database in {}",
                config.state_dir.display()
            )
        })
    };
    let open_store = || open_with(Store::open);
    let mut store = open_with(Store::open_for_recording)?;
    // Before any sink worker starts: what a killed run delivered is not
    // sent again.
    let recovered = delivered::recover(&config.state_dir, &mut store)
        .context("cannot mark the deliveries an earlier run logged")?;
    if recovered > 0 {
        info!(
            deliveries = recovered,
            "marked the deliveries the last run logged but had not marked"
        );
    }
    let pending = store.pending_count().context("cannot read the outbox")?;
    let readers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_READERS);
    let reader_stores = (0..readers)
        .map(|_| open_store())
        .collect::<anyhow::Result<Vec<Store>>>()?;
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
    let (ready_tx, ready_rx) = mpsc::channel::<ReadyFile>(READY_QUEUE);
    let (raw_tx, raw_rx) = mpsc::channel(RAW_EVENT_QUEUE);
    let watch = FolderWatch::arm(&watch_dir, raw_tx)
        .with_context(|| format!("cannot watch {}", watch_dir.display()))?;
    // Listed after the watch is armed, so a file is either listed or seen
    // by the watch; READY=1 comes only after this (the startup scan queued).
    let startup_files = scan_folder(&watch_dir, &config.watch.extensions)
        .with_context(|| format!("cannot list {}", watch_dir.display()))?;
    telemetry.health.set_watch_armed(true);
    let (ping_tx, ping_rx) = mpsc::channel::<Ping>(1);
    let (read_tx, read_rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
    let reader = ReaderThread {
        live: live.clone(),
        ready: ready_rx,
        pings: ping_rx,
        known: reader_stores,
        read: read_tx,
        cancel: cancel.child_token(),
        runtime: tokio::runtime::Handle::current(),
    };
    let recorder = RecorderThread {
        pipeline: Pipeline::new(config.clone(), store),
        read: read_rx,
        wakes: sinks.wakes(),
        cancel: cancel.child_token(),
    };
    let reader_task = tokio::task::spawn_blocking(move || run_reader(reader));
    let recorder_task = tokio::task::spawn_blocking(move || run_recorder(recorder));
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
        let _ = reader_task.await;
        let _ = recorder_task.await;
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

/// What the reader thread owns.
struct ReaderThread {
    /// Read before each chunk: a reload applies from the next chunk on.
    live: LiveConfig,
    ready: mpsc::Receiver<ReadyFile>,
    /// The heartbeat's pings, passed on to the recorder, so an answer means
    /// both threads are moving.
    pings: mpsc::Receiver<Ping>,
    /// One connection per reading thread, to skip files recorded before
    /// without reading them.
    known: Vec<Store>,
    read: std::sync::mpsc::SyncSender<Read>,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
}

/// What the recorder thread owns.
struct RecorderThread {
    pipeline: Pipeline,
    read: std::sync::mpsc::Receiver<Read>,
    wakes: Wakes,
    cancel: CancellationToken,
}

/// From the reader to the recorder.
enum Read {
    /// Files read and scanned with `config`, in the order they became ready.
    Files {
        config: Arc<Config>,
        files: Vec<ReadFile>,
        /// Reading and scanning time per file.
        took: Duration,
    },
    Ping(Ping),
}

enum Next {
    File(ReadyFile),
    Ping(Ping),
    Closed,
}

/// The reader thread: reads and scans the files in the order they became
/// ready, a few at a time, and hands them to the recorder. It does the
/// work on a file that needs no database (most of it: decoding, the rules,
/// the near-duplicate signature), so that it overlaps with the recording
/// of the files before.
fn run_reader(thread: ReaderThread) {
    let ReaderThread {
        live,
        mut ready,
        mut pings,
        mut known,
        read,
        cancel,
        runtime,
    } = thread;
    loop {
        let next = runtime.block_on(async {
            tokio::select! {
                file = ready.recv() => file.map_or(Next::Closed, Next::File),
                Some(ping) = pings.recv() => Next::Ping(ping),
            }
        });
        let first = match next {
            Next::File(file) => file,
            Next::Ping(ping) => {
                if read.send(Read::Ping(ping)).is_err() {
                    break;
                }
                continue;
            }
            Next::Closed => break,
        };
        if cancel.is_cancelled() {
            break;
        }
        let mut chunk = vec![first];
        while chunk.len() < READ_CHUNK {
            match ready.try_recv() {
                Ok(file) => chunk.push(file),
                Err(_) => break,
            }
        }
        let config = live.load_full();
        let started = Instant::now();
        let files = read_chunk(&config, &chunk, &mut known);
        let took = started.elapsed() / chunk.len() as u32;
        if read
            .send(Read::Files {
                config,
                files,
                took,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Reads `chunk` in order, split between as many threads as there are
/// `stores` (the reader's own and its helpers', scoped to this chunk).
fn read_chunk(config: &Config, chunk: &[ReadyFile], stores: &mut [Store]) -> Vec<ReadFile> {
    let threads = (chunk.len() / MIN_SPLIT).clamp(1, stores.len().max(1));
    let Some((own, helpers)) = stores.split_first_mut() else {
        return chunk
            .iter()
            .map(|file| read_file(config, &file.path, None))
            .collect();
    };
    let mut parts = chunk.chunks(chunk.len().div_ceil(threads).max(1));
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = parts
            .zip(helpers.iter_mut())
            .map(|(part, store)| scope.spawn(move || read_files(config, part, store)))
            .collect();
        let mut files = read_files(config, first, own);
        for helper in helpers {
            match helper.join() {
                Ok(more) => files.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        files
    })
}

/// Reads `files` in order on this thread. Only listed files are looked up
/// in `known` first (see [`ReadyFile::listed`]).
fn read_files(config: &Config, files: &[ReadyFile], known: &Store) -> Vec<ReadFile> {
    // One read transaction for the lookups; without it (a database error)
    // every file is read, and the recorder decides.
    let snapshot = files
        .iter()
        .any(|file| file.listed)
        .then(|| known.read_snapshot().ok())
        .flatten();
    let known = snapshot.is_some().then_some(known);
    files
        .iter()
        .map(|file| read_file(config, &file.path, known.filter(|_| file.listed)))
        .collect()
}

/// The recorder thread: records what the reader read, in order, one
/// transaction per batch (the chunks that are waiting, up to
/// [`MAX_BATCH`] files), and wakes the sink workers.
fn run_recorder(thread: RecorderThread) {
    let RecorderThread {
        mut pipeline,
        read,
        wakes,
        cancel,
    } = thread;
    let mut held: Option<Read> = None;
    loop {
        let message = match held.take() {
            Some(message) => message,
            None => match read.recv() {
                Ok(message) => message,
                Err(_) => break,
            },
        };
        let (config, mut files, mut took) = match message {
            Read::Files {
                config,
                files,
                took,
            } => {
                let took = vec![(files.len(), took)];
                (config, files, took)
            }
            Read::Ping(ping) => {
                let _ = ping.send(());
                continue;
            }
        };
        if cancel.is_cancelled() {
            break;
        }
        // Whatever else is waiting joins the transaction (group commit),
        // as long as it was read with the same config.
        while files.len() < MAX_BATCH {
            match read.try_recv() {
                Ok(Read::Files {
                    config: next,
                    files: more,
                    took: more_took,
                }) if Arc::ptr_eq(&next, &config) => {
                    took.push((more.len(), more_took));
                    files.extend(more);
                }
                Ok(Read::Ping(ping)) => {
                    let _ = ping.send(());
                }
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        record(&mut pipeline, config, files, &took, &wakes);
    }
}

/// Records one batch and logs and counts each file's outcome.
fn record(
    pipeline: &mut Pipeline,
    config: Arc<Config>,
    files: Vec<ReadFile>,
    read_took: &[(usize, Duration)],
    wakes: &Wakes,
) {
    let metrics = &telemetry().metrics;
    let paths: Vec<PathBuf> = files.iter().map(|file| file.path.clone()).collect();
    let started = Instant::now();
    let outcomes = match pipeline.record_batch(config, files, &fired_at_now()) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            for _ in &paths {
                metrics.article_skipped(SkipReason::DatabaseError);
            }
            error!(files = paths.len(), error = %e, "cannot record articles; they will be retried at the next scan");
            return;
        }
    };
    let recorded = started.elapsed() / paths.len().max(1) as u32;
    let mut took = read_took
        .iter()
        .flat_map(|&(count, took)| std::iter::repeat_n(took + recorded, count));
    let mut any_alert = false;
    for (path, outcome) in paths.iter().zip(outcomes) {
        let took = took.next().unwrap_or(recorded);
        match outcome {
            Outcome::Processed {
                article_id, alerts, ..
            } => {
                any_alert |= !alerts.is_empty();
                let rules: Vec<&str> = alerts.iter().map(|a| &*a.rule).collect();
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
        wake_all(wakes);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_recorded_before_is_unchanged_whether_listed_or_announced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(
            crate::config::load_str(
                &dir.path().join("config.toml"),
                "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n",
                &|_| None,
            )
            .expect("config"),
        );
        let state = dir.path().join("state");
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "Fighting near Tobruk.").expect("write");
        let mut pipeline = Pipeline::new(config.clone(), Store::open(&state).expect("store"));
        let first = pipeline
            .process_batch(std::slice::from_ref(&path), &fired_at_now())
            .expect("first");
        assert!(
            matches!(first[..], [Outcome::Processed { .. }]),
            "{first:?}"
        );
        // The reader's lookup skips a listed file; an announced one is read
        // and scanned again, and the recording finds it unchanged.
        let known = Store::open(&state).expect("reader store");
        for listed in [true, false] {
            let file = ReadyFile {
                path: path.clone(),
                listed,
            };
            let read = read_files(&config, &[file], &known);
            let outcomes = pipeline
                .record_batch(config.clone(), read, &fired_at_now())
                .expect("record");
            assert!(
                matches!(outcomes[..], [Outcome::Unchanged]),
                "listed {listed}: {outcomes:?}"
            );
        }
    }
}
