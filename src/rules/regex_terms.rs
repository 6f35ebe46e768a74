//! `/regex/` terms: matched on the original text (not the canonical words),
//! case-insensitive unless the pattern says `(?-i)`, with the `regex`
//! crate, whose matching time is linear in the text.
//!
//! Regexes stay out of the automaton. All of them form one `RegexSet`, run
//! once per article and only when the rule set has any; only the regexes
//! the set reports are then run for their positions. A match is mapped to
//! the words it touches, so `NEAR`, `SENTENCE` and `count` work with it; a
//! match that touches no word (only punctuation) is ignored.
//!
//! Compiling can fail (syntax, size limit); matching cannot.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::hits::LeafHits;
use super::normalize::Normalized;
use super::ruleset::{LeafId, TokenSpan};

/// The most heap one compiled regex may use; a larger one is a config error.
pub(super) const REGEX_SIZE_LIMIT: usize = 512 * 1024;

/// Every `/regex/` term of the rule set.
#[derive(Debug, Default)]
pub(super) struct RegexTerms {
    set: Option<RegexSet>,
    patterns: Vec<String>,
    regexes: Vec<Regex>,
    leaves: Vec<LeafId>,
}

impl RegexTerms {
    /// Compiles `pattern` for `leaf`; the error is a one-line message.
    pub(super) fn add(&mut self, pattern: &str, leaf: LeafId) -> Result<(), String> {
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|error| describe(&error))?;
        self.patterns.push(pattern.to_string());
        self.regexes.push(regex);
        self.leaves.push(leaf);
        Ok(())
    }

    /// Builds the set of every regex added.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        if self.patterns.is_empty() {
            return Ok(());
        }
        let set = RegexSetBuilder::new(&self.patterns)
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT.saturating_mul(self.patterns.len()))
            .build()
            .map_err(|error| describe(&error))?;
        self.set = Some(set);
        Ok(())
    }

    /// Adds the hits of every regex on `text` (whose words are `normalized`)
    /// to `hits`.
    pub(super) fn find(&self, text: &str, normalized: &Normalized, hits: &mut LeafHits) {
        let Some(set) = &self.set else {
            return;
        };
        let tokens = &normalized.tokens;
        for index in set.matches(text).iter() {
            for found in self.regexes[index].find_iter(text) {
                let first = tokens.partition_point(|token| token.end <= found.start());
                let end = tokens.partition_point(|token| token.start < found.end());
                if first >= end {
                    continue;
                }
                let span = TokenSpan {
                    first: first as u32,
                    last: (end - 1) as u32,
                };
                hits.push(self.leaves[index], span, None);
            }
        }
    }
}

fn describe(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => format!(
            "regex is too large: it compiles to more than {} KiB; make it simpler",
            limit / 1024
        ),
        other => {
            let text = other.to_string();
            // The crate's syntax errors span several lines; the last says what is wrong.
            let reason = text
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ");
            format!("invalid regex: {reason}")
        }
    }
}
