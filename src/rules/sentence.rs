//! Sentences, for `SENTENCE(a, b, ...)`: which sentence each word of the
//! original text is in, and the evaluation of a `SENTENCE` node.
//!
//! A sentence ends
//! - after `.`, `!`, `?`, `…`, `。` or the Arabic `؟` when whitespace (or the
//!   end of the text) follows, possibly after closing quotes or brackets,
//!   unless the next word starts with a lower-case letter ("approx. five");
//!   a `.` after a single letter ("V. Karankevich", "U.S. Army") or after a
//!   common abbreviation (Mr, Dr, Gen, Lt, Col, St, No, Jan, Feb, ...) does
//!   not end one;
//! - at a blank line (a paragraph break).
//!
//! A single line break does not end a sentence, because saved articles are
//! often wrapped at a fixed width. A title that the text does not show is a
//! sentence of its own.
//!
//! Pure; cannot fail.

use std::collections::BTreeSet;

use super::normalize::Token;
use super::ruleset::{Evidence, TokenSpan};

/// Words before a `.` that do not end a sentence (compared lower-case).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "gen", "lt", "col", "maj", "capt", "cpt", "sgt", "adm",
    "brig", "cmdr", "gov", "sen", "rep", "rev", "st", "no", "nos", "vs", "etc", "jr", "sr",
    "approx", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "e.g", "i.e",
];

/// The sentence number of each token, in order (0 for the first sentence).
pub(super) fn sentence_numbers(text: &str, tokens: &[Token]) -> Vec<u32> {
    let breaks = sentence_starts(text);
    let mut numbers = Vec::with_capacity(tokens.len());
    let mut passed = 0;
    for token in tokens {
        while passed < breaks.len() && breaks[passed] <= token.start {
            passed += 1;
        }
        numbers.push(passed as u32);
    }
    numbers
}

/// Byte offsets where a new sentence starts, ascending.
fn sentence_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    for (index, character) in text.char_indices() {
        match character {
            '\n' => {
                // A blank line: only whitespace up to the next line break.
                let rest = &text[index + 1..];
                let line_end = rest.find('\n');
                if let Some(line_end) = line_end {
                    if rest[..line_end].trim().is_empty() {
                        starts.push(index + 1);
                    }
                }
            }
            '.' | '!' | '?' | '…' | '。' | '؟' => {
                let after = index + character.len_utf8();
                if ends_sentence(text, index, after, character) {
                    starts.push(after);
                }
            }
            _ => {}
        }
    }
    starts.dedup();
    starts
}

fn ends_sentence(text: &str, mark: usize, after: usize, character: char) -> bool {
    let rest = &text[after..];
    let rest = rest.trim_start_matches(|c: char| {
        matches!(
            c,
            '"' | '\'' | '”' | '’' | '»' | ')' | ']' | '.' | '!' | '?'
        )
    });
    let Some(next) = rest.chars().next() else {
        return true;
    };
    if !next.is_whitespace() {
        return false;
    }
    let next_word = rest.trim_start().chars().next();
    if next_word.is_some_and(char::is_lowercase) {
        return false;
    }
    if character != '.' {
        return true;
    }
    let word_before = text[..mark]
        .rsplit(|c: char| !(c.is_alphanumeric() || c == '.'))
        .next()
        .unwrap_or_default();
    let word_before = word_before.trim_start_matches('.');
    if word_before.chars().count() == 1 && word_before.chars().all(char::is_alphabetic) {
        return false;
    }
    let lower = word_before.to_lowercase();
    // "U.S" before the final '.': a dotted abbreviation.
    if lower.contains('.') && lower.split('.').all(|part| part.chars().count() <= 1) {
        return false;
    }
    !ABBREVIATIONS.contains(&lower.as_str())
}

/// `SENTENCE(parts...)`: the sentences in which every part has a match;
/// the evidence is the parts' matches in those sentences.
pub(super) fn in_one_sentence(parts: Vec<Evidence>, sentences: &[u32]) -> Option<Evidence> {
    let sentence_of = |span: TokenSpan| {
        let number = |token: u32| sentences.get(token as usize).copied().unwrap_or(u32::MAX);
        let first = number(span.first);
        (first == number(span.last)).then_some(first)
    };
    let mut common: Option<BTreeSet<u32>> = None;
    for part in &parts {
        let here: BTreeSet<u32> = part.spans.iter().filter_map(|&s| sentence_of(s)).collect();
        common = Some(match common {
            None => here,
            Some(common) => common.intersection(&here).copied().collect(),
        });
    }
    let common = common.filter(|c| !c.is_empty())?;
    let keep = |span: TokenSpan| sentence_of(span).is_some_and(|s| common.contains(&s));
    let mut evidence = Evidence::default();
    for part in parts {
        evidence
            .spans
            .extend(part.spans.into_iter().filter(|&s| keep(s)));
        evidence
            .entities
            .extend(part.entities.into_iter().filter(|&(_, s)| keep(s)));
    }
    Some(evidence)
}

#[cfg(test)]
mod tests {
    use super::super::normalize::normalize;
    use super::*;

    /// The words of each sentence, joined.
    fn sentences(text: &str) -> Vec<String> {
        let normalized = normalize(text);
        let numbers = sentence_numbers(text, &normalized.tokens);
        let mut out: Vec<String> = Vec::new();
        let mut last = None;
        for (token, number) in normalized.tokens.iter().zip(numbers) {
            let word = &text[token.start..token.end];
            if last == Some(number) {
                if let Some(current) = out.last_mut() {
                    current.push(' ');
                    current.push_str(word);
                }
            } else {
                out.push(word.to_string());
            }
            last = Some(number);
        }
        out
    }

    #[test]
    fn sentences_end_at_marks_and_blank_lines_not_at_abbreviations() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Haftar met Lukashenko. Talks followed!",
                &["Haftar met Lukashenko", "Talks followed"],
            ),
            ("Did he go? Yes.", &["Did he go", "Yes"]),
            (
                "Deputy PM V. Karankevich arrived.",
                &["Deputy PM V Karankevich arrived"],
            ),
            (
                "Gen. Haftar and Lt. Col. Saddam met.",
                &["Gen Haftar and Lt Col Saddam met"],
            ),
            (
                "The U.S. Army flew B-52s. Russia did not.",
                &["The U S Army flew B 52s", "Russia did not"],
            ),
            (
                "It cost 3.5 million. Approx. five.",
                &["It cost 3 5 million", "Approx five"],
            ),
            ("approx. five buses", &["approx five buses"]),
            (
                "He said \"enough.\" Then left.",
                &["He said enough", "Then left"],
            ),
            (
                "A title line\n\nThe body\nwraps here.",
                &["A title line", "The body wraps here"],
            ),
            ("Minsk…  Tobruk", &["Minsk", "Tobruk"]),
            ("حفتر في مينسك؟ نعم", &["حفتر في مينسك", "نعم"]),
        ];
        for (text, expected) in cases {
            assert_eq!(sentences(text), *expected, "text {text:?}");
        }
    }
}
