//! Running as a service, end to end with the real binary: systemd
//! notifications through a fake `NOTIFY_SOCKET`, live config reloads,
//! `/healthz`, `/readyz` and `/metrics`, log formats, and the commands
//! `send-test`, `replay`, `completions` and `--version`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_until, Receiver, Workspace};

const WAIT: Duration = Duration::from_secs(30);

/// The daemon started with extra arguments and environment; SIGTERM on drop.
struct Service {
    child: Child,
    log_path: PathBuf,
}

impl Service {
    fn start(workspace: &Workspace, args: &[&str], envs: &[(&str, &str)]) -> Service {
        let log_path = workspace.path("daemon.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_newswatch"));
        command
            .args(args)
            .args(["run", "-c", "config.toml"])
            .current_dir(workspace.root.path())
            .env("RUST_LOG", "info,newswatch=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in envs {
            command.env(name, value);
        }
        Service {
            child: command.spawn().expect("start daemon"),
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        let found = wait_until(WAIT, || self.log().contains(needle));
        assert!(found, "daemon log never said {needle:?}:\n{}", self.log());
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The address of the health and metrics server, from the log.
    fn server_address(&self) -> String {
        self.wait_for_log("serving /healthz");
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("serving /healthz"))
            .expect("line");
        let start = line.find("address=").expect("address") + "address=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("addr")
            .to_string()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None))
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fake systemd: a Unix datagram socket that records every message.
struct FakeSystemd {
    path: PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl FakeSystemd {
    fn start(workspace: &Workspace) -> FakeSystemd {
        let path = workspace.path("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let seen = messages.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0; 4096];
            while let Ok(n) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                seen.lock().expect("lock").push(text);
            }
        });
        FakeSystemd { path, messages }
    }

    fn socket(&self) -> String {
        self.path.display().to_string()
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }

    /// Index of the first message at or after `from` with a line `line`.
    fn find(&self, from: usize, line: &str) -> Option<usize> {
        self.messages()
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, m)| m.lines().any(|l| l == line))
            .map(|(i, _)| i)
    }

    fn wait_for(&self, from: usize, line: &str) -> usize {
        let mut found = None;
        wait_until(WAIT, || {
            found = self.find(from, line);
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "systemd never got {line:?} after message {from}: {:#?}",
                self.messages()
            )
        })
    }
}

/// GET `path` from `address`: (status, body).
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

const RULES: &str = r#"
[watch]
dir = "articles"

[rules.tobruk]
match = 'Tobruk'

[sinks.archive]
type = "file"
dir = "alerts"
"#;

fn fired(workspace: &Workspace, rule: &str, file: &str) -> bool {
    workspace
        .file_sink_alerts("alerts")
        .iter()
        .any(|a| common::rule_and_file(a) == (rule.to_string(), file.to_string()))
}

/// READY=1 comes only once the folder is watched (a file dropped right after
/// it is processed), with a STATUS line; WATCHDOG=1 keeps coming; a SIGHUP
/// is bracketed by RELOADING=1 and READY=1; SIGTERM sends STOPPING=1.
#[test]
fn systemd_is_told_ready_watchdog_reloading_and_stopping() {
    let workspace = Workspace::new(RULES);
    let systemd = FakeSystemd::start(&workspace);
    let socket = systemd.socket();
    // A 600 ms watchdog: a WATCHDOG=1 is due every 300 ms.
    let service = Service::start(
        &workspace,
        &[],
        &[
            ("NOTIFY_SOCKET", socket.as_str()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );
    let ready = systemd.wait_for(0, "READY=1");
    workspace.drop_article(
        "right-after-ready.txt",
        b"Port\n\nTobruk harbour was busy.\n",
    );
    assert!(
        wait_until(WAIT, || fired(
            &workspace,
            "tobruk",
            "right-after-ready.txt"
        )),
        "{}",
        service.log()
    );
    let status = systemd.messages()[ready].clone();
    assert!(
        status.contains("STATUS=watching articles/, 1 rule, 0 pending deliveries"),
        "{status}"
    );
    assert!(
        systemd.messages()[..ready]
            .iter()
            .all(|m| !m.contains("WATCHDOG=1")),
        "no watchdog ping before READY"
    );

    // Several watchdog pings (the pipeline answers each heartbeat).
    assert!(wait_until(WAIT, || systemd
        .messages()
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
        >= 3));

    let before_reload = systemd.messages().len();
    service.signal("-HUP");
    let reloading = systemd.wait_for(before_reload, "RELOADING=1");
    assert!(systemd.messages()[reloading].contains("MONOTONIC_USEC="));
    systemd.wait_for(reloading + 1, "READY=1");
    service.wait_for_log("config reloaded");

    let before_stop = systemd.messages().len();
    let exit = service.stop();
    assert!(exit.success(), "clean exit: {exit:?}");
    systemd.wait_for(before_stop, "STOPPING=1");
}

/// Saving config.toml with a new rule makes the next article fire it; a
/// broken save keeps the old rules running, names line and column, and
/// shows in /metrics; settings fixed at start are reported, not applied.
#[test]
fn saved_config_edits_apply_live_and_broken_ones_change_nothing() {
    let with_server = format!("{RULES}\n[server]\nlisten = \"127.0.0.1:0\"\n");
    let workspace = Workspace::new(&with_server);
    let service = Service::start(&workspace, &[], &[]);
    let address = service.server_address();
    service.wait_for_log("newswatch is watching");

    // Add a rule, and try to move the watched folder (needs a restart).
    let added = with_server
        .replace("dir = \"articles\"", "dir = \"elsewhere\"")
        .replace(
            "[sinks.archive]",
            "[rules.benghazi]\nmatch = 'Benghazi'\n\n[sinks.archive]",
        );
    std::fs::write(workspace.config(), &added).expect("save config");
    service.wait_for_log("config reloaded");
    assert!(
        service.log().contains("restart required"),
        "{}",
        service.log()
    );
    workspace.drop_article("one.txt", b"East\n\nBenghazi and Tobruk.\n");
    assert!(
        wait_until(WAIT, || fired(&workspace, "benghazi", "one.txt")
            && fired(&workspace, "tobruk", "one.txt")),
        "{}",
        service.log()
    );

    // A broken save: an unknown rule field on line 8 and a bad expression.
    let broken = added.replace("match = 'Benghazi'", "match = 'Benghazi AND'");
    let line = broken
        .lines()
        .position(|l| l.contains("Benghazi AND"))
        .expect("line")
        + 1;
    std::fs::write(workspace.config(), &broken).expect("save config");
    service.wait_for_log("config reload failed");
    let log = service.log();
    assert!(
        log.contains(&format!("config.toml:{line}:")),
        "the error names line {line}:\n{log}"
    );
    workspace.drop_article("two.txt", b"East\n\nBenghazi again, then Tobruk.\n");
    assert!(
        wait_until(WAIT, || fired(&workspace, "benghazi", "two.txt")
            && fired(&workspace, "tobruk", "two.txt")),
        "the old rules keep firing: {}",
        service.log()
    );

    let (status, metrics) = get(&address, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric(&metrics, "newswatch_config_last_reload_successful"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "newswatch_config_reloads_total{result=\"failure\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "newswatch_config_reloads_total{result=\"success\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "newswatch_articles_processed_total"),
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "newswatch_alerts_fired_total{rule=\"benghazi\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "newswatch_match_duration_seconds_count"),
        Some(2.0)
    );
    assert!(
        wait_until(WAIT, || metric(
            &get(&address, "/metrics").1,
            "newswatch_deliveries_total{sink=\"archive\",outcome=\"delivered\"}"
        ) == Some(4.0)),
        "{}",
        get(&address, "/metrics").1
    );
    assert_eq!(
        metric(&get(&address, "/metrics").1, "newswatch_outbox_pending"),
        Some(0.0)
    );
}

/// /readyz turns 503 when a sink fails permanently or the watched folder
/// disappears, and 200 again when the sink delivers and the folder is back.
#[test]
fn readyz_follows_sink_health_and_the_watched_folder() {
    let receiver = Receiver::start();
    let config = format!(
        "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n",
        receiver.url("/hook")
    );
    let workspace = Workspace::new(&config);
    let service = Service::start(&workspace, &[], &[]);
    let address = service.server_address();
    service.wait_for_log("newswatch is watching");
    assert_eq!(get(&address, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(&address, "/readyz").0, 200);

    receiver.answer_with(&[(410, &[])]);
    workspace.drop_article("a.txt", b"A\n\nTobruk.\n");
    assert!(
        wait_until(WAIT, || get(&address, "/readyz").0 == 503),
        "{}",
        service.log()
    );
    let (_, body) = get(&address, "/readyz");
    assert!(body.contains("sink \"siem\" is unhealthy"), "{body}");
    assert!(!body.contains("127.0.0.1"), "no URL in /readyz: {body}");
    assert_eq!(
        metric(
            &get(&address, "/metrics").1,
            "newswatch_sink_up{sink=\"siem\"}"
        ),
        Some(0.0)
    );

    workspace.drop_article("b.txt", b"B\n\nTobruk again.\n");
    assert!(
        wait_until(WAIT, || get(&address, "/readyz").0 == 200),
        "{}",
        service.log()
    );

    std::fs::remove_dir_all(workspace.path("articles")).expect("remove folder");
    let (status, body) = get(&address, "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("does not exist"), "{body}");
    std::fs::create_dir(workspace.path("articles")).expect("mkdir");
    assert!(
        wait_until(WAIT, || get(&address, "/readyz").0 == 200),
        "{}",
        get(&address, "/readyz").1
    );
}

/// `--log-format json` writes one JSON object per line, with one line per
/// article (file, id, rules fired, time taken); under journald
/// (`JOURNAL_STREAM` names stderr) text lines carry no timestamp.
#[test]
fn logs_are_json_on_request_and_without_timestamps_under_journald() {
    use std::os::unix::fs::MetadataExt as _;
    let workspace = Workspace::new(RULES);
    let service = Service::start(&workspace, &["--log-format", "json"], &[]);
    service.wait_for_log("newswatch is watching");
    workspace.drop_article("a.txt", b"A\n\nTobruk.\n");
    service.wait_for_log("article processed");
    drop(service);
    let log = std::fs::read_to_string(workspace.path("daemon.log")).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let article = lines
        .iter()
        .find(|l| l["fields"]["message"] == "article processed")
        .expect("article line");
    assert!(article["timestamp"].is_string());
    assert!(article["fields"]["file"]
        .as_str()
        .expect("file")
        .ends_with("a.txt"));
    assert_eq!(article["fields"]["rules"], "[\"tobruk\"]");
    assert!(article["fields"]["took_us"].is_u64());
    assert_eq!(article["fields"]["id"].as_str().map(str::len), Some(12));

    // JOURNAL_STREAM names the log file the daemon's stderr goes to.
    let workspace = Workspace::new(RULES);
    std::fs::File::create(workspace.path("daemon.log")).expect("create");
    let stat = std::fs::metadata(workspace.path("daemon.log")).expect("stat");
    let stream = format!("{}:{}", stat.dev(), stat.ino());
    // Service::start truncates the same file, keeping device and inode.
    let service = Service::start(&workspace, &[], &[("JOURNAL_STREAM", stream.as_str())]);
    service.wait_for_log("newswatch is watching");
    let line = service
        .log()
        .lines()
        .find(|l| l.contains("newswatch is watching"))
        .expect("line")
        .to_string();
    assert!(
        line.trim_start().starts_with("INFO"),
        "no timestamp: {line}"
    );
}

#[test]
fn send_test_sends_a_marked_alert_to_the_named_sink() {
    let receiver = Receiver::start();
    let config = format!(
        "[watch]\ndir = \"articles\"\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"{}\"\n\n[sinks.archive]\ntype = \"file\"\ndir = \"alerts\"\n",
        receiver.url("/hook")
    );
    let workspace = Workspace::new(&config);
    let output = workspace.command(&["send-test", "siem"]);
    assert!(output.status.success(), "{output:?}");
    let requests = receiver.requests_to("/hook");
    assert_eq!(requests.len(), 1);
    let alert = requests[0].json();
    assert_eq!(alert["rule"], "newswatch-send-test");
    assert!(alert["description"]
        .as_str()
        .expect("text")
        .contains("TEST ALERT"));
    assert_eq!(
        requests[0].headers["webhook-id"],
        alert["id"].as_str().expect("id")
    );
    assert!(
        workspace.file_sink_alerts("alerts").is_empty(),
        "only the named sink"
    );

    receiver.answer_with(&[(404, &[])]);
    let refused = workspace.command(&["send-test", "siem"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refused") && !stderr.contains("/hook"),
        "{stderr}"
    );

    let typo = workspace.command(&["send-test", "archiv"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean \"archive\""));
}

/// `replay` delivers the current rules' alerts for old articles, only from
/// `--since` on, and only for the `--rule`s named.
#[test]
fn replay_delivers_alerts_for_old_articles_since_a_date() {
    let config = format!("{RULES}\n[rules.benghazi]\nmatch = 'Benghazi'\n");
    let workspace = Workspace::new(&config);
    let old = workspace.path("old");
    std::fs::create_dir(&old).expect("mkdir");
    std::fs::write(
        old.join("1.txt"),
        "Before\n\nPublished 2024-01-10. Tobruk and Benghazi.\n",
    )
    .expect("write");
    std::fs::write(
        old.join("2.txt"),
        "After\n\nPublished 2025-03-01. Tobruk and Benghazi.\n",
    )
    .expect("write");
    let output = workspace.command(&[
        "replay",
        "--since",
        "2025-01-01",
        "--rule",
        "benghazi",
        "old",
    ]);
    assert!(output.status.success(), "{output:?}");
    let alerts = workspace.file_sink_alerts("alerts");
    let pairs: Vec<_> = alerts.iter().map(common::rule_and_file).collect();
    assert_eq!(pairs, [("benghazi".to_string(), "2.txt".to_string())]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 delivered, 0 failed"));

    let bad = workspace.command(&["replay", "--since", "January", "old"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn version_and_shell_completions_need_no_config() {
    let workspace = Workspace::new("not a config");
    let version = workspace.command(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("newswatch {}", env!("CARGO_PKG_VERSION"))
    );
    let bash = workspace.command(&["completions", "bash"]);
    assert!(bash.status.success(), "{bash:?}");
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_newswatch") && script.contains("send-test") && script.contains("replay")
    );
}

/// The packaged files exist and fit together: the Debian package's assets,
/// its default config (valid, absolute paths), and a unit that waits for
/// READY=1, has a watchdog, checks the config before a reload and is
/// sandboxed. `.ci/run` runs `systemd-analyze verify` on it too.
#[test]
fn the_debian_package_and_the_unit_fit_together() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("TOML");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    for asset in assets {
        let source = asset[0].as_str().expect("source");
        if !source.starts_with("target/") {
            assert!(root.join(source).is_file(), "{source} is missing");
        }
    }
    let targets: Vec<&str> = assets
        .iter()
        .map(|a| a[1].as_str().expect("target"))
        .collect();
    assert!(targets.contains(&"usr/bin/"));
    assert!(targets.contains(&"etc/newswatch/config.toml"));
    assert_eq!(
        deb["conf-files"][0].as_str(),
        Some("/etc/newswatch/config.toml")
    );
    let scripts = deb["maintainer-scripts"]
        .as_str()
        .expect("maintainer-scripts");
    let postinst = std::fs::read_to_string(root.join(scripts).join("postinst")).expect("postinst");
    assert!(postinst.contains("#DEBHELPER#"));
    let units = deb["systemd-units"]["unit-scripts"]
        .as_str()
        .expect("unit-scripts");
    let unit = std::fs::read_to_string(root.join(units).join("newswatch.service")).expect("unit");

    let workspace = Workspace::new("");
    let config = root.join("deploy/config.toml");
    let check = workspace.command(&["check", "-c", config.to_str().expect("utf-8")]);
    assert!(check.status.success(), "{check:?}");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("dir = \"/var/lib/newswatch/inbox\""));

    let directives: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    for line in [
        "Type=notify",
        "WatchdogSec=30",
        "ExecReload=/usr/bin/newswatch check -c /etc/newswatch/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/newswatch run -c /etc/newswatch/config.toml",
        "DynamicUser=yes",
        "StateDirectory=newswatch newswatch/inbox",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(directives.contains(&line), "the unit lacks {line}");
    }
    assert!(unit.contains("LoadCredential="));
}
