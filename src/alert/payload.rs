//! The alert as every sink receives it: the JSON body of SPEC.md's webhook,
//! also written by the file sink and printed by `newswatch test --json`.
//!
//! This type is data only; building one from a rule match lives in
//! `alert::build`, rendering it for a particular receiver lives in the sinks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How urgent an alert is; chosen per rule in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert: a rule that fired on an article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id of (article, rule): the same on every retry and restart.
    pub id: String,
    /// The rule id (its table name in config.toml).
    pub rule: Arc<str>,
    /// The rule's description, or its match expression when it has none.
    pub description: Arc<str>,
    pub severity: Severity,
    pub article: Arc<ArticleRef>,
    /// Ids of the entities whose aliases matched, in order of first
    /// appearance (shared with the rule set, which holds each id once).
    pub entities: Vec<Arc<str>>,
    /// Every match that made the rule fire, in text order.
    pub matches: Vec<MatchSpan>,
    /// A short plain-text extract around the first matches, whitespace collapsed.
    pub snippet: String,
    /// When the alert fired, RFC 3339 in UTC with a `Z` suffix, whole seconds.
    pub fired_at: Arc<str>,
    /// The recent article this one is a near-duplicate of (same story, other
    /// outlet), when the rule marks duplicates. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// For a `threshold` rule: every article that counted, oldest first
    /// (this one last). Absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub articles: Vec<ArticleRef>,
}

/// The article an alert is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleRef {
    /// BLAKE3 hash of the file's bytes, lowercase hex.
    pub id: String,
    /// The watched folder as configured, joined with the file name (`seeds/x.txt`).
    pub path: String,
    pub title: Option<String>,
    /// Publication date `YYYY-MM-DD`, or null when none was found.
    pub published: Option<String>,
}

/// One matched piece of text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MatchSpan {
    /// The text exactly as it appears in the article (or title).
    pub text: String,
    /// Byte offset of the first byte in the article text (or title).
    pub start: usize,
    /// Byte offset one past the last byte in the article text (or title).
    pub end: usize,
    /// `"title"` when the match is in the article's title and the title is
    /// not part of the text: `start` and `end` are then offsets into
    /// `article.title`. Absent for matches in the text (an extension of
    /// SPEC.md's payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The entity mentioned in this match, if any (the first, if several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Arc<str>>,
    /// The entity's alias, as written in config.toml, that the mention
    /// spells (exactly, transliterated or within its `fuzzy` distance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Arc<str>>,
    /// The mention as written, when the match is wider than the mention
    /// (a `NEAR` pair); otherwise `text` is the mention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
}
