//! Shared helpers for the integration tests: a real HTTP receiver on
//! 127.0.0.1, the real `newswatch` binary on a temp folder, and polling.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    /// When the request had been read completely.
    pub at: Instant,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

/// A scripted answer: status, extra headers, and how long to wait first.
type Answer = (u16, Vec<(String, String)>, Duration);

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every request and
/// answers with scripted statuses (then 200 "ok").
pub struct Receiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    /// Starts on a given port (0: any free one).
    pub fn start_on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (seen, answers) = (requests.clone(), script.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let (status, headers, delay) = answers
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or((200, Vec::new(), Duration::ZERO));
                seen.lock().expect("lock").push(request);
                std::thread::sleep(delay);
                let body = if status == 200 { "ok" } else { "error" };
                let mut response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(body);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Receiver {
            port,
            requests,
            script,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next requests get these statuses (with headers), in order.
    pub fn answer_with(&self, statuses: &[(u16, &[(&str, &str)])]) {
        for (status, headers) in statuses {
            self.answer_after(Duration::ZERO, *status, headers);
        }
    }

    /// The next request is answered with `status`, but only after `delay`.
    pub fn answer_after(&self, delay: Duration, status: u16, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.script
            .lock()
            .expect("lock")
            .push_back((status, headers, delay));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        at: Instant::now(),
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A temp folder with config.toml, a watched `articles/` folder and an
/// `incoming/` folder to write files before renaming them in.
pub struct Workspace {
    pub root: tempfile::TempDir,
}

impl Workspace {
    pub fn new(config: &str) -> Workspace {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("articles")).expect("mkdir");
        std::fs::create_dir(root.path().join("incoming")).expect("mkdir");
        std::fs::write(root.path().join("config.toml"), config).expect("write config");
        Workspace { root }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    pub fn config(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// Writes `incoming/NAME` then renames it into `articles/` (atomic arrival).
    pub fn drop_article(&self, name: &str, content: &[u8]) {
        let staging = self.path("incoming").join(name);
        std::fs::write(&staging, content).expect("write");
        std::fs::rename(&staging, self.path("articles").join(name)).expect("rename");
    }

    /// Runs `newswatch ARGS` to completion in the workspace.
    pub fn command(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_newswatch"))
            .args(args)
            .current_dir(self.root.path())
            .env("RUST_LOG", "info")
            .output()
            .expect("run newswatch")
    }

    /// Runs `newswatch ARGS` to completion with extra environment variables.
    pub fn command_with_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_newswatch"));
        command
            .args(args)
            .current_dir(self.root.path())
            .env("RUST_LOG", "info");
        for (name, value) in envs {
            command.env(name, value);
        }
        command.output().expect("run newswatch")
    }

    /// Starts the daemon on this workspace's config.
    pub fn start(&self, envs: &[(&str, &str)]) -> Daemon {
        let log_path = self.path(&format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_newswatch"));
        command
            .args(["run", "-c", "config.toml"])
            .current_dir(self.root.path())
            .env("RUST_LOG", "info,newswatch=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in envs {
            command.env(name, value);
        }
        let child = command.spawn().expect("start daemon");
        let daemon = Daemon { child, log_path };
        daemon.wait_for_log("newswatch is watching");
        daemon
    }

    /// The file sink's lines, parsed, over every day file.
    pub fn file_sink_alerts(&self, dir: &str) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.path(dir)) else {
            return lines;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(file).expect("read alerts");
            for line in text.lines() {
                lines.push(serde_json::from_str(line).expect("JSON line"));
            }
        }
        lines
    }
}

/// The running daemon; stopped with SIGTERM when dropped.
pub struct Daemon {
    child: Child,
    pub log_path: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str) {
        let found = wait_until(Duration::from_secs(30), || self.log().contains(needle));
        assert!(found, "daemon log never said {needle:?}:\n{}", self.log());
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.child.wait().expect("wait")
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGKILL: no chance to clean up, like a crash or power loss.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(rule, file name)` of an alert body, for set comparisons.
pub fn rule_and_file(alert: &serde_json::Value) -> (String, String) {
    let rule = alert["rule"].as_str().expect("rule").to_string();
    let path = alert["article"]["path"].as_str().expect("path");
    let name = Path::new(path)
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    (rule, name)
}

/// A loopback port with nothing listening on it (for a receiver that is down).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
