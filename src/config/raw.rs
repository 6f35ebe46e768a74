//! The config file exactly as written: serde structs that reject unknown
//! keys and remember where each value is (for `FILE:LINE:COL` errors).
//! Nothing here checks meaning; that is `load`'s job.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::alert::payload::Severity;

mod pieces;

/// The whole config.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The folder newswatch watches for new articles.
    pub watch: RawWatch,
    /// Where newswatch keeps its database.
    #[serde(default)]
    pub state: RawState,
    /// Named word lists, used in rules as `list:NAME`.
    #[serde(default)]
    pub lists: Table<Spanned<Vec<Spanned<String>>>>,
    /// Named things to recognise in every spelling, used as `entity:ID` and `class:NAME`.
    #[serde(default)]
    pub entities: Table<Spanned<RawEntity>>,
    /// The alert rules; the table name is the rule id.
    #[serde(default)]
    pub rules: Table<Spanned<RawRule>>,
    /// Where alerts go; with no sinks at all, a file sink writing to `alerts/`.
    #[serde(default)]
    pub sinks: Table<Spanned<RawSink>>,
    /// Rule tests (`[[tests]]`), run by `newswatch check` and before the
    /// daemon starts: a config whose tests fail is not valid.
    #[serde(default)]
    pub tests: Vec<Spanned<RawTest>>,
    /// The health and metrics HTTP server; off when the table is absent.
    pub server: Option<Spanned<RawServer>>,
    /// Per entity class, patterns that discover names nobody listed.
    #[serde(default)]
    pub classes: Table<Spanned<RawClass>>,
}

impl RawConfig {
    /// Parses config.toml. A large one ([`pieces::MIN_LEN`] or more: some
    /// thousands of entities and rules) is read in pieces on every core (see
    /// [`pieces`]); any other, or one those pieces do not cover, is parsed
    /// whole. Of several errors, the first in the file is reported.
    pub fn parse(source: &str) -> Result<RawConfig, toml::de::Error> {
        if source.len() >= pieces::MIN_LEN {
            if let Some(raw) = pieces::parse(source, pieces::PIECE_LEN) {
                return Ok(raw);
            }
        }
        Self::parse_whole(source)
    }

    /// Parses config.toml in one piece. The document is parsed once; then
    /// its two large tables, `[entities]` and `[rules]`, are read into their
    /// structs on two threads. Of several errors, the first in the file is
    /// reported.
    fn parse_whole(source: &str) -> Result<RawConfig, toml::de::Error> {
        let mut document = toml::de::DeTable::parse(source)?;
        let entities = document.get_mut().remove("entities");
        let rules = document.get_mut().remove("rules");
        std::thread::scope(|scope| {
            let rules = scope.spawn(move || table(rules));
            let rest = RawConfig::deserialize(toml::de::Deserializer::from(document));
            let entities = table(entities);
            let rules = rules.join().expect("reading a table does not panic");
            match (rest, entities, rules) {
                (Ok(mut raw), Ok(entities), Ok(rules)) => {
                    raw.entities = entities;
                    raw.rules = rules;
                    Ok(raw)
                }
                (rest, entities, rules) => Err([rest.err(), entities.err(), rules.err()]
                    .into_iter()
                    .flatten()
                    .min_by_key(|error| error.span().map_or(0, |span| span.start))
                    .expect("one of them failed")),
            }
        })
    }
}

/// A table of named items, as `Table::deserialize` reads it in a document
/// (absent: empty).
fn table<'de, T: Deserialize<'de>>(
    value: Option<Spanned<toml::de::DeValue<'de>>>,
) -> Result<Table<T>, toml::de::Error> {
    match value {
        Some(value) => Table::deserialize(toml::de::ValueDeserializer::from(value)),
        None => Ok(Table::default()),
    }
}

/// `[classes.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    /// Regular expressions with one capture group, the name: a name captured
    /// that is no entity's alias becomes a candidate entity of this class
    /// (for `first_seen` rules that mention `class:NAME`).
    #[serde(default)]
    pub discover: Vec<Spanned<String>>,
}

/// `[[tests]]`: an article and the rules that must (not) fire on it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// A name shown when the test fails; default "test N".
    pub name: Option<String>,
    /// The article text, inline (read as a `.txt` article).
    pub text: Option<String>,
    /// Or a file holding the article, relative to the config file.
    pub file: Option<Spanned<String>>,
    /// Rule ids that must fire on the article.
    #[serde(default)]
    pub expect: Vec<Spanned<String>>,
    /// Rule ids that must not fire on the article.
    #[serde(default)]
    pub expect_not: Vec<Spanned<String>>,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address and port of `/healthz`, `/readyz` and `/metrics`, e.g.
    /// "127.0.0.1:9464" (the default). Anything not on loopback is reachable
    /// from the network: the endpoints have no authentication.
    pub listen: Option<Spanned<String>>,
}

/// `[watch]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    /// Folder watched for new articles (not recursive), relative to the config file.
    pub dir: Spanned<String>,
    /// File extensions that are articles (without the dot, case-insensitive).
    /// Default: txt, md, html, json.
    pub extensions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Larger files are skipped with a warning, e.g. "16 MiB" (the default).
    pub max_file_size: Option<Spanned<String>>,
    /// Articles published longer ago than this (by their date line) are
    /// recorded but raise no alerts, e.g. "30d" (default: no limit).
    pub max_article_age: Option<Spanned<String>>,
}

/// `[state]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Folder of the embedded database, relative to the config file;
    /// created when missing. Default: "state".
    pub dir: Option<Spanned<String>>,
}

/// `[entities.ID]` (the settings most entities leave out boxed, as in
/// [`RawRule`])
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    /// Optional class, matched by `class:NAME` (e.g. "air-defense").
    pub class: Option<Box<Spanned<String>>>,
    /// Every name of the entity; a trailing `*` matches any word starting so.
    pub aliases: Spanned<Vec<Spanned<String>>>,
    /// Phrases in which an alias does NOT mean this entity ("Minsk agreements").
    #[serde(default)]
    pub not: Vec<Spanned<String>>,
    /// Misspellings to accept: the edit distance (0, 1 or 2; default 0)
    /// allowed between an alias word of 6+ letters and a word of 6+ letters
    /// in the article ("Karankvich" for "Karankevich").
    pub fuzzy: Option<Box<Spanned<u8>>>,
    /// Whether aliases written in Latin letters also match Cyrillic
    /// spellings (Лукашенко for "Lukashenko"). Default: true.
    pub translit: Option<bool>,
}

/// `[rules.ID]`
///
/// The settings most rules leave out are boxed: at 100,000 rules each
/// unboxed `Option<Spanned<String>>` is 4 MB of `None`s, all alive until the
/// config is loaded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// What the rule watches for, shown in every alert.
    pub description: Option<String>,
    /// The match expression (see the README's rule language).
    #[serde(rename = "match")]
    pub match_expr: Spanned<String>,
    /// info, warning (default) or critical.
    pub severity: Option<Severity>,
    /// Sink names the rule's alerts go to; default: every sink.
    pub sinks: Option<Box<Spanned<Vec<Spanned<String>>>>>,
    /// Fire once per entity, the first time it is ever seen.
    pub first_seen: Option<Box<Spanned<bool>>>,
    /// At most one alert per this period, e.g. "6h" (default: no limit).
    pub throttle: Option<Box<Spanned<String>>>,
    /// What `throttle` counts: "rule" (the default: one alert per period) or
    /// "entity" (one alert per entity per period).
    pub throttle_by: Option<Box<Spanned<String>>>,
    /// Fire only when `count` distinct articles matched `within` a period,
    /// e.g. `{ count = 3, within = "24h" }`; the alert lists them.
    pub threshold: Option<Box<Spanned<RawThreshold>>>,
    /// When the article is a near-duplicate of a recent one: "mark" (the
    /// default: alert with `duplicate_of`), "suppress" (no alert) or "alert"
    /// (alert as if new).
    pub on_duplicate: Option<Box<Spanned<String>>>,
}

/// `threshold = { count = N, within = "24h" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    /// Distinct articles needed (2 or more).
    pub count: u32,
    /// The window they must fall in, e.g. "24h".
    pub within: String,
}

/// `[sinks.NAME]`: one table for every sink type; `load` checks which keys
/// each type accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// "slack", "webhook" or "file".
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// slack, webhook: the URL to POST to; `${VAR}` reads the environment.
    pub url: Option<Spanned<String>>,
    /// slack, webhook: a file holding the URL (e.g. a systemd credential).
    pub url_file: Option<Spanned<String>>,
    /// webhook: key that signs each request (Standard Webhooks); `${VAR}` allowed.
    pub secret: Option<Spanned<String>>,
    /// webhook: a file holding the signing key.
    pub secret_file: Option<Spanned<String>>,
    /// file: folder of the JSON Lines files, relative to the config file.
    pub dir: Option<Spanned<String>>,
    /// slack, webhook: how long one request may take, e.g. "10s" (the default).
    pub timeout: Option<Spanned<String>>,
    /// slack, webhook: the most requests per period, e.g. "1/s", "30/m" or
    /// "off". Default: "1/s" for slack (Slack's limit), "off" for webhook.
    pub rate_limit: Option<Spanned<String>>,
    /// slack, webhook: requests allowed at once before `rate_limit` applies.
    /// Default: 3.
    pub burst: Option<Spanned<u32>>,
    /// Any sink: a delivery still failing this long after it was queued
    /// becomes a dead letter, e.g. "24h" (the default).
    pub max_age: Option<Spanned<String>>,
    /// Any sink: the longest wait between two retries, e.g. "5m" (the default).
    pub max_backoff: Option<Spanned<String>>,
    /// slack, webhook: instead of one message per alert, one message per
    /// period summarising its alerts, e.g. "1h" (default: off).
    pub digest: Option<Spanned<String>>,
}

/// A table of named items (`[entities.NAME]`, `[rules.NAME]`, ...), sorted
/// by name like a `BTreeMap`, but built by one sort of the items in the
/// order written (usually sorted already, which the sort sees in one pass)
/// instead of one tree search per item: with 100,000 entities and rules the
/// searches were an eighth of reading the file.
#[derive(Debug)]
pub struct Table<T> {
    items: Vec<(String, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { items: Vec::new() }
    }
}

impl<T> Table<T> {
    /// The table of `items`, sorted by name (in one pass when they come in
    /// name order). Names are expected to be distinct.
    fn from_items(mut items: Vec<(String, T)>) -> Table<T> {
        items.sort_by(|(a, _), (b, _)| a.cmp(b));
        Table { items }
    }

    /// The item named `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.items
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|index| &self.items[index].1)
    }

    /// (name, item), by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.into_iter()
    }

    /// (name, item), by name, items to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut T)> {
        self.items.iter_mut().map(|(name, item)| (&*name, item))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.items.iter().map(|(name, _)| name)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, item)| item)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<'a, T> IntoIterator for &'a Table<T> {
    type Item = (&'a String, &'a T);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, T)>, fn(&(String, T)) -> (&String, &T)>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(name, item)| (name, item))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for TableVisitor<T> {
            type Value = Table<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Table<T>, A::Error> {
                let mut items = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(item) = map.next_entry::<String, T>()? {
                    items.push(item);
                }
                // A name cannot come twice: the TOML parser rejects that.
                Ok(Table::from_items(items))
            }
        }

        deserializer.deserialize_map(TableVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_lists_its_items_by_name_and_finds_each() {
        #[derive(Deserialize)]
        struct Doc {
            entities: Table<Spanned<RawEntity>>,
        }
        let doc: Doc = toml::from_str(
            r#"
[entities.tobruk]
aliases = ["Tobruk"]
[entities.haftar]
aliases = ["Haftar"]
[entities.minsk]
aliases = ["Minsk"]
"#,
        )
        .expect("parses");
        let names: Vec<&str> = doc.entities.keys().map(String::as_str).collect();
        assert_eq!(names, ["haftar", "minsk", "tobruk"]);
        for name in ["tobruk", "haftar", "minsk"] {
            let aliases = &doc.entities.get(name).expect("found").get_ref().aliases;
            assert_eq!(aliases.get_ref()[0].get_ref().to_lowercase(), name);
        }
        assert!(doc.entities.get("benghazi").is_none());
        assert_eq!(doc.entities.len(), 3);
    }
}
