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
//! In a text of `BITMAP_MIN` bytes or more, plain ASCII (nearly all of an
//! English article) is classified and folded eight bytes at a time and its
//! words read from bitmaps (`Classes`); everything else, and any shorter
//! text, goes through the byte loop, which is the reference: a test holds
//! the two to the same output.
//!
//! This module is pure: no I/O, no allocation per word beyond the output
//! vectors, and it cannot fail.

use std::ops::Range;

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

    /// The folded words as bytes, in token order: [`Self::words`] without
    /// a check that each slice starts and ends on a character boundary.
    /// Each word ends where [`Self::word_end`] says, worked out in step
    /// with the tokens: calling it per word made the scan at 10 rules 4%
    /// slower.
    pub fn word_bytes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let text = self.text.as_bytes();
        let ends = self
            .tokens
            .iter()
            .skip(1)
            .map(|next| next.norm_start - 1)
            .chain((!self.tokens.is_empty()).then(|| text.len() - 1));
        self.tokens
            .iter()
            .zip(ends)
            .map(move |(token, end)| &text[token.norm_start..end])
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

/// The top bit of every byte lane of a `u64`.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The lower-case bit (0x20) of every byte lane.
const CASE: u64 = 0x2020_2020_2020_2020;

/// Bytes a copy of [`copy_run`] moves at a time: the folded
/// bytes and the canonical text keep this much room past their end.
const COPY: usize = 16;

/// The top bit set in each lane of `chunk` whose byte is in `low..=high`.
/// Every lane must be ASCII (below 0x80): then no sum carries into the
/// next lane.
#[inline]
fn lanes_in(chunk: u64, low: u8, high: u8) -> u64 {
    let ones = 0x0101_0101_0101_0101_u64;
    // A lane reaches 0x80 when its byte is at least `low` ...
    let at_least_low = chunk.wrapping_add(ones * u64::from(0x80 - low));
    // ... and when it is above `high`.
    let above_high = chunk.wrapping_add(ones * u64::from(0x7f - high));
    at_least_low & !above_high & HIGH
}

/// The top bits of the eight lanes of `lanes`, as bits 0 to 7.
#[inline]
fn lane_bits(lanes: u64) -> u64 {
    (lanes >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Plain ASCII, classified and folded ahead of the walk over the words.
///
/// One pass over the text, eight bytes at a time, each a lane of a `u64`
/// (SWAR): arithmetic finds the letters, digits and special bytes of all
/// eight and folds the letters. Then the words are read from bitmaps,
/// 64 bytes at a time, instead of by a byte loop that mispredicted its
/// exit at every word end.
struct Classes {
    /// Bit `i % 64` of entry `i / 64`: byte `i` is an ASCII letter or digit.
    word: Vec<u64>,
    /// Likewise: byte `i` is not ASCII, or is an apostrophe (which may
    /// start a possessive `'s`). The byte loop takes these.
    special: Vec<u64>,
    /// The text with its ASCII letters in lower case, and [`COPY`] bytes
    /// of room.
    folded: Vec<u8>,
}

impl Classes {
    fn new(bytes: &[u8]) -> Classes {
        let blocks = bytes.len().div_ceil(64);
        let mut classes = Classes {
            word: vec![0; blocks],
            special: vec![0; blocks],
            folded: vec![0; bytes.len() + COPY],
        };
        let mut chunks = bytes.chunks_exact(8);
        for (index, chunk) in (&mut chunks).enumerate() {
            let chunk = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let ascii = chunk & !HIGH;
            let special = (chunk & HIGH) | lanes_in(ascii, b'\'', b'\'');
            let letters = lanes_in(ascii | CASE, b'a', b'z') & !special;
            let word = (letters | lanes_in(ascii, b'0', b'9')) & !special;
            let at = index * 8;
            // A letter's lane holds 0x80: shifted down, the bit of lower case.
            classes.folded[at..at + 8].copy_from_slice(&(chunk | (letters >> 2)).to_le_bytes());
            classes.word[at / 64] |= lane_bits(word) << (at % 64);
            classes.special[at / 64] |= lane_bits(special) << (at % 64);
        }
        let tail = bytes.len() - chunks.remainder().len();
        for (at, &byte) in (tail..).zip(chunks.remainder()) {
            let folded = ASCII_WORD_BYTE[usize::from(byte)];
            let bit = 1 << (at % 64);
            if !byte.is_ascii() || byte == b'\'' {
                classes.special[at / 64] |= bit;
            } else if folded != 0 {
                classes.word[at / 64] |= bit;
            }
            classes.folded[at] = if folded != 0 { folded } else { byte };
        }
        classes
    }
}

/// Copies the folded bytes `run` to `out[len..]`, sixteen at a time (most
/// words take one copy; the bytes past the run are overwritten next), and
/// returns the new length. `out` has room for a copy's spare bytes.
#[inline]
fn copy_run(out: &mut [u8], len: usize, folded: &[u8], run: Range<usize>) -> usize {
    let mut at = 0;
    while at < run.len() {
        out[len + at..len + at + COPY].copy_from_slice(&folded[run.start + at..][..COPY]);
        at += COPY;
    }
    len + run.len()
}

/// Texts shorter than this (rule terms, most titles) go through the byte
/// loop alone: for them the bitmaps' setup (three buffers) costs more than
/// it saves. A 15-byte term took 76 ns that way, 176 ns with the bitmaps.
const BITMAP_MIN: usize = 256;

/// Normalises `text` into canonical words that remember their source offsets.
pub fn normalize(text: &str) -> Normalized {
    normalize_with(text, BITMAP_MIN)
}

/// [`normalize`], with the bitmap path for plain ASCII from texts of
/// `bitmap_min` bytes on (the tests compare 0 with `usize::MAX`). Blocks of
/// 64 bytes with no special byte take the bitmap path; the byte loop
/// ([`Builder::step`]) takes the rest, and the two share the builder's
/// state, so a word may run from one into the other.
fn normalize_with(text: &str, bitmap_min: usize) -> Normalized {
    let mut builder = Builder {
        text: vec![0; text.len() + 2 + COPY],
        len: 0,
        tokens: Vec::with_capacity(text.len() / 6 + 1),
        open: false,
    };
    builder.put(b" ");
    let bytes = text.as_bytes();
    let mut position = 0;
    if bytes.len() >= bitmap_min {
        let classes = Classes::new(bytes);
        for block in 0..classes.word.len() {
            let block_end = (64 * (block + 1)).min(bytes.len());
            if position >= block_end {
                // The byte loop already took this block.
                continue;
            }
            if classes.special[block] == 0 {
                builder.push_block(&classes, block, position);
                position = block_end;
            } else {
                while position < block_end {
                    position = builder.step(text, position);
                }
            }
        }
    }
    while position < bytes.len() {
        position = builder.step(text, position);
    }
    builder.close();
    let mut folded = builder.text;
    folded.truncate(builder.len);
    Normalized {
        text: String::from_utf8(folded).expect("only whole characters are written"),
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
    /// The canonical text so far is `text[..len]`, whole UTF-8 characters
    /// only; the bytes after it are room to write into.
    text: Vec<u8>,
    len: usize,
    tokens: Vec<Token>,
    /// A word is being built (its token is the last one).
    open: bool,
}

impl Builder {
    /// Appends `bytes` to the canonical text.
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end > self.text.len() {
            // Folding made the text longer than its source (`ﬁ` is `fi`).
            self.text.resize(end.max(2 * self.text.len()), 0);
        }
        self.text[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    /// Starts a word at `start` unless one is open.
    fn open_word(&mut self, start: usize) {
        if !self.open {
            self.open = true;
            self.tokens.push(Token {
                start,
                end: start,
                norm_start: self.len,
            });
        }
    }

    /// Takes the character (or run of ASCII letters and digits) at
    /// `position`, a character boundary; returns where the next one starts.
    fn step(&mut self, text: &str, position: usize) -> usize {
        let bytes = text.as_bytes();
        let byte = bytes[position];
        if ASCII_WORD_BYTE[usize::from(byte)] != 0 {
            // A run of ASCII letters and digits, folded and copied by one
            // table lookup per byte.
            return self.push_ascii_run(bytes, position);
        }
        if byte.is_ascii() {
            if byte == b'\'' && is_possessive_s(text, position + 1, self.open) {
                self.close();
                return position + 2;
            }
            self.close();
            return position + 1;
        }
        let Some(character) = text[position..].chars().next() else {
            return bytes.len();
        };
        let next = position + character.len_utf8();
        if is_ignorable(character) {
            return next;
        }
        if is_apostrophe(character) && is_possessive_s(text, next, self.open) {
            self.close();
            return next + 1;
        }
        // A character that folds to nothing (a lone combining mark, as in
        // decomposed "E\u{301}ric") neither adds to nor ends the word.
        let mut separator = false;
        fold_char(character, |folded| {
            if folded.is_alphanumeric() {
                self.push_word_char(position, next, folded);
            } else {
                separator = true;
            }
        });
        if separator {
            self.close();
        }
        next
    }

    /// Takes the bytes of `block` (the text's bytes `64 * block` to
    /// `64 * block + 63`) from `position` on: plain ASCII without
    /// apostrophes.
    ///
    /// A word starts where the block's word bits go from 0 to 1 and ends
    /// where they go back: the starts and ends alternate, so the n-th start
    /// pairs with the n-th end (after the end of a word left open by the
    /// block before). Each word is copied from the folded bytes, sixteen
    /// at a time. The state lives in locals until the block is done.
    fn push_block(&mut self, classes: &Classes, block: usize, position: usize) {
        let base = 64 * block;
        let block_end = (base + 64).min(classes.folded.len() - COPY);
        let from = position - base;
        let word = classes.word[block] & (u64::MAX << from);
        // Bit `i`: byte `i - 1` is in a word (for `from`: one is open).
        let after_word = (word << 1) | (u64::from(self.open) << from);
        let mut starts = word & !after_word;
        // The first byte after each word; a word reaching the block's end
        // has none here.
        let mut ends = !word & after_word;
        // Room for all the block can add: no more bytes than it has, and
        // the spare bytes of a copy.
        let room = self.len + 64 + COPY + 1;
        if self.text.len() < room {
            self.text.resize(room.max(2 * self.text.len()), 0);
        }
        let out = self.text.as_mut_slice();
        let folded = classes.folded.as_slice();
        let tokens = &mut self.tokens;
        let mut len = self.len;
        // Where the word being read ends: at the next end bit, or past the
        // block when there is none.
        let next_end = |ends: u64| match ends {
            0 => block_end,
            ends => base + ends.trailing_zeros() as usize,
        };
        if self.open {
            // The word left open goes on to its end here, or through.
            let end = next_end(ends);
            // Nothing to copy when it ended where it was (a combining mark
            // after it, taken by the byte loop, is not part of it).
            if end > position {
                len = copy_run(out, len, folded, position..end);
                if let Some(token) = tokens.last_mut() {
                    token.end = end;
                }
            }
            if ends == 0 {
                self.len = len;
                return;
            }
            ends &= ends - 1;
            out[len] = b' ';
            len += 1;
            self.open = false;
        }
        while starts != 0 {
            let start = base + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let end = next_end(ends);
            tokens.push(Token {
                start,
                end,
                norm_start: len,
            });
            len = copy_run(out, len, folded, start..end);
            if ends == 0 {
                // The last word goes on into the next block.
                self.open = true;
                break;
            }
            ends &= ends - 1;
            out[len] = b' ';
            len += 1;
        }
        self.len = len;
    }

    fn push_word_char(&mut self, start: usize, end: usize, folded: char) {
        self.open_word(start);
        let mut buffer = [0u8; 4];
        self.put(folded.encode_utf8(&mut buffer).as_bytes());
        self.end_word_at(end);
    }

    /// Adds the run of ASCII letters and digits starting at `bytes[start]`,
    /// folded, to the open word (or a new one); returns where the run ends.
    fn push_ascii_run(&mut self, bytes: &[u8], start: usize) -> usize {
        self.open_word(start);
        let run = bytes[start..]
            .iter()
            .take_while(|&&byte| ASCII_WORD_BYTE[usize::from(byte)] != 0)
            .count();
        let end = self.len + run;
        if end > self.text.len() {
            self.text.resize(end.max(2 * self.text.len()), 0);
        }
        for (slot, &byte) in self.text[self.len..end].iter_mut().zip(&bytes[start..]) {
            *slot = ASCII_WORD_BYTE[usize::from(byte)];
        }
        self.len = end;
        self.end_word_at(start + run);
        start + run
    }

    fn end_word_at(&mut self, end: usize) {
        if let Some(token) = self.tokens.last_mut() {
            token.end = end;
        }
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            self.put(b" ");
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

    #[test]
    fn the_bitmap_path_reads_as_the_byte_loop_does() {
        // Pieces that meet at every offset of a chunk and of a block, in
        // texts of several blocks: runs of letters and digits of every
        // length, separators, apostrophes that are and are not possessive,
        // and characters the bitmap path must leave to the byte loop.
        let pieces = [
            "a",
            "Tor",
            "M2",
            "HAFTAR",
            "counterintelligence",
            "2026",
            "x9Y",
            " ",
            "  ",
            "-",
            "\n",
            ".",
            "@[`{",
            "'",
            "'s",
            "’s",
            "'S ",
            "’",
            "\u{AD}",
            "\u{301}",
            "É",
            "Минск",
            "ß",
            "\u{FB01}",
            "حفـتر",
            "\u{FDFA}",
            "\u{7F}",
            "\t",
        ];
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..4000 {
            let text: String = (0..rng.usize(0..90))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let chunked = normalize_with(&text, 0);
            let bytewise = normalize_with(&text, usize::MAX);
            assert_eq!(chunked.text, bytewise.text, "{text:?}");
            let first_difference = chunked
                .tokens
                .iter()
                .zip(&bytewise.tokens)
                .position(|(a, b)| a != b);
            assert_eq!(
                (chunked.tokens.len(), first_difference),
                (bytewise.tokens.len(), None),
                "{text:?}: {:?} against {:?}",
                first_difference.map(|i| chunked.tokens[i]),
                first_difference.map(|i| bytewise.tokens[i]),
            );
        }
    }
}
