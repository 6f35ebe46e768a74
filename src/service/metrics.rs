//! The daemon's counters and the Prometheus text format they are served in.
//! Counters only go up and are kept in memory (they start at zero with the
//! process, as Prometheus expects). Gauges that live elsewhere (the outbox,
//! health flags) are passed in at render time as a [`Snapshot`]. Label
//! values are rule ids, sink names and fixed words, never article text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the match latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryOutcome {
    Delivered,
    Retry,
    Dead,
}

impl DeliveryOutcome {
    fn label(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry => "retry",
            DeliveryOutcome::Dead => "dead",
        }
    }
}

/// Why a file produced no new article.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// Same content as an article already processed.
    Duplicate,
    /// Same path, size and modification time as before.
    Unchanged,
    /// Too large, empty, binary, malformed or not a regular file.
    NotAnArticle,
    Unreadable,
    /// The database refused the article; it is retried at the next scan.
    DatabaseError,
}

impl SkipReason {
    fn label(self) -> &'static str {
        match self {
            SkipReason::Duplicate => "duplicate",
            SkipReason::Unchanged => "unchanged",
            SkipReason::NotAnArticle => "not_an_article",
            SkipReason::Unreadable => "unreadable",
            SkipReason::DatabaseError => "database_error",
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default, Clone)]
struct ReloadRecord {
    successes: u64,
    failures: u64,
    last_successful: Option<bool>,
    /// Unix seconds of the last successful reload (or of the start).
    last_success_time: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    articles_processed: AtomicU64,
    skipped: Mutex<BTreeMap<SkipReason, u64>>,
    alerts_fired: Mutex<BTreeMap<String, u64>>,
    deliveries: Mutex<BTreeMap<(String, DeliveryOutcome), u64>>,
    latency: Mutex<Histogram>,
    reload: Mutex<ReloadRecord>,
}

/// Gauges read from elsewhere at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Outbox rows waiting to be sent, and dead letters (None: unreadable).
    pub pending: Option<u64>,
    pub dead: Option<u64>,
    pub watch_armed: bool,
    /// Every configured sink and whether it is healthy.
    pub sinks: Vec<(String, bool)>,
    pub rules: usize,
}

impl Metrics {
    /// An article was processed in `took`; these rules fired on it.
    pub fn article_processed<'a>(&self, took: Duration, rules: impl IntoIterator<Item = &'a str>) {
        self.articles_processed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut fired) = self.alerts_fired.lock() {
            for rule in rules {
                *fired.entry(rule.to_string()).or_default() += 1;
            }
        }
        self.observe_latency(took);
    }

    pub fn article_skipped(&self, reason: SkipReason) {
        if let Ok(mut skipped) = self.skipped.lock() {
            *skipped.entry(reason).or_default() += 1;
        }
    }

    pub fn delivery(&self, sink: &str, outcome: DeliveryOutcome) {
        if let Ok(mut deliveries) = self.deliveries.lock() {
            *deliveries.entry((sink.to_string(), outcome)).or_default() += 1;
        }
    }

    /// The config loaded at start counts as the first successful load.
    pub fn config_loaded(&self, unix_seconds: f64) {
        if let Ok(mut reload) = self.reload.lock() {
            reload.last_successful = Some(true);
            reload.last_success_time = unix_seconds;
        }
    }

    pub fn reload(&self, successful: bool, unix_seconds: f64) {
        if let Ok(mut reload) = self.reload.lock() {
            reload.last_successful = Some(successful);
            if successful {
                reload.successes += 1;
                reload.last_success_time = unix_seconds;
            } else {
                reload.failures += 1;
            }
        }
    }

    fn observe_latency(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Ok(mut histogram) = self.latency.lock() {
            for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        let o = &mut out;
        family(
            o,
            "newswatch_articles_processed_total",
            "counter",
            "Articles read and matched against the rules.",
        );
        sample(
            o,
            "newswatch_articles_processed_total",
            &[],
            self.articles_processed.load(Ordering::Relaxed),
        );

        family(
            o,
            "newswatch_articles_skipped_total",
            "counter",
            "Files that produced no new article, by reason.",
        );
        let skipped = self.skipped.lock().map(|s| s.clone()).unwrap_or_default();
        for reason in [
            SkipReason::Duplicate,
            SkipReason::Unchanged,
            SkipReason::NotAnArticle,
            SkipReason::Unreadable,
            SkipReason::DatabaseError,
        ] {
            let count = skipped.get(&reason).copied().unwrap_or(0);
            sample(
                o,
                "newswatch_articles_skipped_total",
                &[("reason", reason.label())],
                count,
            );
        }

        family(
            o,
            "newswatch_alerts_fired_total",
            "counter",
            "Alerts fired, by rule.",
        );
        for (rule, count) in self
            .alerts_fired
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
        {
            sample(o, "newswatch_alerts_fired_total", &[("rule", &rule)], count);
        }

        family(
            o,
            "newswatch_deliveries_total",
            "counter",
            "Delivery attempts, by sink and outcome (delivered, retry, dead).",
        );
        for ((sink, outcome), count) in self
            .deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
        {
            sample(
                o,
                "newswatch_deliveries_total",
                &[("sink", &sink), ("outcome", outcome.label())],
                count,
            );
        }

        family(
            o,
            "newswatch_outbox_pending",
            "gauge",
            "Deliveries waiting to be sent.",
        );
        if let Some(pending) = snapshot.pending {
            sample(o, "newswatch_outbox_pending", &[], pending);
        }
        family(
            o,
            "newswatch_outbox_dead",
            "gauge",
            "Dead letters (deliveries given up on; see `newswatch outbox`).",
        );
        if let Some(dead) = snapshot.dead {
            sample(o, "newswatch_outbox_dead", &[], dead);
        }

        family(
            o,
            "newswatch_match_duration_seconds",
            "histogram",
            "Time to read, match and record one article.",
        );
        if let Ok(histogram) = self.latency.lock() {
            for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS) {
                sample(
                    o,
                    "newswatch_match_duration_seconds_bucket",
                    &[("le", &bound.to_string())],
                    *count,
                );
            }
            sample(
                o,
                "newswatch_match_duration_seconds_bucket",
                &[("le", "+Inf")],
                histogram.count,
            );
            let _ = writeln!(o, "newswatch_match_duration_seconds_sum {}", histogram.sum);
            sample(
                o,
                "newswatch_match_duration_seconds_count",
                &[],
                histogram.count,
            );
        }

        let reload = self.reload.lock().map(|r| r.clone()).unwrap_or_default();
        family(
            o,
            "newswatch_config_last_reload_successful",
            "gauge",
            "1 if the last config load or reload succeeded, 0 if it failed.",
        );
        sample(
            o,
            "newswatch_config_last_reload_successful",
            &[],
            u64::from(reload.last_successful.unwrap_or(true)),
        );
        family(
            o,
            "newswatch_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful config load or reload.",
        );
        let _ = writeln!(
            o,
            "newswatch_config_last_reload_success_timestamp_seconds {}",
            reload.last_success_time
        );
        family(
            o,
            "newswatch_config_reloads_total",
            "counter",
            "Config reloads, by result.",
        );
        sample(
            o,
            "newswatch_config_reloads_total",
            &[("result", "success")],
            reload.successes,
        );
        sample(
            o,
            "newswatch_config_reloads_total",
            &[("result", "failure")],
            reload.failures,
        );
        family(
            o,
            "newswatch_rules",
            "gauge",
            "Rules in the running config.",
        );
        sample(o, "newswatch_rules", &[], snapshot.rules as u64);

        family(
            o,
            "newswatch_watch_armed",
            "gauge",
            "1 while the folder watch is armed.",
        );
        sample(
            o,
            "newswatch_watch_armed",
            &[],
            u64::from(snapshot.watch_armed),
        );
        family(
            o,
            "newswatch_sink_up",
            "gauge",
            "1 for a healthy sink, 0 for one marked unhealthy.",
        );
        for (sink, healthy) in &snapshot.sinks {
            sample(
                o,
                "newswatch_sink_up",
                &[("sink", sink)],
                u64::from(*healthy),
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{key}=\"{escaped}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.article_processed(Duration::from_millis(3), ["tobruk", "minsk-visit"]);
        metrics.article_processed(Duration::from_millis(30), ["tobruk"]);
        metrics.article_skipped(SkipReason::Duplicate);
        metrics.delivery("siem", DeliveryOutcome::Delivered);
        metrics.delivery("siem", DeliveryOutcome::Retry);
        metrics.reload(false, 1.0);
        let text = metrics.render(&Snapshot {
            pending: Some(2),
            dead: Some(1),
            watch_armed: true,
            sinks: vec![("siem".into(), true), ("team \"slack\"".into(), false)],
            rules: 3,
        });
        for line in [
            "newswatch_articles_processed_total 2",
            "newswatch_articles_skipped_total{reason=\"duplicate\"} 1",
            "newswatch_articles_skipped_total{reason=\"unreadable\"} 0",
            "newswatch_alerts_fired_total{rule=\"tobruk\"} 2",
            "newswatch_alerts_fired_total{rule=\"minsk-visit\"} 1",
            "newswatch_deliveries_total{sink=\"siem\",outcome=\"delivered\"} 1",
            "newswatch_deliveries_total{sink=\"siem\",outcome=\"retry\"} 1",
            "newswatch_outbox_pending 2",
            "newswatch_outbox_dead 1",
            "newswatch_match_duration_seconds_bucket{le=\"0.005\"} 1",
            "newswatch_match_duration_seconds_bucket{le=\"0.05\"} 2",
            "newswatch_match_duration_seconds_bucket{le=\"+Inf\"} 2",
            "newswatch_match_duration_seconds_count 2",
            "newswatch_config_last_reload_successful 0",
            "newswatch_config_reloads_total{result=\"failure\"} 1",
            "newswatch_sink_up{sink=\"team \\\"slack\\\"\"} 0",
            "# TYPE newswatch_match_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
