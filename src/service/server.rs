//! The optional HTTP server (`[server] listen`, loopback by default):
//! `/healthz` (the process answers), `/readyz` (the watch is armed, the
//! watched folder exists, the database takes writes, no sink is unhealthy)
//! and `/metrics` (Prometheus text format). Read-only: it never changes the
//! daemon's state, and its answers never contain a URL or a secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::metrics::Snapshot;
use super::reload::LiveConfig;
use super::Telemetry;
use crate::state::{OutboxCounts, Store};

/// How long `/readyz` waits for the database's write lock.
const WRITE_PROBE_WAIT: Duration = Duration::from_secs(2);

pub struct ServerState {
    pub config: LiveConfig,
    /// A connection of the server's own, for counts and the write probe.
    pub store: Mutex<Store>,
    pub telemetry: &'static Telemetry,
}

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, cancel: CancellationToken) {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(error) = result {
        warn!(error = %error, "the health and metrics server stopped");
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Every reason the daemon is not ready; empty when it is.
fn readiness_problems(state: &ServerState, database: Result<(), String>) -> Vec<String> {
    let mut problems = Vec::new();
    let config = state.config.load();
    if !state.telemetry.health.watch_armed() {
        problems.push("the folder watch is not armed".to_string());
    }
    if !config.watch.dir.is_dir() {
        problems.push(format!(
            "the watched folder {} does not exist",
            config.watch.dir.display()
        ));
    }
    if let Err(error) = database {
        problems.push(format!("the database does not take writes: {error}"));
    }
    for (sink, reason) in state.telemetry.health.unhealthy_sinks() {
        if config.sinks.iter().any(|s| s.name == sink) {
            problems.push(format!("sink \"{sink}\" is unhealthy: {reason}"));
        }
    }
    problems
}

async fn readyz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let probe_state = state.clone();
    let database = tokio::task::spawn_blocking(move || match probe_state.store.lock() {
        Ok(store) => store
            .probe_writable(WRITE_PROBE_WAIT)
            .map_err(|e| e.to_string()),
        Err(_) => Err("connection unusable".to_string()),
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let problems = readiness_problems(&state, database);
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        let mut body = String::from("not ready\n");
        for problem in problems {
            body.push_str(&format!("- {problem}\n"));
        }
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let count_state = state.clone();
    let counts: Option<OutboxCounts> = tokio::task::spawn_blocking(move || {
        count_state
            .store
            .lock()
            .ok()
            .and_then(|store| store.outbox_counts().ok())
    })
    .await
    .ok()
    .flatten();
    let config = state.config.load();
    let health = &state.telemetry.health;
    let unhealthy = health.unhealthy_sinks();
    let snapshot = Snapshot {
        pending: counts.map(|c| c.pending),
        dead: counts.map(|c| c.dead),
        watch_armed: health.watch_armed(),
        sinks: config
            .sinks
            .iter()
            .map(|sink| {
                let healthy = !unhealthy.iter().any(|(name, _)| *name == sink.name);
                (sink.name.clone(), healthy)
            })
            .collect(),
        rules: config.rules.len(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.telemetry.metrics.render(&snapshot),
    )
}
