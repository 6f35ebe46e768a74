//! What `/readyz` needs to know that only other tasks see: whether the
//! folder watch is armed, and which sinks are unhealthy (and why). Set with
//! one call from wherever the fact is learnt; read by the server. Holds
//! flags only, never decides anything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Health {
    watch_armed: AtomicBool,
    /// Sink name -> why it is unhealthy.
    unhealthy_sinks: Mutex<BTreeMap<String, String>>,
}

impl Health {
    pub fn set_watch_armed(&self, armed: bool) {
        self.watch_armed.store(armed, Ordering::Relaxed);
    }

    pub fn watch_armed(&self) -> bool {
        self.watch_armed.load(Ordering::Relaxed)
    }

    /// Marks `sink` unhealthy; `reason` is shown by `/readyz` (never a URL).
    pub fn sink_unhealthy(&self, sink: &str, reason: &str) {
        if let Ok(mut sinks) = self.unhealthy_sinks.lock() {
            sinks.insert(sink.to_string(), reason.to_string());
        }
    }

    pub fn sink_healthy(&self, sink: &str) {
        if let Ok(mut sinks) = self.unhealthy_sinks.lock() {
            sinks.remove(sink);
        }
    }

    /// Forgets sinks that are no longer configured (after a reload).
    pub fn retain_sinks(&self, names: &[&str]) {
        if let Ok(mut sinks) = self.unhealthy_sinks.lock() {
            sinks.retain(|name, _| names.contains(&name.as_str()));
        }
    }

    /// (sink, reason) of every unhealthy sink, by name.
    pub fn unhealthy_sinks(&self) -> Vec<(String, String)> {
        self.unhealthy_sinks
            .lock()
            .map(|sinks| sinks.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_is_unhealthy_until_marked_healthy_or_removed() {
        let health = Health::default();
        health.sink_unhealthy("slack", "HTTP 410");
        health.sink_unhealthy("siem", "HTTP 404");
        assert_eq!(health.unhealthy_sinks().len(), 2);
        health.sink_healthy("slack");
        health.retain_sinks(&["slack"]);
        assert!(health.unhealthy_sinks().is_empty());
    }
}
