//! Delivering one alert to one sink, once: a webhook POST (signed per
//! Standard Webhooks when the sink has a secret), a Slack incoming-webhook
//! POST, or a line appended to the file sink's JSON Lines file. The outcome
//! says whether a retry can help; retrying is the worker's job.
//!
//! Never puts a URL or a secret into an error: reqwest errors are stripped
//! of their URL before they are formatted.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::alert::payload::Alert;
use crate::alert::slack::{slack_digest, slack_message};
use crate::config::{Secret, SinkConfig, SinkKind};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (timeouts, connection errors, 408, 429, 5xx).
    #[error("{message}")]
    Retryable {
        message: String,
        /// The receiver's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (other 4xx, a redirect, an unreadable alert).
    #[error("{0}")]
    Permanent(String),
    /// The sink itself is broken (a revoked Slack hook, an archived or
    /// deleted channel): every delivery to it will fail until someone fixes
    /// it, so the sink pauses and its deliveries stay pending.
    #[error("{0}")]
    SinkUnhealthy(String),
}

/// Sends alerts; one per daemon, shared by every sink worker.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new() -> Result<Sender, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("newswatch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { client })
    }

    /// Delivers `payload` (the JSON of alert `alert_id`) to `sink`.
    pub async fn send(
        &self,
        sink: &SinkConfig,
        alert_id: &str,
        payload: &str,
    ) -> Result<(), SendError> {
        match &sink.kind {
            SinkKind::File { dir } => append_line(dir, payload).await,
            SinkKind::Webhook { url, secret } => {
                self.post_webhook(sink, url, secret.as_ref(), alert_id, payload)
                    .await
            }
            SinkKind::Slack { url } => {
                let alert: Alert = parse(payload)?;
                self.post_slack(sink, url, slack_message(&alert).to_string())
                    .await
            }
        }
    }

    /// Delivers one digest of `payloads` (alert JSONs, oldest first) covering
    /// `from`..`to`. Webhooks get `{"digest": {...}, "alerts": [...]}` with
    /// a `webhook-id` derived from the alert ids; Slack gets one message.
    pub async fn send_digest(
        &self,
        sink: &SinkConfig,
        payloads: &[String],
        from: &str,
        to: &str,
    ) -> Result<(), SendError> {
        let alerts: Vec<Alert> = payloads
            .iter()
            .map(|p| parse(p))
            .collect::<Result<_, _>>()?;
        match &sink.kind {
            SinkKind::Slack { url } => {
                self.post_slack(sink, url, slack_digest(&alerts, from, to).to_string())
                    .await
            }
            SinkKind::Webhook { url, secret } => {
                let mut hasher = blake3::Hasher::new();
                for alert in &alerts {
                    hasher.update(alert.id.as_bytes());
                    hasher.update(b"\0");
                }
                let id = format!("digest-{}", &hasher.finalize().to_hex()[..32]);
                let body = serde_json::json!({
                    "digest": {"id": id, "from": from, "to": to, "count": alerts.len()},
                    "alerts": alerts,
                })
                .to_string();
                self.post_webhook(sink, url, secret.as_ref(), &id, &body)
                    .await
            }
            SinkKind::File { dir } => {
                for payload in payloads {
                    append_line(dir, payload).await?;
                }
                Ok(())
            }
        }
    }

    async fn post_webhook(
        &self,
        sink: &SinkConfig,
        url: &Secret,
        secret: Option<&Secret>,
        id: &str,
        body: &str,
    ) -> Result<(), SendError> {
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .post(url.expose())
            .timeout(sink.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(secret) = secret {
            request = request.header("webhook-signature", sign(secret, id, timestamp, body));
        }
        let response = request
            .body(body.to_string())
            .send()
            .await
            .map_err(transport_error)?;
        check_status(response.status(), response.headers())?;
        Ok(())
    }

    async fn post_slack(
        &self,
        sink: &SinkConfig,
        url: &Secret,
        body: String,
    ) -> Result<(), SendError> {
        let response = self
            .client
            .post(url.expose())
            .timeout(sink.timeout)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if slack_hook_is_broken(status.as_u16(), &text) {
            return Err(SendError::SinkUnhealthy(format!(
                "slack answered {}: {} (the hook was revoked or its channel archived or deleted)",
                status.as_u16(),
                short(&text)
            )));
        }
        check_status(status, &headers).map_err(|error| with_body(error, &text))?;
        if text.trim() != "ok" {
            return Err(SendError::Permanent(format!(
                "slack answered {}: {}",
                status.as_u16(),
                short(&text)
            )));
        }
        Ok(())
    }
}

/// Slack's answers that mean the hook itself no longer works.
fn slack_hook_is_broken(status: u16, body: &str) -> bool {
    const BROKEN: [&str; 6] = [
        "channel_not_found",
        "channel_is_archived",
        "no_service",
        "no_service_id",
        "invalid_token",
        "action_prohibited",
    ];
    matches!(status, 403 | 404 | 410) || BROKEN.iter().any(|error| body.trim() == *error)
}

fn parse(payload: &str) -> Result<Alert, SendError> {
    serde_json::from_str(payload)
        .map_err(|error| SendError::Permanent(format!("stored alert is not valid: {error}")))
}

/// Standard Webhooks signature: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).
/// A `whsec_` secret is base64 after the prefix; any other secret is used as raw bytes.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &str) -> String {
    let raw = secret.expose();
    let key = match raw.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|_| encoded.as_bytes().to_vec()),
        None => raw.as_bytes().to_vec(),
    };
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{signature}")
}

fn transport_error(error: reqwest::Error) -> SendError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let error = error.without_url();
    SendError::Retryable {
        message: format!("{kind}: {}", error_chain(&error)),
        retry_after: None,
    }
}

/// The error and its sources, joined; reqwest's own message is terse.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

fn check_status(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), SendError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(());
    }
    if code == 408 || code == 429 || status.is_server_error() {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, chrono::Utc::now()));
        return Err(SendError::Retryable {
            message: format!("receiver answered HTTP {code}"),
            retry_after,
        });
    }
    if status.is_redirection() {
        return Err(SendError::Permanent(format!(
            "receiver answered HTTP {code} (a redirect; newswatch does not follow redirects, fix the sink URL)"
        )));
    }
    Err(SendError::Permanent(format!(
        "receiver answered HTTP {code}"
    )))
}

/// `Retry-After`: delay-seconds, or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT").
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delay = date.with_timezone(&chrono::Utc) - now;
    Some(delay.to_std().unwrap_or(Duration::ZERO))
}

fn with_body(error: SendError, body: &str) -> SendError {
    match error {
        SendError::Retryable {
            message,
            retry_after,
        } => SendError::Retryable {
            message: format!("{message}: {}", short(body)),
            retry_after,
        },
        SendError::Permanent(message) => {
            SendError::Permanent(format!("{message}: {}", short(body)))
        }
        unhealthy @ SendError::SinkUnhealthy(_) => unhealthy,
    }
}

fn short(text: &str) -> String {
    let trimmed = text.trim();
    match trimmed.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

/// Appends the alert as one line to `dir/YYYY-MM-DD.jsonl` (UTC day of `fired_at`).
async fn append_line(dir: &Path, payload: &str) -> Result<(), SendError> {
    let alert: Alert = parse(payload)?;
    let day = alert.fired_at.get(..10).unwrap_or("undated");
    let retryable = |action: &str, error: std::io::Error| SendError::Retryable {
        message: format!("cannot {action} in {}: {error}", dir.display()),
        retry_after: None,
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| retryable("create the folder", e))?;
    let path = dir.join(format!("{day}.jsonl"));
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(|e| retryable("open the alerts file", e))?;
    let mut line = payload.trim_end().to_string();
    line.push('\n');
    file.write_all(line.as_bytes())
        .await
        .map_err(|e| retryable("write the alerts file", e))?;
    file.sync_data()
        .await
        .map_err(|e| retryable("sync the alerts file", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let flipped = r#"{"test": 2432232315}"#;
        assert_ne!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, flipped),
            signature
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:50Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn broken_slack_hooks_are_recognised() {
        assert!(slack_hook_is_broken(404, "no_service"));
        assert!(slack_hook_is_broken(410, ""));
        assert!(slack_hook_is_broken(403, "invalid_token"));
        assert!(slack_hook_is_broken(400, "channel_is_archived"));
        assert!(!slack_hook_is_broken(400, "invalid_payload"));
        assert!(!slack_hook_is_broken(500, "rollup_error"));
    }

    #[test]
    fn statuses_are_classified_for_retry() {
        let empty = reqwest::header::HeaderMap::new();
        let status =
            |code| check_status(reqwest::StatusCode::from_u16(code).expect("valid"), &empty);
        assert_eq!(status(200), Ok(()));
        assert_eq!(status(204), Ok(()));
        for code in [408, 429, 500, 502, 503] {
            assert!(
                matches!(status(code), Err(SendError::Retryable { .. })),
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 410] {
            assert!(
                matches!(status(code), Err(SendError::Permanent(_))),
                "{code}"
            );
        }
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("header"));
        let error = check_status(reqwest::StatusCode::TOO_MANY_REQUESTS, &headers);
        assert_eq!(
            error,
            Err(SendError::Retryable {
                message: "receiver answered HTTP 429".to_string(),
                retry_after: Some(Duration::from_secs(2))
            })
        );
    }
}
