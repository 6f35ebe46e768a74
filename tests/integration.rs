//! End-to-end tests: the real `newswatch` binary, a real temp folder with
//! real inotify, a real SQLite file, and a real HTTP receiver on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use common::{rule_and_file, wait_until, Receiver, Workspace};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

fn config(receiver: &Receiver) -> String {
    format!(
        r#"
[watch]
dir = "articles"

[lists]
visit = ["visit*", "delegation", "talks", "arrived", "met", "hosted"]

[entities.minsk]
class = "place"
aliases = ["Minsk", "Минск*"]
not = ["Minsk agreements", "Minsk format"]

[entities.tor-m2]
class = "air-defense"
aliases = ["Tor-M2", "9K332"]

[entities.pantsir]
class = "air-defense"
aliases = ["Pantsir", "Pantsir-S1"]

[rules.tobruk]
description = "Tobruk is mentioned"
match = 'Tobruk'
sinks = ["siem", "archive"]

[rules.minsk-visit]
description = "A visit to Minsk"
match = 'entity:minsk NEAR/12 list:visit'

[rules.new-air-defense]
description = "An air-defense system not seen before"
match = 'class:air-defense'
first_seen = true
severity = "critical"

[sinks.siem]
type = "webhook"
url = "{hook}"
secret = "${{TEST_WEBHOOK_SECRET}}"

[sinks.team-slack]
type = "slack"
url = "${{TEST_SLACK_URL}}"

[sinks.archive]
type = "file"
dir = "alerts"
"#,
        hook = receiver.url("/hook"),
    )
}

const VISIT: &str = "Haftar in Minsk\n\nOn 18 February 2025 Field Marshal Khalifa Haftar’s delegation arrived in Minsk for talks. A Belarusian role at the Tobruk air base was discussed.\n";
const PARADE: &str = "LNA parade in Benghazi\n\nby Staff | May 26, 2025 | Defence\n\nThe parade showed the Tor\u{2011}M2 short-range air-defence system for the first time.\n";
const AGREEMENTS: &str = "Ukraine diplomacy\n\nThe Minsk agreements and the Minsk format came up again in talks in Geneva.\n";

fn verify_signature(request: &common::Request) {
    let id = &request.headers["webhook-id"];
    let timestamp = &request.headers["webhook-timestamp"];
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{timestamp}.{}", request.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(
        request.headers["webhook-signature"], expected,
        "signature of {}",
        request.body
    );
}

fn set(alerts: &[serde_json::Value]) -> BTreeSet<(String, String)> {
    alerts.iter().map(rule_and_file).collect()
}

fn pair(rule: &str, file: &str) -> (String, String) {
    (rule.to_string(), file.to_string())
}

/// The whole path, through a restart: renamed and slowly written articles
/// produce exactly the expected alerts at the webhook, at Slack and in the
/// file sink; `first_seen` and processed articles survive the restart; and
/// `newswatch test --json` prints the same alerts.
#[test]
fn articles_become_alerts_at_every_sink_and_a_restart_neither_realerts_nor_forgets() {
    let receiver = Receiver::start();
    let workspace = Workspace::new(&config(&receiver));
    let slack_url = receiver.url("/slack");
    let envs = [
        ("TEST_WEBHOOK_SECRET", SECRET),
        ("TEST_SLACK_URL", slack_url.as_str()),
    ];
    // An article already in the folder before the start is processed at start.
    std::fs::write(workspace.path("articles/a-visit.txt"), VISIT).expect("write");
    let daemon = workspace.start(&envs);

    workspace.drop_article("b-parade.txt", PARADE.as_bytes());
    assert!(
        wait_until(WAIT, || receiver.requests_to("/slack").len() == 2),
        "{}",
        daemon.log()
    );

    // A slow writer: three sessions of appending, 400 ms apart, no rename.
    let slow = workspace.path("articles/c-again.txt");
    let chunks = [
        "Tor-M2 again\n\nA second ",
        "TOR M2 battery was seen ",
        "near Tobruk on Friday.\n",
    ];
    for (index, chunk) in chunks.iter().enumerate() {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slow)
            .expect("open");
        file.write_all(chunk.as_bytes()).expect("append");
        drop(file);
        if index + 1 < chunks.len() {
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    workspace.drop_article("d-agreements.txt", AGREEMENTS.as_bytes());
    // Ignored names never become articles.
    std::fs::write(
        workspace.path("articles/.hidden.txt"),
        VISIT.replace("Haftar", "X"),
    )
    .expect("write");
    std::fs::write(workspace.path("articles/e.txt.part"), "Tobruk part").expect("write");

    assert!(
        wait_until(WAIT, || receiver.requests_to("/hook").len() >= 4),
        "{}",
        daemon.log()
    );
    // Give stray duplicates a chance to show up before counting exactly.
    std::thread::sleep(Duration::from_millis(1500));
    let hook: Vec<serde_json::Value> = receiver
        .requests_to("/hook")
        .iter()
        .map(|r| r.json())
        .collect();
    let slack = receiver.requests_to("/slack");
    let expected_hook = BTreeSet::from([
        pair("tobruk", "a-visit.txt"),
        pair("minsk-visit", "a-visit.txt"),
        pair("new-air-defense", "b-parade.txt"),
        pair("tobruk", "c-again.txt"),
    ]);
    assert_eq!(hook.len(), 4, "one request per alert: {hook:#?}");
    assert_eq!(set(&hook), expected_hook);

    // The slow writer's file was read once, on its final content.
    let final_content: String = chunks.concat();
    let again = hook
        .iter()
        .find(|a| rule_and_file(a) == pair("tobruk", "c-again.txt"))
        .expect("alert");
    assert_eq!(
        again["article"]["id"],
        blake3::hash(final_content.as_bytes()).to_hex().as_str()
    );

    // Webhook details: headers, signature, payload fields.
    for request in receiver.requests_to("/hook") {
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(
            request.headers["webhook-id"],
            request.json()["id"].as_str().expect("id")
        );
        verify_signature(&request);
    }
    let visit = hook
        .iter()
        .find(|a| rule_and_file(a) == pair("minsk-visit", "a-visit.txt"))
        .expect("alert");
    assert_eq!(visit["severity"], "warning");
    assert_eq!(visit["description"], "A visit to Minsk");
    assert_eq!(visit["article"]["title"], "Haftar in Minsk");
    assert_eq!(visit["article"]["published"], "2025-02-18");
    assert_eq!(visit["entities"], serde_json::json!(["minsk"]));
    for found in visit["matches"].as_array().expect("matches") {
        let (start, end) = (
            found["start"].as_u64().expect("start") as usize,
            found["end"].as_u64().expect("end") as usize,
        );
        assert_eq!(
            &VISIT[start..end],
            found["text"].as_str().expect("text"),
            "offsets are bytes of the file"
        );
    }
    assert!(visit["snippet"]
        .as_str()
        .expect("snippet")
        .contains("arrived in Minsk"));
    let parade = hook
        .iter()
        .find(|a| a["rule"] == "new-air-defense")
        .expect("alert");
    assert_eq!(parade["severity"], "critical");
    assert_eq!(parade["entities"], serde_json::json!(["tor-m2"]));
    assert_eq!(parade["matches"][0]["text"], "Tor\u{2011}M2");
    assert_eq!(parade["article"]["published"], "2025-05-26");

    // Slack got the two rules routed to every sink, as Block Kit with a fallback.
    let slack_rules: BTreeSet<String> = slack
        .iter()
        .map(|r| {
            r.json()["blocks"][0]["text"]["text"]
                .as_str()
                .expect("header")
                .to_string()
        })
        .collect();
    assert_eq!(
        slack_rules,
        BTreeSet::from([
            "🔴 new-air-defense".to_string(),
            "🟠 minsk-visit".to_string()
        ])
    );
    for request in &slack {
        assert!(
            request.json()["text"]
                .as_str()
                .expect("fallback")
                .contains("Minsk")
                || request.body.contains("Tor")
        );
    }

    // The file sink has the same alerts as the webhook, byte for byte in JSON.
    let filed = workspace.file_sink_alerts("alerts");
    assert_eq!(set(&filed), expected_hook);
    for alert in &hook {
        assert!(filed.contains(alert), "file sink lacks {alert}");
    }

    let status = daemon.stop();
    assert!(status.success(), "daemon exit status {status:?}");

    // `newswatch test --json` prints the same alerts (fired_at aside).
    let output = workspace.command_with_env(&["test", "--json", "articles"], &envs);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let strip = |alert: &serde_json::Value| {
        let mut alert = alert.clone();
        alert["fired_at"] = serde_json::Value::Null;
        alert
    };
    let mut printed: Vec<_> = printed.iter().map(strip).collect();
    let mut delivered: Vec<_> = hook.iter().map(strip).collect();
    // minsk-visit goes to Slack too, and is in the hook list: compare by id.
    printed.sort_by_key(|a| a["id"].to_string());
    delivered.sort_by_key(|a| a["id"].to_string());
    assert_eq!(printed, delivered);

    // Restart: nothing is re-sent; first_seen remembers Tor-M2 but not Pantsir.
    let daemon = workspace.start(&envs);
    workspace.drop_article(
        "f-tor-again.txt",
        b"Another Tor-M2 was filmed in Benghazi.\n",
    );
    workspace.drop_article(
        "g-pantsir.txt",
        b"A Pantsir-S1 battery was filmed in Sirte.\n",
    );
    assert!(
        wait_until(WAIT, || receiver.requests_to("/hook").len() >= 5),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let after: Vec<serde_json::Value> = receiver
        .requests_to("/hook")
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(after.len(), 5, "{after:#?}");
    assert_eq!(
        rule_and_file(&after[4]),
        pair("new-air-defense", "g-pantsir.txt")
    );
    assert_eq!(after[4]["entities"], serde_json::json!(["pantsir"]));
    assert!(daemon.stop().success());
}

/// A receiver that fails for a while gets the alert later, with the same
/// `webhook-id` every time; the URL's secret path never reaches the log.
#[test]
fn failed_deliveries_are_retried_with_the_same_id_and_urls_stay_out_of_logs() {
    let receiver = Receiver::start();
    receiver.answer_with(&[(500, &[]), (429, &[("Retry-After", "1")]), (503, &[])]);
    let config = format!(
        "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook/T0KEN-SECRET-PATH")
    );
    let workspace = Workspace::new(&config);
    let daemon = workspace.start(&[]);
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    assert!(
        wait_until(WAIT, || receiver.requests().len() >= 4),
        "{}",
        daemon.log()
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    let ids: BTreeSet<&str> = requests
        .iter()
        .map(|r| r.headers["webhook-id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "the same id on every retry");
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let log = daemon.log();
    assert!(log.contains("delivery failed, will retry"), "{log}");
    assert!(log.contains("alert delivered"), "{log}");
    assert!(
        !log.contains("T0KEN-SECRET-PATH"),
        "the URL leaked into the log:\n{log}"
    );
    assert!(daemon.stop().success());
}

/// Broken files are logged and skipped; the daemon keeps going.
#[test]
fn broken_files_are_skipped_and_the_daemon_keeps_going() {
    let receiver = Receiver::start();
    let config = format!(
        "[watch]\ndir = \"articles\"\nmax_file_size = \"1 KiB\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook")
    );
    let workspace = Workspace::new(&config);
    let mut daemon = workspace.start(&[]);
    workspace.drop_article("binary.txt", b"Tobruk\0\0\x01\x02");
    workspace.drop_article("empty.txt", b"");
    workspace.drop_article(
        "huge.txt",
        format!("Tobruk {}", "x".repeat(2000)).as_bytes(),
    );
    workspace.drop_article("bad.json", b"{\"title\": \"Tobruk\", ");
    // Windows-1252: 0x92 is a curly apostrophe.
    workspace.drop_article("cp1252.txt", b"Haftar\x92s visit to Tobruk\n");
    workspace.drop_article("good.md", "# Tobruk\n\nThe Tobruk air base.\n".as_bytes());
    assert!(
        wait_until(WAIT, || receiver.requests().len() >= 2),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(1000));
    let files: BTreeSet<String> = receiver
        .requests()
        .iter()
        .map(|r| rule_and_file(&r.json()).1)
        .collect();
    assert_eq!(
        files,
        BTreeSet::from(["cp1252.txt".to_string(), "good.md".to_string()])
    );
    let cp1252 = receiver
        .requests()
        .into_iter()
        .find(|r| r.body.contains("cp1252"))
        .expect("alert");
    assert!(cp1252.json()["snippet"]
        .as_str()
        .expect("snippet")
        .contains("Haftar’s"));
    assert!(daemon.is_running());
    let log = daemon.log();
    for needle in [
        "binary",
        "empty",
        "larger than the limit",
        "not valid UTF-8",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    assert!(daemon.stop().success());
}

/// `newswatch check` names file, line and column of every error and exits 78.
#[test]
fn check_reports_positions_and_exits_78() {
    let config = "[watch]\ndir = \"articles\"\n\n[entities.minsk]\naliases = [\"Minsk\"]\n\n[rules.a]\nmatch = 'entity:minks NEAR/12 Tobruk'\n\n[rules.b]\nmatch = 'Tobruk AND (Minsk'\n\n[rules.c]\nmatch = 'Tobruk'\nsinks = [\"archve\"]\n\n[sinks.archive]\ntype = \"file\"\n";
    let workspace = Workspace::new(config);
    let output = workspace.command(&["check"]);
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = [
        "config.toml:8:10: rule \"a\": unknown entity \"minks\" (did you mean \"minsk\"?)",
        "config.toml:11:21: rule \"b\": '(' is never closed",
        "config.toml:15:10: rule \"c\": unknown sink \"archve\" (did you mean \"archive\"?)",
    ];
    for line in expected {
        assert!(
            stderr.lines().any(|l| l == line),
            "missing {line:?} in:\n{stderr}"
        );
    }
    // A valid config passes.
    let workspace = Workspace::new("[watch]\ndir = \"articles\"\n\n[rules.a]\nmatch = 'Tobruk'\n");
    let output = workspace.command(&["check"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `newswatch test` shows each match in the context of the article's text,
/// which for an HTML file is the extracted text, not the markup around it.
#[test]
fn the_test_report_shows_html_matches_in_the_extracted_text() {
    let workspace =
        Workspace::new("[watch]\ndir = \"articles\"\n\n[rules.minsk]\nmatch = 'Minsk'\n");
    workspace.drop_article(
        "visit.html",
        b"<html><head><title>Visit</title></head><body><p>Haftar arrived in <b>Minsk</b> on Monday.</p></body></html>",
    );
    let output = workspace.command(&["test", "articles/visit.html"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains(": …Visit Haftar arrived in »Minsk« on Monday.…\n"),
        "{report}"
    );
}

/// The shipped config is valid and fires on the shipped seeds.
#[test]
fn the_shipped_config_checks_and_fires_on_the_seeds() {
    let root = env!("CARGO_MANIFEST_DIR");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["check", "-c", "config.toml"])
        .current_dir(root)
        .output()
        .expect("run");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let test = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["test", "--json", "-c", "config.toml", "seeds"])
        .current_dir(root)
        .output()
        .expect("run");
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&test.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let fired = set(&alerts);
    for expected in [
        pair("minsk-visit", "2025-02-18-haftar-minsk-visit.txt"),
        pair("tobruk", "2025-02-18-haftar-minsk-visit.txt"),
        pair("new-air-defense", "2025-05-26-lna-parade-benghazi.txt"),
    ] {
        assert!(fired.contains(&expected), "{expected:?} not in {fired:#?}");
    }
    // Negative cases the seeds were written for.
    let silent = [
        "2025-03-12-ukraine-ceasefire-minsk-format.txt",
        "2025-07-15-morning-briefing-tor-tornado.txt",
    ];
    for (rule, file) in &fired {
        assert!(!silent.contains(&file.as_str()), "{rule} fired on {file}");
    }
    // Tobruk appears only in reader comments or a related-articles list there.
    for file in [
        "2025-02-27-haftar-macron-paris.md",
        "2025-05-25-house-of-belarus-benghazi.txt",
    ] {
        assert!(
            !fired.contains(&pair("tobruk", file)),
            "tobruk fired on boilerplate in {file}"
        );
    }
    // Exactly the hand labels of tests/data/seeds_expected.json (precision and
    // recall 1.0; scripts/precision_recall.py prints the table).
    let labels: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/tests/data/seeds_expected.json")).expect("labels"),
    )
    .expect("labels are JSON");
    let mut expected = BTreeSet::new();
    for (file, rules) in labels["expected"].as_object().expect("object") {
        for rule in rules.as_array().expect("array") {
            expected.insert(pair(rule.as_str().expect("rule id"), file));
        }
    }
    assert_eq!(fired, expected, "seeds fire exactly the labelled rules");
    // Tor-M2 is named again on 30 May, but the air-defence alert fires once.
    assert_eq!(
        fired
            .iter()
            .filter(|(rule, _)| rule == "new-air-defense")
            .count(),
        1
    );
}

/// `newswatch test` over many files (several batches, read ahead on one
/// thread and recorded on another) records and prints them in name order:
/// `first_seen` fires on the first file only, and the alerts come file by
/// file.
#[test]
fn test_records_and_prints_the_files_in_order() {
    let workspace = Workspace::new(
        "[watch]\ndir = \"articles\"\n\n[entities.tobruk]\naliases = [\"Tobruk\"]\n\n\
         [rules.tobruk]\nmatch = \"entity:tobruk\"\n\n\
         [rules.tobruk-first]\nmatch = \"entity:tobruk\"\nfirst_seen = true\n",
    );
    for n in 0..300 {
        workspace.drop_article(
            &format!("report-{n:03}.txt"),
            format!("Report {n}\n\nShips were seen in Tobruk harbour on day {n}.\n").as_bytes(),
        );
    }
    let output = workspace.command(&["test", "--json", "articles"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let alerts: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let alert: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let path = alert["article"]["path"].as_str().expect("path");
            let rule = alert["rule"].as_str().expect("rule");
            (path.to_string(), rule.to_string())
        })
        .collect();
    let mut expected = vec![
        ("articles/report-000.txt".to_string(), "tobruk".to_string()),
        (
            "articles/report-000.txt".to_string(),
            "tobruk-first".to_string(),
        ),
    ];
    expected
        .extend((1..300).map(|n| (format!("articles/report-{n:03}.txt"), "tobruk".to_string())));
    assert_eq!(alerts, expected);
}

/// `newswatch test --json ... | head -1`: the reader leaving early ends the
/// run quietly, as with other command-line filters, not with an error.
#[test]
fn test_output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let workspace =
        Workspace::new("[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = \"Tobruk\"\n");
    // Far more output than a pipe holds, so the writes outlive the reader.
    for n in 0..400 {
        workspace.drop_article(
            &format!("report-{n:03}.txt"),
            format!("Report {n}\n\nShips were seen in Tobruk harbour on day {n}.\n").as_bytes(),
        );
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["test", "--json", "articles"])
        .current_dir(workspace.root.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run newswatch");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("read a line");
    assert!(first.contains("\"rule\":\"tobruk\""), "{first}");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("error"), "{stderr}");
}

/// A permanent failure becomes a dead letter that `newswatch outbox` shows
/// and `outbox retry` requeues; the next start delivers it, same id.
#[test]
fn dead_letters_are_listed_and_can_be_requeued() {
    let receiver = Receiver::start();
    receiver.answer_with(&[(404, &[])]);
    let config = format!(
        "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook")
    );
    let workspace = Workspace::new(&config);
    let daemon = workspace.start(&[]);
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    daemon.wait_for_log("kept as a dead letter");
    assert!(daemon.stop().success());
    assert_eq!(receiver.requests().len(), 1, "a 404 is not retried");

    let listed = workspace.command(&["outbox"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success());
    let row = stdout
        .lines()
        .find(|l| l.starts_with("dead"))
        .unwrap_or_else(|| panic!("no dead row in:\n{stdout}"));
    assert!(
        row.contains("siem")
            && row.contains("tobruk")
            && row.contains("receiver answered HTTP 404"),
        "{row}"
    );

    let retried = workspace.command(&["outbox", "retry", "--all"]);
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    assert!(String::from_utf8_lossy(&retried.stdout).contains("requeued 1"));

    let daemon = workspace.start(&[]);
    assert!(
        wait_until(WAIT, || receiver.requests().len() == 2),
        "{}",
        daemon.log()
    );
    let requests = receiver.requests();
    assert_eq!(
        requests[0].headers["webhook-id"],
        requests[1].headers["webhook-id"]
    );
    daemon.wait_for_log("alert delivered");
    assert!(daemon.stop().success());
    let listed = workspace.command(&["outbox"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("outbox is empty"));
}

fn webhook_config(receiver: &Receiver, extra_sink: &str) -> String {
    format!(
        "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"2s\"\n{extra_sink}",
        receiver.url("/hook")
    )
}

/// How many different alerts the receiver got (by `webhook-id`).
fn distinct_webhook_ids(receiver: &Receiver) -> usize {
    receiver
        .requests()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect::<BTreeSet<_>>()
        .len()
}

/// `kill -9` in the middle of a burst: after a restart every expected alert
/// arrives; deduplicated by `webhook-id` each arrives exactly once, and raw
/// duplicates are at most the one send that was in flight.
#[test]
fn a_crash_during_a_burst_loses_nothing_and_duplicates_at_most_the_send_in_flight() {
    const ARTICLES: usize = 2000;
    let receiver = Receiver::start();
    let workspace = Workspace::new(&webhook_config(&receiver, ""));
    let daemon = workspace.start(&[]);
    for index in 0..ARTICLES {
        workspace.drop_article(
            &format!("a{index:05}.txt"),
            format!("Report {index} on the Tobruk air base.\n").as_bytes(),
        );
        if index == ARTICLES / 2 {
            // Crash once deliveries are under way.
            assert!(
                wait_until(WAIT, || receiver.requests().len() >= 50),
                "{}",
                daemon.log()
            );
        }
    }
    daemon.kill_hard();
    let before_restart = receiver.requests().len();
    assert!(
        before_restart < ARTICLES,
        "the crash came too late to test anything"
    );

    let daemon = workspace.start(&[]);
    let distinct = || distinct_webhook_ids(&receiver);
    assert!(
        wait_until(Duration::from_secs(120), || distinct() == ARTICLES),
        "{} of {ARTICLES}\n{}",
        distinct(),
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let requests = receiver.requests();
    let files: BTreeSet<String> = requests
        .iter()
        .map(|r| rule_and_file(&r.json()).1)
        .collect();
    assert_eq!(files.len(), ARTICLES);
    assert!(
        requests.len() - ARTICLES <= 1,
        "{} raw duplicates",
        requests.len() - ARTICLES
    );
    assert!(daemon.stop().success());
}

/// `kill -9` while a send hangs, after the worker delivered twenty alerts
/// of its current window: those twenty are in its log of deliveries, not
/// yet marked in the database, and the next start marks them before
/// sending anything, so only the send in flight is made again.
#[test]
fn a_kill_re_sends_only_the_send_in_flight_not_the_logged_deliveries() {
    const ARTICLES: usize = 100;
    let receiver = Receiver::start();
    // The first send is refused for 2 s, time for every article to be
    // queued, so the next window holds them all; then twenty go through
    // and the twenty-first hangs.
    receiver.answer_with(&[(503, &[("Retry-After", "2")])]);
    for _ in 0..20 {
        receiver.answer_with(&[(200, &[])]);
    }
    // Shorter than the sink's 2 s timeout: the restarted daemon's first send
    // waits for this one's answer (the receiver answers one at a time).
    receiver.answer_after(Duration::from_millis(1500), 200, &[]);
    let workspace = Workspace::new(&webhook_config(&receiver, ""));
    for index in 0..ARTICLES {
        workspace.drop_article(
            &format!("a{index:03}.txt"),
            format!("Report {index} on the Tobruk air base.\n").as_bytes(),
        );
    }
    let daemon = workspace.start(&[]);
    assert!(
        wait_until(WAIT, || receiver.requests().len() == 22),
        "{}",
        daemon.log()
    );
    daemon.kill_hard();
    // `outbox` reads the log too: the twenty are not listed as pending.
    let listed = workspace.command(&["outbox"]);
    let pending = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|line| line.starts_with("pending"))
        .count();
    assert_eq!(pending, ARTICLES - 20);

    let daemon = workspace.start(&[]);
    let distinct = || distinct_webhook_ids(&receiver);
    assert!(
        wait_until(WAIT, || distinct() == ARTICLES),
        "{} of {ARTICLES}\n{}",
        distinct(),
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    // One per article, the refused first try, and the send in flight.
    assert_eq!(receiver.requests().len(), ARTICLES + 2);
    assert!(
        daemon.log().contains("deliveries=20"),
        "the start marked the logged deliveries:\n{}",
        daemon.log()
    );
    assert!(daemon.stop().success());
}

/// 20,000 files created while the daemon is stopped are all processed,
/// exactly once, when it starts.
#[test]
fn twenty_thousand_files_written_while_stopped_are_processed_exactly_once() {
    const FILES: usize = 20_000;
    let receiver = Receiver::start();
    let workspace = Workspace::new(&webhook_config(&receiver, ""));
    // Start once so the database exists, then stop.
    assert!(workspace.start(&[]).stop().success());
    for index in 0..FILES {
        // One article in 100 mentions Tobruk.
        let place = if index % 100 == 0 {
            "Tobruk"
        } else {
            "Benghazi"
        };
        std::fs::write(
            workspace.path(&format!("articles/n{index:05}.txt")),
            format!("Item {index} from {place}.\n"),
        )
        .expect("write");
    }
    let daemon = workspace.start(&[]);
    let db = rusqlite::Connection::open(workspace.path("state/newswatch.db")).expect("open db");
    let processed = || -> i64 {
        db.query_row("SELECT COUNT(*) FROM articles", [], |row| row.get(0))
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(180), || processed() == FILES as i64),
        "{} of {FILES} processed",
        processed()
    );
    assert!(
        wait_until(WAIT, || receiver.requests().len() >= FILES / 100),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.requests().len(), FILES / 100);
    let files: i64 = db
        .query_row("SELECT COUNT(*) FROM files", [], |row| row.get(0))
        .expect("count");
    assert_eq!(files, FILES as i64, "one file record each");
    assert!(daemon.stop().success());
    // A restart re-reads nothing.
    let daemon = workspace.start(&[]);
    daemon.wait_for_log("scanned the watched folder");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(processed(), FILES as i64);
    assert_eq!(receiver.requests().len(), FILES / 100);
    assert!(
        !daemon.log().contains("article processed"),
        "nothing is processed again"
    );
    assert!(daemon.stop().success());
}

/// A receiver that answers 500, then 429 with `Retry-After: 2`, then times
/// out, then recovers: every alert arrives, in order, and nothing is sent
/// before the receiver's `Retry-After` has passed.
#[test]
fn outages_errors_and_retry_after_are_ridden_out_in_order() {
    let receiver = Receiver::start();
    receiver.answer_with(&[(500, &[]), (429, &[("Retry-After", "2")])]);
    // Longer than the sink's 2 s timeout.
    receiver.answer_after(Duration::from_secs(3), 200, &[]);
    let workspace = Workspace::new(&webhook_config(&receiver, ""));
    let daemon = workspace.start(&[]);
    for name in ["a.txt", "b.txt", "c.txt"] {
        workspace.drop_article(
            name,
            format!("{name}: talks on the Tobruk air base.\n").as_bytes(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        wait_until(Duration::from_secs(60), || receiver.requests().len() >= 6),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let requests = receiver.requests();
    let files: Vec<String> = requests
        .iter()
        .map(|r| rule_and_file(&r.json()).1)
        .collect();
    // a.txt: 500, 429, timed out, delivered; then b.txt and c.txt.
    assert_eq!(
        files,
        ["a.txt", "a.txt", "a.txt", "a.txt", "b.txt", "c.txt"]
    );
    let after_429 = requests[2].at.duration_since(requests[1].at);
    assert!(
        after_429 >= Duration::from_secs(2),
        "retried {after_429:?} after a Retry-After of 2 s"
    );
    let log = daemon.log();
    assert!(
        log.contains("receiver answered HTTP 500") && log.contains("timed out"),
        "{log}"
    );
    assert!(daemon.stop().success());
}

/// A sink URL that `HTTP_PROXY` covers is posted through that proxy: the
/// request line names the whole URL, whose host only the proxy can reach.
#[test]
fn a_sink_behind_http_proxy_is_posted_through_the_proxy() {
    let proxy = Receiver::start();
    let config = "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"http://hooks.example.invalid/hook/T0KEN\"\n";
    let workspace = Workspace::new(config);
    let proxy_url = proxy.url("");
    let daemon = workspace.start(&[("HTTP_PROXY", proxy_url.as_str()), ("NO_PROXY", "")]);
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    assert!(
        wait_until(WAIT, || !proxy.requests().is_empty()),
        "{}",
        daemon.log()
    );
    let request = &proxy.requests()[0];
    assert_eq!(request.path, "http://hooks.example.invalid/hook/T0KEN");
    assert_eq!(rule_and_file(&request.json()), pair("tobruk", "a.txt"));
    assert!(request.headers.contains_key("webhook-id"), "{request:?}");
    assert!(daemon.stop().success());
}

/// A receiver that is down for the whole first run: the alert stays pending
/// across a restart and is delivered once the receiver is up.
#[test]
fn alerts_wait_across_a_restart_for_a_receiver_that_is_down() {
    let port = common::free_port();
    let config = format!(
        "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.siem]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    );
    let workspace = Workspace::new(&config);
    let daemon = workspace.start(&[]);
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    daemon.wait_for_log("connection failed");
    assert!(daemon.stop().success());
    let listed = workspace.command(&["outbox"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("pending") && l.contains("connection failed")),
        "{stdout}"
    );

    let receiver = Receiver::start_on(port);
    let daemon = workspace.start(&[]);
    assert!(
        wait_until(WAIT, || receiver.requests().len() == 1),
        "{}",
        daemon.log()
    );
    assert_eq!(
        rule_and_file(&receiver.requests()[0].json()),
        pair("tobruk", "a.txt")
    );
    assert!(daemon.stop().success());
}

/// A per-sink rate limit spaces requests out after the burst.
#[test]
fn the_rate_limit_spaces_out_a_burst() {
    let receiver = Receiver::start();
    let workspace = Workspace::new(&webhook_config(
        &receiver,
        "rate_limit = \"10/s\"\nburst = 2\n",
    ));
    let daemon = workspace.start(&[]);
    for index in 0..12 {
        workspace.drop_article(
            &format!("a{index:02}.txt"),
            format!("Item {index}: Tobruk.\n").as_bytes(),
        );
    }
    assert!(
        wait_until(WAIT, || receiver.requests().len() == 12),
        "{}",
        daemon.log()
    );
    let requests = receiver.requests();
    let spread = requests[11].at.duration_since(requests[0].at);
    // 2 at once, then 10 more at 10 per second: at least about 1 s.
    assert!(
        spread >= Duration::from_millis(900),
        "12 requests within {spread:?}"
    );
    assert!(daemon.stop().success());
}

/// A Slack hook that was revoked marks the sink unhealthy: its alerts stay
/// pending (not dead) until the hook works again.
#[test]
fn a_revoked_slack_hook_pauses_the_sink_and_keeps_its_alerts() {
    let receiver = Receiver::start();
    receiver.answer_with(&[(404, &[])]);
    let config = format!(
        "[watch]\ndir = \"articles\"\n\n[rules.tobruk]\nmatch = 'Tobruk'\n\n[sinks.team]\ntype = \"slack\"\nurl = \"{}\"\n",
        receiver.url("/services/T0/B0/REVOKED")
    );
    let workspace = Workspace::new(&config);
    let daemon = workspace.start(&[]);
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    daemon.wait_for_log("sink is unhealthy");
    assert!(daemon.stop().success());
    let stdout = String::from_utf8_lossy(&workspace.command(&["outbox"]).stdout).into_owned();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("pending") && l.contains("team")),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("dead")), "{stdout}");
}

/// The watched folder deleted and created again: the watch is re-armed and
/// files in the new folder are processed.
#[test]
fn a_deleted_and_recreated_folder_is_watched_again() {
    let receiver = Receiver::start();
    let workspace = Workspace::new(&webhook_config(&receiver, ""));
    let daemon = workspace.start(&[]);
    std::fs::remove_dir(workspace.path("articles")).expect("remove folder");
    daemon.wait_for_log("the watched folder is gone");
    std::fs::create_dir(workspace.path("articles")).expect("recreate folder");
    daemon.wait_for_log("watch re-armed");
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    assert!(
        wait_until(WAIT, || receiver.requests().len() == 1),
        "{}",
        daemon.log()
    );
    assert!(daemon.stop().success());
}

/// The retry policy is data: a sink's `max_age` turns a delivery that keeps
/// failing into a dead letter, and `max_backoff` caps the waits before that.
#[test]
fn a_delivery_failing_past_the_sinks_max_age_becomes_a_dead_letter() {
    let receiver = Receiver::start();
    for _ in 0..50 {
        receiver.answer_after(Duration::ZERO, 503, &[]);
    }
    let workspace = Workspace::new(&webhook_config(
        &receiver,
        "max_age = \"2s\"\nmax_backoff = \"300ms\"\n",
    ));
    let daemon = workspace.start(&[]);
    workspace.drop_article("a.txt", b"Talks on the Tobruk air base.\n");
    daemon.wait_for_log("delivery still failing after max_age; kept as a dead letter");
    let attempts = receiver.requests().len();
    // 2 s of retries at most 300 ms (+20 %) apart, after 500 ms and 1 s waits.
    assert!(attempts >= 4, "only {attempts} attempts within max_age");
    assert!(daemon.stop().success());
    let stdout = String::from_utf8_lossy(&workspace.command(&["outbox"]).stdout).into_owned();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("dead") && l.contains("HTTP 503")),
        "{stdout}"
    );
}

/// A sink with `digest` gets one message per period with every alert of
/// the period, instead of one per alert.
#[test]
fn a_digest_sink_gets_one_message_for_the_periods_alerts() {
    let receiver = Receiver::start();
    let workspace = Workspace::new(&webhook_config(&receiver, "digest = \"3s\"\n"));
    let daemon = workspace.start(&[]);
    for name in ["a.txt", "b.txt", "c.txt"] {
        workspace.drop_article(
            name,
            format!("{name}: talks on the Tobruk air base.\n").as_bytes(),
        );
    }
    assert!(
        wait_until(WAIT, || !receiver.requests().is_empty()),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "one digest, not one request per alert");
    let body = requests[0].json();
    assert_eq!(body["digest"]["count"], 3);
    assert_eq!(
        requests[0].headers["webhook-id"],
        body["digest"]["id"].as_str().expect("id")
    );
    let files: BTreeSet<String> = body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| rule_and_file(a).1)
        .collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "a.txt".to_string(),
            "b.txt".to_string(),
            "c.txt".to_string()
        ])
    );
    daemon.wait_for_log("digest delivered");
    assert!(daemon.stop().success());
    assert!(
        String::from_utf8_lossy(&workspace.command(&["outbox"]).stdout).contains("outbox is empty")
    );
}
