//! `newswatch send-test SINK`: sends one clearly marked test alert straight
//! to a sink (not through the outbox), to check a Slack hook, a webhook
//! receiver or a file sink's folder. Reports the receiver's answer; the URL
//! is never printed.

use std::sync::Arc;

use anyhow::Context as _;

use crate::alert::payload::{Alert, ArticleRef, Severity};
use crate::alert::send::{SendError, Sender};
use crate::config::Config;
use crate::pipeline::fired_at_now;
use crate::rules::ruleset::did_you_mean;

/// The `rule` of every test alert, so receivers can filter them out.
pub const TEST_RULE: &str = "newswatch-send-test";

/// A test alert: rule [`TEST_RULE`], severity info, a fresh id each time
/// (so a deduplicating receiver shows every test).
pub fn test_alert(fired_at: &str) -> Alert {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Alert {
        id: format!("test-{nanos:x}"),
        rule: TEST_RULE.into(),
        description: "TEST ALERT from newswatch send-test: no rule fired, nothing to do".into(),
        severity: Severity::Info,
        article: Arc::new(ArticleRef {
            id: "0".repeat(64),
            path: "(newswatch send-test)".to_string(),
            title: Some("newswatch test alert".to_string()),
            published: None,
        }),
        entities: Vec::new(),
        matches: Vec::new(),
        snippet: "This is a test alert sent by `newswatch send-test` to check that this sink receives alerts. It is not about any article.".to_string(),
        fired_at: fired_at.into(),
        duplicate_of: None,
        articles: Vec::new(),
    }
}

pub fn run(config: &Config, sink_name: &str) -> anyhow::Result<()> {
    let Some(sink) = config.sinks.iter().find(|s| s.name == sink_name) else {
        anyhow::bail!(
            "unknown sink \"{sink_name}\"{} (sinks: {})",
            did_you_mean(sink_name, config.sinks.iter().map(|s| s.name.as_str())),
            config
                .sinks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let alert = test_alert(&fired_at_now());
    let payload = alert.to_json();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sender = Sender::new().context("cannot create the HTTP client")?;
    match runtime.block_on(sender.send(sink, &alert.id, &payload)) {
        Ok(()) => {
            println!(
                "sent a test alert to sink \"{}\" ({}): id {}",
                sink.name,
                sink.kind.type_name(),
                alert.id
            );
            Ok(())
        }
        Err(SendError::Retryable { message, .. }) => anyhow::bail!(
            "sink \"{}\" did not take the test alert (a retry might work): {message}",
            sink.name
        ),
        Err(SendError::Permanent(message)) => {
            anyhow::bail!("sink \"{}\" refused the test alert: {message}", sink.name)
        }
        Err(SendError::SinkUnhealthy(message)) => anyhow::bail!(
            "sink \"{}\" is broken (fix the hook or channel, then try again): {message}",
            sink.name
        ),
    }
}
