//! The inotify watch (through `notify`, not recursive) and the translation
//! of its events into [`RawEvent`]s. Runs on notify's own thread; it only
//! forwards, with back-pressure: when the pipeline is slow the kernel queue
//! fills, overflows, and the overflow becomes a rescan, so nothing is lost.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

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
