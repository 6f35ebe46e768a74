//! Rule tests: the `[[tests]]` of config.toml, run on every load that must
//! be valid (`newswatch check`, `run`, `test`). A test reads its article the
//! way the daemon does (same reader, same boilerplate blanking, fresh state,
//! so `first_seen` rules fire on a first sighting) and checks which rules
//! fire. A failure names the test's place in the file and explains, term by
//! term, why the rule did or did not fire.
//!
//! Reads test files from disk; never writes, never uses the network.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::article::{boilerplate, Article};
use crate::config::{self, Config, Diagnostic, Leftovers, TestArticle};
use crate::pipeline::{fired_at_now, Pipeline};
use crate::state::Store;

/// Loads, validates and compiles the config, then runs its rule tests.
pub fn load_and_test(path: &Path, leftovers: Leftovers) -> Result<Config, Vec<Diagnostic>> {
    let config = config::load(path, leftovers)?;
    let failures = run_rule_tests(&config);
    if failures.is_empty() {
        Ok(config)
    } else {
        Err(failures)
    }
}

/// Runs every `[[tests]]` entry; returns one diagnostic per failed expectation.
pub fn run_rule_tests(config: &Config) -> Vec<Diagnostic> {
    let mut failures = Vec::new();
    if config.tests.is_empty() {
        return failures;
    }
    // Each test gets fresh state: first_seen, throttles and thresholds start empty.
    let fresh_pipeline = || -> Option<Pipeline> {
        let store = Store::open_in_memory().ok()?;
        Some(Pipeline::new(Arc::new(config.clone()), store))
    };
    for test in &config.tests {
        let at = |message: String| Diagnostic {
            file: config.path.clone(),
            line: test.line,
            column: test.column,
            message,
        };
        let (path, extension, bytes) = match &test.article {
            TestArticle::Text(text) => (
                PathBuf::from("(inline text)"),
                "txt".to_string(),
                text.clone().into_bytes(),
            ),
            TestArticle::File(path) => match std::fs::read(path) {
                Ok(bytes) => {
                    let extension = path
                        .extension()
                        .map(|e| e.to_string_lossy().to_ascii_lowercase())
                        .unwrap_or_default();
                    (path.clone(), extension, bytes)
                }
                Err(error) => {
                    failures.push(at(format!(
                        "test \"{}\": cannot read {}: {error}",
                        test.name,
                        path.display()
                    )));
                    continue;
                }
            },
        };
        let article =
            match Article::from_bytes(path, &extension, &bytes, config.watch.max_file_size) {
                Ok(article) => article,
                Err(reason) => {
                    failures.push(at(format!(
                        "test \"{}\": the article would be skipped: {reason}",
                        test.name
                    )));
                    continue;
                }
            };
        let text = boilerplate::matchable(&article.text);
        let title = article.title.as_deref();
        let Some(pipeline) = fresh_pipeline() else {
            failures.push(at(format!(
                "test \"{}\": cannot create in-memory state",
                test.name
            )));
            continue;
        };
        let alerts = match pipeline.evaluate(&article, &fired_at_now()) {
            Ok(alerts) => alerts,
            Err(error) => {
                failures.push(at(format!("test \"{}\": {error}", test.name)));
                continue;
            }
        };
        let fired: BTreeSet<usize> = alerts
            .iter()
            .filter_map(|alert| config.rule_index.get(&*alert.rule).copied())
            .collect();
        for &rule in &test.expect {
            if !fired.contains(&rule) {
                failures.push(at(failure(
                    config,
                    &test.name,
                    rule,
                    "did not fire",
                    title,
                    &text,
                )));
            }
        }
        for &rule in &test.expect_not {
            if fired.contains(&rule) {
                failures.push(at(failure(
                    config,
                    &test.name,
                    rule,
                    "fired but must not",
                    title,
                    &text,
                )));
            }
        }
    }
    failures
}

fn failure(
    config: &Config,
    test: &str,
    rule: usize,
    what: &str,
    title: Option<&str>,
    text: &str,
) -> String {
    let explanation = config.ruleset.explain_article(rule, title, text);
    let excerpt: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(160)
        .collect();
    let mut message = format!(
        "test \"{test}\": rule \"{}\" {what}\n    article: {excerpt}…\n",
        config.rules[rule].id
    );
    for line in explanation.lines() {
        message.push_str("    ");
        message.push_str(line);
        message.push('\n');
    }
    message.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[watch]
dir = "articles"

[lists]
visit = ["visit*", "talks", "arrived"]

[entities.minsk]
aliases = ["Minsk"]
not = ["Minsk agreements"]

[rules.minsk-visit]
match = 'entity:minsk NEAR/12 list:visit'

[rules.tobruk]
match = 'Tobruk'

[[tests]]
name = "a visit"
text = "Haftar arrived in Minsk for talks."
expect = ["minsk-visit"]
expect_not = ["tobruk"]

[[tests]]
name = "ukraine diplomacy"
text = "Talks on the Minsk agreements resumed."
expect_not = ["minsk-visit"]

[[tests]]
name = "comments only"
text = "Benghazi news.\n\nA story about the port.\n\nComments (1)\nReader: what about Tobruk?\n"
expect = ["tobruk"]
"#;

    #[test]
    fn passing_and_failing_tests_are_reported_at_their_place() {
        let config = config::load_str(Path::new("config.toml"), CONFIG, &|_| None).expect("config");
        assert_eq!(config.tests.len(), 3);
        let failures = run_rule_tests(&config);
        assert_eq!(failures.len(), 1, "{failures:#?}");
        let failure = failures[0].to_string();
        assert!(
            failure.starts_with(
                "config.toml:29:1: test \"comments only\": rule \"tobruk\" did not fire\n"
            ),
            "{failure}"
        );
        assert!(failure.contains("✗ Tobruk: not found"), "{failure}");
    }

    #[test]
    fn tests_name_unknown_rules_with_a_hint() {
        let source = format!("{CONFIG}\n[[tests]]\ntext = \"x\"\nexpect = [\"minsk-vist\"]\n");
        let errors =
            config::load_str(Path::new("config.toml"), &source, &|_| None).expect_err("invalid");
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            ["config.toml:36:11: test \"test 4\": unknown rule \"minsk-vist\" (did you mean \"minsk-visit\"?)"]
        );
    }
}
