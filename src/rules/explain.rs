//! Why a rule did or did not fire on a text: the rule's expression as an
//! indented tree, each node marked satisfied or not, each term with the
//! words it matched. Used by `newswatch test --explain` and by failing rule
//! tests in `newswatch check`. Pure, like the rest of the engine.

use std::fmt::Write as _;

use super::ruleset::{distinct_spans, evaluate, Evidence, Node, RuleSet, TokenSpan};
use super::scan::ArticleHits;

/// The most matched words shown for one term.
const SHOWN: usize = 5;

impl RuleSet {
    /// A readable explanation of rule `rule` on `text` (an article without a title).
    pub fn explain(&self, rule: usize, text: &str) -> String {
        self.explain_article(rule, None, text)
    }

    /// A readable explanation of rule `rule` on an article.
    pub fn explain_article(&self, rule: usize, title: Option<&str>, text: &str) -> String {
        let article = self.article_hits(title, text);
        let node = &self.rules[rule];
        let fired = evaluate(node, &article).is_some_and(|evidence| !evidence.spans.is_empty());
        let mut out = format!(
            "{}: {}\n",
            self.rule_id(rule),
            if fired { "fires" } else { "does not fire" }
        );
        let context = Context {
            set: self,
            hits: &article,
            title: title.unwrap_or_default(),
            text,
        };
        context.node(node, 1, &mut out);
        out
    }

    /// Indexes of the rules with at least one term found in `text`.
    pub fn rules_touched(&self, text: &str) -> Vec<usize> {
        self.rules_touched_article(None, text)
    }

    /// Indexes of the rules with at least one term found in an article.
    pub fn rules_touched_article(&self, title: Option<&str>, text: &str) -> Vec<usize> {
        let hits = self.article_hits(title, text).leaves;
        let mut rules: Vec<usize> = hits.leaves().map(|leaf| self.leaves[leaf].rule).collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }
}

struct Context<'a> {
    set: &'a RuleSet,
    hits: &'a ArticleHits,
    title: &'a str,
    text: &'a str,
}

impl Context<'_> {
    fn node(&self, node: &Node, depth: usize, out: &mut String) {
        let holds = evaluate(node, self.hits).is_some();
        let mark = if holds { "✓" } else { "✗" };
        let indent = "  ".repeat(depth);
        match node {
            Node::Leaf(leaf) => {
                let label = self.set.leaf_label(*leaf);
                let found = self.found(*leaf);
                let detail = if found.is_empty() {
                    "not found".to_string()
                } else {
                    found.join(", ")
                };
                let _ = writeln!(out, "{indent}{mark} {label}: {detail}");
            }
            Node::And(parts) => {
                let _ = writeln!(out, "{indent}{mark} AND (all of)");
                for part in parts {
                    self.node(part, depth + 1, out);
                }
            }
            Node::Or(parts) => {
                let _ = writeln!(out, "{indent}{mark} OR (any of)");
                for part in parts {
                    self.node(part, depth + 1, out);
                }
            }
            Node::Not(inner) => {
                let what = if holds {
                    "absent, as required"
                } else {
                    "present, so the rule cannot fire"
                };
                let _ = writeln!(out, "{indent}{mark} NOT ({what})");
                self.node(inner, depth + 1, out);
            }
            Node::Near {
                left,
                right,
                distance,
            } => {
                let detail = match evaluate(node, self.hits) {
                    Some(evidence) => evidence
                        .spans
                        .iter()
                        .take(SHOWN)
                        .map(|span| format!("{:?}", self.words(*span)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None if evaluate(left, self.hits).is_some()
                        && evaluate(right, self.hits).is_some() =>
                    {
                        format!("both sides found, but never within {distance} words")
                    }
                    None => "a side is missing".to_string(),
                };
                let _ = writeln!(out, "{indent}{mark} NEAR/{distance}: {detail}");
                self.node(left, depth + 1, out);
                self.node(right, depth + 1, out);
            }
            Node::AtLeast { min, parts } => {
                let holding = parts
                    .iter()
                    .filter(|part| evaluate(part, self.hits).is_some())
                    .count();
                let _ = writeln!(
                    out,
                    "{indent}{mark} {min} OF (at least {min} of {}): {holding} hold",
                    parts.len()
                );
                for part in parts {
                    self.node(part, depth + 1, out);
                }
            }
            Node::Count { inner, comparison } => {
                let found = evaluate(inner, self.hits)
                    .map_or(0, |evidence| distinct_spans(&evidence.spans));
                let _ = writeln!(out, "{indent}{mark} count {comparison}: found {found}");
                self.node(inner, depth + 1, out);
            }
            Node::Weights { items, comparison } => {
                let total: u64 = items
                    .iter()
                    .filter(|(item, _)| evaluate(item, self.hits).is_some())
                    .map(|(_, weight)| u64::from(*weight))
                    .sum();
                let _ = writeln!(out, "{indent}{mark} WEIGHTS {comparison}: total {total}");
                for (item, weight) in items {
                    let _ = writeln!(out, "{indent}  weight {weight}:");
                    self.node(item, depth + 2, out);
                }
            }
            Node::Sentence(parts) => {
                let detail = match evaluate(node, self.hits) {
                    Some(evidence) => self.windows(&evidence).join(", "),
                    None if parts.iter().all(|part| evaluate(part, self.hits).is_some()) => {
                        "all found, but never in one sentence".to_string()
                    }
                    None => "an operand is missing".to_string(),
                };
                let _ = writeln!(out, "{indent}{mark} SENTENCE: {detail}");
                for part in parts {
                    self.node(part, depth + 1, out);
                }
            }
        }
    }

    /// For each sentence with evidence, the words from its first to its last
    /// match, quoted, at most [`SHOWN`].
    fn windows(&self, evidence: &Evidence) -> Vec<String> {
        let mut by_sentence: std::collections::BTreeMap<u32, TokenSpan> = Default::default();
        for &span in &evidence.spans {
            let sentence = self
                .hits
                .sentences
                .get(span.first as usize)
                .copied()
                .unwrap_or(u32::MAX);
            by_sentence
                .entry(sentence)
                .and_modify(|window| {
                    window.first = window.first.min(span.first);
                    window.last = window.last.max(span.last);
                })
                .or_insert(span);
        }
        by_sentence
            .values()
            .take(SHOWN)
            .map(|&window| format!("{:?}", self.words(window)))
            .collect()
    }

    /// The distinct texts a leaf matched, quoted, at most [`SHOWN`].
    fn found(&self, leaf: usize) -> Vec<String> {
        let mut texts: Vec<String> = Vec::new();
        let Some(spans) = self.hits.leaves.get(leaf) else {
            return texts;
        };
        let mut sorted: Vec<_> = spans.map(|(span, _)| span).collect();
        sorted.sort_unstable();
        for span in sorted {
            let text = format!("{:?}", self.words(span));
            if !texts.contains(&text) {
                texts.push(text);
            }
        }
        let more = texts.len().saturating_sub(SHOWN);
        texts.truncate(SHOWN);
        if more > 0 {
            texts.push(format!("and {more} more"));
        }
        texts
    }

    /// The original text (or title) of words `span`, whitespace collapsed.
    fn words(&self, span: TokenSpan) -> String {
        let (in_title, range) = self.hits.bytes(span);
        let source = if in_title { self.title } else { self.text };
        source[range]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::parse;
    use super::super::{EntityDef, RuleDef, RuleSetInput};
    use super::*;

    fn set(rule: &str) -> RuleSet {
        RuleSet::compile(&RuleSetInput {
            entities: vec![EntityDef {
                id: "minsk".to_string(),
                aliases: vec!["Minsk".to_string()],
                not: vec!["Minsk agreements".to_string()],
                ..EntityDef::default()
            }],
            lists: [(
                "visit".to_string(),
                vec!["visit*".to_string(), "talks".to_string()],
            )]
            .into_iter()
            .collect(),
            rules: vec![RuleDef {
                id: "minsk-visit".to_string(),
                expr: parse(rule).expect("parses"),
            }],
        })
        .expect("compiles")
    }

    #[test]
    fn explains_what_matched_and_what_was_missing() {
        let rules = set("entity:minsk NEAR/3 list:visit AND NOT Tobruk");
        assert_eq!(
            rules.explain(0, "Talks began. Later, a visit to Minsk."),
            "minsk-visit: fires\n  ✓ AND (all of)\n    ✓ NEAR/3: \"visit to Minsk\"\n      ✓ entity:minsk: \"Minsk\"\n      ✓ list:visit: \"Talks\", \"visit\"\n    ✓ NOT (absent, as required)\n      ✗ Tobruk: not found\n"
        );
        let far = rules.explain(
            0,
            "Talks began long before anyone mentioned the Minsk agreements; Minsk itself is far, far away from any of the new talks.",
        );
        assert!(far.starts_with("minsk-visit: does not fire\n"), "{far}");
        assert!(
            far.contains("✗ NEAR/3: both sides found, but never within 3 words"),
            "{far}"
        );
        let blocked = rules.explain(0, "A visit to Minsk and Tobruk.");
        assert!(
            blocked.contains("✗ NOT (present, so the rule cannot fire)"),
            "{blocked}"
        );
        assert!(blocked.contains("✓ Tobruk: \"Tobruk\""), "{blocked}");
        assert_eq!(rules.rules_touched("nothing here"), Vec::<usize>::new());
        let titled = set("title:entity:minsk AND list:visit");
        assert_eq!(
            titled.explain_article(0, Some("Minsk, again"), "Talks began."),
            "minsk-visit: fires\n  ✓ AND (all of)\n    ✓ title:entity:minsk: \"Minsk\"\n    ✓ list:visit: \"Talks\"\n"
        );
        assert!(titled
            .explain_article(0, None, "Talks in Minsk.")
            .contains("✗ title:entity:minsk: not found"));
        let combined = set("2 OF (Tobruk, count(talks) >= 2, SENTENCE(entity:minsk, list:visit))");
        assert_eq!(
            combined.explain(0, "Talks began. Talks went on in Minsk."),
            "minsk-visit: fires\n  ✓ 2 OF (at least 2 of 3): 2 hold\n    ✗ Tobruk: not found\n    ✓ count >= 2: found 2\n      ✓ talks: \"Talks\"\n    ✓ SENTENCE: \"Talks went on in Minsk\"\n      ✓ entity:minsk: \"Minsk\"\n      ✓ list:visit: \"Talks\"\n"
        );
        let weighted = set("WEIGHTS(Tobruk:3, entity:minsk:2, list:visit:1) >= 4");
        assert_eq!(
            weighted.explain(0, "Talks in Minsk."),
            "minsk-visit: does not fire\n  ✗ WEIGHTS >= 4: total 3\n    weight 3:\n      ✗ Tobruk: not found\n    weight 2:\n      ✓ entity:minsk: \"Minsk\"\n    weight 1:\n      ✓ list:visit: \"Talks\"\n"
        );
        let apart = combined.explain(0, "Minsk is far. Talks began.");
        assert!(
            apart.contains("✗ SENTENCE: all found, but never in one sentence"),
            "{apart}"
        );
        assert!(apart.contains("✗ count >= 2: found 1"), "{apart}");
        assert_eq!(rules.rules_touched("Minsk"), [0]);
    }
}
