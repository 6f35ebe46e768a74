//! Running newswatch as a service: readiness and watchdog messages to
//! systemd (`notify`, `watchdog`), live config reloads (`reload`), the
//! sink workers a reload may start or stop (`sinks`), and the health and
//! metrics HTTP server (`server`) with what it reports (`health`,
//! `metrics`).
//!
//! Nothing here touches articles or rules: it only watches the daemon's
//! tasks and swaps whole, already validated configs. Counters and health
//! flags live in one process-wide [`Telemetry`] ([`telemetry()`]), so a
//! worker or the ingest task reports with one call and no extra parameter.

pub mod health;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod server;
pub mod sinks;
pub mod watchdog;

use std::sync::LazyLock;

pub use health::Health;
pub use metrics::{DeliveryOutcome, Metrics};

/// What the daemon counts and what it knows about its own health.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
}

impl Telemetry {
    /// One delivery attempt to `sink` ended with `outcome`. A delivery that
    /// failed permanently marks the sink unhealthy; a delivery that worked
    /// marks it healthy again.
    pub fn delivery(&self, sink: &str, outcome: DeliveryOutcome) {
        self.metrics.delivery(sink, outcome);
        match outcome {
            DeliveryOutcome::Delivered => self.health.sink_healthy(sink),
            DeliveryOutcome::Dead => self
                .health
                .sink_unhealthy(sink, "the last delivery failed permanently"),
            DeliveryOutcome::Retry => {}
        }
    }
}

static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(Telemetry::default);

/// The process-wide telemetry.
pub fn telemetry() -> &'static Telemetry {
    &TELEMETRY
}

/// The STATUS= line: "watching seeds/, 3 rules, 0 pending deliveries".
pub fn status_line(config: &crate::config::Config, pending: Option<u64>) -> String {
    let pending = pending.map_or("unknown".to_string(), |n| n.to_string());
    format!(
        "watching {}/, {} rule{}, {} pending deliveries",
        config.watch.dir.display(),
        config.rules.len(),
        if config.rules.len() == 1 { "" } else { "s" },
        pending
    )
}
