//! `newswatch outbox`: what has not been delivered yet (pending rows and
//! dead letters, oldest first), and `outbox retry [ID|--all]` to requeue dead
//! letters. Reads the daemon's database; safe while the daemon runs.

use anyhow::Context as _;

use crate::cli::OutboxAction;
use crate::config::Config;
use crate::state::{delivered, DeliveryStatus, Store};

pub fn run(config: &Config, action: Option<OutboxAction>) -> anyhow::Result<()> {
    let store = Store::open(&config.state_dir).with_context(|| {
        format!(
            "cannot open the state database in {}",
            config.state_dir.display()
        )
    })?;
    match action {
        None => list(config, &store),
        Some(OutboxAction::Retry { id, all }) => {
            if id.is_none() && !all {
                anyhow::bail!("name a delivery id (see `newswatch outbox`) or pass --all");
            }
            let count = store.requeue_dead(id.as_deref(), chrono::Utc::now().timestamp_millis())?;
            if count == 0 {
                anyhow::bail!("no dead letter matched");
            }
            println!("requeued {count} dead letter(s)");
            Ok(())
        }
    }
}

fn list(config: &Config, store: &Store) -> anyhow::Result<()> {
    let mut rows = store.undelivered()?;
    // A running daemon's sink workers mark their last few deliveries in
    // the database a moment later (a killed one's, at its next start).
    let delivered = delivered::logged(&config.state_dir)?;
    rows.retain(|row| !delivered.contains(&row.seq));
    if rows.is_empty() {
        println!("outbox is empty: every alert was delivered");
        return Ok(());
    }
    println!(
        "{:<8} {:<16} {:<24} {:<12} {:>8}  {:<45}  last error",
        "status", "sink", "rule", "article", "attempts", "id"
    );
    for row in &rows {
        let status = match row.status {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Delivered => "done",
        };
        println!(
            "{:<8} {:<16} {:<24} {:<12} {:>8}  {:<45}  {}",
            status,
            row.sink,
            row.rule,
            row.article_id.get(..12).unwrap_or(&row.article_id),
            row.attempts,
            row.id,
            row.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
