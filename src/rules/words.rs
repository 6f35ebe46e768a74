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

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A hash map with [`WordHasher`], for small integer and word keys.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// The trie of whole-word patterns.
#[derive(Debug)]
pub struct WordTrie {
    /// Folded word -> word id.
    vocabulary: FastMap<Box<str>, u32>,
    /// (node, word id) -> child node. Node 0 is the root.
    children: FastMap<(u32, u32), u32>,
    /// The patterns that end at each node.
    ends: Vec<Vec<u32>>,
    /// Bit `min(length, 63)` of `shapes[first byte]` is set when some word
    /// of the vocabulary has that first byte and length: most article words
    /// fail this test and are never hashed.
    shapes: Vec<u64>,
    /// Bytes of the words, for the memory estimate.
    word_bytes: usize,
}

impl Default for WordTrie {
    fn default() -> Self {
        WordTrie::new()
    }
}

impl WordTrie {
    pub fn new() -> Self {
        WordTrie {
            vocabulary: FastMap::default(),
            children: FastMap::default(),
            ends: vec![Vec::new()],
            shapes: vec![0; 256],
            word_bytes: 0,
        }
    }

    /// Adds pattern `id`, given as its folded words (`"tor m2"`).
    pub fn insert(&mut self, words: &str, id: u32) {
        let mut node = 0u32;
        for word in words.split(' ') {
            let next_id = self.vocabulary.len() as u32;
            let word_id = match self.vocabulary.get(word) {
                Some(&word_id) => word_id,
                None => {
                    if let Some(&first) = word.as_bytes().first() {
                        self.shapes[usize::from(first)] |= shape_bit(word);
                    }
                    self.word_bytes += word.len();
                    self.vocabulary.insert(word.into(), next_id);
                    next_id
                }
            };
            let next_node = self.ends.len() as u32;
            node = *self.children.entry((node, word_id)).or_insert(next_node);
            if node == next_node {
                self.ends.push(Vec::new());
            }
        }
        self.ends[node as usize].push(id);
    }

    pub fn is_empty(&self) -> bool {
        self.vocabulary.is_empty()
    }

    /// Approximate heap bytes.
    pub fn memory_usage(&self) -> usize {
        self.vocabulary.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
            + self.word_bytes
            + self.children.capacity() * (std::mem::size_of::<((u32, u32), u32)>() + 1)
            + self.ends.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.ends.iter().map(|e| e.capacity() * 4).sum::<usize>()
    }

    /// Calls `found(pattern, first word, last word)` for every occurrence of
    /// every pattern in `words` (the article's folded words, in order), by
    /// last word, then by first word.
    ///
    /// One pass: each word is looked up once, and the partial matches still
    /// open (rarely more than one or two) are carried to the next word.
    pub fn find<'w>(
        &self,
        words: impl Iterator<Item = &'w str>,
        mut found: impl FnMut(u32, usize, usize),
    ) {
        // (trie node, first word) of every partial match ending at the
        // previous word.
        let mut open: Vec<(u32, usize)> = Vec::new();
        let mut next: Vec<(u32, usize)> = Vec::new();
        for (index, word) in words.enumerate() {
            let known_shape = word
                .as_bytes()
                .first()
                .is_some_and(|&first| self.shapes[usize::from(first)] & shape_bit(word) != 0);
            let Some(&word_id) = known_shape.then(|| self.vocabulary.get(word)).flatten() else {
                open.clear();
                continue;
            };
            next.clear();
            for (node, first) in open.iter().copied().chain([(0, index)]) {
                if let Some(&child) = self.children.get(&(node, word_id)) {
                    for &pattern in &self.ends[child as usize] {
                        found(pattern, first, index);
                    }
                    next.push((child, first));
                }
            }
            std::mem::swap(&mut open, &mut next);
        }
    }
}

/// A word's bit in [`WordTrie::shapes`].
fn shape_bit(word: &str) -> u64 {
    1 << word.len().min(63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_overlapping_whole_word_occurrence() {
        let mut trie = WordTrie::new();
        trie.insert("libyan", 0);
        trie.insert("libyan national army", 1);
        trie.insert("national", 2);
        trie.insert("army chief", 3);
        let text = "the libyan national army chief said libyan nationals";
        let mut hits = Vec::new();
        trie.find(text.split(' '), |p, a, b| hits.push((p, a, b)));
        hits.sort();
        assert_eq!(
            hits,
            [(0, 1, 1), (0, 6, 6), (1, 1, 3), (2, 2, 2), (3, 3, 4)]
        );
    }
}
