//! `newswatch replay [--since DATE] [--rule ID]... PATH...`: runs the
//! current rules over old articles and really delivers the alerts, to
//! back-test a new rule against a receiver. Like `test`, it keeps its state
//! in memory (the daemon's database is neither read nor written, and
//! `first_seen` sees the files in the order given). Articles published
//! before `--since` (by their date, or the file's modification day when they
//! have none) are read, so `first_seen` knows what they mention, but send
//! nothing. Sends go straight to the sinks, in order, with a few retries;
//! nothing is queued.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::alert::payload::Alert;
use crate::alert::send::{SendError, Sender};
use crate::alert::worker::backoff;
use crate::config::Config;
use crate::pipeline::{fired_at_now, Outcome, Pipeline};
use crate::rules::ruleset::did_you_mean;
use crate::state::Store;

/// Attempts per delivery before replay reports it failed.
const ATTEMPTS: u32 = 3;
/// The longest `Retry-After` replay waits for.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Parses `--since`: `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

pub fn run(
    config: Config,
    since: Option<NaiveDate>,
    only_rules: &[String],
    paths: &[PathBuf],
) -> anyhow::Result<()> {
    for rule in only_rules {
        if !config.rules.iter().any(|r| *r.id == **rule) {
            anyhow::bail!(
                "unknown rule \"{rule}\"{}",
                did_you_mean(rule, config.rules.iter().map(|r| &*r.id))
            );
        }
    }
    let files = super::test::expand(paths, &config.watch.extensions)?;
    let config = Arc::new(config);
    let store = Store::open_in_memory().context("cannot create the in-memory state")?;
    let mut pipeline = Pipeline::new(config.clone(), store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sender = Sender::new().context("cannot create the HTTP client")?;
    let (mut articles, mut fired, mut sent, mut failed) = (0, 0, 0, 0);
    for path in files {
        let outcome = pipeline
            .process_path(&path, &fired_at_now())
            .context("in-memory state failed")?;
        let alerts = match outcome {
            Outcome::Processed { alerts, .. } => alerts,
            Outcome::Skipped(reason) => {
                eprintln!("{}: skipped: {reason}", path.display());
                continue;
            }
            Outcome::Unreadable(reason) => {
                eprintln!("{}: cannot read: {reason}", path.display());
                continue;
            }
            Outcome::Duplicate { .. } | Outcome::Unchanged => continue,
        };
        if let Some(since) = since {
            if article_day(&alerts, &path).is_some_and(|day| day < since) {
                continue;
            }
        }
        articles += 1;
        for alert in alerts {
            if !only_rules.is_empty() && !only_rules.iter().any(|rule| **rule == *alert.rule) {
                continue;
            }
            fired += 1;
            let payload = alert.to_json();
            let Some(rule) = config.rule(&alert.rule) else {
                continue;
            };
            for &index in &rule.sinks {
                let sink = &config.sinks[index];
                match runtime.block_on(send_with_retries(&sender, sink, &alert.id, &payload)) {
                    Ok(()) => {
                        sent += 1;
                        println!("{}: {} -> {}", path.display(), alert.rule, sink.name);
                    }
                    Err(message) => {
                        failed += 1;
                        eprintln!(
                            "{}: {} -> {}: failed: {message}",
                            path.display(),
                            alert.rule,
                            sink.name
                        );
                    }
                }
            }
        }
    }
    println!("{articles} article(s), {fired} alert(s), {sent} delivered, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} deliveries failed");
    }
    Ok(())
}

/// The article's publication day, or the file's modification day.
fn article_day(alerts: &[Alert], path: &std::path::Path) -> Option<NaiveDate> {
    let published = alerts
        .first()
        .and_then(|alert| alert.article.published.as_deref())
        .and_then(|date| parse_date(date).ok());
    published.or_else(|| {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        Some(chrono::DateTime::<chrono::Utc>::from(modified).date_naive())
    })
}

async fn send_with_retries(
    sender: &Sender,
    sink: &crate::config::SinkConfig,
    alert_id: &str,
    payload: &str,
) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match sender.send(sink, alert_id, payload).await {
            Ok(()) => return Ok(()),
            Err(SendError::Permanent(message) | SendError::SinkUnhealthy(message)) => {
                return Err(message)
            }
            Err(SendError::Retryable {
                message,
                retry_after,
            }) => {
                if attempt >= ATTEMPTS {
                    return Err(message);
                }
                let wait = backoff(attempt, sink.retry.max_backoff)
                    .max(retry_after.unwrap_or_default())
                    .min(MAX_WAIT);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}
