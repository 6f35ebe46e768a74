//! Near-duplicate detection: a MinHash signature of an article's word
//! 4-shingles (over the canonical words, boilerplate already blanked), so
//! that the same story run by a second outlet, lightly edited, is
//! recognised, while a story with genuinely new paragraphs is not.
//!
//! Two signatures estimate the Jaccard similarity of the shingle sets as the
//! share of equal slots. Pure: no I/O, no clock.

/// Slots in a signature (each one u64).
pub const SLOTS: usize = 64;
/// Words per shingle.
const SHINGLE: usize = 4;
/// Estimated Jaccard similarity from which two articles are the same story.
pub const DUPLICATE_SIMILARITY: f64 = 0.6;
/// Articles with fewer words than this get no signature (too short to judge).
pub const MIN_WORDS: usize = 40;

/// A MinHash signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub [u64; SLOTS]);

impl Signature {
    /// The signature of canonical `words`, or None for a very short text.
    pub fn of_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Option<Signature> {
        let words: Vec<&str> = words.into_iter().collect();
        if words.len() < MIN_WORDS {
            return None;
        }
        let shingles: Vec<u64> = words.windows(SHINGLE).map(hash_shingle).collect();
        Some(Signature(min_hashes(&shingles)))
    }

    /// Estimated Jaccard similarity, 0.0 to 1.0.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let equal = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count();
        equal as f64 / SLOTS as f64
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|slot| slot.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Signature> {
        if bytes.len() != SLOTS * 8 {
            return None;
        }
        let mut slots = [0u64; SLOTS];
        for (slot, chunk) in slots.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut buffer = [0u8; 8];
            buffer.copy_from_slice(chunk);
            *slot = u64::from_le_bytes(buffer);
        }
        Some(Signature(slots))
    }
}

/// FNV-1a over the words and a separator: stable across runs and Rust
/// versions, since signatures are stored.
/// Bands for locality-sensitive lookup: 16 bands of 4 slots. Two articles
/// are compared only when some band is identical: at a similarity of 0.6
/// that happens with probability 1 - (1 - 0.6^4)^16 ≈ 0.89, at 0.8 ≈ 0.9998,
/// at 0.2 only ≈ 0.025, so a lookup costs a few hash probes, not a pass
/// over every recent article.
const BANDS: usize = 16;
const ROWS: usize = SLOTS / BANDS;

impl Signature {
    fn band_keys(&self) -> [u64; BANDS] {
        let mut keys = [0u64; BANDS];
        for (band, key) in keys.iter_mut().enumerate() {
            let mut hash = mix(band as u64);
            for slot in &self.0[band * ROWS..(band + 1) * ROWS] {
                hash = mix(hash ^ slot);
            }
            *key = hash;
        }
        keys
    }
}

/// Recent signatures, indexed by band, for near-duplicate lookups: at most
/// `capacity` of them, oldest first, the oldest dropped when a new one
/// comes. Compact, since the daemon keeps it for a week of articles: per
/// band, a map from the band's key to the newest entry with it, and per
/// entry and band a link to the previous entry with the same key (instead
/// of a `Vec` of entries per key, which cost ~25 MB per 20,000 articles).
#[derive(Debug)]
pub struct DuplicateIndex {
    entries: std::collections::VecDeque<Entry>,
    /// The number of entries ever dropped: entry `n` is `entries[n - dropped]`.
    /// Entry numbers are u32, wrapping: far more than the entries kept.
    dropped: u32,
    capacity: usize,
    /// Band key -> the newest entry with that key.
    newest: std::collections::HashMap<u64, u32>,
}

#[derive(Debug)]
struct Entry {
    id: Box<str>,
    at_ms: i64,
    signature: Signature,
    /// Per band, the number of the next older entry with the same key
    /// ([`NONE`] when there is none): 4 bytes, not 16 for an `Option<usize>`.
    older: [u32; BANDS],
}

/// No older entry.
const NONE: u32 = u32::MAX;

impl Default for DuplicateIndex {
    fn default() -> Self {
        DuplicateIndex::new(usize::MAX)
    }
}

impl DuplicateIndex {
    pub fn new(capacity: usize) -> DuplicateIndex {
        DuplicateIndex {
            entries: std::collections::VecDeque::new(),
            dropped: 0,
            capacity: capacity.clamp(1, (NONE / 2) as usize),
            newest: std::collections::HashMap::new(),
        }
    }

    /// Adds an entry, newer than every one before (dropping the oldest when full).
    pub fn insert(&mut self, id: String, at_ms: i64, signature: Signature) {
        if self.entries.len() >= self.capacity {
            self.drop_oldest();
        }
        let number = self.dropped.wrapping_add(self.entries.len() as u32);
        let mut older = [NONE; BANDS];
        for (band, key) in signature.band_keys().iter().enumerate() {
            older[band] = self.newest.insert(*key, number).unwrap_or(NONE);
        }
        self.entries.push_back(Entry {
            id: id.into_boxed_str(),
            at_ms,
            signature,
            older,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `number`, unless it was dropped (or is [`NONE`]).
    fn entry(&self, number: u32) -> Option<&Entry> {
        let offset = number.wrapping_sub(self.dropped) as usize;
        self.entries.get(offset).filter(|_| number != NONE)
    }

    /// The most similar entry since `since_ms` at [`DUPLICATE_SIMILARITY`]
    /// or more: (id, similarity).
    pub fn best_match(&self, signature: &Signature, since_ms: i64) -> Option<(&str, f64)> {
        // On a tie the entry met first wins, bands in order and the oldest
        // first within a band (a band's chain is walked newest first). An
        // entry met again in a later band ties with itself and changes
        // nothing: comparing it again is cheaper than remembering it.
        let mut best: Option<(usize, u32, f64)> = None;
        for (band, key) in signature.band_keys().iter().enumerate() {
            let mut next = self.newest.get(key).copied();
            while let Some(number) = next {
                let Some(entry) = self.entry(number) else {
                    break;
                };
                next = Some(entry.older[band]);
                if entry.at_ms < since_ms {
                    continue;
                }
                let similarity = signature.similarity(&entry.signature);
                let older_than_best =
                    |best: u32| number.wrapping_sub(self.dropped) < best.wrapping_sub(self.dropped);
                let better = best.is_none_or(|(best_band, best_number, b)| {
                    similarity > b
                        || (similarity == b && band == best_band && older_than_best(best_number))
                });
                if similarity >= DUPLICATE_SIMILARITY && better {
                    best = Some((band, number, similarity));
                }
            }
        }
        best.and_then(|(_, number, similarity)| Some((&*self.entry(number)?.id, similarity)))
    }

    /// Drops the entries older than `since_ms`.
    pub fn prune(&mut self, since_ms: i64) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.at_ms < since_ms)
        {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        let number = self.dropped;
        self.dropped = self.dropped.wrapping_add(1);
        // A key whose newest entry is this one has no live entry left.
        for key in entry.signature.band_keys() {
            if self.newest.get(&key) == Some(&number) {
                self.newest.remove(&key);
            }
        }
    }
}

fn hash_shingle(shingle: &[&str]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for word in shingle {
        // A plain loop and the separator apart: twice as fast as a chained
        // iterator (the same bytes, so the same hash).
        for &byte in word.as_bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
        hash = (hash ^ 0xff).wrapping_mul(PRIME);
    }
    hash
}

/// Each slot's minimum of `mix(shingle ^ seed)` over `shingles`: 64 hashes
/// per shingle, most of the cost of a signature (a third of the daemon's
/// CPU per article before it was vectorised). The same arithmetic on every
/// CPU; where AVX-512 (or AVX2) is present, the compiler runs eight (four)
/// slots per instruction, so the result is identical, only faster.
fn min_hashes(shingles: &[u64]) -> [u64; SLOTS] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: the CPU has the features this function is compiled for.
            return unsafe { min_hashes_avx512(shingles) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { min_hashes_avx2(shingles) };
        }
    }
    min_hashes_portable(shingles)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn min_hashes_avx512(shingles: &[u64]) -> [u64; SLOTS] {
    min_hashes_portable(shingles)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn min_hashes_avx2(shingles: &[u64]) -> [u64; SLOTS] {
    min_hashes_portable(shingles)
}

/// Inlined into each caller above, so it is compiled for their features.
#[inline(always)]
fn min_hashes_portable(shingles: &[u64]) -> [u64; SLOTS] {
    let mut slots = [u64::MAX; SLOTS];
    for &base in shingles {
        for (slot, seed) in slots.iter_mut().zip(SEEDS) {
            *slot = (*slot).min(mix(base ^ seed));
        }
    }
    slots
}

/// splitmix64 finaliser: a cheap, well-mixed permutation of u64.
#[inline(always)]
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// One seed per slot, fixed forever (changing them changes stored signatures).
const SEEDS: [u64; SLOTS] = {
    let mut seeds = [0u64; SLOTS];
    let mut index = 0;
    let mut state: u64 = 0x6E65_7773_7761_7463; // "newswatc"
    while index < SLOTS {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seeds[index] = state;
        index += 1;
    }
    seeds
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::normalize::normalize;

    fn signature(text: &str) -> Signature {
        let normalized = normalize(text);
        Signature::of_words(normalized.text.split_whitespace()).expect("long enough")
    }

    const STORY: &str = "A delegation led by Belarus' Deputy Prime Minister Viktor Karankevich opened a House of Belarus in Benghazi on Sunday. The delegation was received at Benina airport by eastern prime minister Osama Hammad. The two sides discussed agriculture, education, industry, health care and geological exploration, and agreed to meet again in Minsk before the end of the year. Officials said the new house would host trade fairs and a permanent office for Belarusian companies working in eastern Libya.";

    #[test]
    fn the_same_story_lightly_edited_is_a_duplicate_and_new_facts_are_not() {
        let original = signature(STORY);
        let rerun = signature(&format!(
            "Benghazi (Agencies) - {}",
            STORY
                .replace("on Sunday", "on 25 May")
                .replace("Belarusian companies", "firms from Belarus")
        ));
        let same = original.similarity(&rerun);
        assert!(same >= DUPLICATE_SIMILARITY, "lightly edited rerun: {same}");
        let follow_up = signature(&format!(
            "{} On Monday the delegation toured the port of Benghazi, where officials showed plans for a grain terminal financed by Minsk. Hammad said a first shipment of MAZ buses would arrive in July, and that Belarusian engineers would help rebuild the Derna water network damaged in the 2023 floods. A second agreement covers training for Libyan tractor mechanics in Minsk.",
            &STORY[..STORY.len() / 2]
        ));
        let different = original.similarity(&follow_up);
        assert!(
            different < DUPLICATE_SIMILARITY,
            "story with new facts: {different}"
        );
        let unrelated = signature("The weather service warned of a tornado season ahead of the average in several regions, and markets opened flat in Asia as investors waited for inflation data and company earnings from the largest technology firms. Analysts said the quarter would be decided by demand for chips, while oil prices rose slightly after a week of losses on fears of weaker growth in China and Europe this year.");
        assert!(original.similarity(&unrelated) < 0.1);
    }

    #[test]
    fn the_index_finds_the_same_story_and_forgets_old_entries() {
        let mut index = DuplicateIndex::default();
        index.insert("old".to_string(), 10, signature(STORY));
        let rerun = signature(&STORY.replace("on Sunday", "on 25 May"));
        assert_eq!(index.best_match(&rerun, 0).map(|(id, _)| id), Some("old"));
        assert_eq!(index.best_match(&rerun, 11), None, "outside the window");
        index.prune(11);
        assert!(index.is_empty());
    }

    #[test]
    fn a_full_index_forgets_its_oldest_entries_and_their_keys() {
        let mut index = DuplicateIndex::new(2);
        let story = signature(STORY);
        index.insert("a".to_string(), 1, story.clone());
        index.insert("b".to_string(), 2, story.clone());
        // Equal similarity: the oldest entry wins.
        assert_eq!(index.best_match(&story, 0), Some(("a", 1.0)));
        index.insert("c".to_string(), 3, story.clone());
        assert_eq!(index.len(), 2);
        assert_eq!(index.best_match(&story, 0), Some(("b", 1.0)));
        let other = signature(
            &STORY
                .replace("Benghazi", "Tobruk")
                .replace("Minsk", "Brest"),
        );
        index.insert("d".to_string(), 4, other.clone());
        index.insert("e".to_string(), 5, other);
        assert_eq!(index.best_match(&story, 0).map(|(id, _)| id), Some("d"));
        assert!(
            index.newest.len() <= 2 * BANDS,
            "keys of dropped entries are gone"
        );
        index.prune(5);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn shingle_hashes_are_fnv_1a_over_the_words_and_separators() {
        let mut expected: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"tor\xffm2\xffair\xffdefense\xff" {
            expected ^= u64::from(*byte);
            expected = expected.wrapping_mul(0x0000_0100_0000_01B3);
        }
        assert_eq!(hash_shingle(&["tor", "m2", "air", "defense"]), expected);
    }

    #[test]
    fn the_vectorised_minimum_equals_the_plain_loop() {
        let shingles: Vec<u64> = (0..1000u64).map(|i| mix(i.wrapping_mul(77))).collect();
        let mut expected = [u64::MAX; SLOTS];
        for &base in &shingles {
            for (index, slot) in expected.iter_mut().enumerate() {
                let value = mix(base ^ SEEDS[index]);
                if value < *slot {
                    *slot = value;
                }
            }
        }
        assert_eq!(min_hashes(&shingles), expected);
        assert_eq!(min_hashes_portable(&shingles), expected);
    }

    #[test]
    fn signatures_survive_a_round_trip_and_short_texts_have_none() {
        let original = signature(STORY);
        assert_eq!(
            Signature::from_bytes(&original.to_bytes()),
            Some(original.clone())
        );
        assert_eq!(Signature::from_bytes(&[1, 2, 3]), None);
        assert!(Signature::of_words("too short to judge".split(' ')).is_none());
        assert_eq!(original.similarity(&original), 1.0);
    }
}
