//! Live config reloads, on SIGHUP and when config.toml is saved (watched,
//! debounced). The new file is loaded, validated and compiled completely
//! first; only a config without a single error replaces the running one, in
//! one atomic swap. The pipeline picks up the new config between articles,
//! so an article in flight finishes on the rules it started with.
//!
//! A bad edit changes nothing: every error is logged as `FILE:LINE:COL:
//! message` and the old rules keep running. Settings the running tasks were
//! built from (the watched folder and extensions, the state folder, the
//! server address) are reported as "restart required" and keep their old
//! values. Sinks are live: added, removed and changed sinks get their
//! workers started, stopped or restarted ([`super::sinks`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::notify::Notifier;
use super::sinks::SinkWorkers;
use super::{status_line, Telemetry};
use crate::config::Config;
use crate::state::Store;

/// The running config, swapped whole by a reload.
pub type LiveConfig = Arc<ArcSwap<Config>>;

/// Saves closer together than this make one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Watches the folder of the config file (editors save by renaming a new
/// file over the old one) and reports each change to the file on the
/// returned channel. Dropping the watcher stops it.
pub fn watch_config_file(path: &Path) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<()>)> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let (saves_tx, saves_rx) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return };
        let saved = matches!(
            event.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Data(_) | ModifyKind::Any)
        );
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(name.as_os_str()));
        if saved && ours {
            // A full channel already holds a pending "saved": nothing is lost.
            let _ = saves_tx.try_send(());
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    Ok((watcher, saves_rx))
}

/// Keeps in `new` the settings that cannot change while running and says
/// which of them the file changed ("restart required").
pub fn keep_fixed_settings(old: &Config, new: &mut Config) -> Vec<String> {
    let mut ignored = Vec::new();
    if new.watch.dir != old.watch.dir {
        ignored.push(format!(
            "watch.dir ({} -> {})",
            old.watch.dir.display(),
            new.watch.dir.display()
        ));
        new.watch.dir = old.watch.dir.clone();
    }
    if new.watch.extensions != old.watch.extensions {
        ignored.push("watch.extensions".to_string());
        new.watch.extensions = old.watch.extensions.clone();
    }
    if new.state_dir != old.state_dir {
        ignored.push(format!(
            "state.dir ({} -> {})",
            old.state_dir.display(),
            new.state_dir.display()
        ));
        new.state_dir = old.state_dir.clone();
    }
    if new.server != old.server {
        ignored.push("server.listen".to_string());
        new.server = old.server.clone();
    }
    ignored
}

pub struct Reloader {
    pub path: PathBuf,
    pub live: LiveConfig,
    pub sinks: SinkWorkers,
    pub notifier: Arc<Notifier>,
    pub telemetry: &'static Telemetry,
    /// For the pending count in the status line.
    pub store: Store,
}

impl Reloader {
    /// Reloads on every SIGHUP and every (debounced) save until `cancel`.
    pub async fn run(
        mut self,
        mut hangups: tokio::signal::unix::Signal,
        mut saves: Option<mpsc::Receiver<()>>,
        cancel: CancellationToken,
    ) {
        loop {
            let saved = async {
                match saves.as_mut() {
                    Some(saves) => saves.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = hangups.recv() => { self.reload("SIGHUP").await; }
                got = saved => {
                    if got.is_none() {
                        saves = None;
                        continue;
                    }
                    // Wait until the file has been quiet for DEBOUNCE.
                    if let Some(saves) = saves.as_mut() {
                        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, saves.recv()).await {}
                    }
                    if cancel.is_cancelled() {
                        break;
                    }
                    self.reload("config file saved").await;
                }
            }
        }
    }

    /// Loads, validates and compiles the config file, then swaps it in.
    /// Returns whether the new config is running.
    pub async fn reload(&mut self, why: &str) -> bool {
        self.notifier.reloading();
        info!(file = %self.path.display(), trigger = why, "reloading the config");
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            crate::ruletest::load_and_test(&path, crate::config::Leftovers::Free)
        })
        .await;
        let now = unix_now();
        let mut new = match loaded {
            Ok(Ok(config)) => config,
            Ok(Err(diagnostics)) => {
                for diagnostic in &diagnostics {
                    error!("{diagnostic}");
                }
                error!(
                    file = %self.path.display(),
                    errors = diagnostics.len(),
                    "config reload failed; the old rules keep running"
                );
                self.telemetry.metrics.reload(false, now);
                let status = format!(
                    "{} (last reload failed: {} error{})",
                    self.status(),
                    diagnostics.len(),
                    if diagnostics.len() == 1 { "" } else { "s" }
                );
                self.notifier.ready(&status);
                return false;
            }
            Err(join_error) => {
                error!(error = %join_error, "config reload failed; the old rules keep running");
                self.telemetry.metrics.reload(false, now);
                self.notifier.ready(&self.status());
                return false;
            }
        };
        let old = self.live.load_full();
        for setting in keep_fixed_settings(&old, &mut new) {
            warn!(setting = %setting, "restart required: this setting cannot change while running; the old value stays in effect");
        }
        let changes = self.sinks.reconcile(&new.sinks).await;
        let names: Vec<&str> = new.sinks.iter().map(|s| s.name.as_str()).collect();
        self.telemetry.health.retain_sinks(&names);
        let rules = new.rules.len();
        self.live.store(Arc::new(new));
        super::sinks::wake_all(&self.sinks.wakes());
        self.telemetry.metrics.reload(true, now);
        info!(
            rules,
            sinks_added = ?changes.added,
            sinks_removed = ?changes.removed,
            sinks_changed = ?changes.changed,
            "config reloaded"
        );
        self.notifier.ready(&self.status());
        true
    }

    fn status(&self) -> String {
        status_line(&self.live.load(), self.store.pending_count().ok())
    }
}

/// Seconds since the Unix epoch, for the reload metrics.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::load_str(Path::new("/etc/nw/config.toml"), text, &|_| None)
            .expect("valid config")
    }

    #[test]
    fn settings_fixed_at_start_keep_their_old_values_and_are_reported() {
        let old = config("[watch]\ndir = \"in\"\n[rules.a]\nmatch = 'a'\n");
        let mut new = config(
            "[watch]\ndir = \"elsewhere\"\nmax_file_size = \"1 MiB\"\n[state]\ndir = \"db\"\n[server]\n[rules.a]\nmatch = 'a'\n[rules.b]\nmatch = 'b'\n",
        );
        let ignored = keep_fixed_settings(&old, &mut new);
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert!(ignored[0].starts_with("watch.dir"));
        assert!(ignored[1].starts_with("state.dir"));
        assert_eq!(ignored[2], "server.listen");
        assert_eq!(new.watch.dir, old.watch.dir);
        assert_eq!(new.state_dir, old.state_dir);
        assert_eq!(new.server, None);
        // Live settings do change.
        assert_eq!(new.watch.max_file_size, 1024 * 1024);
        assert_eq!(new.rules.len(), 2);
    }
}
