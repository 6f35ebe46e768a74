//! From a file path to recorded alerts: read the file into an `Article`,
//! scan it with the compiled rules, apply `first_seen`, build the alerts,
//! and record the article with its deliveries in one transaction.
//!
//! Runs on one blocking thread (it owns a database connection). A broken
//! file is reported as an [`Outcome`], never as an error: only a database
//! failure is an error, and even that is the caller's to log and survive.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use smallvec::SmallVec;
use tracing::{debug, info, warn};

use crate::alert::build::{build_alert, title_matches, AlertIds, FiredRule};
use crate::alert::json::ArticleJson;
use crate::alert::payload::{Alert, ArticleRef, MatchSpan};
use crate::article::fingerprint::{DuplicateIndex, Signature, DUPLICATE_SIMILARITY};
use crate::article::{boilerplate, Article, ReadWarning, SkipReason};
use crate::config::{Config, OnDuplicate, Rule};
use crate::rules::normalize::normalize_term;
use crate::rules::words::FastMap;
use crate::rules::{RuleMatch, RuleSet};
use crate::state::{FileKey, NewDelivery, ProcessedArticle, Store, StoreError};

/// What happened to one file.
#[derive(Debug)]
pub enum Outcome {
    /// A new article; these alerts were recorded (and queued for delivery).
    Processed {
        article_id: String,
        alerts: Vec<Alert>,
        /// The article's text, which the alerts' match offsets refer to.
        text: String,
    },
    /// The same bytes were processed before (a copy or a rename-over).
    Duplicate { article_id: String },
    /// This exact file (path, size, mtime) was handled before.
    Unchanged,
    /// Not an article: too large, empty, binary, malformed, not a regular file.
    Skipped(String),
    /// The file could not be read (it may have been removed meanwhile).
    Unreadable(String),
}

/// A (rule id, entity id) pair that a `first_seen` rule has now seen.
pub type SeenEntity = (String, String);

/// What a batch will record, and what it already decided (so two files of
/// one batch see each other as if the first were committed).
#[derive(Default)]
struct Batch {
    articles: Vec<ProcessedArticle>,
    files: Vec<(FileKey, Option<String>)>,
    file_keys: HashSet<FileKey>,
    article_ids: HashSet<String>,
    seen: HashSet<SeenEntity>,
    fingerprints: Vec<(String, Signature)>,
    /// [`Signature::exact_key`] -> the first of `fingerprints` with it.
    copies: HashMap<u64, usize>,
    /// (rule, throttle key) -> when it fired.
    fires: HashMap<(String, String), i64>,
    /// (rule, article id, article reference JSON) counted towards thresholds.
    threshold_hits: Vec<(String, String, String)>,
}

pub struct Pipeline {
    config: Arc<Config>,
    store: Store,
    /// Recent near-duplicate signatures, loaded from the database once.
    duplicates: Option<DuplicateIndex>,
    /// Whether alerts are queued in the outbox for their sinks (not for
    /// `newswatch test`, which sends nothing).
    deliver: bool,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, store: Store) -> Self {
        Pipeline {
            config,
            store,
            duplicates: None,
            deliver: true,
        }
    }

    /// A pipeline that queues no deliveries: alerts are only returned.
    pub fn without_deliveries(mut self) -> Self {
        self.deliver = false;
        self
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Runs the next articles on `config` (a live reload). The caller
    /// swaps only between articles, so one in flight keeps its rules.
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.config = config;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Processes the file at `path`. `fired_at` is the alert time (RFC 3339 UTC).
    pub fn process_path(&mut self, path: &Path, fired_at: &str) -> Result<Outcome, StoreError> {
        let mut outcomes = self.process_batch(&[path.to_path_buf()], fired_at)?;
        Ok(outcomes.pop().unwrap_or(Outcome::Unchanged))
    }

    /// Processes `paths` in order and records them all in ONE transaction
    /// (group commit). Returns one outcome per path. On a database error
    /// nothing of the batch is recorded, so every file is tried again at the
    /// next scan.
    pub fn process_batch(
        &mut self,
        paths: &[PathBuf],
        fired_at: &str,
    ) -> Result<Vec<Outcome>, StoreError> {
        let files = {
            let _snapshot = self.store.read_snapshot()?;
            paths
                .iter()
                .map(|path| read_file(&self.config, path, Some(&self.store)))
                .collect()
        };
        self.record_batch(Arc::clone(&self.config), files, fired_at)
    }

    /// Records files read (and scanned) ahead by [`read_file`] with
    /// `config`, in order, in ONE transaction, like [`Pipeline::process_batch`].
    /// The pipeline runs on `config` from now on: the rules that scanned an
    /// article also decide on it.
    pub fn record_batch(
        &mut self,
        config: Arc<Config>,
        files: Vec<ReadFile>,
        fired_at: &str,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.config = config;
        let now_ms = time_ms(fired_at);
        self.load_duplicates(now_ms)?;
        let mut batch = Batch::default();
        let mut outcomes = Vec::with_capacity(files.len());
        {
            // One read transaction for all the batch's lookups: the sink
            // workers' commits would otherwise empty this connection's page
            // cache before nearly every query.
            let _snapshot = self.store.read_snapshot()?;
            for file in files {
                outcomes.push(self.record(file, fired_at, &mut batch)?);
            }
        }
        self.commit(batch, now_ms)?;
        Ok(outcomes)
    }

    /// Commits what `batch` recorded, then remembers its signatures.
    fn commit(&mut self, batch: Batch, now_ms: i64) -> Result<(), StoreError> {
        if !batch.articles.is_empty() || !batch.files.is_empty() {
            self.store.commit_batch(&batch.articles, &batch.files)?;
        }
        if let Some(index) = &mut self.duplicates {
            for (id, signature) in batch.fingerprints {
                index.insert(id, now_ms, signature);
            }
            index.prune(now_ms - DUPLICATE_WINDOW.as_millis() as i64);
        }
        Ok(())
    }

    /// Decides on one file read by [`read_file`], adding what must be
    /// recorded to `batch`. The database and the batch so far are the
    /// authority on what was handled before, whatever the reader saw.
    fn record(
        &self,
        file: ReadFile,
        fired_at: &str,
        batch: &mut Batch,
    ) -> Result<Outcome, StoreError> {
        let key = match &file.read {
            Read::Done(_) => None,
            Read::Skipped { key, .. } | Read::Article { key, .. } => Some(key),
        };
        if let Some(key) = key {
            if batch.file_keys.contains(key) || self.store.file_unchanged(key)? {
                return Ok(Outcome::Unchanged);
            }
            batch.file_keys.insert(key.clone());
        }
        let (key, article, scan) = match file.read {
            Read::Done(outcome) => return Ok(outcome),
            Read::Skipped { key, reason } => {
                batch.files.push((key, None));
                return Ok(Outcome::Skipped(reason));
            }
            Read::Article { key, article, scan } => (key, article, scan),
        };
        if batch.article_ids.contains(&article.id) || self.store.article_processed(&article.id)? {
            batch.files.push((key, Some(article.id.clone())));
            return Ok(Outcome::Duplicate {
                article_id: article.id,
            });
        }
        let decisions = self.decide_scanned(&article, scan.map(|scan| *scan), fired_at, batch)?;
        let alerts = decisions.alerts;
        let mut deliveries = Vec::new();
        let mut article_json = ArticleJson::default();
        for alert in alerts.iter().filter(|_| self.deliver) {
            let payload = alert.to_json_sharing(&mut article_json);
            let Some(rule) = self.config.rule(&alert.rule) else {
                continue;
            };
            for &sink in &rule.sinks {
                deliveries.push(NewDelivery {
                    sink: self.config.sinks[sink].name.clone(),
                    alert_id: alert.id.clone(),
                    rule: alert.rule.to_string(),
                    payload: payload.clone(),
                });
            }
        }
        batch.article_ids.insert(article.id.clone());
        batch.seen.extend(decisions.seen.iter().cloned());
        let now_ms = time_ms(fired_at);
        if let Some(signature) = &decisions.fingerprint {
            let first = batch.fingerprints.len();
            batch.copies.entry(signature.exact_key()).or_insert(first);
            batch
                .fingerprints
                .push((article.id.clone(), signature.clone()));
        }
        for fire in &decisions.fires {
            batch.fires.insert(fire.clone(), now_ms);
        }
        for rule in &decisions.thresholds_fired {
            batch
                .threshold_hits
                .retain(|(hit_rule, _, _)| hit_rule != rule);
        }
        for (rule, reference) in &decisions.threshold_hits {
            batch
                .threshold_hits
                .push((rule.clone(), article.id.clone(), reference.clone()));
        }
        batch.articles.push(ProcessedArticle {
            article_id: article.id.clone(),
            file: key,
            seen: decisions.seen,
            deliveries,
            now_ms,
            fingerprint: decisions.fingerprint.map(|s| s.to_bytes()),
            fires: decisions.fires,
            threshold_hits: decisions.threshold_hits,
            thresholds_fired: decisions.thresholds_fired,
        });
        Ok(Outcome::Processed {
            article_id: article.id,
            alerts,
            text: article.text,
        })
    }

    /// The alerts `article` would raise now, recording nothing (rule tests).
    pub fn evaluate(&self, article: &Article, fired_at: &str) -> Result<Vec<Alert>, StoreError> {
        Ok(self.decide(article, fired_at, &Batch::default())?.alerts)
    }

    /// Runs the rules on the article and applies, per rule, `first_seen`,
    /// the near-duplicate policy, `threshold` and `throttle`, against the
    /// database and what `batch` already decided.
    fn decide(
        &self,
        article: &Article,
        fired_at: &str,
        batch: &Batch,
    ) -> Result<Decisions, StoreError> {
        self.decide_scanned(article, None, fired_at, batch)
    }

    /// [`Pipeline::decide`] with the rules' findings `scan` made ahead (with
    /// this pipeline's config), or made here when None.
    fn decide_scanned(
        &self,
        article: &Article,
        scan: Option<Scan>,
        fired_at: &str,
        batch: &Batch,
    ) -> Result<Decisions, StoreError> {
        let ruleset = &self.config.ruleset;
        let now_ms = time_ms(fired_at);
        let mut decisions = Decisions::default();

        if let (Some(max_age), Some(published)) =
            (self.config.watch.max_article_age, article.published)
        {
            let published_ms = published
                .and_hms_opt(0, 0, 0)
                .map_or(i64::MIN, |t| t.and_utc().timestamp_millis());
            if now_ms - published_ms > max_age.as_millis() as i64 + DAY_MS {
                info!(file = %article.path.display(), published = %published, "article is older than max_article_age; no alerts");
                return Ok(decisions);
            }
        }
        let title = article.title.as_deref();
        let Scan {
            found: found_rules,
            fingerprint,
            candidates,
        } = match scan {
            Some(scan) => scan,
            None => scan_article(&self.config, article),
        };
        decisions.fingerprint = fingerprint;
        let duplicate_of = match (&decisions.fingerprint, found_rules.is_empty()) {
            (Some(signature), false) => self.duplicate_of(signature, now_ms, batch),
            _ => None,
        };
        let mut fired_rules = Vec::with_capacity(found_rules.len());
        // An alert is a few hundred bytes: grown from empty, the list was
        // copied ~7 times per article (12% of deciding, at 10,000 rules).
        decisions.alerts.reserve_exact(found_rules.len());
        // Every alert names the same article and time: made once, shared.
        let alerts = ArticleAlerts {
            article,
            ids: AlertIds::new(&article.id),
            reference: Arc::new(article_ref(article)),
            fired_at: fired_at.into(),
            duplicate_of,
        };
        // Filled anew for each fired rule, allocated once per article.
        let mut mentions: Vec<Mention> = Vec::new();
        let mut title_mentions: Vec<Mention> = Vec::new();
        let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
        let mut title_spans: Vec<std::ops::Range<usize>> = Vec::new();
        for found in found_rules {
            let rule = &self.config.rules[found.rule];
            fired_rules.push(found.rule);
            mentions.clear();
            mentions.extend(
                found
                    .entities
                    .iter()
                    .map(|(entity, span)| (ruleset.shared_entity_id(*entity), span.clone())),
            );
            spans.clear();
            spans.extend_from_slice(&found.spans);
            if rule.first_seen {
                for candidate in candidates
                    .iter()
                    .filter(|c| rule.classes.contains(&c.class))
                {
                    mentions.push((&candidate.id, candidate.span.clone()));
                    spans.push(candidate.span.clone());
                }
            }
            title_mentions.clear();
            title_mentions.extend(
                found
                    .title_entities
                    .iter()
                    .map(|(entity, span)| (ruleset.shared_entity_id(*entity), span.clone())),
            );
            let mut entities = distinct_ids(mentions.iter().chain(&title_mentions));
            title_spans.clear();
            title_spans.extend_from_slice(&found.title_spans);
            if rule.first_seen {
                let unseen = self.unseen(rule, &entities, batch)?;
                if unseen.is_empty() {
                    continue;
                }
                restrict_to_entities(&mut spans, &mentions, &unseen);
                restrict_to_entities(&mut title_spans, &title_mentions, &unseen);
                for entity in &unseen {
                    decisions
                        .seen
                        .push((rule.id.to_string(), entity.to_string()));
                }
                entities = unseen;
            }
            if alerts.duplicate_of.is_some() && rule.on_duplicate == OnDuplicate::Suppress {
                debug!(rule = %rule.id, file = %article.path.display(), "near-duplicate of a recent article; suppressed");
                continue;
            }
            let mut counted = Vec::new();
            if let Some(threshold) = rule.threshold {
                let since = now_ms - threshold.within.as_millis() as i64;
                let mut earlier: Vec<(String, String)> =
                    self.store.threshold_hits(&rule.id, since)?;
                earlier.extend(
                    batch
                        .threshold_hits
                        .iter()
                        .filter(|(hit_rule, _, _)| **hit_rule == *rule.id)
                        .map(|(_, id, reference)| (id.clone(), reference.clone())),
                );
                earlier.retain(|(id, _)| id != &article.id);
                let stored = serde_json::to_string(&alerts.reference)?;
                if earlier.len() + 1 < threshold.count as usize {
                    decisions.threshold_hits.push((rule.id.to_string(), stored));
                    continue;
                }
                decisions.thresholds_fired.push(rule.id.to_string());
                counted = earlier
                    .iter()
                    .filter_map(|(_, reference)| serde_json::from_str::<ArticleRef>(reference).ok())
                    .collect();
                counted.push(ArticleRef::clone(&alerts.reference));
            }
            if let Some(throttle) = rule.throttle {
                let since = now_ms - throttle.period.as_millis() as i64;
                let keys: Vec<String> = if throttle.by_entity {
                    entities.iter().map(|entity| entity.to_string()).collect()
                } else {
                    vec![String::new()]
                };
                let mut open = Vec::new();
                for key in keys {
                    let pending = batch
                        .fires
                        .get(&(rule.id.to_string(), key.clone()))
                        .copied();
                    let last = pending.or(self.store.last_fire(&rule.id, &key)?);
                    if last.is_none_or(|at| at < since) {
                        open.push(key);
                    }
                }
                if open.is_empty() {
                    debug!(rule = %rule.id, file = %article.path.display(), "throttled");
                    continue;
                }
                if throttle.by_entity {
                    restrict_to_entities(&mut spans, &mentions, &open);
                    restrict_to_entities(&mut title_spans, &title_mentions, &open);
                    entities.retain(|entity| open.iter().any(|key| **key == **entity));
                }
                for key in open {
                    decisions.fires.push((rule.id.to_string(), key));
                }
            }
            spans.sort_by_key(|span| (span.start, span.end));
            spans.dedup();
            order_by_appearance(&mut entities, &mentions);
            let mut alert = alerts.alert(rule, &spans, entities);
            if let Some(title) = title {
                alert.matches.extend(title_matches(title, &title_spans));
            }
            name_mentions(&mut alert.matches, &found, ruleset, article);
            alert.articles = counted;
            decisions.alerts.push(alert);
        }
        // first_seen rules that did not fire on listed entities may still
        // fire on names discovered for their classes (none to look at
        // without a discovered name: no pass over every rule per article).
        // `fired_rules` is in rule order, as the scan reports them.
        let rules = if candidates.is_empty() {
            &[][..]
        } else {
            &self.config.rules[..]
        };
        for (index, rule) in rules.iter().enumerate() {
            if !rule.first_seen || fired_rules.binary_search(&index).is_ok() {
                continue;
            }
            let mentions: Vec<Mention> = candidates
                .iter()
                .filter(|c| rule.classes.contains(&c.class))
                .map(|c| (&c.id, c.span.clone()))
                .collect();
            if mentions.is_empty()
                || (alerts.duplicate_of.is_some() && rule.on_duplicate == OnDuplicate::Suppress)
            {
                continue;
            }
            let ids = distinct_ids(&mentions);
            let unseen = self.unseen(rule, &ids, batch)?;
            if unseen.is_empty() {
                continue;
            }
            let mut spans: Vec<std::ops::Range<usize>> =
                mentions.iter().map(|(_, span)| span.clone()).collect();
            restrict_to_entities(&mut spans, &mentions, &unseen);
            spans.sort_by_key(|span| (span.start, span.end));
            spans.dedup();
            for entity in &unseen {
                decisions
                    .seen
                    .push((rule.id.to_string(), entity.to_string()));
                debug!(rule = %rule.id, entity = %entity, file = %article.path.display(), "discovered an entity not in config");
            }
            let alert = alerts.alert(rule, &spans, unseen);
            decisions.alerts.push(alert);
        }
        Ok(decisions)
    }

    /// Which of `entities` `rule` has seen neither in the store nor in the
    /// batch not yet committed.
    fn unseen(
        &self,
        rule: &Rule,
        entities: &[Arc<str>],
        batch: &Batch,
    ) -> Result<Vec<Arc<str>>, StoreError> {
        let mut unseen = self.store.unseen(&rule.id, entities)?;
        unseen.retain(|entity| {
            !batch
                .seen
                .contains(&(rule.id.to_string(), entity.to_string()))
        });
        Ok(unseen)
    }

    /// The most similar recent article (within [`DUPLICATE_WINDOW`]) when it
    /// is similar enough to be the same story.
    fn duplicate_of(&self, signature: &Signature, now_ms: i64, batch: &Batch) -> Option<String> {
        let since = now_ms - DUPLICATE_WINDOW.as_millis() as i64;
        // The batch's first copy of the story, if it has one: nothing
        // beats it (the batch wins ties with the index, below).
        if let Some(&first) = batch.copies.get(&signature.exact_key()) {
            let (id, copy) = &batch.fingerprints[first];
            if copy == signature {
                return Some(id.clone());
            }
        }
        let mut best: Option<(f64, String)> = None;
        for (id, other) in &batch.fingerprints {
            let similarity = signature.similarity(other);
            if similarity >= DUPLICATE_SIMILARITY
                && best.as_ref().is_none_or(|(b, _)| similarity > *b)
            {
                best = Some((similarity, id.clone()));
            }
        }
        if let Some((id, similarity)) = self
            .duplicates
            .as_ref()
            .and_then(|index| index.best_match(signature, since))
        {
            if best.as_ref().is_none_or(|(b, _)| similarity > *b) {
                best = Some((similarity, id.to_string()));
            }
        }
        best.map(|(_, id)| id)
    }

    /// Loads the recent signatures once; afterwards the index is kept up to
    /// date by [`Pipeline::process_batch`].
    fn load_duplicates(&mut self, now_ms: i64) -> Result<(), StoreError> {
        if self.duplicates.is_none() {
            let since = now_ms - DUPLICATE_WINDOW.as_millis() as i64;
            let mut index = DuplicateIndex::new(DUPLICATE_CANDIDATES);
            let recent = self
                .store
                .recent_fingerprints(since, DUPLICATE_CANDIDATES)?;
            // Newest first from the database; the index takes the oldest first.
            for (id, bytes, at_ms) in recent.into_iter().rev() {
                if let Some(signature) = Signature::from_bytes(&bytes) {
                    index.insert(id, at_ms, signature);
                }
            }
            self.duplicates = Some(index);
        }
        Ok(())
    }
}

/// A file read and scanned, ready to be recorded: all the work on it that
/// needs no database, so that it can run on another thread ahead of the
/// recording (the daemon's reader thread, see `app.rs`).
pub struct ReadFile {
    pub path: PathBuf,
    read: Read,
}

enum Read {
    /// Settled without a record: unreadable, not a regular file, or
    /// already recorded as the reader saw it.
    Done(Outcome),
    /// Not an article; its file record says so.
    Skipped { key: FileKey, reason: String },
    /// An article, with the rules' findings unless its content was
    /// recorded before (then it is a duplicate and needs none).
    Article {
        key: FileKey,
        article: Article,
        scan: Option<Box<Scan>>,
    },
}

/// What the rules found in an article before any rule option (first_seen,
/// duplicates, threshold, throttle) is applied: pure, no database.
struct Scan {
    found: Vec<RuleMatch>,
    fingerprint: Option<Signature>,
    candidates: Vec<Candidate>,
}

/// Reads the file at `path` into an `Article` and runs the rules of
/// `config` on it. With `known` (a database connection), a file or content
/// recorded before is neither read nor scanned again (a start-up scan over
/// a full folder); the recording checks again either way, so a failed or
/// outdated look here only costs time.
pub fn read_file(config: &Config, path: &Path, known: Option<&Store>) -> ReadFile {
    let read = |read| ReadFile {
        path: path.to_path_buf(),
        read,
    };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) => return read(Read::Done(Outcome::Unreadable(e.to_string()))),
    };
    if !metadata.file_type().is_file() {
        return read(Read::Done(Outcome::Skipped(
            "not a regular file".to_string(),
        )));
    }
    let key = FileKey {
        path: path.display().to_string(),
        size: metadata.len(),
        mtime_ns: mtime_ns(&metadata),
    };
    if known.is_some_and(|store| store.file_unchanged(&key).unwrap_or(false)) {
        return read(Read::Done(Outcome::Unchanged));
    }
    let max_size = config.watch.max_file_size;
    if metadata.len() > max_size {
        let reason = SkipReason::TooLarge {
            size: metadata.len(),
            limit: max_size,
        };
        return read(Read::Skipped {
            key,
            reason: reason.to_string(),
        });
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return read(Read::Done(Outcome::Unreadable(e.to_string()))),
    };
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let article = match Article::from_bytes(path.to_path_buf(), &extension, &bytes, max_size) {
        Ok(article) => article,
        Err(reason) => {
            return read(Read::Skipped {
                key,
                reason: reason.to_string(),
            })
        }
    };
    drop(bytes);
    for warning in &article.warnings {
        match warning {
            ReadWarning::NotUtf8 => {
                warn!(file = %path.display(), "file is not valid UTF-8; decoded as Windows-1252")
            }
        }
    }
    let recorded = known.is_some_and(|store| store.article_processed(&article.id).unwrap_or(false));
    // Boxed: a signature alone is 512 bytes, and most files wait in a queue.
    let scan = (!recorded).then(|| Box::new(scan_article(config, &article)));
    read(Read::Article { key, article, scan })
}

/// Runs the rules of `config` on `article`, computes its near-duplicate
/// signature and the names its classes' `discover` patterns capture.
fn scan_article(config: &Config, article: &Article) -> Scan {
    // Rules see the story without its comments, related links and pitches;
    // offsets are unchanged, so alerts cite the article as read.
    let matchable = boilerplate::matchable(&article.text);
    let (found, normalized) = config
        .ruleset
        .scan_article_with_words(article.title.as_deref(), &matchable);
    let fingerprint = Signature::of_normalized(&normalized);
    Scan {
        found,
        fingerprint,
        candidates: discover(config, &matchable),
    }
}

/// Names captured by the classes' `discover` patterns that are no
/// entity's alias: candidate entities `new:NAME` of that class.
fn discover(config: &Config, text: &str) -> Vec<Candidate> {
    let discovery = &config.discovery;
    let mut candidates: Vec<Candidate> = Vec::new();
    for pattern in &discovery.patterns {
        for captures in pattern.regex.captures_iter(text) {
            let Some(name) = captures.get(1) else {
                continue;
            };
            let span = whole_name(text, name.range());
            let canonical = normalize_term(&text[span.clone()]);
            let letters = canonical.chars().filter(|c| c.is_alphanumeric()).count();
            // "TOR M2": the name may be the end of a known alias.
            let preceding: Vec<&str> = text[..span.start]
                .split_whitespace()
                .rev()
                .take(3)
                .collect();
            let mut longer = canonical.clone();
            let mut part_of_alias = false;
            for word in preceding {
                longer = format!("{} {longer}", normalize_term(word));
                part_of_alias |= discovery.known_aliases.contains(longer.trim());
            }
            if part_of_alias {
                continue;
            }
            if letters < 2
                || discovery.known_aliases.contains(&canonical)
                || discovery
                    .known_prefixes
                    .iter()
                    .any(|prefix| canonical.starts_with(prefix.as_str()))
            {
                continue;
            }
            let id = format!("new:{}", canonical.replace(' ', "-"));
            if !candidates.iter().any(|c| *c.id == *id && c.span == span) {
                candidates.push(Candidate {
                    class: pattern.class.clone(),
                    id: id.into(),
                    span,
                });
            }
        }
    }
    candidates
}

/// What the rules decided about one article, and what must be recorded.
#[derive(Default)]
struct Decisions {
    alerts: Vec<Alert>,
    seen: Vec<SeenEntity>,
    fingerprint: Option<Signature>,
    fires: Vec<(String, String)>,
    threshold_hits: Vec<(String, String)>,
    thresholds_fired: Vec<String>,
}

/// Widens a captured name to whole hyphen-joined words, so a pattern that
/// catches "M2" in "Tor-M2" reports "Tor-M2" (and sees it is known).
fn whole_name(text: &str, mut span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let is_word = |c: char| c.is_alphanumeric();
    let is_joiner = |c: char| matches!(c, '-' | '\u{2010}' | '\u{2011}');
    loop {
        let mut before = text[..span.start].chars().rev();
        match (before.next(), before.next()) {
            (Some(c), _) if is_word(c) => span.start -= c.len_utf8(),
            (Some(j), Some(c)) if is_joiner(j) && is_word(c) => span.start -= j.len_utf8(),
            _ => break,
        }
    }
    loop {
        let mut after = text[span.end..].chars();
        match (after.next(), after.next()) {
            (Some(c), _) if is_word(c) => span.end += c.len_utf8(),
            (Some(j), Some(c)) if is_joiner(j) && is_word(c) => span.end += j.len_utf8(),
            _ => break,
        }
    }
    span
}

/// The entity ids of `mentions`, each once, in order of first mention. A
/// set, not a scan of the ids so far: an article can mention dozens of
/// entities of one rule.
fn distinct_ids<'m>(mentions: impl IntoIterator<Item = &'m Mention<'m>>) -> Vec<Arc<str>> {
    // An alert names one or a few entities: a look through those found so
    // far beats hashing every mention, until there are many.
    const FEW: usize = 16;
    let mut ids: SmallVec<[&Arc<str>; FEW]> = SmallVec::new();
    let mut known: HashSet<&str> = HashSet::new();
    for (id, _) in mentions {
        let new = if ids.len() < FEW {
            !ids.contains(id)
        } else {
            if known.is_empty() {
                known.extend(ids.iter().map(|id| -> &str { id }));
            }
            known.insert(id)
        };
        if new {
            ids.push(id);
        }
    }
    ids.into_iter().cloned().collect()
}

/// Sorts entity ids by their first mention in the text; ids with no
/// mention there (a title's) go last, in the order given.
fn order_by_appearance(entities: &mut [Arc<str>], mentions: &[Mention]) {
    if entities.len() < 2 {
        return;
    }
    // One pass over the mentions for every id's first one: a pass per
    // entity compared every mention's id with every entity's, 7% of the
    // recorder's time in a burst where an alert names dozens of entities.
    let mut first: FastMap<&str, usize> =
        FastMap::with_capacity_and_hasher(entities.len(), Default::default());
    for (id, span) in mentions {
        first
            .entry(id)
            .and_modify(|start| *start = (*start).min(span.start))
            .or_insert(span.start);
    }
    entities.sort_by_cached_key(|id| first.get(&**id).copied().unwrap_or(usize::MAX));
}

/// A name found by a `discover` pattern that no entity lists.
struct Candidate {
    class: String,
    /// `new:` and the canonical name, words joined by `-`.
    id: Arc<str>,
    span: std::ops::Range<usize>,
}

/// An entity mentioned at a byte range of the text (or title): its id,
/// shared with the rule set (or a discovered name's), and the range.
type Mention<'a> = (&'a Arc<str>, std::ops::Range<usize>);

/// Keeps the spans that cite a mention of one of `keep` (entity ids).
fn restrict_to_entities(
    spans: &mut Vec<std::ops::Range<usize>>,
    mentions: &[Mention],
    keep: &[impl AsRef<str>],
) {
    let kept: Vec<&std::ops::Range<usize>> = mentions
        .iter()
        .filter(|(entity, _)| keep.iter().any(|k| k.as_ref() == entity.as_ref()))
        .map(|(_, span)| span)
        .collect();
    spans.retain(|span| {
        kept.iter()
            .any(|m| m.start < span.end && span.start < m.end)
    });
}

/// `fired_at` (RFC 3339) in milliseconds; the wall clock if it does not parse.
fn time_ms(fired_at: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(fired_at).map_or_else(
        |_| chrono::Utc::now().timestamp_millis(),
        |t| t.timestamp_millis(),
    )
}

const DAY_MS: i64 = 24 * 3600 * 1000;
/// How far back near-duplicates are looked for.
pub const DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// The most recent articles compared for near-duplicates (the index in
/// memory keeps no more: it bounds the daemon's memory).
const DUPLICATE_CANDIDATES: usize = 20_000;

/// Names, on each match, the entity mention inside it and the alias it spells.
fn name_mentions(
    matches: &mut [MatchSpan],
    found: &RuleMatch,
    ruleset: &RuleSet,
    article: &Article,
) {
    for cited in matches {
        let in_title = cited.field.as_deref() == Some("title");
        let (mentions, source) = if in_title {
            (
                &found.title_entities[..],
                article.title.as_deref().unwrap_or_default(),
            )
        } else {
            (&found.entities[..], article.text.as_str())
        };
        let Some((entity, range)) = mentions
            .iter()
            .find(|(_, range)| cited.start <= range.start && range.end <= cited.end)
        else {
            continue;
        };
        let Some(surface) = source.get(range.clone()) else {
            continue;
        };
        cited.entity = Some(Arc::clone(ruleset.shared_entity_id(*entity)));
        // Remembered by the rule set: a name is cited in the same few
        // spellings again and again.
        cited.alias = ruleset.alias_of(*entity, surface).cloned();
        if surface != cited.text {
            cited.surface = Some(surface.to_string());
        }
    }
}

/// What every alert on one article shares, made once for the article.
struct ArticleAlerts<'a> {
    article: &'a Article,
    ids: AlertIds,
    reference: Arc<ArticleRef>,
    fired_at: Arc<str>,
    /// The recent article this one repeats, if any.
    duplicate_of: Option<String>,
}

impl ArticleAlerts<'_> {
    /// The alert `rule` raises on the article, citing `spans` of its text
    /// and naming `entities`; marked with the story it repeats when the rule
    /// says so.
    fn alert(
        &self,
        rule: &Rule,
        spans: &[std::ops::Range<usize>],
        entities: Vec<Arc<str>>,
    ) -> Alert {
        let fired = FiredRule {
            id: &rule.id,
            description: &rule.description,
            severity: rule.severity,
        };
        let mut alert = build_alert(
            &fired,
            &self.ids,
            Arc::clone(&self.reference),
            &self.article.text,
            spans,
            entities,
            &self.fired_at,
        );
        if rule.on_duplicate == OnDuplicate::Mark {
            alert.duplicate_of = self.duplicate_of.clone();
        }
        alert
    }
}

fn article_ref(article: &Article) -> ArticleRef {
    ArticleRef {
        id: article.id.clone(),
        path: article.path.display().to_string(),
        title: article.title.clone(),
        published: article.published.map(|d| d.format("%Y-%m-%d").to_string()),
    }
}

fn mtime_ns(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Now, as the alerts' `fired_at`: RFC 3339, UTC, whole seconds.
pub fn fired_at_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[watch]
dir = "articles"

[entities.tor-m2]
class = "air-defense"
aliases = ["Tor-M2"]

[entities.pantsir]
class = "air-defense"
aliases = ["Pantsir"]

[rules.tobruk]
match = 'Tobruk'

[rules.new-air-defense]
match = 'class:air-defense'
first_seen = true
"#;

    fn pipeline() -> (tempfile::TempDir, Pipeline) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::load_str(&dir.path().join("config.toml"), CONFIG, &|_| None)
            .expect("config");
        let store = Store::open_in_memory().expect("store");
        (dir, Pipeline::new(Arc::new(config), store))
    }

    fn fired(outcome: &Outcome) -> Vec<(String, Vec<String>)> {
        match outcome {
            Outcome::Processed { alerts, .. } => alerts
                .iter()
                .map(|a| {
                    let entities = a.entities.iter().map(|e| e.to_string()).collect();
                    (a.rule.to_string(), entities)
                })
                .collect(),
            other => panic!("expected processed, got {other:?}"),
        }
    }

    #[test]
    fn one_batch_behaves_like_files_committed_one_by_one() {
        let (dir, mut pipeline) = pipeline();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let paths = vec![
            write("1.txt", "A Tor-M2 near Tobruk."),
            write("2.txt", "Another Tor-M2 and a Pantsir."),
            write("3.txt", "A Tor-M2 near Tobruk."),
            write("4.txt", "\0binary"),
        ];
        let mut batch = paths.clone();
        batch.push(paths[0].clone());
        let outcomes = pipeline
            .process_batch(&batch, "2026-01-01T00:00:00Z")
            .expect("batch");
        let tor = vec!["tor-m2".to_string()];
        assert_eq!(
            fired(&outcomes[0]),
            [
                ("tobruk".to_string(), vec![]),
                ("new-air-defense".to_string(), tor)
            ]
        );
        // Tor-M2 was seen by the first file of the same batch; Pantsir is new.
        assert_eq!(
            fired(&outcomes[1]),
            [("new-air-defense".to_string(), vec!["pantsir".to_string()])]
        );
        assert!(
            matches!(outcomes[2], Outcome::Duplicate { .. }),
            "same bytes as 1.txt"
        );
        assert!(matches!(outcomes[3], Outcome::Skipped(_)));
        assert!(
            matches!(outcomes[4], Outcome::Unchanged),
            "the same file twice in a batch"
        );
        // All of it was committed: nothing is processed twice afterwards.
        let again = pipeline
            .process_batch(&paths, "2026-01-01T00:00:00Z")
            .expect("batch");
        assert!(
            again.iter().all(|o| matches!(o, Outcome::Unchanged)),
            "{again:?}"
        );
        assert_eq!(pipeline.store().pending_count().expect("count"), 3);
    }

    #[test]
    fn the_words_of_the_tokens_are_the_words_of_the_canonical_text() {
        let text = "Haftar\u{2019}s \u{bd} visit: \u{fb01}ne E\u{301}ric STRA\u{df}E \u{41c}\u{438}\u{43d}\u{441}\u{43a} -- Tor-M2, x";
        let normalized = crate::rules::normalize::normalize(text);
        let words: Vec<&str> = normalized.words().collect();
        assert_eq!(
            words,
            normalized.text.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(words.len(), normalized.tokens.len());
        assert_eq!(crate::rules::normalize::normalize(" -- ").words().len(), 0);
    }

    #[test]
    fn title_matches_cite_the_text_or_the_title() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            "[watch]\ndir = \"articles\"\n\n[rules.title-tobruk]\nmatch = 'title:Tobruk'\n";
        let config = crate::config::load_str(&dir.path().join("config.toml"), config, &|_| None)
            .expect("config");
        let mut pipeline = Pipeline::new(Arc::new(config), Store::open_in_memory().expect("store"));
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let paths = vec![
            // A text file's title is its first line: cited in the text.
            write("a.txt", "Tobruk air base\n\nThe base at Tobruk."),
            // An HTML page's <title> text is part of the text: cited there too.
            write(
                "b.html",
                "<html><head><title>Tobruk air base</title></head><body><p>A story.</p></body></html>",
            ),
            // Tobruk only in the body.
            write("c.txt", "Benghazi news\n\nThe base at Tobruk."),
        ];
        let outcomes = pipeline
            .process_batch(&paths, "2026-01-01T00:00:00Z")
            .expect("batch");
        let matches = |outcome: &Outcome| match outcome {
            Outcome::Processed { alerts, .. } => alerts
                .iter()
                .flat_map(|a| a.matches.iter().cloned())
                .collect::<Vec<_>>(),
            other => panic!("expected processed, got {other:?}"),
        };
        let in_text = matches(&outcomes[0]);
        assert_eq!(in_text.len(), 1);
        assert_eq!((in_text[0].start, in_text[0].field.as_deref()), (0, None));
        let html = matches(&outcomes[1]);
        assert_eq!(html.len(), 1);
        assert_eq!((html[0].text.as_str(), html[0].start), ("Tobruk", 19));
        // A title the text never shows is cited in the title, marked so.
        let in_title = title_matches("The Tobruk base", std::slice::from_ref(&(4..10)));
        assert_eq!(
            (in_title[0].text.as_str(), in_title[0].start),
            ("Tobruk", 4)
        );
        let json = serde_json::to_string(&in_title[0]).expect("json");
        assert!(json.contains(r#""field":"title""#), "{json}");
        assert!(!serde_json::to_string(&in_text[0])
            .expect("json")
            .contains("field"));
        assert!(matches(&outcomes[2]).is_empty());
    }

    /// The alerts that `text`, saved as an article, raises under `config`.
    fn alerts_of(config: &str, text: &str) -> Vec<Alert> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::load_str(&dir.path().join("config.toml"), config, &|_| None)
            .expect("config");
        let mut pipeline = Pipeline::new(Arc::new(config), Store::open_in_memory().expect("store"));
        let path = dir.path().join("a.txt");
        std::fs::write(&path, text).expect("write");
        match pipeline.process_path(&path, "2026-01-01T00:00:00Z") {
            Ok(Outcome::Processed { alerts, .. }) => alerts,
            other => panic!("expected processed, got {other:?}"),
        }
    }

    #[test]
    fn each_mention_names_the_alias_it_spells() {
        let config = r#"
[watch]
dir = "articles"

[entities.lukashenko]
aliases = ["Lukashenko", "Lukashenka"]

[rules.names]
match = 'entity:lukashenko'
"#;
        let alerts = alerts_of(
            config,
            "Lukashenka met Lukashenko's aide. LUKASHENKO left; Lukashenka stayed.",
        );
        let aliases: Vec<Option<&str>> = alerts[0]
            .matches
            .iter()
            .map(|m| m.alias.as_deref())
            .collect();
        assert_eq!(
            aliases,
            [
                Some("Lukashenka"),
                Some("Lukashenko"),
                Some("Lukashenko"),
                Some("Lukashenka")
            ]
        );
    }

    #[test]
    fn matches_name_the_entity_alias_and_surface_form() {
        let config = r#"
[watch]
dir = "articles"

[lists]
visit = ["visit*", "arrived"]

[entities.karankevich]
aliases = ["Karankevich"]
fuzzy = 1

[entities.lukashenko]
aliases = ["Lukashenko"]

[rules.names]
match = 'entity:karankevich OR entity:lukashenko'

[rules.visit]
match = 'entity:karankevich NEAR/2 list:visit'
"#;
        let alerts = alerts_of(config, "Karankvich arrived. Лукашенко met him.");
        type Named<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let named: Vec<Named> = alerts
            .iter()
            .flat_map(|alert| &alert.matches)
            .map(|m| {
                (
                    m.text.as_str(),
                    m.entity.as_deref(),
                    m.alias.as_deref(),
                    m.surface.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("Karankvich", Some("karankevich"), Some("Karankevich"), None),
                ("Лукашенко", Some("lukashenko"), Some("Lukashenko"), None),
                (
                    "Karankvich arrived",
                    Some("karankevich"),
                    Some("Karankevich"),
                    Some("Karankvich")
                ),
            ]
        );
        let json = serde_json::to_string(&alerts[0].matches[0]).expect("json");
        assert!(
            json.contains(r#""entity":"karankevich","alias":"Karankevich""#),
            "{json}"
        );
    }

    #[test]
    fn entities_are_named_once_in_order_of_first_mention() {
        // Past the few that are compared one by one, and back again.
        let names: Vec<Arc<str>> = (0..40).map(|n| format!("e{}", n % 25).into()).collect();
        let mentions: Vec<Mention> = names
            .iter()
            .enumerate()
            .map(|(at, id)| (id, at..at + 1))
            .collect();
        let expected: Vec<Arc<str>> = (0..25).map(|n| format!("e{n}").into()).collect();
        assert_eq!(distinct_ids(&mentions), expected);
        assert_eq!(distinct_ids(&mentions[..3]), expected[..3]);
    }

    #[test]
    fn entities_are_ordered_by_their_first_mention_in_the_text() {
        let [a, b, c]: [Arc<str>; 3] = ["a", "b", "c"].map(Arc::from);
        let mentions = [
            (&b, 9..12),
            (&a, 20..21),
            (&c, 30..31),
            (&b, 2..3),
            (&a, 15..16),
        ];
        // "t" and "u" are only in the title: last, as given.
        let mut entities = ["u", "c", "a", "t", "b"].map(Arc::from);
        order_by_appearance(&mut entities, &mentions);
        assert_eq!(entities.map(|e| e.to_string()), ["b", "a", "c", "u", "t"]);
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    const CONFIG: &str = r#"
[watch]
dir = "articles"
max_article_age = "30d"

[entities.tor-m2]
class = "air-defense"
aliases = ["Tor-M2"]

[entities.pantsir]
class = "air-defense"
aliases = ["Pantsir"]

[rules.tobruk]
match = 'Tobruk'
throttle = "6h"

[rules.systems]
match = 'class:air-defense'
throttle = "6h"
throttle_by = "entity"

[rules.benghazi-wave]
match = 'Benghazi'
threshold = { count = 3, within = "24h" }

[rules.minsk]
match = 'Minsk'
on_duplicate = "suppress"

[rules.minsk-marked]
match = 'Minsk'

[rules.new-air-defense]
match = 'class:air-defense'
first_seen = true

[classes.air-defense]
discover = ['\b([A-Z][A-Za-z]*-?[0-9][A-Za-z0-9]*)\s+(?:[\w-]+\s+){0,2}air[- ]defen[cs]e system']
"#;

    struct Harness {
        dir: tempfile::TempDir,
        pipeline: Pipeline,
        counter: usize,
    }

    impl Harness {
        fn new() -> Harness {
            let dir = tempfile::tempdir().expect("tempdir");
            let config =
                crate::config::load_str(&dir.path().join("config.toml"), CONFIG, &|_| None)
                    .expect("config");
            let store = Store::open(&dir.path().join("state")).expect("store");
            Harness {
                dir,
                pipeline: Pipeline::new(Arc::new(config), store),
                counter: 0,
            }
        }

        /// Processes `text` as a new file at `at` (RFC 3339); the rules that fired.
        fn at(&mut self, at: &str, text: &str) -> Vec<Alert> {
            self.counter += 1;
            let path = self.dir.path().join(format!("{}.txt", self.counter));
            std::fs::write(&path, text).expect("write");
            match self.pipeline.process_path(&path, at).expect("process") {
                Outcome::Processed { alerts, .. } => alerts,
                other => panic!("expected processed, got {other:?}"),
            }
        }

        fn reopen(&mut self) {
            let store = Store::open(&self.dir.path().join("state")).expect("store");
            self.pipeline = Pipeline::new(self.pipeline.config().clone(), store);
        }
    }

    fn rules(alerts: &[Alert]) -> Vec<(&str, Vec<&str>)> {
        alerts
            .iter()
            .map(|a| (&*a.rule, a.entities.iter().map(|e| &**e).collect()))
            .collect()
    }

    #[test]
    fn throttle_limits_alerts_per_rule_or_entity_and_survives_a_restart() {
        let mut h = Harness::new();
        assert_eq!(
            rules(&h.at("2025-05-26T10:00:00Z", "Tobruk base, a Tor-M2.")),
            [
                ("tobruk", vec![]),
                ("systems", vec!["tor-m2"]),
                ("new-air-defense", vec!["tor-m2"])
            ]
        );
        // Within 6 h: Tobruk is throttled; Tor-M2 too, Pantsir is another entity.
        assert_eq!(
            rules(&h.at("2025-05-26T12:00:00Z", "Tobruk again, Tor-M2 and Pantsir.")),
            [
                ("systems", vec!["pantsir"]),
                ("new-air-defense", vec!["pantsir"])
            ]
        );
        h.reopen();
        assert_eq!(
            rules(&h.at("2025-05-26T15:59:00Z", "Tobruk, Tor-M2 once more.")),
            []
        );
        assert_eq!(
            rules(&h.at("2025-05-26T16:01:00Z", "Tobruk, Tor-M2 after the window.")),
            [("tobruk", vec![]), ("systems", vec!["tor-m2"])],
            "new-air-defense fires once per entity ever"
        );
    }

    #[test]
    fn a_threshold_fires_on_the_nth_article_within_the_window_and_lists_them() {
        let mut h = Harness::new();
        assert!(h
            .at("2025-05-26T10:00:00Z", "News from Benghazi, one.")
            .is_empty());
        assert!(h
            .at("2025-05-27T11:00:00Z", "News from Benghazi, two.")
            .is_empty());
        h.reopen();
        // The first one fell out of the 24 h window: two in the window now.
        assert!(h
            .at("2025-05-27T12:00:00Z", "News from Benghazi, three.")
            .is_empty());
        let alerts = h.at("2025-05-27T13:00:00Z", "News from Benghazi, four.");
        assert_eq!(rules(&alerts), [("benghazi-wave", vec![])]);
        let listed: Vec<&str> = alerts[0]
            .articles
            .iter()
            .map(|a| a.path.rsplit('/').next().unwrap_or(""))
            .collect();
        assert_eq!(listed, ["2.txt", "3.txt", "4.txt"]);
        // Counted articles are used up: the next one starts a new count.
        assert!(h
            .at("2025-05-27T14:00:00Z", "News from Benghazi, five.")
            .is_empty());
    }

    #[test]
    fn discovered_names_count_as_new_entities_of_their_class() {
        let mut h = Harness::new();
        let alerts = h.at(
            "2025-05-26T10:00:00Z",
            "The parade showed the HQ-9B long-range air-defence system next to a Tor-M2.",
        );
        let fired: Vec<_> = rules(&alerts)
            .into_iter()
            .filter(|(rule, _)| *rule == "new-air-defense")
            .collect();
        assert_eq!(fired, [("new-air-defense", vec!["new:hq-9b", "tor-m2"])]);
        let cited: Vec<&str> = alerts
            .iter()
            .find(|a| &*a.rule == "new-air-defense")
            .map(|a| a.matches.iter().map(|m| m.text.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(cited, ["HQ-9B", "Tor-M2"]);
        // Known now, like any entity; a listed alias is never "new".
        let again = h.at(
            "2025-05-27T10:00:00Z",
            "Another HQ-9B air-defence system; the Tor-M2 air defence system and a TOR M2 air-defence system too.",
        );
        assert!(
            rules(&again)
                .iter()
                .all(|(rule, _)| *rule != "new-air-defense"),
            "{again:?}"
        );
        // A candidate alone fires the class's first_seen rule.
        let alone = h.at(
            "2025-05-28T10:00:00Z",
            "Satellite images show an FK-3 medium-range air defense system near Sirte.",
        );
        assert_eq!(
            rules(&alone)
                .into_iter()
                .filter(|(rule, _)| *rule == "new-air-defense")
                .collect::<Vec<_>>(),
            [("new-air-defense", vec!["new:fk-3"])]
        );
    }

    #[test]
    fn old_articles_raise_no_alerts() {
        let mut h = Harness::new();
        assert!(h
            .at(
                "2025-07-01T00:00:00Z",
                "Tobruk report\n\nOn 18 February 2025 talks on Tobruk."
            )
            .is_empty());
        assert_eq!(
            rules(&h.at(
                "2025-03-01T00:00:00Z",
                "Tobruk report\n\nOn 18 February 2025 more on Tobruk."
            )),
            [("tobruk", vec![])]
        );
    }

    #[test]
    fn copies_in_a_batch_and_in_later_ones_name_the_first_copy() {
        let mut h = Harness::new();
        let story = "Haftar visited Minsk where he met President Lukashenko and Prime Minister Golovchenko, and the two sides discussed buses, tractors and a Belarusian role at an air base. The visit lasted three days and was hosted by the chairman of the KGB. Officials in Benghazi said agreements on agriculture and education would follow, and that a trade office would open in the spring to support Belarusian companies in eastern Libya.";
        // Other bytes, the same words: copies of one story.
        let texts = [
            story.to_string(),
            format!("{story}\n"),
            story.replace(", and", " , and"),
            story.to_uppercase(),
        ];
        let paths: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(n, text)| {
                let path = h.dir.path().join(format!("copy{n}.txt"));
                std::fs::write(&path, text).expect("write");
                path
            })
            .collect();
        let processed = |outcome: &Outcome| match outcome {
            Outcome::Processed {
                article_id, alerts, ..
            } => (article_id.clone(), alerts.clone()),
            other => panic!("expected processed, got {other:?}"),
        };
        let first = h
            .pipeline
            .process_batch(&paths[..3], "2025-02-18T10:00:00Z")
            .expect("batch");
        // The rule that marks duplicates names the copy it repeats; the one
        // that suppresses them is silent.
        let marked = |alerts: &[Alert]| {
            assert!(
                alerts.iter().all(|alert| &*alert.rule != "minsk"),
                "suppressed"
            );
            let marked = alerts.iter().find(|alert| &*alert.rule == "minsk-marked");
            marked.expect("minsk-marked fired").duplicate_of.clone()
        };
        let (original, alerts) = processed(&first[0]);
        assert!(alerts.iter().any(|alert| &*alert.rule == "minsk"));
        assert_eq!(
            alerts
                .iter()
                .find(|alert| &*alert.rule == "minsk-marked")
                .map(|a| &a.duplicate_of),
            Some(&None)
        );
        for copy in &first[1..] {
            assert_eq!(marked(&processed(copy).1), Some(original.clone()));
        }
        let later = h
            .pipeline
            .process_batch(&paths[3..], "2025-02-18T11:00:00Z")
            .expect("batch");
        assert_eq!(marked(&processed(&later[0]).1), Some(original));
    }

    #[test]
    fn near_duplicates_are_suppressed_or_marked_per_rule() {
        let mut h = Harness::new();
        let story = "Haftar visited Minsk where he met President Lukashenko and Prime Minister Golovchenko, and the two sides discussed buses, tractors and a Belarusian role at an air base. The visit lasted three days and was hosted by the chairman of the KGB. Officials in Benghazi said agreements on agriculture and education would follow, and that a trade office would open in the spring to support Belarusian companies in eastern Libya.";
        let first = h.at("2025-02-18T10:00:00Z", story);
        assert_eq!(rules(&first), [("minsk", vec![]), ("minsk-marked", vec![])]);
        assert_eq!(first[1].duplicate_of, None);
        let rerun = h.at(
            "2025-02-18T12:00:00Z",
            &format!(
                "MINSK (Agencies) - {}",
                story.replace("three days", "72 hours")
            ),
        );
        assert_eq!(
            rules(&rerun),
            [("minsk-marked", vec![])],
            "suppressed by one rule, marked by the other"
        );
        assert!(rerun[0].duplicate_of.is_some());
        let fresh = h.at("2025-02-18T13:00:00Z", "Minsk: a new agreement on potash transit was signed today by the transport ministers of both countries, who met at the border crossing near Brest and inspected the new rail terminal that will carry fertiliser exports to ports on the Baltic coast. Railway officials said the first trains would run in the summer, after customs procedures are simplified and tariffs for transit cargo agreed.");
        assert_eq!(rules(&fresh), [("minsk", vec![]), ("minsk-marked", vec![])]);
        assert_eq!(fresh[1].duplicate_of, None);
    }
}
