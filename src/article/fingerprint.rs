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

/// Recent signatures, indexed by band, for near-duplicate lookups.
#[derive(Debug, Default)]
pub struct DuplicateIndex {
    entries: Vec<(String, i64, Signature)>,
    bands: std::collections::HashMap<u64, Vec<usize>>,
}

impl DuplicateIndex {
    pub fn insert(&mut self, id: String, at_ms: i64, signature: Signature) {
        let index = self.entries.len();
        for key in signature.band_keys() {
            self.bands.entry(key).or_default().push(index);
        }
        self.entries.push((id, at_ms, signature));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most similar entry since `since_ms` at [`DUPLICATE_SIMILARITY`]
    /// or more: (id, similarity).
    pub fn best_match(&self, signature: &Signature, since_ms: i64) -> Option<(&str, f64)> {
        let mut best: Option<(usize, f64)> = None;
        let mut seen = std::collections::HashSet::new();
        for key in signature.band_keys() {
            for &index in self.bands.get(&key).map(Vec::as_slice).unwrap_or_default() {
                if !seen.insert(index) {
                    continue;
                }
                let (_, at_ms, other) = &self.entries[index];
                if *at_ms < since_ms {
                    continue;
                }
                let similarity = signature.similarity(other);
                if similarity >= DUPLICATE_SIMILARITY && best.is_none_or(|(_, b)| similarity > b) {
                    best = Some((index, similarity));
                }
            }
        }
        best.map(|(index, similarity)| (self.entries[index].0.as_str(), similarity))
    }

    /// Drops entries older than `since_ms` (rebuilding the bands).
    pub fn prune(&mut self, since_ms: i64) {
        let entries = std::mem::take(&mut self.entries);
        self.bands.clear();
        for (id, at_ms, signature) in entries {
            if at_ms >= since_ms {
                self.insert(id, at_ms, signature);
            }
        }
    }
}

fn hash_shingle(shingle: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for word in shingle {
        for byte in word.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
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
