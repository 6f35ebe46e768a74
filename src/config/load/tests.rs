//! Config validation as data: a config text and the exact diagnostics.

use super::*;

const FILE: &str = "config.toml";

fn env(name: &str) -> Option<String> {
    match name {
        "SLACK_WEBHOOK_URL" => {
            Some("https://hooks.slack.com/services/T0/B0/SECRETTOKEN".to_string())
        }
        "BAD_URL" => Some("not a url SECRETTOKEN".to_string()),
        _ => None,
    }
}

fn errors(source: &str) -> Vec<String> {
    match load_str(Path::new(FILE), source, &env) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

const BASE: &str = r#"
[watch]
dir = "seeds"

[lists]
visit = ["visit*", "delegation", "talks"]

[entities.minsk]
class = "place"
aliases = ["Minsk", "Минск"]
not = ["Minsk agreements"]

[entities.tor-m2]
class = "air-defense"
aliases = ["Tor-M2"]
"#;

#[test]
fn a_valid_config_loads_with_defaults() {
    let source = format!(
        "{BASE}\n[rules.minsk-visit]\nmatch = 'entity:minsk NEAR/12 list:visit'\n\n[rules.tobruk]\nmatch = 'Tobruk'\nseverity = \"critical\"\n"
    );
    let config = load_str(Path::new("conf/config.toml"), &source, &env).expect("valid");
    assert_eq!(config.watch.dir, Path::new("conf/seeds"));
    assert_eq!(config.watch.extensions, ["txt", "md", "html", "json"]);
    assert_eq!(config.watch.max_file_size, 16 * 1024 * 1024);
    assert_eq!(config.state_dir, Path::new("conf/state"));
    let ids: Vec<&str> = config.rules.iter().map(|r| &*r.id).collect();
    assert_eq!(
        ids,
        ["minsk-visit", "tobruk"],
        "file order, not alphabetical"
    );
    assert_eq!(
        &*config.rules[0].description,
        "entity:minsk NEAR/12 list:visit"
    );
    assert_eq!(config.rules[1].severity, Severity::Critical);
    assert_eq!(config.sinks.len(), 1);
    assert!(
        matches!(&config.sinks[0].kind, SinkKind::File { dir } if dir == Path::new("conf/alerts"))
    );
    assert_eq!(config.rules[0].sinks, [0]);
}

#[test]
fn errors_name_line_and_column() {
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{BASE}\n[rules.x]\nmatch = 'entity:minks NEAR/12 list:visit'\n"),
            vec!["config.toml:18:10: rule \"x\": unknown entity \"minks\" (did you mean \"minsk\"?)"],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'Tobruk AND (Minsk'\n"),
            vec!["config.toml:18:21: rule \"x\": '(' is never closed"],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'Tobruk AND /(\\w{{100}}){{100}}/'\n"),
            vec!["config.toml:18:21: rule \"x\": regex is too large: it compiles to more than 512 KiB; make it simpler"],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'Tobruk OR /Tor-(M2/'\n"),
            vec!["config.toml:18:20: rule \"x\": invalid regex: unclosed group"],
        ),
        (
            format!("{BASE}\n[entities.x]\naliases = [\"Karankevich\"]\nfuzzy = 3\n"),
            vec!["config.toml:19:9: entity \"x\": fuzzy must be 0, 1 or 2 (edits per word), not 3"],
        ),
        (
            // Compile errors, placed after the strings moved into the rule
            // set's input.
            format!("{BASE}\n[entities.x]\naliases = [\"X-ray\", \"--\"]\nnot = [\"...\"]\n"),
            vec![
                "config.toml:18:21: entity \"x\": alias \"--\" has no letters or digits",
                "config.toml:19:8: entity \"x\": not context \"...\" has no letters or digits",
            ],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'count(Tobruk) >= x'\n"),
            vec!["config.toml:18:27: rule \"x\": expected a whole number after the comparison, not \"x\""],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'Tobruk'\nseverty = \"info\"\n"),
            vec!["config.toml:19:1: unknown field `severty`, expected one of `description`, `match`, `severity`, `sinks`, `first_seen`, `throttle`, `throttle_by`, `threshold`, `on_duplicate`"],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'Tobruk'\nsinks = [\"archve\"]\n\n[sinks.archive]\ntype = \"file\"\n"),
            vec!["config.toml:19:10: rule \"x\": unknown sink \"archve\" (did you mean \"archive\"?)"],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'Tobruk'\nfirst_seen = true\n"),
            vec!["config.toml:19:14: rule \"x\": first_seen needs an entity: or class: term in the match expression"],
        ),
        (
            format!("{BASE}\n[rules.x]\nmatch = 'class:air-defence'\n"),
            vec!["config.toml:18:10: rule \"x\": no entity has class \"air-defence\" (did you mean \"air-defense\"?)"],
        ),
        (
            format!("{BASE}\n[sinks.team]\ntype = \"slack\"\nurl = \"${{MISSING_VAR}}\"\n"),
            vec!["config.toml:19:7: sink \"team\": `url`: environment variable MISSING_VAR is not set"],
        ),
        (
            format!("{BASE}\n[sinks.team]\ntype = \"slack\"\nurl = \"${{BAD_URL}}\"\n"),
            vec!["config.toml:19:7: sink \"team\": url is not a valid http:// or https:// URL"],
        ),
        (
            format!("{BASE}\n[sinks.team]\ntype = \"pager\"\n"),
            vec!["config.toml:18:8: sink \"team\": unknown type \"pager\" (expected \"slack\", \"webhook\" or \"file\")"],
        ),
        (
            format!("{BASE}\n[sinks.a]\ntype = \"file\"\nurl = \"http://x\"\n"),
            vec!["config.toml:19:7: sink \"a\": `url` is not allowed for a file sink"],
        ),
        (
            "[watch]\ndir = \"seeds\"\nmax_file_size = \"16 MiBs\"\n".to_string(),
            vec!["config.toml:3:17: invalid size unit \"mibs\" in \"16 MiBs\": use B, kB, KiB, MB, MiB, GB or GiB"],
        ),
        (
            "[watch\ndir = 1\n".to_string(),
            vec!["config.toml:1:7: unclosed table, expected `]`"],
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(errors(&source), expected, "config:\n{source}");
    }
}

#[test]
fn a_misspelt_key_is_placed_wherever_its_table_is_read() {
    // [entities] and [rules] are read on two threads, the rest on a third;
    // of several such errors, the first in the file is reported.
    let entity = "[entities.x]\naliases = [\"X\"]\nfuzzzy = 1\n";
    let rule = "[rules.y]\nmatch = 'Tobruk'\nseverty = \"info\"\n";
    let state = "[state]\ndirr = \"s\"\n";
    let entity_error =
        "unknown field `fuzzzy`, expected one of `class`, `aliases`, `not`, `fuzzy`, `translit`";
    let rule_error = "unknown field `severty`, expected one of `description`, `match`, `severity`, `sinks`, `first_seen`, `throttle`, `throttle_by`, `threshold`, `on_duplicate`";
    let state_error = "unknown field `dirr`, expected `dir`";
    for (parts, expected) in [
        (
            [entity, rule, state],
            format!("config.toml:19:1: {entity_error}"),
        ),
        (
            [rule, entity, state],
            format!("config.toml:19:1: {rule_error}"),
        ),
        (
            [state, rule, entity],
            format!("config.toml:18:1: {state_error}"),
        ),
    ] {
        let source = format!("{BASE}\n{}\n{}\n{}", parts[0], parts[1], parts[2]);
        assert_eq!(errors(&source), [expected], "config:\n{source}");
    }
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let source =
        format!("{BASE}\n[rules.a]\nmatch = 'entity:nope'\n\n[rules.b]\nmatch = 'list:nope'\n");
    assert_eq!(errors(&source).len(), 2);
}

#[test]
fn secrets_never_appear_in_errors_and_are_read_from_the_environment() {
    let source = format!("{BASE}\n[sinks.team]\ntype = \"slack\"\nurl = \"${{BAD_URL}}\"\n");
    for message in errors(&source) {
        assert!(!message.contains("SECRETTOKEN"), "{message}");
    }
    let source =
        format!("{BASE}\n[sinks.team]\ntype = \"slack\"\nurl = \"${{SLACK_WEBHOOK_URL}}\"\n");
    let config = load_str(Path::new(FILE), &source, &env).expect("valid");
    let SinkKind::Slack { url } = &config.sinks[0].kind else {
        panic!("expected a slack sink");
    };
    assert!(url.expose().ends_with("SECRETTOKEN"));
    assert_eq!(
        config.sinks[0].rate_limit,
        Some(RateLimit {
            period: Duration::from_secs(1),
            burst: 3
        }),
        "Slack's default limit"
    );
    assert!(!format!("{config:?}").contains("SECRETTOKEN"));
}

#[test]
fn retry_policy_and_rate_limit_are_per_sink_data() {
    let source = format!(
        "{BASE}\n[sinks.siem]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nmax_age = \"2h\"\nmax_backoff = \"30s\"\nrate_limit = \"30/m\"\nburst = 1\n\n[sinks.archive]\ntype = \"file\"\n"
    );
    let config = load_str(Path::new(FILE), &source, &env).expect("valid");
    let siem = &config.sinks[0];
    assert_eq!(
        siem.retry,
        RetryPolicy {
            max_age: Duration::from_secs(7200),
            max_backoff: Duration::from_secs(30)
        }
    );
    assert_eq!(
        siem.rate_limit,
        Some(RateLimit {
            period: Duration::from_secs(2),
            burst: 1
        })
    );
    assert_eq!(config.sinks[1].retry, RetryPolicy::default());
    assert_eq!(config.sinks[1].rate_limit, None);
    let zero = format!("{BASE}\n[sinks.a]\ntype = \"file\"\nmax_age = \"0s\"\n");
    assert_eq!(
        errors(&zero),
        ["config.toml:19:11: sink \"a\": a duration of zero is not allowed here"]
    );
}

#[test]
fn url_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hook"), "http://127.0.0.1:9/hook\n").expect("write");
    let source = format!("{BASE}\n[sinks.siem]\ntype = \"webhook\"\nurl_file = \"hook\"\n");
    let config = load_str(&dir.path().join("config.toml"), &source, &env).expect("valid");
    let SinkKind::Webhook { url, secret } = &config.sinks[0].kind else {
        panic!("expected a webhook sink");
    };
    assert_eq!(url.expose(), "http://127.0.0.1:9/hook");
    assert!(secret.is_none());
}

#[test]
fn sizes_and_durations_parse() {
    assert_eq!(parse_size("16 MiB"), Ok(16 << 20));
    assert_eq!(parse_size("500kB"), Ok(500_000));
    assert_eq!(parse_size("1024"), Ok(1024));
    assert!(parse_size("lots").is_err());
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("soon").is_err());
    assert_eq!(parse_rate("1/s"), Ok(Some(Duration::from_secs(1))));
    assert_eq!(parse_rate("30/m"), Ok(Some(Duration::from_secs(2))));
    assert_eq!(parse_rate("off"), Ok(None));
    assert!(parse_rate("0/s").is_err());
    assert!(parse_rate("fast").is_err());
}
