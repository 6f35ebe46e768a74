//! Scanning a whole article, title and text: one pass of the automaton over
//! the text (and, only when the title is not part of the text, one over the
//! title), then the evaluation of the rules whose terms were hit.
//!
//! `title:` terms: when the title's words occur in the text (a `.txt` or
//! `.json` article starts with its title; an HTML page usually repeats its
//! `<h1>`), the title is their first occurrence there, and title hits are
//! cited at that place in the text. Otherwise (an HTML `<title>` that the
//! page never shows) the title is scanned apart and its hits are cited as
//! byte ranges of the title ([`RuleMatch::title_spans`]). Its words are then
//! numbered far past the text's, so no `NEAR` joins a title word to a text
//! word.
//!
//! Pure like the rest of the engine; cannot fail.

use std::ops::Range;

use super::hits::LeafHits;
use super::normalize::{normalize, Normalized};
use super::ruleset::{evaluate_into, to_rule_match, Evidence, RuleMatch, RuleSet, TokenSpan};
use super::sentence::sentence_numbers;

/// How far past the text's last word the words of a title scanned apart are
/// numbered: more than the largest `NEAR` distance.
const TITLE_GAP: u32 = 2000;

/// Everything the rules are evaluated on, for one article.
pub(super) struct ArticleHits {
    /// The text, normalised.
    pub(super) normalized: Normalized,
    pub(super) title: TitlePlace,
    /// The hits of every leaf of every rule.
    pub(super) leaves: LeafHits,
    /// The sentence number of each word of the text, when a rule uses
    /// `SENTENCE` (words past the end, a title scanned apart, are a
    /// sentence of their own).
    pub(super) sentences: Vec<u32>,
}

/// Where the title's words are, when a rule needs them.
pub(super) enum TitlePlace {
    /// No title, or no rule has a `title:` term: title words are not counted.
    Unused,
    /// The title is the text's words `first..=last`.
    InText,
    /// The title is not in the text: its words are numbered from `base`.
    Apart { normalized: Normalized, base: u32 },
}

impl ArticleHits {
    /// Moves what of `evidence` lies in a title scanned apart out of it
    /// (renumbered from 0), leaving what lies in the text.
    fn split_title(&self, evidence: &mut Evidence) -> Option<(Evidence, &Normalized)> {
        let TitlePlace::Apart { normalized, base } = &self.title else {
            return None;
        };
        let base = *base;
        let shift = |span: TokenSpan| TokenSpan {
            first: span.first - base,
            last: span.last - base,
        };
        let mut title = Evidence::default();
        evidence.spans.retain(|&span| {
            let in_title = span.first >= base;
            if in_title {
                title.spans.push(shift(span));
            }
            !in_title
        });
        evidence.entities.retain(|&(entity, span)| {
            let in_title = span.first >= base;
            if in_title {
                title.entities.push((entity, shift(span)));
            }
            !in_title
        });
        Some((title, normalized))
    }

    /// The byte range of words `span`, and whether it is in the title
    /// (scanned apart) rather than in the text.
    pub(super) fn bytes(&self, span: TokenSpan) -> (bool, Range<usize>) {
        if let TitlePlace::Apart { normalized, base } = &self.title {
            if span.first >= *base {
                let tokens = &normalized.tokens;
                let range = tokens[(span.first - base) as usize].start
                    ..tokens[(span.last - base) as usize].end;
                return (true, range);
            }
        }
        let tokens = &self.normalized.tokens;
        (
            false,
            tokens[span.first as usize].start..tokens[span.last as usize].end,
        )
    }
}

impl RuleSet {
    /// Runs every rule on an article: `title` (as read, e.g.
    /// [`crate::article::Article::title`]) is what `title:` terms look at;
    /// every other term looks at `text`. Returns the rules that fire, in
    /// rule order. Cannot fail.
    pub fn scan_article(&self, title: Option<&str>, text: &str) -> Vec<RuleMatch> {
        self.scan_article_with_words(title, text).0
    }

    /// Like [`RuleSet::scan_article`], also handing back the text's
    /// canonical words, so a caller that needs them (near-duplicate
    /// signatures) does not normalise the text a second time.
    pub fn scan_article_with_words(
        &self,
        title: Option<&str>,
        text: &str,
    ) -> (Vec<RuleMatch>, Normalized) {
        let hits = self.article_hits(title, text);
        let mut touched_rules: Vec<usize> = hits
            .leaves
            .leaves()
            .map(|leaf| self.leaves[leaf].rule)
            .collect();
        touched_rules.sort_unstable();
        touched_rules.dedup();
        // Room for the rules that may fire, up to a bound (a `RuleMatch` is
        // ~250 bytes): most articles then never grow the vector.
        let mut fired = Vec::with_capacity(touched_rules.len().min(128));
        // One buffer for every rule's evidence: only what a rule that fires
        // cites is copied out, into its `RuleMatch`.
        let mut evidence = Evidence::default();
        for rule in touched_rules {
            evidence.clear();
            if !evaluate_into(&self.rules[rule], &hits, &mut evidence) || evidence.spans.is_empty()
            {
                continue;
            }
            let title_evidence = hits.split_title(&mut evidence);
            let mut found = to_rule_match(rule, &mut evidence, &hits.normalized);
            if let Some((mut title_evidence, title_normalized)) = title_evidence {
                let in_title = to_rule_match(rule, &mut title_evidence, title_normalized);
                found.title_spans = in_title.spans.into_vec();
                found.title_entities = in_title.entities.into_vec();
            }
            fired.push(found);
        }
        (fired, hits.normalized)
    }

    /// The hits of every leaf on an article, `title:` leaves placed as the
    /// module documentation says.
    pub(super) fn article_hits(&self, title: Option<&str>, text: &str) -> ArticleHits {
        let normalized = normalize(text);
        let mut leaves = self.leaf_hits(&normalized);
        self.regex_terms.find(text, &normalized, &mut leaves);
        let (title, leaves) = self.place_title(title, &normalized, leaves);
        let sentences = if self.uses_sentences {
            sentence_numbers(text, &normalized.tokens)
        } else {
            Vec::new()
        };
        ArticleHits {
            normalized,
            title,
            leaves,
            sentences,
        }
    }

    /// Keeps the hits of `title:` leaves that lie in the title, scanning the
    /// title apart when the text does not show it.
    fn place_title(
        &self,
        title: Option<&str>,
        normalized: &Normalized,
        leaves: LeafHits,
    ) -> (TitlePlace, LeafHits) {
        if !self.uses_title {
            return (TitlePlace::Unused, leaves);
        }
        let is_title = |leaf: usize| self.leaves[leaf].title;
        let title_normalized = title.map(normalize).filter(|t| !t.tokens.is_empty());
        let (Some(title), Some(title_normalized)) = (title, title_normalized) else {
            let leaves = leaves.filtered(|leaf, _| !is_title(leaf));
            return (TitlePlace::Unused, leaves);
        };
        if let Some(position) = normalized.text.find(title_normalized.text.as_str()) {
            let first = normalized.token_at(position + 1) as u32;
            let last = first + title_normalized.tokens.len() as u32 - 1;
            let leaves = leaves.filtered(|leaf, span| {
                !is_title(leaf) || (first <= span.first && span.last <= last)
            });
            return (TitlePlace::InText, leaves);
        }
        let base = normalized.tokens.len() as u32 + TITLE_GAP;
        let mut leaves = leaves.filtered(|leaf, _| !is_title(leaf));
        let mut in_title = self.leaf_hits(&title_normalized);
        self.regex_terms
            .find(title, &title_normalized, &mut in_title);
        for (leaf, span, entity) in in_title.iter() {
            if is_title(leaf) {
                let span = TokenSpan {
                    first: span.first + base,
                    last: span.last + base,
                };
                leaves.push(leaf, span, entity);
            }
        }
        let apart = TitlePlace::Apart {
            normalized: title_normalized,
            base,
        };
        (apart, leaves)
    }
}
