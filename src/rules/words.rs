//! Whole-word patterns matched word by word: every folded word that occurs
//! in a pattern gets an id, and the patterns form a trie over word ids. A
//! scan looks each word of the article up once and walks the trie from every
//! word that can start a pattern, so its cost per word does not grow with the
//! number of patterns (a byte automaton over 100,000 phrases is a 100 MB
//! structure where every byte is a cache miss).
//!
//! It finds exactly what a byte automaton over `" w1 w2 "` patterns on the
//! canonical text finds: a pattern of n words matches at word i when words
//! i..i+n are its words. Prefix patterns (`visit*`) are not handled here.
//!
//! Pure: no I/O, cannot fail once built.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's hasher): a multiply-rotate per 8 bytes, far cheaper than
/// SipHash on short words. The keys are rule terms, not attacker-chosen.
#[derive(Default, Clone, Copy)]
pub struct WordHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl WordHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    /// The well-mixed high bits of the last product, rotated down: hash
    /// tables index by the low bits, which a multiplication fills only from
    /// the low bytes of its input ("R000013" and "R000014" would share them).
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// A hash map with [`WordHasher`], for small integer and word keys.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// No node, no pattern.
const NONE: u32 = u32::MAX;

/// Set in [`WordTrie::ends`] when several patterns end at a node: the rest
/// of the value indexes [`WordTrie::shared_ends`].
const SHARED: u32 = 1 << 31;

/// Folded words up to this many bytes are keys of [`WordTrie::short`],
/// packed into a `u128` with their length: no pointer to follow and no
/// `memcmp` on a hit.
const SHORT: usize = 15;

/// What the trie knows about a word of its vocabulary.
#[derive(Debug, Clone, Copy)]
struct WordEntry {
    id: u32,
    /// The node reached from the root by this word, or [`NONE`] when no
    /// pattern starts with it: the first step of every match, kept next to
    /// the word so that it costs no second lookup.
    root_child: u32,
}

/// The trie of whole-word patterns.
#[derive(Debug)]
pub struct WordTrie {
    /// Folded words of up to [`SHORT`] bytes, packed by [`short_key`].
    short: FastMap<u128, WordEntry>,
    /// Longer folded words.
    long: FastMap<Box<[u8]>, WordEntry>,
    /// (node, word id) -> child node, below the root's children. Node 0 is
    /// the root.
    children: FastMap<(u32, u32), u32>,
    /// The pattern that ends at each node, [`NONE`], or [`SHARED`] | an
    /// index into `shared_ends`.
    ends: Vec<u32>,
    shared_ends: Vec<Vec<u32>>,
    /// A one-hash Bloom filter of the vocabulary over each word's
    /// [`shape`] (its first two bytes, last two bytes and length): most
    /// article words fail this test and are never hashed in full. Sized at
    /// 8 bits or more per word, from 4,096 bits up to [`FILTER_MAX_BITS`].
    filter: Vec<u64>,
    /// `64 - log2(filter bits)`: the shift that turns a shape's product
    /// into a bit index.
    filter_shift: u32,
    /// Bytes of the long words, for the memory estimate.
    word_bytes: usize,
}

impl Default for WordTrie {
    fn default() -> Self {
        WordTrie::new()
    }
}

impl WordTrie {
    pub fn new() -> Self {
        WordTrie::with_capacity(0)
    }

    /// An empty trie with room for about `patterns` patterns of a word or
    /// two (most words of a vocabulary are short).
    pub fn with_capacity(patterns: usize) -> Self {
        let mut ends = Vec::with_capacity(patterns + 1);
        ends.push(NONE);
        WordTrie {
            short: FastMap::with_capacity_and_hasher(patterns, Default::default()),
            long: FastMap::default(),
            children: FastMap::default(),
            ends,
            shared_ends: Vec::new(),
            filter: vec![0; FILTER_MIN_BITS / 64],
            filter_shift: 64 - FILTER_MIN_BITS.trailing_zeros(),
            word_bytes: 0,
        }
    }

    /// Adds pattern `id`, given as its folded words (`"tor m2"`).
    pub fn insert(&mut self, words: &str, id: u32) {
        let mut node = 0u32;
        for word in words.split(' ') {
            let new_node = self.ends.len() as u32;
            let entry = self.entry_mut(word);
            let child = if node == 0 {
                if entry.root_child == NONE {
                    entry.root_child = new_node;
                }
                entry.root_child
            } else {
                let word_id = entry.id;
                *self.children.entry((node, word_id)).or_insert(new_node)
            };
            if child == new_node {
                self.ends.push(NONE);
            }
            node = child;
        }
        let end = &mut self.ends[node as usize];
        if *end == NONE {
            *end = id;
        } else if *end & SHARED != 0 {
            self.shared_ends[(*end & !SHARED) as usize].push(id);
        } else {
            self.shared_ends.push(vec![*end, id]);
            *end = SHARED | (self.shared_ends.len() - 1) as u32;
        }
    }

    /// The entry of `word`, added (with the next id) if it is new.
    fn entry_mut(&mut self, word: &str) -> &mut WordEntry {
        let new = WordEntry {
            id: (self.short.len() + self.long.len()) as u32,
            root_child: NONE,
        };
        let word = word.as_bytes();
        let key = short_key(word);
        let known = match key {
            Some(key) => self.short.contains_key(&key),
            None => self.long.contains_key(word),
        };
        if !known {
            self.add_to_filter(word);
        }
        match key {
            Some(key) => self.short.entry(key).or_insert(new),
            None => match self.long.entry(word.into()) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => {
                    self.word_bytes += word.len();
                    slot.insert(new)
                }
            },
        }
    }

    /// Marks `word`, a word about to be added, in the filter, growing it
    /// (and marking every word again) when the vocabulary outgrows 8 bits
    /// a word.
    fn add_to_filter(&mut self, word: &[u8]) {
        let words = self.short.len() + self.long.len() + 1;
        let bits = self.filter.len() * 64;
        if words * 8 > bits && bits < FILTER_MAX_BITS {
            let bits = (words * 16).next_power_of_two().min(FILTER_MAX_BITS);
            self.filter = vec![0; bits / 64];
            self.filter_shift = 64 - bits.trailing_zeros();
            let short = self.short.keys().map(|&key| {
                let bytes = key.to_le_bytes();
                shape(&bytes[..(key >> 120) as usize])
            });
            let long = self.long.keys().map(|word| shape(word));
            let shapes: Vec<u64> = short.chain(long).collect();
            for shape in shapes {
                self.set_filter_bit(shape);
            }
        }
        self.set_filter_bit(shape(word));
    }

    fn set_filter_bit(&mut self, shape: u64) {
        let bit = self.filter_bit(shape);
        self.filter[bit / 64] |= 1 << (bit % 64);
    }

    /// Whether the filter has the bit of `shape`.
    #[inline]
    fn filter_has(&self, shape: u64) -> bool {
        let bit = self.filter_bit(shape);
        self.filter[bit / 64] & (1 << (bit % 64)) != 0
    }

    #[inline]
    fn filter_bit(&self, shape: u64) -> usize {
        (shape.wrapping_mul(FILTER_MULTIPLIER) >> self.filter_shift) as usize
    }

    /// The entry of a word of an article, if the vocabulary has it.
    #[inline]
    fn entry(&self, word: &[u8]) -> Option<&WordEntry> {
        if !self.filter_has(shape(word)) {
            return None;
        }
        match short_key(word) {
            Some(key) => self.short.get(&key),
            None => self.long.get(word),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.short.is_empty() && self.long.is_empty()
    }

    /// Approximate heap bytes.
    pub fn memory_usage(&self) -> usize {
        self.short.capacity() * (std::mem::size_of::<(u128, WordEntry)>() + 1)
            + self.long.capacity() * (std::mem::size_of::<(Box<[u8]>, WordEntry)>() + 1)
            + self.word_bytes
            + self.children.capacity() * (std::mem::size_of::<((u32, u32), u32)>() + 1)
            + self.ends.capacity() * 4
            + self
                .shared_ends
                .iter()
                .map(|e| e.capacity() * 4 + std::mem::size_of::<Vec<u32>>())
                .sum::<usize>()
    }

    /// Calls `found(pattern, first word, last word)` for every occurrence of
    /// every pattern in `words` (the article's folded words, in order), by
    /// last word, then by first word.
    ///
    /// One pass: each word is looked up once, and the partial matches still
    /// open (rarely more than one or two) are carried to the next word.
    pub fn find<'w>(
        &self,
        words: impl Iterator<Item = &'w [u8]>,
        mut found: impl FnMut(u32, usize, usize),
    ) {
        // (trie node, first word) of every partial match ending at the
        // previous word.
        let mut open: Vec<(u32, usize)> = Vec::new();
        let mut next: Vec<(u32, usize)> = Vec::new();
        for (index, word) in words.enumerate() {
            let Some(entry) = self.entry(word) else {
                open.clear();
                continue;
            };
            next.clear();
            for &(node, first) in &open {
                if let Some(&child) = self.children.get(&(node, entry.id)) {
                    self.report(child, first, index, &mut found);
                    next.push((child, first));
                }
            }
            if entry.root_child != NONE {
                self.report(entry.root_child, index, index, &mut found);
                next.push((entry.root_child, index));
            }
            std::mem::swap(&mut open, &mut next);
        }
    }

    /// Reports the patterns that end at `node`.
    #[inline]
    fn report(
        &self,
        node: u32,
        first: usize,
        last: usize,
        found: &mut impl FnMut(u32, usize, usize),
    ) {
        match self.ends[node as usize] {
            NONE => {}
            end if end & SHARED != 0 => {
                for &pattern in &self.shared_ends[(end & !SHARED) as usize] {
                    found(pattern, first, last);
                }
            }
            pattern => found(pattern, first, last),
        }
    }
}

/// `word` packed with its length into a `u128`, if it is short enough.
///
/// The key is the word's bytes, little-endian and zero-padded, with the
/// length in the top byte. It is assembled in registers from overlapping
/// loads: copying the word into a zeroed array and reading that back as
/// one integer stalled on every word (a store cannot be forwarded to a
/// wider load), 12% of `find`'s samples at 100,000 rules.
#[inline]
fn short_key(bytes: &[u8]) -> Option<u128> {
    let len = bytes.len();
    let packed = match len {
        0..=7 => u128::from(little_endian(bytes)),
        8..=SHORT => {
            let low = u64::from_le_bytes(bytes[..8].try_into().ok()?);
            let high = u64::from_le_bytes(bytes[len - 8..].try_into().ok()?);
            let high = high.checked_shr(8 * (16 - len) as u32).unwrap_or(0);
            u128::from(low) | u128::from(high) << 64
        }
        _ => return None,
    };
    Some(packed | (len as u128) << 120)
}

/// Up to 7 `bytes` as a little-endian integer, zero-padded, assembled in
/// registers from overlapping loads (see [`short_key`]); 0 for more.
#[inline]
pub(crate) fn little_endian(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    match len {
        // The first, middle and last bytes are all of them.
        1..=3 => {
            u64::from(bytes[0])
                | u64::from(bytes[len / 2]) << (8 * (len / 2))
                | u64::from(bytes[len - 1]) << (8 * (len - 1))
        }
        // Bytes 0..4, then the last four shifted down to start at byte 4.
        4..=7 => {
            let low = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let high = u32::from_le_bytes([
                bytes[len - 4],
                bytes[len - 3],
                bytes[len - 2],
                bytes[len - 1],
            ]);
            u64::from(low) | (u64::from(high) >> (8 * (8 - len))) << 32
        }
        _ => 0,
    }
}

/// The smallest filter, in bits.
const FILTER_MIN_BITS: usize = 4096;

/// The largest filter, in bits: 16 KB, half a first-level data cache. At
/// 100,000 rules (70,000 words) a filter of 8 bits a word missed that cache
/// and was slower than this fuller one.
const FILTER_MAX_BITS: usize = 1 << 17;

/// Spreads a [`shape`] over the filter's bits (the top bits of the product).
const FILTER_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// What the filter knows of a word: its first two bytes, its last two and
/// its length, in one integer (a word of one byte counts it twice).
#[inline]
fn shape(word: &[u8]) -> u64 {
    let len = word.len();
    if len == 0 {
        return 0;
    }
    let first = u64::from(word[0]) | u64::from(word[len.min(2) - 1]) << 8;
    let last = u64::from(word[len.saturating_sub(2)]) | u64::from(word[len - 1]) << 8;
    first | last << 16 | (len as u64) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_key_is_the_words_bytes_padded_with_its_length_on_top() {
        let text = "abcdefghijklmnopq";
        for len in 0..=text.len() {
            let word = &text[..len];
            let expected = (len <= SHORT).then(|| {
                let mut key = [0u8; 16];
                key[..len].copy_from_slice(word.as_bytes());
                key[15] = len as u8;
                u128::from_le_bytes(key)
            });
            assert_eq!(short_key(word.as_bytes()), expected, "{word:?}");
        }
        // Distinct words, distinct keys, at every length.
        assert_ne!(short_key(b"ab"), short_key(b"ba"));
        assert_ne!(short_key(b"abcdefghi"), short_key(b"abcdefghj"));
        assert_ne!(short_key(b"a\0"), short_key(b"a"));
    }

    /// (pattern, first word, last word) of every occurrence in `text` of
    /// `patterns` (pattern `i` is `patterns[i]`), sorted.
    fn occurrences(patterns: &[&str], text: &str) -> Vec<(u32, usize, usize)> {
        let mut trie = WordTrie::new();
        for (id, words) in patterns.iter().enumerate() {
            trie.insert(words, id as u32);
        }
        let mut hits = Vec::new();
        trie.find(text.split_whitespace().map(str::as_bytes), |p, a, b| {
            hits.push((p, a, b))
        });
        hits.sort();
        hits
    }

    #[test]
    fn finds_every_overlapping_whole_word_occurrence() {
        let patterns = ["libyan", "libyan national army", "national", "army chief"];
        let text = "the libyan national army chief said libyan nationals";
        assert_eq!(
            occurrences(&patterns, text),
            [(0, 1, 1), (0, 6, 6), (1, 1, 3), (2, 2, 2), (3, 3, 4)]
        );
    }

    #[test]
    fn ids_that_differ_in_their_last_bytes_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        // A table of 1,024 buckets indexes by the low 10 bits of the hash.
        let hasher = BuildHasherDefault::<WordHasher>::default();
        let buckets: std::collections::HashSet<u64> = (0..1000)
            .map(|n| hasher.hash_one(format!("R{n:06}").as_str()) & 1023)
            .collect();
        // Random hashes would fill ~632; the raw product fills at most 32.
        assert!(buckets.len() > 500, "{} buckets used", buckets.len());
    }

    #[test]
    fn every_word_stays_findable_as_the_filter_grows() {
        // 3,000 words outgrow the smallest filter (512 words) and the next
        // (2,048); each growth marks every earlier word again.
        let words: Vec<String> = (0..3000).map(|n| format!("w{n}x")).collect();
        let mut trie = WordTrie::new();
        for (id, word) in words.iter().enumerate() {
            trie.insert(word, id as u32);
        }
        assert!(trie.filter.len() * 64 >= 3000 * 8);
        let mut found = Vec::new();
        trie.find(words.iter().map(|w| w.as_bytes()), |p, a, _| {
            found.push((p as usize, a))
        });
        assert_eq!(found, (0..3000).map(|n| (n, n)).collect::<Vec<_>>());
        // Words of the shape (first two bytes, last two, length) of "w100x"
        // and "w1000x" pass the filter, are not in the vocabulary, and are
        // refused.
        let strangers = [b"w1a0x".as_slice(), b"w1zz0x"];
        for word in strangers {
            assert!(trie.filter_has(shape(word)));
        }
        let mut found = 0;
        trie.find(strangers.into_iter(), |_, _, _| found += 1);
        assert_eq!(found, 0);
    }

    #[test]
    fn long_words_and_patterns_sharing_their_words_are_found() {
        // 15 bytes is the longest packed key; 16 and more are kept apart.
        let patterns = [
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "counterintelligence service",
            "service",
            "service",
        ];
        let text = "abcdefghijklmno abcdefghijklmnop abcdefghijklmnopq \
                    counterintelligence service abcdefghijklmn";
        assert_eq!(
            occurrences(&patterns, text),
            [(0, 0, 0), (1, 1, 1), (2, 3, 4), (3, 4, 4), (4, 4, 4)]
        );
    }
}
