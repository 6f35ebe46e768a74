//! Delivering one alert to one sink, once: a webhook POST (signed per
//! Standard Webhooks when the sink has a secret), a Slack incoming-webhook
//! POST, or a line appended to the file sink's JSON Lines file. The outcome
//! says whether a retry can help; retrying is the worker's job.
//!
//! A POST goes straight through hyper: one pool of keep-alive connections
//! shared by every sink, HTTP/1.1, TLS by rustls with the Mozilla roots. A
//! URL that a proxy variable covers (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, less `NO_PROXY`) goes through reqwest, which speaks to
//! proxies. reqwest's own layers (URL parsing, redirect and retry policies,
//! proxy matching) cost ~20 µs of CPU per POST, about as much as the POST
//! itself on loopback.
//!
//! Never puts a URL or a secret into an error: reqwest errors are stripped
//! of their URL before they are formatted, and hyper's never carry it.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use hyper::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::alert::payload::Alert;
use crate::alert::slack::{slack_digest, slack_message};
use crate::config::{Secret, SinkConfig, SinkKind};

const AGENT: &str = concat!("newswatch/", env!("CARGO_PKG_VERSION"));
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// The most of an answer's body that is read: Slack answers with a word,
/// and a webhook's body only matters for keeping its connection.
const MAX_ANSWER: usize = 64 * 1024;

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

/// What a receiver answered.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends alerts; one per daemon, shared by every sink worker.
pub struct Sender {
    /// Direct connections, kept alive between POSTs. Redirects are never
    /// followed.
    direct: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The proxy variables, read once at start like reqwest reads them.
    proxies: Matcher,
    /// For the URLs a proxy variable covers.
    proxied: reqwest::Client,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl Sender {
    /// The HTTP clients, and the proxy variables as they are now.
    pub fn new() -> anyhow::Result<Sender> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // https:// URLs reach the TLS layer around it.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let direct = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        let proxied = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(AGENT)
            .build()?;
        Ok(Sender {
            direct,
            proxies: Matcher::from_env(),
            proxied,
        })
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
        let mut headers = json_headers();
        headers.insert(WEBHOOK_ID, header_value(&WEBHOOK_ID, id)?);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        if let Some(secret) = secret {
            let signature = sign(secret, id, timestamp, body);
            headers.insert(
                WEBHOOK_SIGNATURE,
                header_value(&WEBHOOK_SIGNATURE, &signature)?,
            );
        }
        let answer = self
            .post(url, sink.timeout, headers, body.to_string())
            .await?;
        check_status(answer.status, &answer.headers)
    }

    async fn post_slack(
        &self,
        sink: &SinkConfig,
        url: &Secret,
        body: String,
    ) -> Result<(), SendError> {
        let answer = self.post(url, sink.timeout, json_headers(), body).await?;
        let status = answer.status;
        let text = String::from_utf8_lossy(&answer.body);
        if slack_hook_is_broken(status.as_u16(), &text) {
            return Err(SendError::SinkUnhealthy(format!(
                "slack answered {}: {} (the hook was revoked or its channel archived or deleted)",
                status.as_u16(),
                short(&text)
            )));
        }
        check_status(status, &answer.headers).map_err(|error| with_body(error, &text))?;
        if text.trim() != "ok" {
            return Err(SendError::Permanent(format!(
                "slack answered {}: {}",
                status.as_u16(),
                short(&text)
            )));
        }
        Ok(())
    }

    /// POSTs `body` to `url` within `timeout` and reads the answer: over a
    /// direct connection, or through reqwest when a proxy variable covers
    /// the URL.
    async fn post(
        &self,
        url: &Secret,
        timeout: Duration,
        mut headers: HeaderMap,
        body: String,
    ) -> Result<Answer, SendError> {
        let (uri, authorization) = parse_uri(url)?;
        if self.proxies.intercept(&uri).is_some() {
            return self.post_proxied(url, timeout, headers, body).await;
        }
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        let mut request = hyper::Request::post(uri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| SendError::Permanent(format!("cannot build the request: {error}")))?;
        *request.headers_mut() = headers;
        let deadline = tokio::time::Instant::now() + timeout;
        let response = match tokio::time::timeout_at(deadline, self.direct.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(direct_error(&error)),
            Err(_) => {
                return Err(SendError::Retryable {
                    message: format!("timed out after {} ms", timeout.as_millis()),
                    retry_after: None,
                })
            }
        };
        let (parts, body) = response.into_parts();
        // The status is the answer. The body is read (to the end, so that
        // the connection can be used again) while the time lasts; one that
        // cannot be read, or not in time, changes nothing.
        let body = match tokio::time::timeout_at(deadline, Limited::new(body, MAX_ANSWER).collect())
            .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        };
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    async fn post_proxied(
        &self,
        url: &Secret,
        timeout: Duration,
        headers: HeaderMap,
        body: String,
    ) -> Result<Answer, SendError> {
        let mut response = self
            .proxied
            .post(url.expose())
            .timeout(timeout)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ANSWER {
                break;
            }
        }
        Ok(Answer {
            status,
            headers,
            body: Bytes::from(body),
        })
    }
}

/// `content-type` and `user-agent` of every POST.
fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
    headers
}

/// `value` as the value of header `name`. The value is not quoted in the
/// error: a signature is derived from the secret.
fn header_value(name: &HeaderName, value: &str) -> Result<HeaderValue, SendError> {
    HeaderValue::from_str(value)
        .map_err(|_| SendError::Permanent(format!("the {name} cannot be sent as a header value")))
}

/// The sink's URL as hyper takes it, and the `Authorization` header its
/// user and password ask for. `check` accepted it as a URL; one that hyper
/// does not take as written (a non-ASCII host, a space) or that carries a
/// user is normalised as reqwest does it: the user and password, decoded,
/// become basic authentication and leave the URL.
fn parse_uri(url: &Secret) -> Result<(Uri, Option<HeaderValue>), SendError> {
    if let Ok(uri) = url.expose().parse::<Uri>() {
        if !uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Ok((uri, None));
        }
    }
    let invalid = || SendError::Permanent("the sink URL is not a valid URL".to_string());
    let mut parsed = reqwest::Url::parse(url.expose()).map_err(|_| invalid())?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(parsed.username());
    let password = parsed.password().map(decode);
    let authorization = if user.is_empty() && password.is_none() {
        None
    } else {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let credentials = format!("{user}:{}", password.unwrap_or_default());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        let mut value =
            HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| invalid())?;
        value.set_sensitive(true);
        Some(value)
    };
    let uri = parsed.as_str().parse::<Uri>().map_err(|_| invalid())?;
    Ok((uri, authorization))
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

/// A direct POST's error. hyper's errors name neither the URL nor the
/// host.
fn direct_error(error: &hyper_util::client::legacy::Error) -> SendError {
    let kind = if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    SendError::Retryable {
        message: format!("{kind}: {}", error_chain(error)),
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

fn check_status(status: StatusCode, headers: &HeaderMap) -> Result<(), SendError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(());
    }
    if code == 408 || code == 429 || status.is_server_error() {
        let retry_after = headers
            .get(RETRY_AFTER)
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
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A keep-alive HTTP/1.1 server on 127.0.0.1 that answers every
    /// request with 200 "ok".
    struct KeepAliveServer {
        address: std::net::SocketAddr,
        connections: Arc<AtomicUsize>,
        /// The head (request line and headers) of every request, lowercased.
        heads: Arc<Mutex<Vec<String>>>,
    }

    impl KeepAliveServer {
        fn start() -> KeepAliveServer {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("addr");
            let connections = Arc::new(AtomicUsize::new(0));
            let heads = Arc::new(Mutex::new(Vec::new()));
            let (accepted, seen) = (connections.clone(), heads.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let seen = seen.clone();
                    std::thread::spawn(move || serve(stream, &seen));
                }
            });
            KeepAliveServer {
                address,
                connections,
                heads,
            }
        }

        fn heads(&self) -> Vec<String> {
            self.heads.lock().expect("lock").clone()
        }
    }

    fn serve(mut stream: std::net::TcpStream, heads: &Mutex<Vec<String>>) {
        fn more(stream: &mut std::net::TcpStream, buffer: &mut Vec<u8>) -> bool {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    buffer.extend_from_slice(&chunk[..n]);
                    true
                }
            }
        }
        let mut buffer = Vec::new();
        loop {
            // One whole request: its head, then its body.
            let head_end = loop {
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                if !more(&mut stream, &mut buffer) {
                    return;
                }
            };
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            while buffer.len() < head_end + length {
                if !more(&mut stream, &mut buffer) {
                    return;
                }
            }
            buffer.drain(..head_end + length);
            heads.lock().expect("lock").push(head);
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    }

    /// A listener on a free port of 127.0.0.1, and the URL `scheme://` its
    /// address and `path`.
    fn listen(scheme: &str, path: &str) -> (TcpListener, Secret) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("{scheme}://{}{path}", listener.local_addr().expect("addr"));
        (listener, Secret::new(url))
    }

    #[tokio::test]
    async fn direct_posts_share_one_kept_alive_connection() {
        let server = KeepAliveServer::start();
        let url = Secret::new(format!("http://{}/hook/T0KEN", server.address));
        let sender = Sender::new().expect("sender");
        for n in 0..3 {
            let answer = sender
                .post(
                    &url,
                    Duration::from_secs(5),
                    json_headers(),
                    format!("{{\"n\":{n}}}"),
                )
                .await
                .expect("answered");
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(&answer.body[..], b"ok");
        }
        assert_eq!(server.heads().len(), 3);
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    /// A user and password in the URL are sent as basic authentication
    /// (decoded, as reqwest and curl do) and stay out of the request line
    /// and the `Host` header.
    #[tokio::test]
    async fn a_user_and_password_in_the_url_become_basic_authentication() {
        let server = KeepAliveServer::start();
        let url = Secret::new(format!("http://si%40em:pa%3Ass@{}/hook", server.address));
        let sender = Sender::new().expect("sender");
        let answer = sender
            .post(&url, Duration::from_secs(5), json_headers(), "{}".into())
            .await
            .expect("answered");
        assert_eq!(answer.status, StatusCode::OK);
        let heads = server.heads();
        let head = heads.first().expect("one request");
        let expected = base64::engine::general_purpose::STANDARD.encode("si@em:pa:ss");
        assert!(head.starts_with("post /hook http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!(
                "authorization: basic {}\r\n",
                expected.to_ascii_lowercase()
            )),
            "{head}"
        );
        assert!(
            head.contains(&format!("host: {}\r\n", server.address)),
            "{head}"
        );
        assert!(
            !head.contains("pa%3ass") && !head.contains("si%40em"),
            "{head}"
        );
    }

    /// The message of a retryable failure; panics, naming `what`, on an
    /// answer or any other error.
    fn retryable_message(result: Result<Answer, SendError>, what: &str) -> String {
        match result {
            Err(SendError::Retryable { message, .. }) => message,
            Err(other) => panic!("{what} must be a retryable failure, not {other:?}"),
            Ok(answer) => panic!("{what} must be a retryable failure, not {}", answer.status),
        }
    }

    #[tokio::test]
    async fn a_receiver_that_does_not_answer_times_out_and_a_closed_port_fails_to_connect() {
        let (_silent, silent_url) = listen("http", "/hook/T0KEN");
        let (closed, closed_url) = listen("http", "/hook/T0KEN");
        drop(closed);
        let sender = Sender::new().expect("sender");
        let timeout = Duration::from_millis(300);
        let silent = sender
            .post(&silent_url, timeout, json_headers(), "{}".into())
            .await;
        let message = retryable_message(silent, "a silent receiver");
        assert_eq!(message, "timed out after 300 ms");
        let closed = sender
            .post(&closed_url, timeout, json_headers(), "{}".into())
            .await;
        let message = retryable_message(closed, "a closed port");
        assert!(message.starts_with("connection failed: "), "{message}");
        assert!(
            !message.contains("T0KEN") && !message.contains("/hook"),
            "{message}"
        );
    }

    /// A receiver that accepts (2xx) but never finishes its body has still
    /// accepted: the alert is delivered, not sent again.
    #[tokio::test]
    async fn an_accepting_answer_whose_body_stalls_is_a_delivery() {
        let (listener, url) = listen("http", "/hook");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).expect("read");
            stream
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 10\r\n\r\nok")
                .expect("write");
            // Hold the connection open with the body unfinished.
            std::thread::sleep(Duration::from_secs(2));
        });
        let sender = Sender::new().expect("sender");
        let answer = sender
            .post(
                &url,
                Duration::from_millis(300),
                json_headers(),
                "{}".into(),
            )
            .await
            .expect("a 202 is an answer");
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        drop(server);
    }

    /// An `https://` URL is spoken to in TLS (with the Mozilla roots, so the
    /// plain-HTTP answer of this server is refused, and retried later).
    #[tokio::test]
    async fn https_urls_are_spoken_to_in_tls() {
        let (listener, url) = listen("https", "/hook/T0KEN");
        let first_byte = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).expect("read");
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            byte[0]
        });
        let sender = Sender::new().expect("sender");
        let result = sender
            .post(&url, Duration::from_secs(5), json_headers(), "{}".into())
            .await;
        // 0x16: a TLS handshake record (the ClientHello).
        assert_eq!(first_byte.join().expect("server"), 0x16);
        let message = retryable_message(result, "a plain-HTTP answer to TLS");
        assert!(!message.contains("T0KEN"), "{message}");
    }

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
        let empty = HeaderMap::new();
        let status = |code| check_status(StatusCode::from_u16(code).expect("valid"), &empty);
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
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().expect("header"));
        let error = check_status(StatusCode::TOO_MANY_REQUESTS, &headers);
        assert_eq!(
            error,
            Err(SendError::Retryable {
                message: "receiver answered HTTP 429".to_string(),
                retry_after: Some(Duration::from_secs(2))
            })
        );
    }
}
