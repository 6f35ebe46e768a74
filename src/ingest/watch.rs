//! The inotify watch (through `notify`, not recursive) and the translation
//! of its events into [`RawEvent`]s. Runs on notify's own thread; it only
//! forwards, with back-pressure: when the pipeline is slow the kernel queue
//! fills, overflows, and the overflow becomes a rescan, so nothing is lost.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::service::telemetry;

/// What the folder told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// Renamed or moved into the folder: complete now.
    Complete(PathBuf),
    /// Closed after writing: complete once it stays quiet.
    Closed(PathBuf),
    /// Written to (or created): not complete yet.
    Written(PathBuf),
    /// Events may have been lost; the folder must be rescanned.
    Rescan(String),
}

/// Keeps the watch alive; dropping it stops watching.
pub struct FolderWatcher {
    _watcher: RecommendedWatcher,
}

/// What [`FolderWatch::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchState {
    /// Still watching the same folder.
    Armed,
    /// The folder was replaced or came back, and is watched again: rescan it.
    Rearmed,
    /// The folder is gone (or cannot be watched yet); nothing is watched.
    Missing,
}

/// The watch on one folder, re-armed when the folder is deleted, replaced
/// (a new inode under the same name) or comes back.
pub struct FolderWatch {
    dir: PathBuf,
    events: mpsc::Sender<RawEvent>,
    watcher: Option<FolderWatcher>,
    identity: Option<(u64, u64)>,
}

impl FolderWatch {
    /// Starts watching `dir`; fails when it cannot be watched now.
    pub fn arm(dir: &Path, events: mpsc::Sender<RawEvent>) -> notify::Result<FolderWatch> {
        let watcher = watch_folder(dir, events.clone())?;
        Ok(FolderWatch {
            dir: dir.to_path_buf(),
            events,
            watcher: Some(watcher),
            identity: folder_identity(dir),
        })
    }

    pub fn is_armed(&self) -> bool {
        self.watcher.is_some()
    }

    /// Compares the folder on disk with the one watched and re-arms when
    /// they differ. Logs only changes of state.
    pub fn check(&mut self) -> WatchState {
        let identity = folder_identity(&self.dir);
        match identity {
            None => {
                if self.watcher.take().is_some() {
                    telemetry().health.set_watch_armed(false);
                    warn!(dir = %self.dir.display(), "the watched folder is gone; waiting for it to come back");
                }
                self.identity = None;
                WatchState::Missing
            }
            Some(_) if self.watcher.is_some() && identity == self.identity => WatchState::Armed,
            Some(_) => {
                self.watcher = None;
                match watch_folder(&self.dir, self.events.clone()) {
                    Ok(watcher) => {
                        self.watcher = Some(watcher);
                        self.identity = identity;
                        telemetry().health.set_watch_armed(true);
                        info!(dir = %self.dir.display(), "the watched folder is back; watch re-armed");
                        WatchState::Rearmed
                    }
                    Err(error) => {
                        warn!(dir = %self.dir.display(), error = %error, "cannot watch the folder yet; will retry");
                        WatchState::Missing
                    }
                }
            }
        }
    }
}

/// (device, inode) of a folder, or None when it is not a folder now.
fn folder_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(dir).ok()?;
    metadata.is_dir().then(|| (metadata.dev(), metadata.ino()))
}

/// Starts watching `dir`; events go to `events`.
pub fn watch_folder(dir: &Path, events: mpsc::Sender<RawEvent>) -> notify::Result<FolderWatcher> {
    let folder = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        for event in translate(result, &folder) {
            // Blocking here is the back-pressure described above. A closed
            // channel means the daemon is stopping.
            if events.blocking_send(event).is_err() {
                return;
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(FolderWatcher { _watcher: watcher })
}

/// Event paths are rebuilt as `dir/NAME`, so a file has the same path
/// whether a scan or an event found it.
fn translate(result: notify::Result<notify::Event>, dir: &Path) -> Vec<RawEvent> {
    let event = match result {
        Ok(event) => event,
        Err(error) => return vec![RawEvent::Rescan(format!("watcher error: {error}"))],
    };
    if event.need_rescan() {
        return vec![RawEvent::Rescan("event queue overflow".to_string())];
    }
    let mut paths: Vec<PathBuf> = event
        .paths
        .iter()
        .filter_map(|path| path.file_name().map(|name| dir.join(name)))
        .collect();
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            paths.into_iter().map(RawEvent::Complete).collect()
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            paths.pop().map(RawEvent::Complete).into_iter().collect()
        }
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            paths.into_iter().map(RawEvent::Closed).collect()
        }
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Create(CreateKind::File) => {
            paths.into_iter().map(RawEvent::Written).collect()
        }
        _ => Vec::new(),
    }
}
