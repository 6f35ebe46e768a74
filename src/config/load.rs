//! Validation and compilation: turns a [`RawConfig`] into a [`Config`] the
//! daemon can run, or into every [`Diagnostic`] found (not only the first).
//!
//! Reads the config file, `url_file`/`secret_file` files and the environment;
//! never the network. Never puts a secret into a message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawConfig, RawEntity, RawRule, RawSink, Table};
use super::{Diagnostic, Secret};
use crate::alert::payload::Severity;
use crate::rules::expr::{self, Expr, TermKind};
use crate::rules::normalize::normalize_term;
use crate::rules::ruleset::did_you_mean;
use crate::rules::words::FastMap;
use crate::rules::{EntityDef, Origin, RuleDef, RuleSet, RuleSetInput};

const DEFAULT_EXTENSIONS: [&str; 4] = ["txt", "md", "html", "json"];
const DEFAULT_MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BURST: u32 = 3;
/// Name of the sink used when config.toml has no `[sinks]`.
pub const DEFAULT_SINK_NAME: &str = "alerts";

/// A validated, compiled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself.
    pub path: PathBuf,
    pub watch: WatchConfig,
    /// Folder of the embedded database.
    pub state_dir: PathBuf,
    /// Rules in the order they appear in the file; index = rule index in `ruleset`.
    pub rules: Vec<Rule>,
    pub sinks: Vec<SinkConfig>,
    pub ruleset: Arc<RuleSet>,
    /// `[[tests]]`, validated (see `crate::ruletest` for running them).
    pub tests: Vec<RuleTest>,
    /// `[classes.NAME] discover` patterns, and the names they must not report.
    pub discovery: Discovery,
    /// Rule id -> index into `rules` (the id shared with the rule; hashed
    /// like the rule set's words: with 100,000 rules, copying and SipHashing
    /// every id was a fifth of the checks around the compile).
    pub rule_index: FastMap<Arc<str>, usize>,
    /// The health and metrics server, when `[server]` is present.
    pub server: Option<ServerConfig>,
}

/// Entity discovery: capture patterns per class, and every known alias in
/// canonical form (a captured name that is an alias is not new).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub patterns: Vec<DiscoveryPattern>,
    pub known_aliases: std::collections::HashSet<String>,
    /// Prefix aliases (`Минск*`), canonical, without the `*`.
    pub known_prefixes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DiscoveryPattern {
    pub class: String,
    pub regex: regex::Regex,
}

/// One `[[tests]]` entry.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    pub article: TestArticle,
    /// Indexes into [`Config::rules`] that must fire.
    pub expect: Vec<usize>,
    /// Indexes into [`Config::rules`] that must not fire.
    pub expect_not: Vec<usize>,
    /// Where the test is in the config file, for its failures.
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub enum TestArticle {
    Text(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: std::net::SocketAddr,
}

/// Where the server listens when `[server]` has no `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub dir: PathBuf,
    /// Lower-case extensions without the dot.
    pub extensions: Vec<String>,
    pub max_file_size: u64,
    /// Older articles raise no alerts.
    pub max_article_age: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// Shared with every alert the rule raises.
    pub id: Arc<str>,
    /// Shared with every alert the rule raises.
    pub description: Arc<str>,
    pub severity: Severity,
    /// Indexes into [`Config::sinks`].
    pub sinks: Vec<usize>,
    pub first_seen: bool,
    pub throttle: Option<Throttle>,
    pub threshold: Option<Threshold>,
    pub on_duplicate: OnDuplicate,
    /// Classes named by `class:` terms in the match expression.
    pub classes: Vec<String>,
}

/// At most one alert per `period`, per rule or per (rule, entity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub period: Duration,
    pub by_entity: bool,
}

/// Fire when `count` distinct articles matched within `within`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    pub within: Duration,
}

/// What a rule does when the article is a near-duplicate of a recent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDuplicate {
    /// Alert, with `duplicate_of` naming the earlier article.
    #[default]
    Mark,
    /// No alert.
    Suppress,
    /// Alert as if the article were new.
    Alert,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub timeout: Duration,
    /// At most one request per this period (after `burst`), or no limit.
    pub rate_limit: Option<RateLimit>,
    pub retry: RetryPolicy,
    /// One summary message per this period instead of one per alert.
    pub digest: Option<Duration>,
}

/// How long and how patiently a sink retries a failing delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A delivery still failing this long after it was queued is a dead letter.
    pub max_age: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_age: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// A token bucket: `burst` requests at once, then one per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub period: Duration,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Slack { url: Secret },
    Webhook { url: Secret, secret: Option<Secret> },
    File { dir: PathBuf },
}

impl Config {
    /// The rule with this id (one hash lookup).
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rule_index.get(id).map(|&index| &self.rules[index])
    }
}

impl SinkKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Slack { .. } => "slack",
            SinkKind::Webhook { .. } => "webhook",
            SinkKind::File { .. } => "file",
        }
    }
}

/// What becomes of the config as written, and of the rule set's input, once
/// the config is loaded. Freeing them piece by piece takes about 0.07 s of
/// CPU at 100,000 rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Freed on a thread of their own, meanwhile: for a process that lives on.
    Free,
    /// Never freed: for a command that exits when done, where freeing them
    /// would only take a core from its work (`newswatch test`'s threads).
    Keep,
}

/// Loads, validates and compiles the config file at `path`.
pub fn load(path: &Path, leftovers: Leftovers) -> Result<Config, Vec<Diagnostic>> {
    let source = std::fs::read_to_string(path).map_err(|error| {
        vec![Diagnostic::whole_file(
            path,
            format!("cannot read config file: {error}"),
        )]
    })?;
    load_source(path, &source, &|name| std::env::var(name).ok(), leftovers)
}

/// Like [`load`] on `source`, reading environment variables through `env`.
pub fn load_str(
    path: &Path,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Diagnostic>> {
    load_source(path, source, env, Leftovers::Free)
}

fn load_source(
    path: &Path,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    leftovers: Leftovers,
) -> Result<Config, Vec<Diagnostic>> {
    let raw = RawConfig::parse(source).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        let message = error.message().trim().replace('\n', "; ");
        vec![Diagnostic::at(path, source, offset, message)]
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new(""));
    let mut loader = Loader {
        path,
        source,
        base,
        env,
        leftovers,
        errors: Vec::new(),
    };
    let config = loader.config(raw);
    match config {
        Some(config) if loader.errors.is_empty() => Ok(config),
        _ => {
            loader.errors.sort_by_key(|d| (d.line, d.column));
            Err(loader.errors)
        }
    }
}

struct Loader<'a> {
    path: &'a Path,
    source: &'a str,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    leftovers: Leftovers,
    errors: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.source, offset, message));
    }

    fn config(&mut self, mut raw: RawConfig) -> Option<Config> {
        let watch = self.watch(&raw);
        let state_dir = match &raw.state.dir {
            Some(dir) => self.base.join(dir.get_ref()),
            None => self.base.join("state"),
        };
        let sinks = self.sinks(&raw.sinks);
        let server = raw.server.as_ref().and_then(|server| self.server(server));
        // Before the entities' strings move into the rule set's input.
        let discovery = self.discovery(&raw);
        let (input, rules) = self.rules_input(&mut raw, &sinks);
        let tests = self.tests(&raw, &rules);
        let rule_index = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| (Arc::clone(&rule.id), index))
            .collect();
        let ruleset = match RuleSet::compile(&input) {
            Ok(ruleset) => Some(ruleset),
            Err(errors) => {
                for error in errors {
                    let offset = self.origin_offset(&raw, &input, &error.origin);
                    self.error(offset, error.message);
                }
                None
            }
        };
        let ruleset = Arc::new(ruleset?);
        // Nothing waits for the config as written to be freed (see
        // `Leftovers`).
        match self.leftovers {
            Leftovers::Free => drop_in_background((raw, input)),
            Leftovers::Keep => std::mem::forget((raw, input)),
        }
        Some(Config {
            path: self.path.to_path_buf(),
            watch,
            state_dir,
            rules,
            sinks,
            ruleset,
            tests,
            server,
            discovery,
            rule_index,
        })
    }

    fn discovery(&mut self, raw: &RawConfig) -> Discovery {
        let mut discovery = Discovery::default();
        let discovers = raw
            .classes
            .values()
            .any(|c| !c.get_ref().discover.is_empty());
        // The aliases matter only to tell discovered names from listed ones.
        for entity in raw.entities.values().filter(|_| discovers) {
            for alias in entity.get_ref().aliases.get_ref() {
                let text = alias.get_ref().trim();
                match text.strip_suffix('*') {
                    Some(prefix) => discovery.known_prefixes.push(normalize_term(prefix)),
                    None => {
                        discovery.known_aliases.insert(normalize_term(text));
                    }
                }
            }
        }
        for (class, spanned) in &raw.classes {
            let has_members = raw.entities.values().any(|e| {
                e.get_ref()
                    .class
                    .as_ref()
                    .is_some_and(|c| c.get_ref() == class)
            });
            if !has_members {
                self.error(
                    spanned.span().start,
                    format!("class \"{class}\": no entity has this class, so no rule can use it"),
                );
            }
            for pattern in &spanned.get_ref().discover {
                let compiled = regex::RegexBuilder::new(pattern.get_ref())
                    .size_limit(1 << 20)
                    .build();
                match compiled {
                    Ok(regex) if regex.captures_len() == 2 => discovery.patterns.push(DiscoveryPattern {
                        class: class.clone(),
                        regex,
                    }),
                    Ok(_) => self.error(
                        pattern.span().start,
                        format!("class \"{class}\": a discover pattern needs exactly one capture group, the name"),
                    ),
                    Err(error) => {
                        let message = error.to_string().lines().last().unwrap_or_default().trim().to_string();
                        self.error(
                            pattern.span().start,
                            format!("class \"{class}\": invalid discover pattern: {message}"),
                        )
                    }
                }
            }
        }
        discovery
    }

    fn tests(&mut self, raw: &RawConfig, rules: &[Rule]) -> Vec<RuleTest> {
        let mut tests = Vec::new();
        for (index, spanned) in raw.tests.iter().enumerate() {
            let test = spanned.get_ref();
            let at = spanned.span().start;
            let name = test
                .name
                .clone()
                .unwrap_or_else(|| format!("test {}", index + 1));
            let article = match (&test.text, &test.file) {
                (Some(text), None) => Some(TestArticle::Text(text.clone())),
                (None, Some(file)) => {
                    let path = self.base.join(file.get_ref());
                    if path.is_file() {
                        Some(TestArticle::File(path))
                    } else {
                        self.error(
                            file.span().start,
                            format!("test \"{name}\": file {} does not exist", path.display()),
                        );
                        None
                    }
                }
                _ => {
                    self.error(
                        at,
                        format!("test \"{name}\": give exactly one of `text` or `file`"),
                    );
                    None
                }
            };
            if test.expect.is_empty() && test.expect_not.is_empty() {
                self.error(
                    at,
                    format!("test \"{name}\": expects nothing (add `expect` or `expect_not`)"),
                );
            }
            let mut resolve = |ids: &[Spanned<String>]| -> Vec<usize> {
                let mut indexes = Vec::new();
                for id in ids {
                    match rules.iter().position(|rule| *rule.id == **id.get_ref()) {
                        Some(rule) => indexes.push(rule),
                        None => {
                            let hint = did_you_mean(id.get_ref(), rules.iter().map(|r| &*r.id));
                            self.error(
                                id.span().start,
                                format!("test \"{name}\": unknown rule \"{}\"{hint}", id.get_ref()),
                            );
                        }
                    }
                }
                indexes
            };
            let expect = resolve(&test.expect);
            let expect_not = resolve(&test.expect_not);
            let place = Diagnostic::at(self.path, self.source, at, "");
            if let Some(article) = article {
                tests.push(RuleTest {
                    name,
                    article,
                    expect,
                    expect_not,
                    line: place.line,
                    column: place.column,
                });
            }
        }
        tests
    }

    fn server(&mut self, raw: &Spanned<super::raw::RawServer>) -> Option<ServerConfig> {
        let (text, offset) = match &raw.get_ref().listen {
            Some(listen) => (listen.get_ref().as_str(), listen.span().start),
            None => (DEFAULT_LISTEN, raw.span().start),
        };
        match text.parse::<std::net::SocketAddr>() {
            Ok(listen) => Some(ServerConfig { listen }),
            Err(_) => {
                self.error(
                    offset,
                    format!("server.listen: {text:?} is not an address and port (e.g. \"127.0.0.1:9464\")"),
                );
                None
            }
        }
    }

    fn watch(&mut self, raw: &RawConfig) -> WatchConfig {
        let dir = self.base.join(raw.watch.dir.get_ref());
        let extensions = match &raw.watch.extensions {
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.error(
                        list.span().start,
                        "watch.extensions is empty: no file would ever be read",
                    );
                }
                list.get_ref()
                    .iter()
                    .map(|ext| {
                        let value = ext.get_ref().trim_start_matches('.').to_ascii_lowercase();
                        if value.is_empty() || value.contains(['/', '\\']) {
                            self.error(
                                ext.span().start,
                                format!("invalid extension {:?}", ext.get_ref()),
                            );
                        }
                        value
                    })
                    .collect()
            }
            None => DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
        };
        let max_file_size = match &raw.watch.max_file_size {
            Some(size) => match parse_size(size.get_ref()) {
                Ok(bytes) => bytes,
                Err(message) => {
                    self.error(size.span().start, message);
                    DEFAULT_MAX_FILE_SIZE
                }
            },
            None => DEFAULT_MAX_FILE_SIZE,
        };
        let max_article_age = match &raw.watch.max_article_age {
            Some(value) => match parse_duration(value.get_ref()) {
                Ok(duration) => Some(duration),
                Err(message) => {
                    self.error(
                        value.span().start,
                        format!("watch.max_article_age: {message}"),
                    );
                    None
                }
            },
            None => None,
        };
        WatchConfig {
            dir,
            extensions,
            max_file_size,
            max_article_age,
        }
    }

    fn sinks(&mut self, raw: &Table<Spanned<RawSink>>) -> Vec<SinkConfig> {
        if raw.is_empty() {
            return vec![SinkConfig {
                name: DEFAULT_SINK_NAME.to_string(),
                kind: SinkKind::File {
                    dir: self.base.join("alerts"),
                },
                timeout: DEFAULT_TIMEOUT,
                rate_limit: None,
                retry: RetryPolicy::default(),
                digest: None,
            }];
        }
        let mut sinks: Vec<(&String, &Spanned<RawSink>)> = raw.iter().collect();
        sinks.sort_by_key(|(_, sink)| sink.span().start);
        sinks
            .into_iter()
            .filter_map(|(name, sink)| self.sink(name, sink))
            .collect()
    }

    fn sink(&mut self, name: &str, spanned: &Spanned<RawSink>) -> Option<SinkConfig> {
        let sink = spanned.get_ref();
        self.check_id("sink", name, spanned.span().start);
        let kind_name = sink.kind.get_ref().as_str();
        let allowed: &[&str] = match kind_name {
            "slack" => &[
                "digest",
                "url",
                "url_file",
                "timeout",
                "rate_limit",
                "burst",
                "max_age",
                "max_backoff",
            ],
            "webhook" => &[
                "digest",
                "url",
                "url_file",
                "secret",
                "secret_file",
                "timeout",
                "rate_limit",
                "burst",
                "max_age",
                "max_backoff",
            ],
            "file" => &["dir", "max_age", "max_backoff"],
            other => {
                self.error(
                    sink.kind.span().start,
                    format!("sink \"{name}\": unknown type \"{other}\" (expected \"slack\", \"webhook\" or \"file\")"),
                );
                return None;
            }
        };
        let present = [
            ("url", sink.url.as_ref().map(|v| v.span())),
            ("url_file", sink.url_file.as_ref().map(|v| v.span())),
            ("secret", sink.secret.as_ref().map(|v| v.span())),
            ("secret_file", sink.secret_file.as_ref().map(|v| v.span())),
            ("dir", sink.dir.as_ref().map(|v| v.span())),
            ("timeout", sink.timeout.as_ref().map(|v| v.span())),
            ("rate_limit", sink.rate_limit.as_ref().map(|v| v.span())),
            ("burst", sink.burst.as_ref().map(|v| v.span())),
            ("max_age", sink.max_age.as_ref().map(|v| v.span())),
            ("max_backoff", sink.max_backoff.as_ref().map(|v| v.span())),
            ("digest", sink.digest.as_ref().map(|v| v.span())),
        ];
        for (key, span) in present {
            if let Some(span) = span {
                if !allowed.contains(&key) {
                    self.error(
                        span.start,
                        format!("sink \"{name}\": `{key}` is not allowed for a {kind_name} sink"),
                    );
                }
            }
        }
        let timeout = match &sink.timeout {
            Some(value) => match parse_duration(value.get_ref()) {
                Ok(duration) => duration,
                Err(message) => {
                    self.error(value.span().start, format!("sink \"{name}\": {message}"));
                    DEFAULT_TIMEOUT
                }
            },
            None => DEFAULT_TIMEOUT,
        };
        let default_rate = if kind_name == "slack" { "1/s" } else { "off" };
        let rate_text = sink
            .rate_limit
            .as_ref()
            .map_or(default_rate, |r| r.get_ref().as_str());
        let burst = sink.burst.as_ref().map_or(DEFAULT_BURST, |b| *b.get_ref());
        if burst == 0 {
            if let Some(value) = &sink.burst {
                self.error(
                    value.span().start,
                    format!("sink \"{name}\": burst must be at least 1"),
                );
            }
        }
        let rate_limit = match parse_rate(rate_text) {
            Ok(period) => period.map(|period| RateLimit {
                period,
                burst: burst.max(1),
            }),
            Err(message) => {
                let offset = sink
                    .rate_limit
                    .as_ref()
                    .map_or(spanned.span().start, |r| r.span().start);
                self.error(offset, format!("sink \"{name}\": {message}"));
                None
            }
        };
        let defaults = RetryPolicy::default();
        let mut duration_key = |value: &Option<Spanned<String>>, default: Duration| match value {
            Some(value) => match parse_duration(value.get_ref()) {
                Ok(duration) if !duration.is_zero() => duration,
                Ok(_) => {
                    self.error(
                        value.span().start,
                        format!("sink \"{name}\": a duration of zero is not allowed here"),
                    );
                    default
                }
                Err(message) => {
                    self.error(value.span().start, format!("sink \"{name}\": {message}"));
                    default
                }
            },
            None => default,
        };
        let retry = RetryPolicy {
            max_age: duration_key(&sink.max_age, defaults.max_age),
            max_backoff: duration_key(&sink.max_backoff, defaults.max_backoff),
        };
        let digest = sink
            .digest
            .as_ref()
            .map(|_| duration_key(&sink.digest, Duration::from_secs(3600)));
        let kind = match kind_name {
            "file" => SinkKind::File {
                dir: self
                    .base
                    .join(sink.dir.as_ref().map_or("alerts", |d| d.get_ref().as_str())),
            },
            "slack" => SinkKind::Slack {
                url: self.sink_url(name, spanned)?,
            },
            _ => {
                let url = self.sink_url(name, spanned);
                let secret = self.secret_value(
                    name,
                    "secret",
                    sink.secret.as_ref(),
                    sink.secret_file.as_ref(),
                    spanned.span().start,
                    false,
                );
                SinkKind::Webhook {
                    url: url?,
                    secret: secret?,
                }
            }
        };
        Some(SinkConfig {
            name: name.to_string(),
            kind,
            timeout,
            rate_limit,
            retry,
            digest,
        })
    }

    fn sink_url(&mut self, name: &str, spanned: &Spanned<RawSink>) -> Option<Secret> {
        let sink = spanned.get_ref();
        let url = self
            .secret_value(
                name,
                "url",
                sink.url.as_ref(),
                sink.url_file.as_ref(),
                spanned.span().start,
                true,
            )
            .flatten()?;
        let offset = sink
            .url
            .as_ref()
            .or(sink.url_file.as_ref())
            .map_or(spanned.span().start, |v| v.span().start);
        match reqwest::Url::parse(url.expose()) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
            {
                Some(url)
            }
            // The message must not quote the URL: it may carry a token.
            _ => {
                self.error(
                    offset,
                    format!("sink \"{name}\": url is not a valid http:// or https:// URL"),
                );
                None
            }
        }
    }

    /// Reads `key` (with `${VAR}` expansion) or `key_file`. Returns `None` on
    /// error, `Some(None)` when neither is set and the value is optional.
    fn secret_value(
        &mut self,
        name: &str,
        key: &str,
        value: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
        table_offset: usize,
        required: bool,
    ) -> Option<Option<Secret>> {
        match (value, file) {
            (Some(_), Some(file)) => {
                self.error(
                    file.span().start,
                    format!("sink \"{name}\": set either `{key}` or `{key}_file`, not both"),
                );
                None
            }
            (Some(value), None) => match expand_env(value.get_ref(), self.env) {
                Ok(expanded) if expanded.trim().is_empty() => {
                    self.error(
                        value.span().start,
                        format!("sink \"{name}\": `{key}` is empty"),
                    );
                    None
                }
                Ok(expanded) => Some(Some(Secret::new(expanded.trim()))),
                Err(message) => {
                    self.error(
                        value.span().start,
                        format!("sink \"{name}\": `{key}`: {message}"),
                    );
                    None
                }
            },
            (None, Some(file)) => {
                let path = match expand_env(file.get_ref(), self.env) {
                    Ok(path) => self.base.join(path),
                    Err(message) => {
                        self.error(
                            file.span().start,
                            format!("sink \"{name}\": `{key}_file`: {message}"),
                        );
                        return None;
                    }
                };
                match std::fs::read_to_string(&path) {
                    Ok(content) if !content.trim().is_empty() => {
                        Some(Some(Secret::new(content.trim())))
                    }
                    Ok(_) => {
                        self.error(
                            file.span().start,
                            format!("sink \"{name}\": `{key}_file` {} is empty", path.display()),
                        );
                        None
                    }
                    Err(error) => {
                        self.error(
                            file.span().start,
                            format!(
                                "sink \"{name}\": cannot read `{key}_file` {}: {error}",
                                path.display()
                            ),
                        );
                        None
                    }
                }
            }
            (None, None) if required => {
                self.error(
                    table_offset,
                    format!("sink \"{name}\": needs `{key}` or `{key}_file`"),
                );
                None
            }
            (None, None) => Some(None),
        }
    }

    fn check_id(&mut self, what: &str, id: &str, offset: usize) {
        let valid = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            self.error(
                offset,
                format!("{what} name {id:?} must start with a letter or digit and contain only letters, digits, '-', '_' and '.'"),
            );
        }
    }

    /// Builds the rule-set input and the per-rule settings, reporting
    /// syntax errors and unknown sinks on the way. The entities' strings
    /// move out of `raw` (their spans stay, for the compile's errors).
    fn rules_input(
        &mut self,
        raw: &mut RawConfig,
        sinks: &[SinkConfig],
    ) -> (RuleSetInput, Vec<Rule>) {
        // Sized up front: at 100,000 rules each vector is megabytes, and
        // growing it copies them again.
        let mut input = RuleSetInput {
            entities: Vec::with_capacity(raw.entities.len()),
            rules: Vec::with_capacity(raw.rules.len()),
            ..RuleSetInput::default()
        };
        for (id, entity) in raw.entities.iter_mut() {
            self.check_id("entity", id, entity.span().start);
            let RawEntity {
                class,
                aliases,
                not,
                fuzzy,
                translit,
            } = entity.get_mut();
            let fuzzy_value = fuzzy.as_ref().map_or(0, |f| *f.get_ref());
            if let Some(fuzzy) = fuzzy.as_ref().filter(|_| fuzzy_value > 2) {
                self.error(
                    fuzzy.span().start,
                    format!("entity \"{id}\": fuzzy must be 0, 1 or 2 (edits per word), not {fuzzy_value}"),
                );
            }
            if aliases.get_ref().is_empty() {
                self.error(
                    aliases.span().start,
                    format!("entity \"{id}\": aliases is empty"),
                );
            }
            input.entities.push(EntityDef {
                id: id.clone(),
                class: class.as_mut().map(|c| std::mem::take(c.get_mut())),
                aliases: aliases
                    .get_mut()
                    .iter_mut()
                    .map(|a| std::mem::take(a.get_mut()))
                    .collect(),
                not: not
                    .iter_mut()
                    .map(|n| std::mem::take(n.get_mut()))
                    .collect(),
                fuzzy: fuzzy_value.min(2),
                translit: translit.unwrap_or(true),
            });
        }
        for (name, items) in &raw.lists {
            if items.get_ref().is_empty() {
                self.error(items.span().start, format!("list \"{name}\" is empty"));
            }
            input.lists.insert(
                name.clone(),
                items
                    .get_ref()
                    .iter()
                    .map(|i| i.get_ref().clone())
                    .collect(),
            );
        }
        let mut ordered: Vec<(&String, &Spanned<RawRule>)> = raw.rules.iter().collect();
        ordered.sort_by_key(|(_, rule)| rule.span().start);
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (id, spanned) in ordered {
            self.check_id("rule", id, spanned.span().start);
            let rule = spanned.get_ref();
            let expr = match expr::parse(rule.match_expr.get_ref()) {
                Ok(expr) => expr,
                Err(error) => {
                    let offset = self.expression_offset(&rule.match_expr, error.span.start);
                    self.error(offset, format!("rule \"{id}\": {}", error.message));
                    continue;
                }
            };
            let first_seen = rule.first_seen.as_ref().is_some_and(|f| *f.get_ref());
            if first_seen && !mentions_entities(&expr) {
                let offset = rule
                    .first_seen
                    .as_ref()
                    .map_or(spanned.span().start, |f| f.span().start);
                self.error(
                    offset,
                    format!("rule \"{id}\": first_seen needs an entity: or class: term in the match expression"),
                );
            }
            let sink_indexes = match &rule.sinks {
                None => (0..sinks.len()).collect(),
                Some(names) => {
                    if names.get_ref().is_empty() {
                        self.error(
                            names.span().start,
                            format!("rule \"{id}\": sinks is empty, its alerts would go nowhere (leave it out to use every sink)"),
                        );
                    }
                    let mut indexes = Vec::new();
                    for name in names.get_ref() {
                        match sinks.iter().position(|s| &s.name == name.get_ref()) {
                            Some(index) => indexes.push(index),
                            None => {
                                let hint = did_you_mean(
                                    name.get_ref(),
                                    raw.sinks.keys().map(String::as_str),
                                );
                                self.error(
                                    name.span().start,
                                    format!(
                                        "rule \"{id}\": unknown sink \"{}\"{hint}",
                                        name.get_ref()
                                    ),
                                );
                            }
                        }
                    }
                    indexes.dedup();
                    indexes
                }
            };
            let (throttle, threshold, on_duplicate) = self.time_settings(id, spanned, &expr);
            rules.push(Rule {
                id: id.as_str().into(),
                description: rule
                    .description
                    .as_deref()
                    .unwrap_or(rule.match_expr.get_ref())
                    .into(),
                severity: rule.severity.unwrap_or_default(),
                sinks: sink_indexes,
                first_seen,
                throttle,
                threshold,
                on_duplicate,
                classes: classes_of(&expr),
            });
            input.rules.push(RuleDef {
                id: id.clone(),
                expr,
            });
        }
        (input, rules)
    }

    /// `throttle`, `throttle_by`, `threshold` and `on_duplicate` of a rule.
    fn time_settings(
        &mut self,
        id: &str,
        spanned: &Spanned<RawRule>,
        expr: &Expr,
    ) -> (Option<Throttle>, Option<Threshold>, OnDuplicate) {
        let rule = spanned.get_ref();
        let throttle =
            rule.throttle
                .as_ref()
                .and_then(|value| match parse_duration(value.get_ref()) {
                    Ok(period) if !period.is_zero() => Some(period),
                    Ok(_) => {
                        self.error(
                            value.span().start,
                            format!("rule \"{id}\": throttle must be longer than zero"),
                        );
                        None
                    }
                    Err(message) => {
                        self.error(
                            value.span().start,
                            format!("rule \"{id}\": throttle: {message}"),
                        );
                        None
                    }
                });
        let by_entity = match rule.throttle_by.as_ref() {
            None => false,
            Some(value) => match value.get_ref().as_str() {
                "rule" => false,
                "entity" => {
                    if !mentions_entities(expr) {
                        self.error(
                            value.span().start,
                            format!("rule \"{id}\": throttle_by = \"entity\" needs an entity: or class: term"),
                        );
                    }
                    true
                }
                other => {
                    self.error(
                        value.span().start,
                        format!("rule \"{id}\": throttle_by must be \"rule\" or \"entity\", not {other:?}"),
                    );
                    false
                }
            },
        };
        if rule.throttle_by.is_some() && rule.throttle.is_none() {
            if let Some(value) = &rule.throttle_by {
                self.error(
                    value.span().start,
                    format!("rule \"{id}\": throttle_by needs throttle"),
                );
            }
        }
        let threshold = rule.threshold.as_ref().and_then(|value| {
            let raw = value.get_ref();
            if raw.count < 2 {
                self.error(
                    value.span().start,
                    format!("rule \"{id}\": threshold.count must be 2 or more"),
                );
                return None;
            }
            match parse_duration(&raw.within) {
                Ok(within) if !within.is_zero() => Some(Threshold {
                    count: raw.count,
                    within,
                }),
                Ok(_) => {
                    self.error(
                        value.span().start,
                        format!("rule \"{id}\": threshold.within must be longer than zero"),
                    );
                    None
                }
                Err(message) => {
                    self.error(
                        value.span().start,
                        format!("rule \"{id}\": threshold.within: {message}"),
                    );
                    None
                }
            }
        });
        if threshold.is_some() && rule.first_seen.as_ref().is_some_and(|f| *f.get_ref()) {
            self.error(
                spanned.span().start,
                format!("rule \"{id}\": first_seen and threshold cannot be combined"),
            );
        }
        let on_duplicate = match rule.on_duplicate.as_ref() {
            None => OnDuplicate::default(),
            Some(value) => match value.get_ref().as_str() {
                "mark" => OnDuplicate::Mark,
                "suppress" => OnDuplicate::Suppress,
                "alert" => OnDuplicate::Alert,
                other => {
                    self.error(
                        value.span().start,
                        format!("rule \"{id}\": on_duplicate must be \"mark\", \"suppress\" or \"alert\", not {other:?}"),
                    );
                    OnDuplicate::default()
                }
            },
        };
        (
            throttle.map(|period| Throttle { period, by_entity }),
            threshold,
            on_duplicate,
        )
    }

    /// Byte offset in the file of byte `offset` inside a match expression.
    fn expression_offset(&self, value: &Spanned<String>, offset: usize) -> usize {
        let span = value.span();
        let literal = &self.source[span.clone()];
        let mut opening = if literal.starts_with("'''") || literal.starts_with("\"\"\"") {
            3
        } else {
            1
        };
        if opening == 3 && literal[3..].starts_with('\n') {
            opening += 1;
        }
        (span.start + opening + offset).min(span.end)
    }

    fn origin_offset(&self, raw: &RawConfig, input: &RuleSetInput, origin: &Origin) -> usize {
        match origin {
            Origin::Rule { index, span } => {
                let id = &input.rules[*index].id;
                raw.rules.get(id).map_or(0, |rule| {
                    self.expression_offset(&rule.get_ref().match_expr, span.start)
                })
            }
            Origin::Alias { entity, alias } => {
                let id = &input.entities[*entity].id;
                raw.entities.get(id).map_or(0, |e| {
                    let aliases = &e.get_ref().aliases;
                    aliases
                        .get_ref()
                        .get(*alias)
                        .map_or(aliases.span().start, |a| a.span().start)
                })
            }
            Origin::NotContext { entity, item } => {
                let id = &input.entities[*entity].id;
                raw.entities.get(id).map_or(0, |e| {
                    e.get_ref()
                        .not
                        .get(*item)
                        .map_or(e.span().start, |n| n.span().start)
                })
            }
            Origin::ListItem { list, item } => raw.lists.get(list).map_or(0, |items| {
                items
                    .get_ref()
                    .get(*item)
                    .map_or(items.span().start, |i| i.span().start)
            }),
        }
    }
}

/// Drops `value` on a thread of its own (here, when none can be started).
fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("drop".to_string())
        .spawn(move || drop(value));
}

fn classes_of(expr: &Expr) -> Vec<String> {
    let mut classes = Vec::new();
    fn walk(expr: &Expr, classes: &mut Vec<String>) {
        match expr {
            Expr::Term(term) => {
                let kind = match &term.kind {
                    TermKind::Title(inner) => inner.as_ref(),
                    kind => kind,
                };
                if let TermKind::Class(name) = kind {
                    if !classes.contains(name) {
                        classes.push(name.clone());
                    }
                }
            }
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| walk(p, classes)),
            Expr::Not(_) => {}
            Expr::Near { left, right, .. } => {
                walk(left, classes);
                walk(right, classes);
            }
            Expr::AtLeast { parts, .. } | Expr::Sentence { parts, .. } => {
                parts.iter().for_each(|p| walk(p, classes))
            }
            Expr::Count { inner, .. } => walk(inner, classes),
            Expr::Weights { items, .. } => items.iter().for_each(|(item, _)| walk(item, classes)),
        }
    }
    walk(expr, &mut classes);
    classes
}

fn mentions_entities(expr: &Expr) -> bool {
    match expr {
        Expr::Term(term) => match &term.kind {
            TermKind::Title(inner) => matches!(**inner, TermKind::Entity(_) | TermKind::Class(_)),
            kind => matches!(kind, TermKind::Entity(_) | TermKind::Class(_)),
        },
        Expr::And(parts) | Expr::Or(parts) => parts.iter().any(mentions_entities),
        Expr::Not(_) => false,
        Expr::Near { left, right, .. } => mentions_entities(left) || mentions_entities(right),
        Expr::AtLeast { parts, .. } | Expr::Sentence { parts, .. } => {
            parts.iter().any(mentions_entities)
        }
        Expr::Count { inner, .. } => mentions_entities(inner),
        Expr::Weights { items, .. } => items.iter().any(|(item, _)| mentions_entities(item)),
    }
}

/// Replaces every `${NAME}` with the variable's value. The error names the
/// variable, never the value.
fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated ${ in value".to_string());
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        match env(name) {
            Some(found) => out.push_str(&found),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// "16 MiB" -> (16.0, "MiB"); None when it does not start with a number.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// "16 MiB", "500kB", "1024" -> bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| format!("invalid size {text:?}: expected e.g. \"16 MiB\""))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use B, kB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    Ok((number * multiplier as f64) as u64)
}

/// "1/s", "30/m", "100/h" -> one request per period; "off" -> no limit.
fn parse_rate(text: &str) -> Result<Option<Duration>, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let invalid = || {
        format!(
            "invalid rate_limit {text:?}: expected e.g. \"1/s\", \"30/m\", \"100/h\" or \"off\""
        )
    };
    let (count, unit) = trimmed.split_once('/').ok_or_else(invalid)?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    let unit = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" | "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(invalid()),
    };
    if count == 0 {
        return Err(invalid());
    }
    Ok(Some(unit / count))
}

/// "10s", "500ms", "2m", "1h" -> duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| format!("invalid duration {text:?}: expected e.g. \"10s\""))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" | "" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m, h or d"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration {text:?} is out of range"))
}

#[cfg(test)]
mod tests;
