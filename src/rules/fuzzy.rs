//! Alias spellings beyond the exact ones the automaton finds: misspellings
//! within an edit distance (`fuzzy = N` on an entity) and Cyrillic
//! spellings of Latin aliases (transliteration, see [`super::translit`]).
//!
//! Fuzzy matching compares words of 6 or more letters only, on both sides,
//! so "Karankvich" finds "Karankevich" (distance 1) but "Tor" never finds
//! "Top". The distance is the optimal string alignment distance (a swap of
//! two neighbouring letters counts 1). A prefix alias word (`Минск*`) is
//! never matched fuzzily, only exactly or transliterated.
//!
//! One pass per article over its words, whatever the number of rules: each
//! word is looked up in a table of transliterated alias words and in
//! buckets of fuzzy alias words by length; only the aliases found there are
//! checked, word by word. Also answers which alias a matched text is
//! (for the alert), remembering the answers. Pure (the memory changes no
//! answer); cannot fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;

use super::normalize::{normalize, Normalized};
use super::ruleset::{EntityDef, TokenSpan};
use super::translit::latin_forms;
use super::words::FastMap;

/// Alias words shorter than this (in letters) are never matched fuzzily.
pub(super) const FUZZY_MIN_LETTERS: usize = 6;
/// The largest `fuzzy` an entity may ask for.
pub(super) const FUZZY_MAX: u8 = 2;

#[derive(Debug)]
struct Alias {
    entity: usize,
    /// The alias as written in config.toml (shared with the alerts that cite it).
    text: Arc<str>,
    /// Folded words.
    words: Box<[Box<str>]>,
    /// The last word is a prefix (`Минск*`).
    prefix: bool,
    fuzzy: u8,
    /// Latin letters only and the entity allows transliteration.
    translit: bool,
}

/// Where an alias word sits: (alias, word position).
/// `u32`s: a matcher of 100,000 entities holds a few hundred thousand.
type Slot = (u32, u32);

#[derive(Debug, Default)]
pub(super) struct AliasMatcher {
    aliases: Vec<Alias>,
    /// Entity `e`'s aliases are `aliases[alias_starts[e]..alias_starts[e +
    /// 1]]`, in config order (one vector, not one per entity).
    alias_starts: Vec<u32>,
    /// Words of transliterable aliases (not prefix words).
    /// Most words are in one alias, so their slots are kept inline.
    latin_words: FastMap<Box<str>, SmallVec<[Slot; 2]>>,
    /// Prefix last words of transliterable aliases.
    latin_prefixes: Vec<(Box<str>, Slot)>,
    /// Fuzzy alias words by their length in letters.
    fuzzy_by_length: FastMap<usize, Vec<Slot>>,
    /// What [`AliasMatcher::alias_of`] answered so far.
    spelled: Mutex<Spelled>,
}

/// Which alias each (entity, spelling) pair spells, as worked out so far:
/// alerts cite the same few spellings of a name article after article, and
/// working one out folds the text again. Bounded: emptied when full.
#[derive(Debug, Default)]
struct Spelled {
    /// Entity -> spelling as in the article -> index in `aliases`.
    by_entity: FastMap<usize, FastMap<Box<str>, Option<u32>>>,
    len: usize,
}

/// The most answers [`Spelled`] keeps (a few MB at most).
const SPELLED_MAX: usize = 1 << 16;

/// The indices of the words of `normalized` with a byte that is not ASCII,
/// in order.
fn non_ascii_words(normalized: &Normalized) -> Vec<usize> {
    let text = normalized.text.as_bytes();
    let mut words = Vec::new();
    let mut at = 0;
    while let Some(offset) = first_non_ascii(&text[at..]) {
        // Only folded words hold letters that are not ASCII.
        let index = normalized.token_at(at + offset);
        words.push(index);
        at = normalized.word_end(index);
    }
    words
}

/// Where the first byte of `bytes` that is not ASCII is, looking at eight
/// bytes at a time: an article with one Cyrillic name is otherwise searched
/// byte by byte from that name to its end (5% of a scan at 10,000 rules).
fn first_non_ascii(bytes: &[u8]) -> Option<usize> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let high = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) & HIGH;
        if high != 0 {
            // Little-endian: the lowest high bit is the first such byte.
            return Some(offset + high.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|byte| !byte.is_ascii())
        .map(|index| offset + index)
}

impl AliasMatcher {
    pub(super) fn new(entities: &[EntityDef]) -> AliasMatcher {
        let mut matcher = AliasMatcher {
            alias_starts: Vec::with_capacity(entities.len() + 1),
            ..AliasMatcher::default()
        };
        for (entity, def) in entities.iter().enumerate() {
            matcher.alias_starts.push(matcher.aliases.len() as u32);
            for text in &def.aliases {
                let trimmed = text.trim_end();
                let (body, prefix) = match trimmed.strip_suffix('*') {
                    Some(body) => (body, true),
                    None => (trimmed, false),
                };
                let normalized = normalize(body);
                let folded = normalized.text.trim();
                if folded.is_empty() {
                    continue;
                }
                let words: Box<[Box<str>]> = folded.split(' ').map(Box::from).collect();
                let translit = def.translit
                    && words
                        .iter()
                        .all(|word| word.chars().all(|c| c.is_ascii_alphanumeric()));
                let id = matcher.aliases.len();
                for (position, word) in words.iter().enumerate() {
                    let slot = (id as u32, position as u32);
                    let is_prefix_word = prefix && position + 1 == words.len();
                    if translit {
                        if is_prefix_word {
                            matcher.latin_prefixes.push((word.clone(), slot));
                        } else {
                            matcher
                                .latin_words
                                .entry(word.clone())
                                .or_default()
                                .push(slot);
                        }
                    }
                    let letters = word.chars().count();
                    if def.fuzzy > 0 && !is_prefix_word && letters >= FUZZY_MIN_LETTERS {
                        matcher
                            .fuzzy_by_length
                            .entry(letters)
                            .or_default()
                            .push(slot);
                    }
                }
                matcher.aliases.push(Alias {
                    entity,
                    text: text.as_str().into(),
                    words,
                    prefix,
                    fuzzy: def.fuzzy.min(FUZZY_MAX),
                    translit,
                });
            }
        }
        matcher.alias_starts.push(matcher.aliases.len() as u32);
        matcher
    }

    /// The indices of `entity`'s aliases.
    fn aliases_of(&self, entity: usize) -> Option<std::ops::Range<usize>> {
        let start = *self.alias_starts.get(entity)? as usize;
        let end = *self.alias_starts.get(entity + 1)? as usize;
        Some(start..end)
    }

    fn is_idle(&self) -> bool {
        self.latin_words.is_empty()
            && self.latin_prefixes.is_empty()
            && self.fuzzy_by_length.is_empty()
    }

    /// Alias mentions that are not exact: (entity, words). Exact ones are
    /// the automaton's.
    pub(super) fn find(&self, normalized: &Normalized) -> Vec<(usize, TokenSpan)> {
        // Only fuzziness finds more than the automaton in ASCII words (see
        // below), and most articles are all ASCII: one quick check of the
        // whole text instead of one per word.
        if self.is_idle() || (self.fuzzy_by_length.is_empty() && normalized.text.is_ascii()) {
            return Vec::new();
        }
        let word_count = normalized.tokens.len();
        // Without fuzziness only the words with a non-ASCII letter can be
        // transliterated into more: find those in the text, not word by word.
        let candidates: Vec<usize> = if self.fuzzy_by_length.is_empty() {
            non_ascii_words(normalized)
        } else {
            (0..word_count).collect()
        };
        let mut latin_cache: HashMap<&str, Vec<String>> = HashMap::new();
        let mut found: Vec<(usize, TokenSpan)> = Vec::new();
        for index in candidates {
            let word = normalized.word(index);
            let has_cyrillic = !word.is_ascii();
            // An ASCII word is its own Latin form, and exact matches are the
            // automaton's: only fuzziness can find anything more in it, and
            // only in a long enough word.
            if !has_cyrillic && (self.fuzzy_by_length.is_empty() || word.len() < FUZZY_MIN_LETTERS)
            {
                continue;
            }
            let latin = if has_cyrillic {
                latin_cache
                    .entry(word)
                    .or_insert_with(|| latin_forms(word))
                    .clone()
            } else {
                Vec::new()
            };
            let mut slots: Vec<Slot> = Vec::new();
            for form in &latin {
                if let Some(hits) = self.latin_words.get(form.as_str()) {
                    slots.extend(hits);
                }
                for (prefix, slot) in &self.latin_prefixes {
                    if form.starts_with(&**prefix) {
                        slots.push(*slot);
                    }
                }
            }
            for form in std::iter::once(word).chain(latin.iter().map(String::as_str)) {
                let length = form.chars().count();
                if length < FUZZY_MIN_LETTERS {
                    continue;
                }
                let low = length.saturating_sub(usize::from(FUZZY_MAX));
                for bucket in low..=length + usize::from(FUZZY_MAX) {
                    if let Some(hits) = self.fuzzy_by_length.get(&bucket) {
                        slots.extend(hits);
                    }
                }
            }
            slots.sort_unstable();
            slots.dedup();
            for (alias, position) in slots {
                let (alias, position) = (alias as usize, position as usize);
                let Some(start) = index.checked_sub(position) else {
                    continue;
                };
                let alias_def = &self.aliases[alias];
                let end = start + alias_def.words.len();
                if end > word_count {
                    continue;
                }
                let mut inexact = false;
                let all = (start..end).all(|at| {
                    match self.word_distance(alias, at - start, normalized.word(at)) {
                        Some(Closeness::Exact) => true,
                        Some(Closeness::Near) => {
                            inexact = true;
                            true
                        }
                        None => false,
                    }
                });
                if all && inexact {
                    let span = TokenSpan {
                        first: start as u32,
                        last: (end - 1) as u32,
                    };
                    found.push((alias_def.entity, span));
                }
            }
        }
        found.sort_unstable_by_key(|&(entity, span)| (span, entity));
        found.dedup();
        found
    }

    /// How word `position` of `alias` compares with a folded text word.
    fn word_distance(&self, alias: usize, position: usize, word: &str) -> Option<Closeness> {
        let alias = &self.aliases[alias];
        let target: &str = &alias.words[position];
        if alias.spells(position, word) {
            return Some(Closeness::Exact);
        }
        let latin = if alias.translit || alias.fuzzy > 0 {
            latin_forms(word)
        } else {
            Vec::new()
        };
        if alias.translit && latin.iter().any(|form| alias.spells(position, form)) {
            return Some(Closeness::Near);
        }
        if alias.fuzzy == 0
            || alias.is_prefix_word(position)
            || target.chars().count() < FUZZY_MIN_LETTERS
        {
            return None;
        }
        let close = |form: &str| {
            form.chars().count() >= FUZZY_MIN_LETTERS
                && strsim::osa_distance(form, target) <= usize::from(alias.fuzzy)
        };
        let latin_close = alias.translit && latin.iter().any(|form| close(form));
        (close(word) || latin_close).then_some(Closeness::Near)
    }

    /// The alias of `entity` that `surface` (text from the article) is a
    /// spelling of: exact first, then transliterated or fuzzy.
    pub(super) fn alias_of(&self, entity: usize, surface: &str) -> Option<&Arc<str>> {
        // A poisoned lock only means a panic elsewhere mid-update of a
        // cache: work the answer out again.
        let known = self.spelled.lock().ok().and_then(|spelled| {
            spelled
                .by_entity
                .get(&entity)
                .and_then(|spellings| spellings.get(surface).copied())
        });
        let alias = match known {
            Some(alias) => alias.map(|alias| alias as usize),
            None => {
                let alias = self.work_out_alias(entity, surface);
                if let Ok(mut spelled) = self.spelled.lock() {
                    spelled.remember(entity, surface, alias.map(|alias| alias as u32));
                }
                alias
            }
        };
        alias.map(|alias| &self.aliases[alias].text)
    }

    /// [`AliasMatcher::alias_of`] without the memory: the alias's index.
    fn work_out_alias(&self, entity: usize, surface: &str) -> Option<usize> {
        let folded = normalize(surface);
        let aliases = self.aliases_of(entity)?;
        let fits = |alias: usize| self.aliases[alias].words.len() == folded.tokens.len();
        // Exact spellings first, word by word: the common case, with no
        // transliteration and no allocation beyond the folding.
        let exact = aliases.clone().find(|&alias| {
            fits(alias)
                && folded
                    .words()
                    .enumerate()
                    .all(|(position, word)| self.aliases[alias].spells(position, word))
        });
        let near = || {
            let words: Vec<&str> = folded.words().collect();
            aliases.clone().find(|&alias| {
                fits(alias)
                    && words
                        .iter()
                        .enumerate()
                        .all(|(position, word)| self.word_distance(alias, position, word).is_some())
            })
        };
        exact.or_else(near)
    }
}

impl Spelled {
    fn remember(&mut self, entity: usize, surface: &str, alias: Option<u32>) {
        if self.len >= SPELLED_MAX {
            *self = Spelled::default();
        }
        let spellings = self.by_entity.entry(entity).or_default();
        if spellings.insert(surface.into(), alias).is_none() {
            self.len += 1;
        }
    }
}

impl Alias {
    /// Whether folded `word` is word `position` of the alias as written (a
    /// prefix word: begins with it).
    fn spells(&self, position: usize, word: &str) -> bool {
        let target: &str = &self.words[position];
        word == target || (self.is_prefix_word(position) && word.starts_with(target))
    }

    /// Whether word `position` is the alias's prefix word (`Минск*`).
    fn is_prefix_word(&self, position: usize) -> bool {
        self.prefix && position + 1 == self.words.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closeness {
    Exact,
    Near,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_that_is_not_ascii_is_found_at_every_offset() {
        for len in 0..40 {
            let ascii = vec![b'a'; len];
            assert_eq!(first_non_ascii(&ascii), None, "{len}");
            for at in 0..len {
                let mut bytes = ascii.clone();
                bytes[at] = 0xd0;
                // A second one after it changes nothing.
                if at + 3 < len {
                    bytes[at + 3] = 0xff;
                }
                assert_eq!(first_non_ascii(&bytes), Some(at), "{len} {at}");
            }
        }
    }

    fn matcher() -> AliasMatcher {
        let entity = |id: &str, aliases: &[&str]| EntityDef {
            id: id.to_string(),
            aliases: aliases.iter().map(|alias| alias.to_string()).collect(),
            ..EntityDef::default()
        };
        AliasMatcher::new(&[
            entity("minsk", &["Minsk", "Минск*"]),
            entity("tobruk", &["Tobruk"]),
        ])
    }

    fn remembered(matcher: &AliasMatcher) -> usize {
        matcher.spelled.lock().expect("not poisoned").len
    }

    #[test]
    fn each_spelling_is_worked_out_once_and_the_memory_stays_bounded() {
        let matcher = matcher();
        let alias_of = |entity: usize, surface: &str| {
            matcher
                .alias_of(entity, surface)
                .map(|alias| alias.to_string())
        };
        assert_eq!(alias_of(0, "Минске").as_deref(), Some("Минск*"));
        assert_eq!(alias_of(0, "MINSK").as_deref(), Some("Minsk"));
        assert_eq!(alias_of(1, "Minsk"), None);
        assert_eq!(remembered(&matcher), 3);
        assert_eq!(alias_of(0, "Минске").as_deref(), Some("Минск*"));
        assert_eq!(alias_of(1, "Minsk"), None);
        assert_eq!(remembered(&matcher), 3, "asked again: answered from memory");

        for n in 0..SPELLED_MAX {
            alias_of(1, &format!("Tobruk{n}"));
        }
        assert!(remembered(&matcher) <= SPELLED_MAX);
        assert_eq!(alias_of(0, "Минске").as_deref(), Some("Минск*"));
        assert_eq!(alias_of(1, "TOBRUK").as_deref(), Some("Tobruk"));
    }
}
