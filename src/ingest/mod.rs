//! Ingest: finds the files in the watched folder that are ready to read and
//! hands their paths to the pipeline, in order.
//!
//! A file is ready when it was renamed into the folder (at once) or closed
//! after writing and then left alone for [`SETTLE`] (so a writer that
//! appends in several sessions is read once, on its final content). The
//! folder is also scanned at start, after an inotify overflow or watcher
//! error, and every [`RECONCILE_EVERY`], so no file is ever missed; the
//! pipeline skips files it already handled. This module reads names and
//! metadata only, never file contents.

mod filter;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::blocking::off_runtime;

pub use filter::is_candidate;
pub use watch::{watch_folder, FolderWatch, FolderWatcher, RawEvent, WatchState};

/// Quiet time after a close-after-write before a file is read.
pub const SETTLE: Duration = Duration::from_millis(1000);
/// How often the folder is compared with the database regardless of events.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How often the watched folder is checked for deletion or replacement.
pub const WATCH_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The candidate files of `dir`, sorted by name.
pub fn scan_folder(dir: &Path, extensions: &[String]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if is_candidate(&path, extensions) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A file that is ready to read, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyFile {
    pub path: PathBuf,
    /// Found by listing the folder (start-up, rescan, reconcile), not by an
    /// event: most such files were recorded before, so the reader asks the
    /// database before reading one. A file that an event announced is new
    /// or changed; it is read at once, and the recording still skips it if
    /// it turns out to be known.
    pub listed: bool,
}

impl ReadyFile {
    fn event(path: PathBuf) -> ReadyFile {
        ReadyFile {
            path,
            listed: false,
        }
    }
}

/// Turns raw watcher events into ready files on `ready`, until `cancel`
/// fires or the pipeline is gone. Starts by sending `startup`, the files the
/// caller listed (with [`scan_folder`]) once the watch was armed; re-arms
/// `watch` (and rescans) when the folder is deleted and comes back.
pub async fn run_ingest(
    dir: PathBuf,
    extensions: Vec<String>,
    startup: Vec<PathBuf>,
    mut watch: FolderWatch,
    mut events: mpsc::Receiver<RawEvent>,
    ready: mpsc::Sender<ReadyFile>,
    cancel: CancellationToken,
) {
    let mut settling: HashMap<PathBuf, Instant> = HashMap::new();
    let mut reconcile = tokio::time::interval_at(Instant::now() + RECONCILE_EVERY, RECONCILE_EVERY);
    let mut watch_check =
        tokio::time::interval_at(Instant::now() + WATCH_CHECK_EVERY, WATCH_CHECK_EVERY);
    watch_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(dir = %dir.display(), files = startup.len(), scan = "startup", "scanned the watched folder");
    if !send_files(startup, &ready, &mut settling).await {
        return;
    }
    loop {
        let next_deadline = settling.values().min().copied();
        let settle_sleep = async {
            match next_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    RawEvent::Complete(path) => {
                        settling.remove(&path);
                        if is_candidate(&path, &extensions)
                            && ready.send(ReadyFile::event(path)).await.is_err()
                        {
                            break;
                        }
                    }
                    RawEvent::Closed(path) => {
                        if is_candidate(&path, &extensions) {
                            settling.insert(path, Instant::now() + SETTLE);
                        }
                    }
                    RawEvent::Written(path) => {
                        if let Some(deadline) = settling.get_mut(&path) {
                            *deadline = Instant::now() + SETTLE;
                        }
                    }
                    RawEvent::Rescan(reason) => {
                        warn!(dir = %dir.display(), reason = %reason, "watcher lost events; rescanning the folder");
                        if !send_scan(&dir, &extensions, &ready, &mut settling, "rescan").await {
                            break;
                        }
                    }
                }
            }
            _ = settle_sleep => {
                let now = Instant::now();
                let mut due: Vec<PathBuf> = settling
                    .iter()
                    .filter(|(_, deadline)| **deadline <= now)
                    .map(|(path, _)| path.clone())
                    .collect();
                due.sort();
                for path in due {
                    settling.remove(&path);
                    if ready.send(ReadyFile::event(path)).await.is_err() {
                        return;
                    }
                }
            }
            _ = reconcile.tick() => {
                if watch.is_armed() && !send_scan(&dir, &extensions, &ready, &mut settling, "reconcile").await {
                    break;
                }
            }
            _ = watch_check.tick() => {
                if watch.check() == WatchState::Rearmed
                    && !send_scan(&dir, &extensions, &ready, &mut settling, "re-armed").await
                {
                    break;
                }
            }
        }
    }
    debug!("ingest stopped");
}

fn recently_modified(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age < SETTLE)
}

/// Sends every candidate of the folder; false when the pipeline is gone.
/// A file modified less than [`SETTLE`] ago may still be being written: it
/// joins `settling` instead, and is sent once it has stayed quiet.
async fn send_scan(
    dir: &Path,
    extensions: &[String],
    ready: &mpsc::Sender<ReadyFile>,
    settling: &mut HashMap<PathBuf, Instant>,
    why: &str,
) -> bool {
    // A listing, and below a stat per file: off the runtime (a folder may
    // hold thousands of files).
    let listed = {
        let (dir, extensions) = (dir.to_path_buf(), extensions.to_vec());
        off_runtime(move || scan_folder(&dir, &extensions)).await
    };
    match listed {
        Ok(files) => {
            if why != "reconcile" {
                info!(dir = %dir.display(), files = files.len(), scan = why, "scanned the watched folder");
            }
            send_files(files, ready, settling).await
        }
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, scan = why, "cannot list the watched folder");
            true
        }
    }
}

/// Sends listed files, deferring those modified less than [`SETTLE`] ago;
/// false when the pipeline is gone.
async fn send_files(
    files: Vec<PathBuf>,
    ready: &mpsc::Sender<ReadyFile>,
    settling: &mut HashMap<PathBuf, Instant>,
) -> bool {
    let files = off_runtime(move || {
        files
            .into_iter()
            .map(|path| {
                let recent = recently_modified(&path);
                (path, recent)
            })
            .collect::<Vec<_>>()
    })
    .await;
    for (path, recent) in files {
        if recent {
            settling.insert(path, Instant::now() + SETTLE);
            continue;
        }
        if ready.send(ReadyFile { path, listed: true }).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listed_files_are_marked_listed_and_announced_ones_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("old.txt");
        std::fs::write(&old, "Tobruk").expect("write");
        // Older than SETTLE, so the listing sends it at once.
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .and_then(|file| file.set_modified(an_hour_ago))
            .expect("mtime");
        let (raw_tx, raw_rx) = mpsc::channel(8);
        let watch = FolderWatch::arm(dir.path(), raw_tx.clone()).expect("watch");
        let (ready_tx, mut ready_rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let ingest = tokio::spawn(run_ingest(
            dir.path().to_path_buf(),
            vec!["txt".to_string()],
            scan_folder(dir.path(), &["txt".to_string()]).expect("list"),
            watch,
            raw_rx,
            ready_tx,
            cancel.clone(),
        ));
        let renamed = dir.path().join("new.txt");
        std::fs::write(dir.path().join("new.tmp"), "Minsk").expect("write");
        std::fs::rename(dir.path().join("new.tmp"), &renamed).expect("rename");
        let mut received = Vec::new();
        while received.len() < 2 {
            let file = tokio::time::timeout(Duration::from_secs(10), ready_rx.recv())
                .await
                .expect("a ready file in time")
                .expect("open channel");
            received.push(file);
        }
        let [first, second] = <[ReadyFile; 2]>::try_from(received).expect("two files");
        assert_eq!(
            (first, second),
            (
                ReadyFile {
                    path: old,
                    listed: true
                },
                ReadyFile {
                    path: renamed,
                    listed: false
                }
            )
        );
        cancel.cancel();
        ingest.await.expect("ingest stops");
    }
}
