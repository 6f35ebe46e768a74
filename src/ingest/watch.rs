//! The inotify watch on the folder (not recursive, through the `inotify`
//! crate) and the translation of its events into [`RawEvent`]s. A thread of
//! its own reads the events; it only forwards, with back-pressure: when the
//! pipeline is slow the kernel queue fills, overflows, and the overflow
//! becomes a rescan, so nothing is lost.
//!
//! The watch asks only for what says a file is written or complete. (The
//! `notify` crate, used before and still for the config file, watches
//! every open too: each file the daemon read came back as an event to
//! wake up for, build and drop. In a burst its thread took 6% of the
//! daemon's CPU samples, this one 2.5%.)

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
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

/// Keeps the watch alive; dropping it stops watching (and its thread).
pub struct FolderWatcher {
    watches: Watches,
    watch: WatchDescriptor,
}

impl Drop for FolderWatcher {
    fn drop(&mut self) {
        // The kernel answers with IN_IGNORED, which ends the reading thread.
        // An error means the watch is gone already (the folder was deleted),
        // and so is the thread.
        let _ = self.watches.remove(self.watch.clone());
    }
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
    pub fn arm(dir: &Path, events: mpsc::Sender<RawEvent>) -> io::Result<FolderWatch> {
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

/// What the watch asks the kernel for: a file renamed or moved in
/// (complete), closed after writing, written to, or created.
const WATCH_MASK: WatchMask = WatchMask::MOVED_TO
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::CREATE)
    .union(WatchMask::ONLYDIR);

/// Bytes of events read at once: hundreds of events in a burst.
const EVENT_BUFFER: usize = 64 * 1024;

/// Starts watching `dir`; events go to `events`.
pub fn watch_folder(dir: &Path, events: mpsc::Sender<RawEvent>) -> io::Result<FolderWatcher> {
    let inotify = Inotify::init()?;
    let mut watches = inotify.watches();
    let watch = watches.add(dir, WATCH_MASK)?;
    let folder = dir.to_path_buf();
    let watcher = FolderWatcher { watches, watch };
    std::thread::Builder::new()
        .name("inotify".to_string())
        .spawn(move || read_events(inotify, &folder, &events))?;
    Ok(watcher)
}

/// Reads the watch's events and forwards them until the watch is removed
/// or the daemon stops.
fn read_events(mut inotify: Inotify, dir: &Path, events: &mpsc::Sender<RawEvent>) {
    let mut buffer = vec![0u8; EVENT_BUFFER];
    loop {
        let read = match inotify.read_events_blocking(&mut buffer) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // Nothing more will come: say so, so that the folder is
                // listed (and the watch re-armed by its regular check).
                let _ = events.blocking_send(RawEvent::Rescan(format!("watcher error: {error}")));
                return;
            }
        };
        for event in read {
            if event.mask.contains(EventMask::IGNORED) {
                return; // removed, or the folder is gone
            }
            let Some(raw) = translate(event.mask, event.name, dir) else {
                continue;
            };
            // Blocking here is the back-pressure described above. A closed
            // channel means the daemon is stopping.
            if events.blocking_send(raw).is_err() {
                return;
            }
        }
    }
}

/// Event paths are built as `dir/NAME`, so a file has the same path
/// whether a scan or an event found it. Folders inside are not articles.
fn translate(mask: EventMask, name: Option<&OsStr>, dir: &Path) -> Option<RawEvent> {
    if mask.contains(EventMask::Q_OVERFLOW) {
        return Some(RawEvent::Rescan("event queue overflow".to_string()));
    }
    if mask.contains(EventMask::ISDIR) {
        return None;
    }
    let path = dir.join(name?);
    if mask.contains(EventMask::MOVED_TO) {
        Some(RawEvent::Complete(path))
    } else if mask.contains(EventMask::CLOSE_WRITE) {
        Some(RawEvent::Closed(path))
    } else if mask.intersects(EventMask::MODIFY | EventMask::CREATE) {
        Some(RawEvent::Written(path))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The next event, waiting at most a few seconds.
    fn next(events: &mut mpsc::Receiver<RawEvent>) -> Option<RawEvent> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match events.try_recv() {
                Ok(event) => return Some(event),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    assert!(std::time::Instant::now() < deadline, "no event in time");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    #[test]
    fn files_moved_in_are_complete_and_files_written_in_place_close_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let (sender, mut events) = mpsc::channel(64);
        let _watch = watch_folder(dir.path(), sender).expect("watch");

        let staged = elsewhere.path().join("moved.txt");
        std::fs::write(&staged, "Tobruk").expect("write");
        std::fs::rename(&staged, dir.path().join("moved.txt")).expect("rename");
        assert_eq!(
            next(&mut events),
            Some(RawEvent::Complete(dir.path().join("moved.txt")))
        );

        // A folder made inside is not an article; nor is reading a file.
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::read(dir.path().join("moved.txt")).expect("read");

        let in_place = dir.path().join("in-place.txt");
        std::fs::write(&in_place, "Minsk").expect("write");
        let mut seen = Vec::new();
        while !seen.contains(&RawEvent::Closed(in_place.clone())) {
            seen.push(next(&mut events).expect("an event"));
        }
        assert!(
            seen.iter()
                .all(|event| *event == RawEvent::Written(in_place.clone())
                    || *event == RawEvent::Closed(in_place.clone())),
            "{seen:?}"
        );
        assert_eq!(seen.first(), Some(&RawEvent::Written(in_place)));
    }

    #[test]
    fn the_reading_thread_ends_when_the_watch_is_dropped_or_the_folder_goes() {
        for remove_folder in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let folder = dir.path().join("articles");
            std::fs::create_dir(&folder).expect("mkdir");
            let (sender, mut events) = mpsc::channel(64);
            // The thread holds the only sender: the channel closes when it ends.
            let watch = watch_folder(&folder, sender).expect("watch");
            if remove_folder {
                std::fs::remove_dir(&folder).expect("remove");
            } else {
                drop(watch);
            }
            assert_eq!(next(&mut events), None, "remove_folder={remove_folder}");
        }
    }
}
