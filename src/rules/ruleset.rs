//! The compiled rule set: every word, phrase, prefix, alias, `not` context
//! and list item of every rule as ONE set of patterns over the canonical
//! text of [`crate::rules::normalize`], plus each rule's expression with its
//! leaves resolved to pattern and entity indexes. Whole-word patterns live in
//! a trie over word ids ([`super::words`]); prefix patterns (`visit*`) in one
//! Aho-Corasick automaton.
//!
//! Scanning an article is one lookup per word (plus one automaton pass when
//! there are prefix patterns), whatever the number of rules; only the rules
//! whose terms were hit are evaluated afterwards.
//!
//! Invariant: once [`RuleSet::compile`] succeeded, [`RuleSet::scan`] cannot
//! fail and does no I/O. Names (entities, classes, lists) are resolved here,
//! so a typo is a compile error, never a rule that silently never fires.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use smallvec::SmallVec;

use super::expr::{Comparison, Expr, TermKind};
use super::fuzzy::AliasMatcher;
use super::hits::LeafHits;
use super::lists::InlineLists;
use super::normalize::{normalize, Normalized};
use super::regex_terms::RegexTerms;
use super::scan::ArticleHits;
use super::sentence::in_one_sentence;
use super::words::{FastMap, WordTrie};

/// From this many entities, [`RuleSet::compile`] builds the index of alias
/// spellings on a second thread (below, a thread costs more than it saves).
const PARALLEL_ALIAS_INDEX: usize = 2_000;

/// An entity as the rule set needs it.
#[derive(Debug, Clone, Default)]
pub struct EntityDef {
    pub id: String,
    pub class: Option<String>,
    /// Names that denote the entity; a trailing `*` makes an alias a prefix.
    pub aliases: Vec<String>,
    /// Phrases in which an alias does not denote the entity ("Minsk agreements").
    pub not: Vec<String>,
    /// Edit distance (0 to 2) allowed on alias words of 6+ letters.
    pub fuzzy: u8,
    /// Latin aliases also match Cyrillic spellings (transliteration).
    pub translit: bool,
}

/// A rule as the rule set needs it: its id and its parsed expression.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub id: String,
    pub expr: Expr,
}

/// Everything a rule set is compiled from.
#[derive(Debug, Clone, Default)]
pub struct RuleSetInput {
    pub entities: Vec<EntityDef>,
    /// Named word lists; items may be phrases and may end with `*`.
    pub lists: BTreeMap<String, Vec<String>>,
    pub rules: Vec<RuleDef>,
}

/// Where a compile error comes from, so the config layer can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A byte range of rule `rules[index]`'s match expression.
    Rule { index: usize, span: Range<usize> },
    /// `entities[index].aliases[alias]`.
    Alias { entity: usize, alias: usize },
    /// `entities[index].not[item]`.
    NotContext { entity: usize, item: usize },
    /// `lists[name][item]`.
    ListItem { list: String, item: usize },
}

/// A reason a rule set cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub origin: Origin,
    pub message: String,
}

/// A fired rule with the evidence. Its spans and mentions are kept inline
/// up to four (most rules cite one or a few): at 100,000 rules an article
/// fires ~85, and two allocations for each cost 10–18% of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index of the rule in [`RuleSetInput::rules`].
    pub rule: usize,
    /// Byte ranges of the original text that made the rule fire, sorted,
    /// without duplicates. A `NEAR` pair is one range covering both sides.
    pub spans: SmallVec<[Range<usize>; 4]>,
    /// Entity mentions among them: (entity index, byte range), in text order.
    pub entities: SmallVec<[(usize, Range<usize>); 4]>,
    /// Byte ranges of the article's title, for `title:` hits when the title
    /// is not part of the text (see [`RuleSet::scan_article`]); sorted.
    pub title_spans: Vec<Range<usize>>,
    /// Entity mentions in those title ranges.
    pub title_entities: Vec<(usize, Range<usize>)>,
}

type PatternId = usize;
pub(super) type LeafId = usize;
pub(super) type EntityIdx = usize;

/// Who cares about a pattern when the automaton finds it.
#[derive(Debug, Clone, Copy)]
enum PatternUse {
    Leaf(LeafId),
    Alias(EntityIdx),
    NotContext(EntityIdx),
}

#[derive(Debug)]
struct PatternInfo {
    prefix: bool,
    uses: Vec<PatternUse>,
}

#[derive(Debug, Default)]
pub(super) struct Leaf {
    pub(super) rule: usize,
    patterns: Vec<PatternId>,
    entities: Vec<EntityIdx>,
    /// The term as written in the rule, for explanations, without `title:`;
    /// `None` for an `entity:ID` term, whose label [`RuleSet::leaf_label`]
    /// makes when asked (100,000 `entity:` rules made 100,000 strings that
    /// only `test --explain` reads).
    label: Option<Box<str>>,
    /// `title:term`: hits count only inside the article's title.
    pub(super) title: bool,
}

#[derive(Debug)]
pub(super) enum Node {
    Leaf(LeafId),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Near {
        left: Box<Node>,
        right: Box<Node>,
        distance: u32,
    },
    /// `N OF (...)`
    AtLeast {
        min: u32,
        parts: Vec<Node>,
    },
    /// `count(...) >= N`
    Count {
        inner: Box<Node>,
        comparison: Comparison,
    },
    /// `SENTENCE(...)`
    Sentence(Vec<Node>),
    /// `WEIGHTS(a:3, ...) >= N`
    Weights {
        items: Vec<(Node, u32)>,
        comparison: Comparison,
    },
}

/// The compiled, immutable rule set. Cheap to share behind an `Arc`.
pub struct RuleSet {
    /// Every whole-word pattern, by word.
    words: WordTrie,
    /// Every prefix pattern, if there are any; `prefix_patterns[i]` is the
    /// [`PatternId`] of the automaton's pattern `i`.
    prefix_automaton: Option<AhoCorasick>,
    prefix_patterns: Vec<PatternId>,
    /// For each pattern, who cares when it is found.
    pattern_uses: InlineLists<PatternUse>,
    pub(super) leaves: Vec<Leaf>,
    /// Shared with the alerts that name them.
    entity_ids: Vec<Arc<str>>,
    /// For each entity, the leaves that reference it (directly or by class).
    entity_leaves: InlineLists<LeafId>,
    rule_ids: Vec<String>,
    pub(super) rules: Vec<Node>,
    /// Some rule uses `SENTENCE`, so articles need sentence numbers.
    pub(super) uses_sentences: bool,
    /// Some leaf is a `title:` term, so articles need their title placed.
    pub(super) uses_title: bool,
    /// The `/regex/` terms, run apart from the automaton.
    pub(super) regex_terms: RegexTerms,
    /// Fuzzy and transliterated alias spellings.
    alias_matcher: AliasMatcher,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rule_ids", &self.rule_ids)
            .field("patterns", &self.pattern_uses.len())
            .field("automaton_bytes", &self.automaton_memory())
            .finish_non_exhaustive()
    }
}

/// A hit in word positions: `first..=last` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct TokenSpan {
    pub(super) first: u32,
    pub(super) last: u32,
}

impl TokenSpan {
    fn overlaps(self, other: TokenSpan) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    fn contains(self, other: TokenSpan) -> bool {
        self.first <= other.first && other.last <= self.last
    }

    /// Number of words strictly between the two spans (0 when they touch or overlap).
    fn gap(self, other: TokenSpan) -> u32 {
        if self.last < other.first {
            other.first - self.last - 1
        } else if other.last < self.first {
            self.first - other.last - 1
        } else {
            0
        }
    }

    fn merge(self, other: TokenSpan) -> TokenSpan {
        TokenSpan {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }
}

/// What an expression node found: the spans that count as its evidence and
/// the entity mentions inside them.
#[derive(Debug, Default, Clone)]
pub(super) struct Evidence {
    pub(super) spans: Vec<TokenSpan>,
    pub(super) entities: Vec<(EntityIdx, TokenSpan)>,
}

/// How much evidence there was at some point: see [`Evidence::truncate`].
#[derive(Debug, Clone, Copy)]
pub(super) struct EvidenceMark(usize, usize);

impl Evidence {
    pub(super) fn mark(&self) -> EvidenceMark {
        EvidenceMark(self.spans.len(), self.entities.len())
    }

    /// Drops what was added since `mark`.
    pub(super) fn truncate(&mut self, mark: EvidenceMark) {
        self.spans.truncate(mark.0);
        self.entities.truncate(mark.1);
    }

    pub(super) fn clear(&mut self) {
        self.spans.clear();
        self.entities.clear();
    }

    /// Adds `found`, if any; whether there was.
    fn append(&mut self, found: Option<Evidence>) -> bool {
        let Some(found) = found else {
            return false;
        };
        self.spans.extend(found.spans);
        self.entities.extend(found.entities);
        true
    }
}

impl RuleSet {
    /// Resolves names, folds every term and builds the automaton. Returns
    /// every error found, not only the first.
    pub fn compile(input: &RuleSetInput) -> Result<RuleSet, Vec<CompileError>> {
        if input.entities.len() < PARALLEL_ALIAS_INDEX {
            return RuleSet::compile_with(input, || AliasMatcher::new(&input.entities));
        }
        // The index of alias spellings needs nothing the rest of the
        // compile makes: a large one is built on the other core meanwhile.
        std::thread::scope(|scope| {
            let alias_matcher = scope.spawn(|| AliasMatcher::new(&input.entities));
            RuleSet::compile_with(input, || {
                alias_matcher
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })
    }

    /// [`RuleSet::compile`], taking the alias index from `alias_matcher`
    /// once the rest is built.
    fn compile_with(
        input: &RuleSetInput,
        alias_matcher: impl FnOnce() -> AliasMatcher,
    ) -> Result<RuleSet, Vec<CompileError>> {
        let mut compiler = Compiler::new(input);
        compiler.add_entities();
        let mut rules = Vec::with_capacity(input.rules.len());
        for (index, rule) in input.rules.iter().enumerate() {
            if let Some(node) = compiler.rule(index, &rule.expr) {
                rules.push(node);
            }
        }
        if let Err(message) = compiler.regex_terms.finish() {
            compiler.errors.push(CompileError {
                origin: Origin::Rule {
                    index: 0,
                    span: 0..0,
                },
                message: format!("the regexes of the rule set are too large together: {message}"),
            });
        }
        if !compiler.errors.is_empty() {
            return Err(compiler.errors);
        }
        let mut words = WordTrie::with_capacity(compiler.patterns.len());
        let mut prefix_texts = Vec::new();
        let mut prefix_patterns = Vec::new();
        let pattern_texts = compiler.pattern_texts();
        for (id, text) in pattern_texts.iter().enumerate() {
            if compiler.patterns[id].prefix {
                prefix_texts.push(text.as_str());
                prefix_patterns.push(id);
            } else {
                words.insert(text.trim(), id as u32);
            }
        }
        let prefix_automaton = (!prefix_texts.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&prefix_texts)
            })
            .transpose()
            .map_err(|error| {
                vec![CompileError {
                    origin: Origin::Rule {
                        index: 0,
                        span: 0..0,
                    },
                    message: format!("the rule set is too large to compile: {error}"),
                }]
            })?;
        let entity_count = input.entities.len();
        let mut entity_leaves = vec![Vec::new(); entity_count];
        for (leaf_id, leaf) in compiler.leaves.iter().enumerate() {
            for &entity in &leaf.entities {
                entity_leaves[entity].push(leaf_id);
            }
        }
        let uses_title = compiler.leaves.iter().any(|leaf| leaf.title);
        Ok(RuleSet {
            words,
            prefix_automaton,
            prefix_patterns,
            pattern_uses: compiler
                .patterns
                .into_iter()
                .map(|pattern| pattern.uses)
                .collect(),
            leaves: compiler.leaves,
            entity_ids: input
                .entities
                .iter()
                .map(|e| e.id.as_str().into())
                .collect(),
            entity_leaves: entity_leaves.into_iter().collect(),
            rule_ids: input.rules.iter().map(|r| r.id.clone()).collect(),
            rules,
            uses_sentences: compiler.uses_sentences,
            uses_title,
            regex_terms: compiler.regex_terms,
            alias_matcher: alias_matcher(),
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of distinct patterns in the automaton.
    pub fn pattern_count(&self) -> usize {
        self.pattern_uses.len()
    }

    /// Heap bytes used by the word trie and the prefix automaton (estimate).
    pub fn automaton_memory(&self) -> usize {
        self.words.memory_usage()
            + self
                .prefix_automaton
                .as_ref()
                .map_or(0, AhoCorasick::memory_usage)
    }

    /// Leaf `leaf`'s term as written in its rule, for explanations.
    pub(super) fn leaf_label(&self, leaf: LeafId) -> String {
        let leaf = &self.leaves[leaf];
        let title = if leaf.title { "title:" } else { "" };
        match (&leaf.label, leaf.entities.first()) {
            (Some(label), _) => format!("{title}{label}"),
            (None, Some(&entity)) => format!("{title}entity:{}", self.entity_ids[entity]),
            (None, None) => title.to_string(),
        }
    }

    pub fn rule_id(&self, rule: usize) -> &str {
        &self.rule_ids[rule]
    }

    pub fn entity_id(&self, entity: usize) -> &str {
        &self.entity_ids[entity]
    }

    /// [`RuleSet::entity_id`], to keep.
    pub fn shared_entity_id(&self, entity: usize) -> &Arc<str> {
        &self.entity_ids[entity]
    }

    /// The alias (as written in the config) of `entity` that `surface`, a
    /// mention cited in a [`RuleMatch`], spells: exact, transliterated or
    /// fuzzy. `None` if none does.
    pub fn alias_of(&self, entity: usize, surface: &str) -> Option<&Arc<str>> {
        self.alias_matcher.alias_of(entity, surface)
    }

    /// Runs every rule on `text` (an article without a title); returns the
    /// rules that fire, in rule order. See [`RuleSet::scan_article`].
    pub fn scan(&self, text: &str) -> Vec<RuleMatch> {
        self.scan_article(None, text)
    }

    /// The hits of every leaf of every rule (entity `not` contexts applied).
    pub(super) fn leaf_hits(&self, normalized: &Normalized) -> LeafHits {
        let hits = self.find_hits(normalized);
        let mut leaf_spans = LeafHits::with_capacity(hits.len());
        // Alias mentions, in the order found; kept flat (no list per
        // entity) and checked against the entities' `not` contexts once
        // all of those are known.
        let mut alias_hits: Vec<(EntityIdx, TokenSpan)> = Vec::with_capacity(hits.len());
        let mut not_hits: Vec<(EntityIdx, TokenSpan)> = Vec::new();
        for &(pattern, span) in &hits {
            for pattern_use in self.pattern_uses.get(pattern) {
                match *pattern_use {
                    PatternUse::Leaf(leaf) => leaf_spans.push(leaf, span, None),
                    PatternUse::Alias(entity) => alias_hits.push((entity, span)),
                    PatternUse::NotContext(entity) => not_hits.push((entity, span)),
                }
            }
        }
        // Misspelt and transliterated aliases (none unless configured).
        alias_hits.extend(self.alias_matcher.find(normalized));
        not_hits.sort_unstable();
        for (entity, span) in alias_hits {
            let first = not_hits.partition_point(|&(not_entity, _)| not_entity < entity);
            let excluded = not_hits[first..]
                .iter()
                .take_while(|&&(not_entity, _)| not_entity == entity)
                .any(|&(_, not)| not.overlaps(span));
            if excluded {
                continue;
            }
            for &leaf in self.entity_leaves.get(entity) {
                leaf_spans.push(leaf, span, Some(entity));
            }
        }
        leaf_spans
    }

    /// One pass over the words (and the prefix automaton): (pattern, word
    /// span) for every occurrence, in the order a byte automaton over the
    /// canonical text would report them (by end, longest first).
    fn find_hits(&self, normalized: &Normalized) -> Vec<(PatternId, TokenSpan)> {
        // Room for a hit per four words, so that the vector rarely grows.
        let mut hits: Vec<(PatternId, TokenSpan)> =
            Vec::with_capacity(normalized.tokens.len() / 4 + 16);
        // The trie reports by last word, then by first: already the order
        // wanted, since a later last word ends later in the text.
        self.words
            .find(normalized.word_bytes(), |pattern, first, last| {
                hits.push((
                    pattern as usize,
                    TokenSpan {
                        first: first as u32,
                        last: last as u32,
                    },
                ))
            });
        let Some(automaton) = &self.prefix_automaton else {
            return hits;
        };
        let text = normalized.text.as_str();
        let mut hits: Vec<(usize, PatternId, TokenSpan)> = hits
            .into_iter()
            .map(|(pattern, span)| (normalized.word_end(span.last as usize) + 1, pattern, span))
            .collect();
        for found in automaton.find_overlapping_iter(text) {
            let pattern = self.prefix_patterns[found.pattern().as_usize()];
            // A prefix pattern starts with the space before its first word
            // and ends inside its last word.
            let first = normalized.token_at(found.start() + 1);
            let last = normalized.token_at(found.end() - 1);
            hits.push((
                found.end(),
                pattern,
                TokenSpan {
                    first: first as u32,
                    last: last as u32,
                },
            ));
        }
        hits.sort_by_key(|&(end, _, span)| (end, span.first));
        hits.into_iter()
            .map(|(_, pattern, span)| (pattern, span))
            .collect()
    }
}

/// The match of `rule` that `evidence` makes: its spans in order, those
/// inside another left out, as byte ranges. Sorts `evidence` in place.
pub(super) fn to_rule_match(
    rule: usize,
    evidence: &mut Evidence,
    normalized: &Normalized,
) -> RuleMatch {
    let bytes = |span: TokenSpan| {
        normalized.tokens[span.first as usize].start..normalized.tokens[span.last as usize].end
    };
    let spans = &mut evidence.spans;
    spans.sort_unstable();
    spans.dedup();
    // Drop spans wholly inside another one: "visit to Minsk" already shows
    // "Minsk". In place: `spans[..kept]` are the spans kept so far, in
    // order. A span can only contain a kept one that starts where it does
    // (sorted by start, then end), and there is at most one such, the last.
    let mut kept = 0;
    for index in 0..spans.len() {
        let span = spans[index];
        if spans[..kept].iter().any(|k| k.contains(span)) {
            continue;
        }
        if kept > 0 && span.contains(spans[kept - 1]) {
            kept -= 1;
        }
        spans[kept] = span;
        kept += 1;
    }
    spans.truncate(kept);
    evidence
        .entities
        .sort_unstable_by_key(|&(entity, span)| (span, entity));
    evidence.entities.dedup();
    RuleMatch {
        rule,
        spans: evidence.spans.iter().map(|&span| bytes(span)).collect(),
        entities: evidence
            .entities
            .iter()
            .map(|&(entity, span)| (entity, bytes(span)))
            .collect(),
        title_spans: Vec::new(),
        title_entities: Vec::new(),
    }
}

/// Evaluates a rule's expression on an article's hits; `None` when it is false.
pub(super) fn evaluate(node: &Node, hits: &ArticleHits) -> Option<Evidence> {
    let mut evidence = Evidence::default();
    evaluate_into(node, hits, &mut evidence).then_some(evidence)
}

/// [`evaluate`], appending the evidence to `out` (a buffer a scan reuses
/// from rule to rule, so that evaluating costs no allocation): true when
/// the node holds. When it does not, `out` is left as it was.
pub(super) fn evaluate_into(node: &Node, hits: &ArticleHits, out: &mut Evidence) -> bool {
    let mark = out.mark();
    let holds = append_evidence(node, hits, out);
    if !holds {
        out.truncate(mark);
    }
    holds
}

/// The body of [`evaluate_into`]: may leave partial evidence in `out` when
/// it returns false.
fn append_evidence(node: &Node, hits: &ArticleHits, out: &mut Evidence) -> bool {
    match node {
        Node::Leaf(leaf) => {
            let Some(spans) = hits.leaves.get(*leaf) else {
                return false;
            };
            for (span, entity) in spans {
                out.spans.push(span);
                if let Some(entity) = entity {
                    out.entities.push((entity, span));
                }
            }
            true
        }
        Node::And(parts) => parts.iter().all(|part| evaluate_into(part, hits, out)),
        Node::Or(parts) => {
            // Every part is evaluated: each one that holds adds its evidence.
            let mut any = false;
            for part in parts {
                any |= evaluate_into(part, hits, out);
            }
            any
        }
        Node::Not(inner) => {
            let mark = out.mark();
            let found = evaluate_into(inner, hits, out) && out.spans.len() > mark.0;
            out.truncate(mark);
            !found
        }
        Node::Near {
            left,
            right,
            distance,
        } => {
            let Some(left) = evaluate(left, hits) else {
                return false;
            };
            let Some(right) = evaluate(right, hits) else {
                return false;
            };
            out.append(near(&left, &right, *distance))
        }
        Node::AtLeast { min, parts } => {
            let mut holding = 0;
            for part in parts {
                if evaluate_into(part, hits, out) {
                    holding += 1;
                }
            }
            holding >= *min
        }
        Node::Count { inner, comparison } => {
            let mark = out.mark();
            // A false inner node counts zero places (and adds nothing).
            evaluate_into(inner, hits, out);
            comparison.holds(distinct_spans(&out.spans[mark.0..]) as u64)
        }
        Node::Weights { items, comparison } => {
            let mut total: u64 = 0;
            for (item, weight) in items {
                if evaluate_into(item, hits, out) {
                    total += u64::from(*weight);
                }
            }
            comparison.holds(total)
        }
        Node::Sentence(parts) => {
            let found: Option<Vec<Evidence>> =
                parts.iter().map(|part| evaluate(part, hits)).collect();
            found.is_some_and(|found| out.append(in_one_sentence(found, &hits.sentences)))
        }
    }
}

/// The number of different places among `spans`.
pub(super) fn distinct_spans(spans: &[TokenSpan]) -> usize {
    let mut spans = spans.to_vec();
    spans.sort_unstable();
    spans.dedup();
    spans.len()
}

/// Pairs of spans within `distance` words, each pair merged into one span.
/// Of overlapping pairs only the tightest is kept as evidence, so "arrived in
/// Minsk for talks" cites "arrived in Minsk", not every window around it.
fn near(left: &Evidence, right: &Evidence, distance: u32) -> Option<Evidence> {
    let mut candidates: Vec<(TokenSpan, TokenSpan, TokenSpan)> = Vec::new();
    for &a in &left.spans {
        for &b in &right.spans {
            if a.gap(b) <= distance && a != b {
                candidates.push((a.merge(b), a, b));
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    candidates.sort_unstable_by_key(|(window, _, _)| (window.last - window.first, window.first));
    let mut evidence = Evidence::default();
    let mut used: Vec<TokenSpan> = Vec::new();
    for (window, a, b) in candidates {
        if evidence.spans.iter().any(|kept| kept.overlaps(window)) {
            continue;
        }
        evidence.spans.push(window);
        used.push(a);
        used.push(b);
    }
    for &(entity, span) in left.entities.iter().chain(&right.entities) {
        if used.iter().any(|u| u.contains(span)) {
            evidence.entities.push((entity, span));
        }
    }
    Some(evidence)
}

struct Compiler<'a> {
    input: &'a RuleSetInput,
    /// Pattern text (`" tor m2 "`, `" минск"` for a prefix) -> its id.
    pattern_index: FastMap<String, PatternId>,
    patterns: Vec<PatternInfo>,
    leaves: Vec<Leaf>,
    errors: Vec<CompileError>,
    uses_sentences: bool,
    regex_terms: RegexTerms,
    /// Entity id -> index (the first entity with that id), so resolving a
    /// name costs one lookup, not a pass over every entity.
    entity_index: FastMap<&'a str, EntityIdx>,
    /// Class name -> its entities, in entity order.
    class_members: FastMap<&'a str, Vec<EntityIdx>>,
}

impl<'a> Compiler<'a> {
    fn new(input: &'a RuleSetInput) -> Self {
        let mut entity_index =
            FastMap::with_capacity_and_hasher(input.entities.len(), Default::default());
        let mut class_members: FastMap<&str, Vec<EntityIdx>> = FastMap::default();
        for (index, entity) in input.entities.iter().enumerate() {
            entity_index.entry(entity.id.as_str()).or_insert(index);
            if let Some(class) = entity.class.as_deref() {
                class_members.entry(class).or_default().push(index);
            }
        }
        // Sized for the patterns to come (a few repeat, or fold to the
        // same one) instead of rehashed through every power of two.
        let patterns = Compiler::expected_patterns(input);
        Compiler {
            uses_sentences: false,
            regex_terms: RegexTerms::default(),
            entity_index,
            class_members,
            input,
            pattern_index: FastMap::with_capacity_and_hasher(patterns, Default::default()),
            patterns: Vec::with_capacity(patterns),
            leaves: Vec::with_capacity(input.rules.len()),
            errors: Vec::new(),
        }
    }

    /// About how many patterns `input` makes: at most one per alias, `not`
    /// phrase and list item, and, as a guess, one per rule for its own terms
    /// (most have none or one; a map or list that needs more still grows).
    fn expected_patterns(input: &RuleSetInput) -> usize {
        let entities: usize = input
            .entities
            .iter()
            .map(|entity| entity.aliases.len() + entity.not.len())
            .sum();
        let lists: usize = input.lists.values().map(Vec::len).sum();
        entities + lists + input.rules.len()
    }

    /// The text of every pattern, by id (taken out of the index, which is
    /// not needed once every term is added).
    fn pattern_texts(&mut self) -> Vec<String> {
        let mut texts = vec![String::new(); self.patterns.len()];
        for (text, id) in self.pattern_index.drain() {
            texts[id] = text;
        }
        texts
    }

    /// Folds `term` (trailing `*` = prefix) into a pattern and registers `use_`.
    /// Returns false when the term has no letters or digits.
    fn add_pattern(&mut self, term: &str, prefix: bool, pattern_use: PatternUse) -> bool {
        // The canonical text is the key as it is: the folded words with a
        // space on each side (`" tor m2 "`); a prefix pattern ends inside
        // its last word, without the closing space.
        let mut key = normalize(term).text;
        if key.trim().is_empty() {
            return false;
        }
        if prefix {
            key.pop();
        }
        let id = match self.pattern_index.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.patterns.len();
                self.pattern_index.insert(key, id);
                self.patterns.push(PatternInfo {
                    prefix,
                    uses: Vec::new(),
                });
                id
            }
        };
        self.patterns[id].uses.push(pattern_use);
        if let PatternUse::Leaf(leaf) = pattern_use {
            self.leaves[leaf].patterns.push(id);
        }
        true
    }

    fn add_entities(&mut self) {
        for (entity, def) in self.input.entities.iter().enumerate() {
            for (alias, text) in def.aliases.iter().enumerate() {
                let (body, prefix) = split_prefix(text);
                if !self.add_pattern(body, prefix, PatternUse::Alias(entity)) {
                    self.errors.push(CompileError {
                        origin: Origin::Alias { entity, alias },
                        message: format!(
                            "entity \"{}\": alias {text:?} has no letters or digits",
                            def.id
                        ),
                    });
                }
            }
            for (item, text) in def.not.iter().enumerate() {
                let (body, prefix) = split_prefix(text);
                if !self.add_pattern(body, prefix, PatternUse::NotContext(entity)) {
                    self.errors.push(CompileError {
                        origin: Origin::NotContext { entity, item },
                        message: format!(
                            "entity \"{}\": not context {text:?} has no letters or digits",
                            def.id
                        ),
                    });
                }
            }
        }
    }

    fn rule(&mut self, index: usize, expr: &Expr) -> Option<Node> {
        let errors_before = self.errors.len();
        if !needs_a_hit(expr) {
            self.errors.push(CompileError {
                origin: Origin::Rule {
                    index,
                    span: 0..0,
                },
                message: format!(
                    "rule \"{}\" could fire on an article that matches nothing: every alternative needs a term that must be present (NOT alone is not enough)",
                    self.input.rules[index].id
                ),
            });
        }
        let node = self.node(index, expr, None);
        (self.errors.len() == errors_before)
            .then_some(node)
            .flatten()
    }

    /// `under_near`: where the node is when it must have a position ("a
    /// side of NEAR", "inside count"), so NOT is not allowed.
    fn node(
        &mut self,
        index: usize,
        expr: &Expr,
        under_near: Option<&'static str>,
    ) -> Option<Node> {
        Some(match expr {
            Expr::AtLeast { min, parts, .. } => Node::AtLeast {
                min: *min,
                parts: self.nodes(index, parts, under_near)?,
            },
            Expr::Count {
                inner, comparison, ..
            } => Node::Count {
                inner: Box::new(self.node(index, inner, Some("inside count"))?),
                comparison: *comparison,
            },
            Expr::Weights {
                items, comparison, ..
            } => {
                let nodes: Vec<Option<(Node, u32)>> = items
                    .iter()
                    .map(|(item, weight)| Some((self.node(index, item, under_near)?, *weight)))
                    .collect();
                Node::Weights {
                    items: nodes.into_iter().collect::<Option<Vec<_>>>()?,
                    comparison: *comparison,
                }
            }
            Expr::Sentence { parts, .. } => {
                self.uses_sentences = true;
                Node::Sentence(self.nodes(index, parts, Some("inside SENTENCE"))?)
            }
            Expr::Term(term) => Node::Leaf(self.leaf(index, &term.kind, &term.span)?),
            Expr::And(parts) => Node::And(self.nodes(index, parts, under_near)?),
            Expr::Or(parts) => Node::Or(self.nodes(index, parts, under_near)?),
            Expr::Not(inner) => {
                if let Some(place) = under_near {
                    self.errors.push(CompileError {
                        origin: Origin::Rule {
                            index,
                            span: first_span(inner),
                        },
                        message: format!("NOT cannot be {place}: an absent word has no position"),
                    });
                    return None;
                }
                Node::Not(Box::new(self.node(index, inner, None)?))
            }
            Expr::Near {
                left,
                right,
                distance,
                ..
            } => {
                let left = self.node(index, left, Some("a side of NEAR"));
                let right = self.node(index, right, Some("a side of NEAR"));
                Node::Near {
                    left: Box::new(left?),
                    right: Box::new(right?),
                    distance: *distance,
                }
            }
        })
    }

    fn nodes(
        &mut self,
        index: usize,
        parts: &[Expr],
        under_near: Option<&'static str>,
    ) -> Option<Vec<Node>> {
        let nodes: Vec<Option<Node>> = parts
            .iter()
            .map(|part| self.node(index, part, under_near))
            .collect();
        nodes.into_iter().collect()
    }

    fn leaf(&mut self, index: usize, kind: &TermKind, span: &Range<usize>) -> Option<LeafId> {
        let (kind, title) = match kind {
            TermKind::Title(inner) => (&**inner, true),
            other => (other, false),
        };
        let leaf = self.leaves.len();
        let label = match kind {
            TermKind::Text { text, prefix } => {
                let star = if *prefix { "*" } else { "" };
                if text.contains(char::is_whitespace) {
                    Some(format!("\"{text}{star}\""))
                } else {
                    Some(format!("{text}{star}"))
                }
            }
            TermKind::Entity(_) => None,
            TermKind::Class(name) => Some(format!("class:{name}")),
            TermKind::List(name) => Some(format!("list:{name}")),
            TermKind::Regex(pattern) => Some(format!("/{pattern}/")),
            TermKind::Title(_) => Some(String::new()),
        };
        let label = label.map(String::into_boxed_str);
        self.leaves.push(Leaf {
            rule: index,
            label,
            title,
            ..Leaf::default()
        });
        let error = |message: String| CompileError {
            origin: Origin::Rule {
                index,
                span: span.clone(),
            },
            message,
        };
        let rule_id = &self.input.rules[index].id;
        match kind {
            TermKind::Text { text, prefix } => {
                if !self.add_pattern(text, *prefix, PatternUse::Leaf(leaf)) {
                    self.errors
                        .push(error(format!("term {text:?} has no letters or digits")));
                    return None;
                }
            }
            TermKind::Entity(name) => match self.entity_index.get(name.as_str()).copied() {
                Some(entity) => self.leaves[leaf].entities.push(entity),
                None => {
                    let known = self.input.entities.iter().map(|e| e.id.as_str());
                    let message = format!(
                        "rule \"{rule_id}\": unknown entity \"{name}\"{}",
                        did_you_mean(name, known)
                    );
                    self.errors.push(error(message));
                    return None;
                }
            },
            TermKind::Class(name) => {
                let members: Vec<EntityIdx> = self
                    .class_members
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or_default();
                if members.is_empty() {
                    let known = self
                        .input
                        .entities
                        .iter()
                        .filter_map(|e| e.class.as_deref());
                    let message = format!(
                        "rule \"{rule_id}\": no entity has class \"{name}\"{}",
                        did_you_mean(name, known)
                    );
                    self.errors.push(error(message));
                    return None;
                }
                self.leaves[leaf].entities = members;
            }
            // The lexer never nests `title:`.
            TermKind::Title(_) => return None,
            TermKind::Regex(pattern) => {
                if let Err(message) = self.regex_terms.add(pattern, leaf) {
                    self.errors
                        .push(error(format!("rule \"{rule_id}\": {message}")));
                    return None;
                }
            }
            TermKind::List(name) => {
                let Some(items) = self.input.lists.get(name) else {
                    let known = self.input.lists.keys().map(String::as_str);
                    let message = format!(
                        "rule \"{rule_id}\": unknown list \"{name}\"{}",
                        did_you_mean(name, known)
                    );
                    self.errors.push(error(message));
                    return None;
                };
                for (item, text) in items.iter().enumerate() {
                    let (body, prefix) = split_prefix(text);
                    if !self.add_pattern(body, prefix, PatternUse::Leaf(leaf)) {
                        self.errors.push(CompileError {
                            origin: Origin::ListItem {
                                list: name.clone(),
                                item,
                            },
                            message: format!(
                                "list \"{name}\": item {text:?} has no letters or digits"
                            ),
                        });
                        return None;
                    }
                }
            }
        }
        Some(leaf)
    }
}

/// `visit*` -> ("visit", true).
fn split_prefix(text: &str) -> (&str, bool) {
    match text.trim_end().strip_suffix('*') {
        Some(body) => (body, true),
        None => (text, false),
    }
}

/// Whether the expression can only be true when some term is present.
fn needs_a_hit(expr: &Expr) -> bool {
    match expr {
        Expr::Term(_) | Expr::Near { .. } | Expr::Sentence { .. } => true,
        Expr::AtLeast { min, parts, .. } => {
            let hitless = parts.iter().filter(|part| !needs_a_hit(part)).count();
            *min as usize > hitless
        }
        Expr::Count { comparison, .. } => !comparison.holds(0),
        Expr::Weights {
            items, comparison, ..
        } => {
            let hitless: u64 = items
                .iter()
                .filter(|(item, _)| !needs_a_hit(item))
                .map(|(_, weight)| u64::from(*weight))
                .sum();
            !comparison.holds(0) && !comparison.holds(hitless)
        }
        Expr::And(parts) => parts.iter().any(needs_a_hit),
        Expr::Or(parts) => parts.iter().all(needs_a_hit),
        Expr::Not(_) => false,
    }
}

fn first_span(expr: &Expr) -> Range<usize> {
    match expr {
        Expr::Term(term) => term.span.clone(),
        Expr::And(parts) | Expr::Or(parts) => parts.first().map(first_span).unwrap_or(0..0),
        Expr::Not(inner) => first_span(inner),
        Expr::Near { left, .. } => first_span(left),
        Expr::AtLeast { span, .. }
        | Expr::Count { span, .. }
        | Expr::Sentence { span, .. }
        | Expr::Weights { span, .. } => span.clone(),
    }
}

/// ` (did you mean "minsk"?)` when a known name is close to `name`, else "".
pub fn did_you_mean<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> String {
    let best = known
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|&(distance, candidate)| distance <= 2.max(candidate.len() / 3))
        .min_by_key(|&(distance, _)| distance);
    match best {
        Some((_, candidate)) => format!(" (did you mean \"{candidate}\"?)"),
        None => String::new(),
    }
}
