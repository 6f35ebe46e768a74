//! A sink worker's log of the deliveries it made since it last marked them
//! in the database: one append (a `write` of 16 bytes) per delivered alert,
//! instead of one database transaction each.
//!
//! The worker appends a delivery as soon as the receiver accepted it, and
//! folds the log into the outbox (all its rows marked `delivered` in one
//! transaction, then the file emptied) before it reads the next rows to
//! send, and when it stops. A `write` that returned survives a crash or a
//! kill of the process (the kernel holds the bytes), so a kill still re-sends
//! at most the send in flight: at the next start, [`recover`] folds the logs
//! a killed run left before any worker starts. Like the marks committed
//! with `synchronous=NORMAL` before this log, a power cut may lose the last
//! ones, and those alerts are sent again (at least once).
//!
//! Each worker writes its own file, `state.dir/delivered/PID-N.log`, so two
//! workers (a sink restarted by a reload while its old worker finishes its
//! send) never share one. A record is the row's `seq`, the attempts and a
//! check word; a torn or foreign record is skipped.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::store::{Store, StoreError};

/// The folder, under `state.dir`, that holds the logs.
const FOLDER: &str = "delivered";
const EXTENSION: &str = "log";
const RECORD: usize = 16;
/// Mixed into each record's check word.
const MAGIC: u32 = 0x6e77_646c;

/// A delivery made: the outbox row and the attempts it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub seq: i64,
    pub attempts: u32,
}

fn check(seq: i64, attempts: u32) -> u32 {
    let seq = seq as u64;
    MAGIC ^ (seq as u32) ^ (seq >> 32) as u32 ^ attempts.rotate_left(16)
}

fn encode(mark: Mark) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&mark.seq.to_le_bytes());
    record[8..12].copy_from_slice(&mark.attempts.to_le_bytes());
    record[12..].copy_from_slice(&check(mark.seq, mark.attempts).to_le_bytes());
    record
}

fn decode(record: &[u8]) -> Option<Mark> {
    let seq = i64::from_le_bytes(record.get(..8)?.try_into().ok()?);
    let attempts = u32::from_le_bytes(record.get(8..12)?.try_into().ok()?);
    let stored = u32::from_le_bytes(record.get(12..RECORD)?.try_into().ok()?);
    (stored == check(seq, attempts) && seq > 0).then_some(Mark { seq, attempts })
}

fn log_error(path: &Path, source: io::Error) -> StoreError {
    StoreError::DeliveredLog {
        path: path.display().to_string(),
        source,
    }
}

/// One sink worker's log (see the module's documentation).
#[derive(Debug)]
pub struct DeliveredLog {
    file: File,
    path: PathBuf,
    /// What the file holds: the marks appended since the last fold.
    marks: Vec<Mark>,
    /// The file's length: where a failed append is cut back to.
    len: u64,
}

impl DeliveredLog {
    /// Creates a new, empty log in `state_dir`.
    pub fn create(state_dir: &Path) -> Result<DeliveredLog, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = state_dir.join(FOLDER);
        std::fs::create_dir_all(&dir).map_err(|source| log_error(&dir, source))?;
        loop {
            let name = format!(
                "{}-{}.{EXTENSION}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(name);
            // Never appended to an existing file: a fold empties its log,
            // and marks from an earlier run must be folded, not emptied.
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(DeliveredLog {
                        file,
                        path,
                        marks: Vec::new(),
                        len: 0,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(log_error(&path, source)),
            }
        }
    }

    /// Records that row `seq` was delivered after `attempts` attempts. On
    /// an error the file is cut back to its last whole record, and the
    /// caller marks the row in the database instead.
    pub fn append(&mut self, seq: i64, attempts: u32) -> Result<(), StoreError> {
        let mark = Mark { seq, attempts };
        if let Err(source) = self.file.write_all(&encode(mark)) {
            let _ = self.file.set_len(self.len);
            return Err(log_error(&self.path, source));
        }
        self.len += RECORD as u64;
        self.marks.push(mark);
        Ok(())
    }

    /// Marks the logged deliveries `delivered` in the database, in one
    /// transaction, and empties the log. Returns how many there were. On
    /// an error nothing is lost: the log keeps them for the next fold.
    pub fn fold(&mut self, store: &mut Store) -> Result<usize, StoreError> {
        let count = self.marks.len();
        if count == 0 {
            return Ok(0);
        }
        store.mark_delivered_many(&self.marks)?;
        self.marks.clear();
        // Were this to fail, the next start would mark them again: the
        // same rows, the same state.
        self.file
            .set_len(0)
            .map_err(|source| log_error(&self.path, source))?;
        self.len = 0;
        Ok(count)
    }
}

impl Drop for DeliveredLog {
    /// A folded log is removed; one with marks stays for [`recover`].
    fn drop(&mut self) {
        if self.marks.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The logs in `state_dir` and the marks they hold.
fn read_logs(state_dir: &Path) -> Result<(Vec<PathBuf>, Vec<Mark>), StoreError> {
    let dir = state_dir.join(FOLDER);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => return Err(log_error(&dir, source)),
    };
    let mut paths = Vec::new();
    let mut marks = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| log_error(&dir, source))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| log_error(&path, source))?;
        marks.extend(bytes.chunks_exact(RECORD).filter_map(decode));
        paths.push(path);
    }
    Ok((paths, marks))
}

/// Folds the logs an earlier run left (a kill, a crash, a failed fold) into
/// the database and removes them. Returns how many deliveries they held.
/// Call it before any sink worker of this process starts.
pub fn recover(state_dir: &Path, store: &mut Store) -> Result<usize, StoreError> {
    let (paths, marks) = read_logs(state_dir)?;
    if !marks.is_empty() {
        store.mark_delivered_many(&marks)?;
    }
    for path in paths {
        std::fs::remove_file(&path).map_err(|source| log_error(&path, source))?;
    }
    Ok(marks.len())
}

/// The outbox rows the logs in `state_dir` say were delivered, not yet
/// marked in the database (a running daemon's last few, or a killed one's).
pub fn logged(state_dir: &Path) -> Result<HashSet<i64>, StoreError> {
    Ok(read_logs(state_dir)?
        .1
        .into_iter()
        .map(|mark| mark.seq)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FileKey, NewDelivery, ProcessedArticle};

    /// A database with `count` pending deliveries to sink "hook", seq 1..=count.
    fn store_with_pending(dir: &Path, count: usize) -> Store {
        let mut store = Store::open(dir).expect("open");
        for n in 0..count {
            let processed = ProcessedArticle {
                article_id: format!("article-{n}"),
                file: FileKey {
                    path: format!("in/{n}.txt"),
                    size: 1,
                    mtime_ns: 1,
                },
                deliveries: vec![NewDelivery {
                    sink: "hook".to_string(),
                    alert_id: format!("alert-{n}"),
                    rule: "tobruk".to_string(),
                    payload: "{}".to_string(),
                }],
                now_ms: 1,
                ..ProcessedArticle::default()
            };
            assert!(store.commit_article(&processed).expect("commit"));
        }
        store
    }

    fn pending_seqs(store: &Store) -> Vec<i64> {
        store
            .pending_for_sink("hook", 100)
            .expect("pending")
            .iter()
            .map(|d| d.seq)
            .collect()
    }

    fn log_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir.join(FOLDER))
            .map(|entries| entries.map(|e| e.expect("entry").path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_record_reads_back_and_a_damaged_one_does_not() {
        let mark = Mark {
            seq: 1 << 40 | 7,
            attempts: 3,
        };
        let record = encode(mark);
        assert_eq!(decode(&record), Some(mark));
        for byte in 0..RECORD {
            let mut damaged = record;
            damaged[byte] ^= 0x10;
            assert_eq!(decode(&damaged), None, "byte {byte}");
        }
        assert_eq!(
            decode(&[0; RECORD]),
            None,
            "zeros, as a power cut may leave"
        );
    }

    #[test]
    fn a_fold_marks_the_logged_deliveries_and_empties_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = store_with_pending(dir.path(), 3);
        let mut log = DeliveredLog::create(dir.path()).expect("log");
        log.append(1, 1).expect("append");
        log.append(2, 4).expect("append");
        assert_eq!(logged(dir.path()).expect("read"), HashSet::from([1, 2]));
        assert_eq!(pending_seqs(&store), [1, 2, 3], "not folded yet");
        assert_eq!(log.fold(&mut store).expect("fold"), 2);
        assert_eq!(pending_seqs(&store), [3]);
        assert_eq!(std::fs::metadata(&log.path).expect("stat").len(), 0);
        assert!(logged(dir.path()).expect("read").is_empty());
        // Appends after a fold start the file again.
        log.append(3, 1).expect("append");
        assert_eq!(logged(dir.path()).expect("read"), HashSet::from([3]));
        log.fold(&mut store).expect("fold");
        drop(log);
        assert!(log_files(dir.path()).is_empty(), "a folded log is removed");
        let attempts: u32 = store
            .connection
            .query_row("SELECT attempts FROM outbox WHERE seq = 2", [], |row| {
                row.get(0)
            })
            .expect("row");
        assert_eq!(attempts, 4, "the attempts the delivery took");
    }

    #[test]
    fn the_next_start_folds_what_a_killed_worker_logged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_pending(dir.path(), 4);
        let mut first = DeliveredLog::create(dir.path()).expect("log");
        let mut second = DeliveredLog::create(dir.path()).expect("log");
        first.append(1, 1).expect("append");
        first.append(2, 1).expect("append");
        second.append(4, 2).expect("append");
        // A kill: nothing folded, the files stay (forget: no destructor
        // runs in a killed process).
        let path = first.path.clone();
        std::mem::forget(first);
        std::mem::forget(second);
        // A torn record after the whole ones (a power cut mid-write).
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open")
            .write_all(&[1, 2, 3])
            .expect("write");
        assert_eq!(log_files(dir.path()).len(), 2);
        drop(store);
        let mut store = Store::open(dir.path()).expect("reopen");
        assert_eq!(pending_seqs(&store), [1, 2, 3, 4], "the database alone");
        assert_eq!(recover(dir.path(), &mut store).expect("recover"), 3);
        assert_eq!(pending_seqs(&store), [3]);
        assert!(log_files(dir.path()).is_empty());
        assert_eq!(recover(dir.path(), &mut store).expect("again"), 0);
    }

    #[test]
    fn two_workers_logs_are_folded_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = store_with_pending(dir.path(), 2);
        // A sink restarted by a reload: the old worker's log and the new one's.
        let mut old = DeliveredLog::create(dir.path()).expect("log");
        let mut new = DeliveredLog::create(dir.path()).expect("log");
        assert_ne!(old.path, new.path);
        old.append(1, 1).expect("append");
        new.append(2, 1).expect("append");
        new.fold(&mut store).expect("fold");
        assert_eq!(logged(dir.path()).expect("read"), HashSet::from([1]));
        assert_eq!(pending_seqs(&store), [1]);
        old.fold(&mut store).expect("fold");
        assert!(pending_seqs(&store).is_empty());
    }
}
