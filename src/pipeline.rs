//! From a file path to recorded alerts: read the file into an `Article`,
//! scan it with the compiled rules, apply `first_seen`, build the alerts,
//! and record the article with its deliveries in one transaction.
//!
//! Runs on one blocking thread (it owns a database connection). A broken
//! file is reported as an [`Outcome`], never as an error: only a database
//! failure is an error, and even that is the caller's to log and survive.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use crate::alert::build::{build_alert, title_matches, FiredRule};
use crate::alert::payload::{Alert, ArticleRef, MatchSpan};
use crate::article::{boilerplate, Article, ReadWarning, SkipReason};
use crate::config::Config;
use crate::rules::{RuleMatch, RuleSet};
use crate::state::{FileKey, NewDelivery, ProcessedArticle, Store, StoreError};

/// What happened to one file.
#[derive(Debug)]
pub enum Outcome {
    /// A new article; these alerts were recorded (and queued for delivery).
    Processed {
        article_id: String,
        alerts: Vec<Alert>,
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
}

pub struct Pipeline {
    config: Arc<Config>,
    store: Store,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, store: Store) -> Self {
        Pipeline { config, store }
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
        let mut batch = Batch::default();
        let mut outcomes = Vec::with_capacity(paths.len());
        for path in paths {
            outcomes.push(self.prepare(path, fired_at, &mut batch)?);
        }
        if !batch.articles.is_empty() || !batch.files.is_empty() {
            self.store.commit_batch(&batch.articles, &batch.files)?;
        }
        Ok(outcomes)
    }

    /// Reads and evaluates one file, adding what must be recorded to `batch`.
    fn prepare(
        &mut self,
        path: &Path,
        fired_at: &str,
        batch: &mut Batch,
    ) -> Result<Outcome, StoreError> {
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(e) => return Ok(Outcome::Unreadable(e.to_string())),
        };
        if !metadata.file_type().is_file() {
            return Ok(Outcome::Skipped("not a regular file".to_string()));
        }
        let key = FileKey {
            path: path.display().to_string(),
            size: metadata.len(),
            mtime_ns: mtime_ns(&metadata),
        };
        if batch.file_keys.contains(&key) || self.store.file_unchanged(&key)? {
            return Ok(Outcome::Unchanged);
        }
        batch.file_keys.insert(key.clone());
        let max_size = self.config.watch.max_file_size;
        if metadata.len() > max_size {
            batch.files.push((key, None));
            let reason = SkipReason::TooLarge {
                size: metadata.len(),
                limit: max_size,
            };
            return Ok(Outcome::Skipped(reason.to_string()));
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Outcome::Unreadable(e.to_string())),
        };
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let article = match Article::from_bytes(path.to_path_buf(), &extension, &bytes, max_size) {
            Ok(article) => article,
            Err(reason) => {
                batch.files.push((key, None));
                return Ok(Outcome::Skipped(reason.to_string()));
            }
        };
        for warning in &article.warnings {
            match warning {
                ReadWarning::NotUtf8 => {
                    warn!(file = %path.display(), "file is not valid UTF-8; decoded as Windows-1252")
                }
            }
        }
        if batch.article_ids.contains(&article.id) || self.store.article_processed(&article.id)? {
            batch.files.push((key, Some(article.id.clone())));
            return Ok(Outcome::Duplicate {
                article_id: article.id,
            });
        }
        let (alerts, seen) = self.alerts_for(&article, fired_at, &batch.seen)?;
        let mut deliveries = Vec::new();
        for alert in &alerts {
            let payload = serde_json::to_string(alert)?;
            let Some(rule) = self.config.rules.iter().find(|r| r.id == alert.rule) else {
                continue;
            };
            for &sink in &rule.sinks {
                deliveries.push(NewDelivery {
                    sink: self.config.sinks[sink].name.clone(),
                    alert_id: alert.id.clone(),
                    rule: alert.rule.clone(),
                    payload: payload.clone(),
                });
            }
        }
        batch.article_ids.insert(article.id.clone());
        batch.seen.extend(seen.iter().cloned());
        batch.articles.push(ProcessedArticle {
            article_id: article.id.clone(),
            file: key,
            seen,
            deliveries,
            now_ms: chrono::Utc::now().timestamp_millis(),
        });
        Ok(Outcome::Processed {
            article_id: article.id,
            alerts,
        })
    }

    /// Runs the rules on the article and applies `first_seen`. Returns the
    /// alerts and the (rule, entity) pairs they mark as seen.
    /// `pending_seen` holds pairs seen earlier in the same, not yet
    /// committed, batch.
    pub fn alerts_for(
        &self,
        article: &Article,
        fired_at: &str,
        pending_seen: &HashSet<SeenEntity>,
    ) -> Result<(Vec<Alert>, Vec<SeenEntity>), StoreError> {
        let ruleset = &self.config.ruleset;
        let mut alerts = Vec::new();
        let mut seen = Vec::new();
        // Rules see the story without its comments, related links and pitches;
        // offsets are unchanged, so alerts cite the article as read.
        let matchable = boilerplate::matchable(&article.text);
        let title = article.title.as_deref();
        for found in ruleset.scan_article(title, &matchable) {
            let rule = &self.config.rules[found.rule];
            let mut entities: Vec<String> = Vec::new();
            for (entity, _) in found.entities.iter().chain(&found.title_entities) {
                let id = ruleset.entity_id(*entity);
                if !entities.iter().any(|e| e == id) {
                    entities.push(id.to_string());
                }
            }
            let mut spans = found.spans.clone();
            let mut title_spans = found.title_spans.clone();
            if rule.first_seen {
                let mut unseen = self.store.unseen(&rule.id, &entities)?;
                unseen.retain(|entity| !pending_seen.contains(&(rule.id.clone(), entity.clone())));
                if unseen.is_empty() {
                    continue;
                }
                // Cite only the mentions of entities seen for the first time.
                let is_new = |entity: usize| unseen.iter().any(|u| u == ruleset.entity_id(entity));
                let new_mentions = |mentions: &[(usize, std::ops::Range<usize>)]| {
                    mentions
                        .iter()
                        .filter(|(entity, _)| is_new(*entity))
                        .map(|(_, span)| span.clone())
                        .collect::<Vec<_>>()
                };
                let overlaps_any = |mentions: &[std::ops::Range<usize>], span: &std::ops::Range<usize>| {
                    mentions
                        .iter()
                        .any(|mention| mention.start < span.end && span.start < mention.end)
                };
                let in_text = new_mentions(&found.entities);
                let in_title = new_mentions(&found.title_entities);
                spans.retain(|span| overlaps_any(&in_text, span));
                title_spans.retain(|span| overlaps_any(&in_title, span));
                for entity in &unseen {
                    seen.push((rule.id.clone(), entity.clone()));
                }
                entities = unseen;
            }
            let fired = FiredRule {
                id: &rule.id,
                description: &rule.description,
                severity: rule.severity,
            };
            let mut alert = build_alert(
                &fired,
                article_ref(article),
                &article.text,
                &spans,
                entities,
                fired_at,
            );
            if let Some(title) = title {
                alert.matches.extend(title_matches(title, &title_spans));
            }
            name_mentions(&mut alert.matches, &found, ruleset, article);
            alerts.push(alert);
        }
        Ok((alerts, seen))
    }
}

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
            (&found.title_entities, article.title.as_deref().unwrap_or_default())
        } else {
            (&found.entities, article.text.as_str())
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
        cited.entity = Some(ruleset.entity_id(*entity).to_string());
        cited.alias = ruleset.alias_of(*entity, surface).map(str::to_string);
        if surface != cited.text {
            cited.surface = Some(surface.to_string());
        }
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
                .map(|a| (a.rule.clone(), a.entities.clone()))
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
    fn title_matches_cite_the_text_or_the_title() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = "[watch]\ndir = \"articles\"\n\n[rules.title-tobruk]\nmatch = 'title:Tobruk'\n";
        let config = crate::config::load_str(&dir.path().join("config.toml"), config, &|_| None)
            .expect("config");
        let mut pipeline = Pipeline::new(
            Arc::new(config),
            Store::open_in_memory().expect("store"),
        );
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
        assert_eq!((in_title[0].text.as_str(), in_title[0].start), ("Tobruk", 4));
        let json = serde_json::to_string(&in_title[0]).expect("json");
        assert!(json.contains(r#""field":"title""#), "{json}");
        assert!(!serde_json::to_string(&in_text[0]).expect("json").contains("field"));
        assert!(matches(&outcomes[2]).is_empty());
    }

    #[test]
    fn matches_name_the_entity_alias_and_surface_form() {
        let dir = tempfile::tempdir().expect("tempdir");
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
        let config = crate::config::load_str(&dir.path().join("config.toml"), config, &|_| None)
            .expect("config");
        let mut pipeline = Pipeline::new(Arc::new(config), Store::open_in_memory().expect("store"));
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "Karankvich arrived. Лукашенко met him.").expect("write");
        let outcome = pipeline
            .process_path(&path, "2026-01-01T00:00:00Z")
            .expect("processed");
        let Outcome::Processed { alerts, .. } = outcome else {
            panic!("expected processed, got {outcome:?}");
        };
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
}
