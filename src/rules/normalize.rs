//! Text normalisation: turns article text (and rule terms) into a canonical
//! word sequence so that matching is case-, accent-, quote- and
//! dash-insensitive, while every word remembers where it came from.
//!
//! The canonical form is a `String` of folded words, each preceded and
//! followed by exactly one space (`" tor m2 air defense "`). Rule terms are
//! normalised by the very same function, so a pattern `" tor m2 "` found in
//! the article's canonical text is a whole-word match by construction.
//!
//! Folding, per character: Unicode compatibility decomposition (NFKD, so
//! `ﬁ` is `fi` and full-width letters are ASCII), combining marks dropped
//! (accents, Arabic harakat, `ё` -> `е`), full Unicode case folding (`ß` ->
//! `ss`), Arabic tatweel and invisible joiners ignored. Anything that is not
//! a letter or digit after folding (spaces, every dash, every quote, bullets,
//! punctuation) separates words. A possessive `'s` / `’s` is dropped, so
//! `Haftar’s` is the word `haftar`.
//!
//! This module is pure: no I/O, no allocation per word beyond the output
//! vectors, and it cannot fail.

use caseless::Caseless;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// One word of the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Byte offset of the word's first character in the original text.
    pub start: usize,
    /// Byte offset one past the word's last character in the original text.
    pub end: usize,
    /// Byte offset of the word in [`Normalized::text`].
    pub norm_start: usize,
}

/// Article text in canonical form, with the map back to the original.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// Folded words, each surrounded by single spaces: `" a b c "`.
    pub text: String,
    /// The words, in order.
    pub tokens: Vec<Token>,
}

impl Normalized {
    /// Index of the token whose folded form contains byte `pos` of [`Self::text`].
    /// `pos` must point inside a word (not at a separating space).
    pub fn token_at(&self, pos: usize) -> usize {
        self.tokens
            .partition_point(|token| token.norm_start <= pos)
            .saturating_sub(1)
    }

    /// The folded word of token `index` (no surrounding spaces).
    pub fn word(&self, index: usize) -> &str {
        &self.text[self.tokens[index].norm_start..self.word_end(index)]
    }

    /// Byte offset in [`Self::text`] of the space after token `index`: the
    /// space before the next word, or the final one.
    pub fn word_end(&self, index: usize) -> usize {
        self.tokens
            .get(index + 1)
            .map_or(self.text.len() - 1, |next| next.norm_start - 1)
    }

    /// The folded words, in token order.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.tokens.len()).map(|index| self.word(index))
    }
}

/// For each byte: its lower-case form if it is an ASCII letter or digit,
/// else 0. One lookup classifies and folds the common case.
static ASCII_WORD_BYTE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 128 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric() {
            table[byte] = b.to_ascii_lowercase();
        }
        byte += 1;
    }
    table
};

/// Normalises `text` into canonical words that remember their source offsets.
pub fn normalize(text: &str) -> Normalized {
    let mut builder = Builder {
        text: Vec::with_capacity(text.len() + 2),
        tokens: Vec::with_capacity(text.len() / 6 + 1),
        open: false,
    };
    builder.text.push(b' ');
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        let byte = bytes[position];
        if ASCII_WORD_BYTE[usize::from(byte)] != 0 {
            // The common case: a run of ASCII letters and digits, folded
            // and copied by one table lookup per byte.
            position = builder.push_ascii_run(bytes, position);
            continue;
        }
        if byte.is_ascii() {
            if byte == b'\'' && is_possessive_s(text, position + 1, builder.open) {
                builder.close();
                position += 2;
                continue;
            }
            builder.close();
            position += 1;
            continue;
        }
        let Some(character) = text[position..].chars().next() else {
            break;
        };
        let next = position + character.len_utf8();
        if is_ignorable(character) {
            position = next;
            continue;
        }
        if is_apostrophe(character) && is_possessive_s(text, next, builder.open) {
            builder.close();
            position = next + 1;
            continue;
        }
        // A character that folds to nothing (a lone combining mark, as in
        // decomposed "E\u{301}ric") neither adds to nor ends the word.
        let mut separator = false;
        fold_char(character, |folded| {
            if folded.is_alphanumeric() {
                builder.push_word_char(position, next, folded);
            } else {
                separator = true;
            }
        });
        if separator {
            builder.close();
        }
        position = next;
    }
    builder.close();
    Normalized {
        text: String::from_utf8(builder.text).expect("only whole characters are written"),
        tokens: builder.tokens,
    }
}

/// Normalises a rule term (a word, phrase, alias or list item) into its folded
/// words, joined by single spaces, without the surrounding spaces.
pub fn normalize_term(term: &str) -> String {
    let normalized = normalize(term);
    normalized.text.trim().to_string()
}

struct Builder {
    /// The canonical text so far: whole UTF-8 characters only.
    text: Vec<u8>,
    tokens: Vec<Token>,
    /// A word is being built (its token is the last one).
    open: bool,
}

impl Builder {
    /// Starts a word at `start` unless one is open.
    fn open_word(&mut self, start: usize) {
        if !self.open {
            self.open = true;
            self.tokens.push(Token {
                start,
                end: start,
                norm_start: self.text.len(),
            });
        }
    }

    fn push_word_char(&mut self, start: usize, end: usize, folded: char) {
        self.open_word(start);
        let mut buffer = [0u8; 4];
        self.text
            .extend_from_slice(folded.encode_utf8(&mut buffer).as_bytes());
        self.end_word_at(end);
    }

    /// Adds the run of ASCII letters and digits starting at `bytes[start]`,
    /// folded, to the open word (or a new one); returns where the run ends.
    fn push_ascii_run(&mut self, bytes: &[u8], start: usize) -> usize {
        self.open_word(start);
        let mut end = start;
        while let Some(&byte) = bytes.get(end) {
            let folded = ASCII_WORD_BYTE[usize::from(byte)];
            if folded == 0 {
                break;
            }
            self.text.push(folded);
            end += 1;
        }
        self.end_word_at(end);
        end
    }

    fn end_word_at(&mut self, end: usize) {
        if let Some(token) = self.tokens.last_mut() {
            token.end = end;
        }
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            self.text.push(b' ');
        }
    }
}

/// Calls `emit` with the folded form of `character`: compatibility
/// decomposition, combining marks dropped, full case folding.
fn fold_char(character: char, mut emit: impl FnMut(char)) {
    decompose_compatible(character, |decomposed| {
        if is_combining_mark(decomposed) {
            return;
        }
        for folded in std::iter::once(decomposed).default_case_fold() {
            emit(folded);
        }
    });
}

/// Characters that neither belong to a word nor separate words.
fn is_ignorable(character: char) -> bool {
    matches!(
        character,
        '\u{00AD}' // soft hyphen
            | '\u{200C}' // zero-width non-joiner
            | '\u{200D}' // zero-width joiner
            | '\u{2060}' // word joiner
            | '\u{FEFF}' // zero-width no-break space
            | '\u{0640}' // Arabic tatweel (kashida)
    )
}

fn is_apostrophe(character: char) -> bool {
    matches!(
        character,
        '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '\u{02B9}' | '\u{2032}' | '\u{FF07}' | '`'
    )
}

/// True when an apostrophe that ends a word is followed by a possessive `s`
/// (`s` or `S`, then a non-word character or the end of the text).
fn is_possessive_s(text: &str, after_apostrophe: usize, in_word: bool) -> bool {
    if !in_word {
        return false;
    }
    let rest = &text.as_bytes()[after_apostrophe.min(text.len())..];
    match rest {
        [b's' | b'S'] => true,
        [b's' | b'S', next, ..] => {
            if next.is_ascii() {
                !next.is_ascii_alphanumeric()
            } else {
                text[after_apostrophe + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| !c.is_alphanumeric() && !is_ignorable(c))
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> String {
        normalize(text).text.trim().to_string()
    }

    #[test]
    fn folds_case_accents_quotes_and_dashes() {
        let cases = [
            ("Tor-M2", "tor m2"),
            ("TOR M2", "tor m2"),
            ("tor\u{2011}m2", "tor m2"),
            ("Tor\u{2013}M2 — BM\u{2212}30", "tor m2 bm 30"),
            ("Haftar’s forces", "haftar forces"),
            ("Haftar's", "haftar"),
            ("HAFTAR’S", "haftar"),
            ("the Haftars’ sons", "the haftars sons"),
            ("O'Brien", "o brien"),
            ("Ça va, Éric", "ca va eric"),
            ("E\u{301}ric", "eric"),
            ("Straße", "strasse"),
            ("Минск Лукашенко", "минск лукашенко"),
            ("Ёлка", "елка"),
            ("\u{FB01}nance", "finance"),
            ("ＡＢＣ１２", "abc12"),
            ("ﺣﻔﺘﺮ", "حفتر"),
            ("حفـــتر", "حفتر"),
            ("Kar\u{00AD}ankevich", "karankevich"),
            ("“House of Belarus”", "house of belarus"),
            ("• Minsk\u{00A0}visit", "minsk visit"),
            ("", ""),
            ("  ...  ", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(words(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn tokens_keep_byte_offsets_into_the_original() {
        let text = "The visit to Минск’s «centre» — Haftar’s Tor‑M2.";
        let normalized = normalize(text);
        let originals: Vec<&str> = normalized
            .tokens
            .iter()
            .map(|token| &text[token.start..token.end])
            .collect();
        assert_eq!(
            originals,
            [
                "The",
                "visit",
                "to",
                "Минск",
                "centre",
                "Haftar",
                "Tor",
                "M2"
            ]
        );
        for token in &normalized.tokens {
            assert_eq!(
                &normalized.text[token.norm_start - 1..token.norm_start],
                " "
            );
        }
    }

    #[test]
    fn token_at_finds_the_word_containing_a_position() {
        let normalized = normalize("alpha beta gamma");
        let beta = normalized.tokens[1].norm_start;
        assert_eq!(normalized.token_at(beta), 1);
        assert_eq!(normalized.token_at(beta + 3), 1);
        assert_eq!(normalized.token_at(normalized.tokens[2].norm_start), 2);
        assert_eq!(normalized.token_at(1), 0);
    }

    #[test]
    fn canonical_text_has_single_spaces_around_every_word() {
        assert_eq!(normalize("a  -- b").text, " a b ");
        assert_eq!(normalize("").text, " ");
        assert_eq!(normalize_term("  Tor-M2 "), "tor m2");
    }

    #[test]
    fn possessive_needs_a_word_before_and_a_boundary_after() {
        assert_eq!(words("'s"), "s");
        assert_eq!(words("Haftar'sson"), "haftar sson");
        assert_eq!(words("Haftar’s"), "haftar");
    }
}
