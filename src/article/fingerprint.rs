//! Near-duplicate detection: a MinHash signature of an article's word
//! 4-shingles (over the canonical words, boilerplate already blanked), so
//! that the same story run by a second outlet, lightly edited, is
//! recognised, while a story with genuinely new paragraphs is not.
//!
//! Two signatures estimate the Jaccard similarity of the shingle sets as the
//! share of equal slots. Pure: no I/O, no clock.

use crate::rules::normalize::Normalized;
use crate::rules::words::little_endian;

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
    ///
    /// One hash per shingle (one-permutation MinHash): its top bits choose
    /// a slot, which keeps the least of the rest. A slot no shingle chose
    /// (short texts) borrows from the next filled slot, marked with the
    /// distance, so two texts agree there only when they agree on both.
    /// Hashing every shingle 64 times took more time than reading and
    /// matching the article.
    pub fn of_words<W: AsRef<[u8]>>(words: impl IntoIterator<Item = W>) -> Option<Signature> {
        Signature::of_word_hashes(words.into_iter().map(|word| hash_word(word.as_ref())))
    }

    /// [`Signature::of_words`] of `normalized`'s words. A word of up to 16
    /// bytes is read from the canonical text in two 8-byte loads where the
    /// text has room, and hashed without a branch on its length: the same
    /// hash as [`hash_word`]'s, in a third less time over a corpus.
    pub fn of_normalized(normalized: &Normalized) -> Option<Signature> {
        let text = normalized.text.as_bytes();
        let hashes = normalized
            .word_bytes()
            .zip(&normalized.tokens)
            .map(|(word, token)| {
                let (start, len) = (token.norm_start, word.len());
                match text.get(start..start + 16) {
                    Some(window) if (1..=16).contains(&len) => {
                        let (low, high) = window.split_at(8);
                        let low = u64::from_le_bytes(low.try_into().unwrap_or_default());
                        let high = u64::from_le_bytes(high.try_into().unwrap_or_default());
                        // The word's bytes, zero-padded, as `hash_word` folds
                        // them in: one chunk up to 8 bytes, two above.
                        let first =
                            word_step(WORD_SEED, low & (u64::MAX >> (8 * (8 - len.min(8)))));
                        let high = high
                            & u64::MAX
                                .checked_shr(8 * (16 - len.max(8)) as u32)
                                .unwrap_or(0);
                        let second = word_step(first, high);
                        (if len > 8 { second } else { first }) ^ len as u64
                    }
                    _ => hash_word(word),
                }
            });
        Signature::of_word_hashes(hashes)
    }

    /// The signature of a text whose words hash to `hashes`, in order.
    fn of_word_hashes(hashes: impl Iterator<Item = u64>) -> Option<Signature> {
        let mut slots = [EMPTY; SLOTS];
        // The hashes of the last SHINGLE words, oldest first.
        let [mut w0, mut w1, mut w2] = [0u64; SHINGLE - 1];
        let mut count = 0;
        for w3 in hashes {
            count += 1;
            if count >= SHINGLE {
                // Oldest word first, each weighted by its own odd multiplier:
                // four independent multiplications and one mix per shingle.
                let [a, b, c, d] = SHINGLE_WEIGHTS;
                let hash = mix(SHINGLE_SEED
                    .wrapping_add(w0.wrapping_mul(a))
                    .wrapping_add(w1.wrapping_mul(b))
                    .wrapping_add(w2.wrapping_mul(c))
                    .wrapping_add(w3.wrapping_mul(d)));
                let slot = (hash >> (64 - SLOT_BITS)) as usize;
                slots[slot] = slots[slot].min(hash & VALUE_MASK);
            }
            [w0, w1, w2] = [w1, w2, w3];
        }
        if count < MIN_WORDS {
            return None;
        }
        let filled = slots;
        for (index, slot) in slots.iter_mut().enumerate() {
            if *slot != EMPTY {
                continue;
            }
            // At least MIN_WORDS - SHINGLE + 1 shingles, so some slot is filled.
            if let Some(distance) = (1..SLOTS).find(|d| filled[(index + d) % SLOTS] != EMPTY) {
                let borrowed = filled[(index + distance) % SLOTS];
                *slot = mix(borrowed ^ ((distance as u64) << 58)) & VALUE_MASK;
            }
        }
        Some(Signature(slots))
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

/// Bands for locality-sensitive lookup: 16 bands of 4 slots. Two articles
/// are compared only when some band is identical: at a similarity of 0.6
/// that happens with probability 1 - (1 - 0.6^4)^16 ≈ 0.89, at 0.8 ≈ 0.9998,
/// at 0.2 only ≈ 0.025, so a lookup costs a few hash probes, not a pass
/// over every recent article.
const BANDS: usize = 16;
const ROWS: usize = SLOTS / BANDS;

impl Signature {
    /// A hash of every slot: equal for identical signatures (a copy of a
    /// story), and for different ones only by a 64-bit collision.
    pub fn exact_key(&self) -> u64 {
        self.0
            .iter()
            .fold(mix(BANDS as u64), |hash, slot| mix(hash ^ slot))
    }

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
    /// [`Signature::exact_key`] -> the oldest and the newest entry with it,
    /// linked by [`Entry::newer_copy`]: a story copied hundreds of times
    /// (a wire story, run by every outlet) is found among its copies in
    /// one step, instead of by comparing it with each of them.
    copies: std::collections::HashMap<u64, (u32, u32)>,
}

#[derive(Debug)]
struct Entry {
    id: Box<str>,
    at_ms: i64,
    signature: Signature,
    /// Per band, the number of the next older entry with the same key
    /// ([`NONE`] when there is none): 4 bytes, not 16 for an `Option<usize>`.
    older: [u32; BANDS],
    /// The next newer entry with the same [`Signature::exact_key`], or
    /// [`NONE`].
    newer_copy: u32,
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
            copies: std::collections::HashMap::new(),
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
        let key = signature.exact_key();
        if let Some((_, newest)) = self.copies.get_mut(&key) {
            let previous = std::mem::replace(newest, number);
            let offset = self.offset(previous);
            if let Some(entry) = self.entries.get_mut(offset) {
                entry.newer_copy = number;
            }
        } else {
            self.copies.insert(key, (number, number));
        }
        self.entries.push_back(Entry {
            id: id.into_boxed_str(),
            at_ms,
            signature,
            older,
            newer_copy: NONE,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where entry `number` is (or was) in `entries`: its age rank, oldest 0.
    fn offset(&self, number: u32) -> usize {
        number.wrapping_sub(self.dropped) as usize
    }

    /// Entry `number`, unless it was dropped (or is [`NONE`]).
    fn entry(&self, number: u32) -> Option<&Entry> {
        self.entries
            .get(self.offset(number))
            .filter(|_| number != NONE)
    }

    /// The most similar entry since `since_ms` at [`DUPLICATE_SIMILARITY`]
    /// or more: (id, similarity).
    pub fn best_match(&self, signature: &Signature, since_ms: i64) -> Option<(&str, f64)> {
        // A copy is the best match there is, and the oldest copy since
        // `since_ms` is the one the walk over the bands below would pick.
        if let Some(copy) = self.oldest_copy(signature, since_ms) {
            return Some((&copy.id, 1.0));
        }
        self.walk_bands(signature, since_ms)
    }

    /// [`DuplicateIndex::best_match`] by comparing `signature` with every
    /// entry that shares a band with it.
    fn walk_bands(&self, signature: &Signature, since_ms: i64) -> Option<(&str, f64)> {
        // On a tie the entry met first wins, bands in order and the oldest
        // first within a band (a band's chain is walked newest first). An
        // entry met again in a later band ties with itself and changes
        // nothing, so only its first meeting is compared: a story saved
        // many times is in every band's chain, and comparing it in each
        // would read its signature once per band. `met` has a bit per
        // entry kept (2.5 KB for 20,000), so each is compared at most once.
        let mut met = vec![0u64; self.entries.len().div_ceil(64)];
        let mut best: Option<(usize, u32, f64)> = None;
        for (band, key) in signature.band_keys().iter().enumerate() {
            // An identical signature found in an earlier band cannot be
            // beaten (a later band wins no tie).
            if best.is_some_and(|(_, _, similarity)| similarity >= 1.0) {
                break;
            }
            let mut next = self.newest.get(key).copied();
            while let Some(number) = next {
                let Some(entry) = self.entry(number) else {
                    break;
                };
                next = Some(entry.older[band]);
                let offset = self.offset(number);
                let (word, bit) = (offset / 64, 1u64 << (offset % 64));
                if entry.at_ms < since_ms || met[word] & bit != 0 {
                    continue;
                }
                met[word] |= bit;
                let similarity = signature.similarity(&entry.signature);
                let older_than_best = |best: u32| offset < self.offset(best);
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

    /// The oldest entry since `since_ms` with exactly `signature`.
    fn oldest_copy(&self, signature: &Signature, since_ms: i64) -> Option<&Entry> {
        let (oldest, _) = *self.copies.get(&signature.exact_key())?;
        let mut next = oldest;
        while let Some(entry) = self.entry(next) {
            // Copies come oldest first: the first one recent enough wins.
            if entry.at_ms >= since_ms && entry.signature == *signature {
                return Some(entry);
            }
            next = entry.newer_copy;
        }
        None
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
        // The oldest of its copies: the next newer one is the oldest now.
        let key = entry.signature.exact_key();
        if let Some((oldest, _)) = self.copies.get_mut(&key) {
            if *oldest == number {
                if entry.newer_copy == NONE {
                    self.copies.remove(&key);
                } else {
                    *oldest = entry.newer_copy;
                }
            }
        }
    }
}

/// A word's hash: its bytes eight at a time (little-endian, the last chunk
/// padded with zeros), each chunk folded in by a multiplication, then its
/// length. Stable across runs and Rust versions, since signatures are
/// stored; the shingle hash mixes it further. (Byte-at-a-time FNV-1a, used
/// before, was a chain of one multiplication per byte.)
fn hash_word(word: &[u8]) -> u64 {
    let mut hash = WORD_SEED;
    let mut chunks = word.chunks_exact(8);
    for chunk in &mut chunks {
        hash = word_step(
            hash,
            u64::from_le_bytes(chunk.try_into().unwrap_or_default()),
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The last 1 to 7 bytes, zero-padded, as a chunk of their own.
        hash = word_step(hash, little_endian(rest));
    }
    hash ^ word.len() as u64
}

/// Where a shingle's hash starts. Fixed forever like the rest; it differs
/// from every earlier scheme's (64 hashes per shingle, then four mixes per
/// shingle over FNV-1a word hashes), so a signature stored by an older
/// version never looks similar to a new one: it ages out.
const SHINGLE_SEED: u64 = 0x6E77_7369_6732_0003;
/// The multiplier of each word of a shingle, oldest first (odd, so each is
/// a permutation of u64; the xxHash and splitmix64 constants).
const SHINGLE_WEIGHTS: [u64; SHINGLE] = [
    0x9E37_79B1_85EB_CA87,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xBF58_476D_1CE4_E5B9,
];
/// log2 of [`SLOTS`]: the bits of a shingle's hash that choose its slot.
const SLOT_BITS: u32 = SLOTS.trailing_zeros();
const _: () = assert!(SLOTS.is_power_of_two());
/// The bits of a shingle's hash kept in its slot.
const VALUE_MASK: u64 = u64::MAX >> SLOT_BITS;
/// A slot no shingle chose (yet); never a value, which has its top bits clear.
const EMPTY: u64 = u64::MAX;

/// Where a word's hash starts.
const WORD_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds eight bytes of a word (little-endian) into its hash.
#[inline]
fn word_step(hash: u64, chunk: u64) -> u64 {
    (hash ^ chunk)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// splitmix64 finaliser: a cheap, well-mixed permutation of u64.
const fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::normalize::normalize;

    fn signature(text: &str) -> Signature {
        let normalized = normalize(text);
        Signature::of_words(normalized.text.split_whitespace()).expect("long enough")
    }

    #[test]
    fn a_words_tail_is_its_last_bytes_little_endian_and_zero_padded() {
        let bytes = b"abcdefghijklmnopqrstuvwxyz";
        for len in 1..8 {
            let rest = &bytes[3..3 + len];
            let expected = rest
                .iter()
                .rev()
                .fold(0u64, |tail, &byte| (tail << 8) | u64::from(byte));
            assert_eq!(little_endian(rest), expected, "{len} bytes");
        }
        // Signatures are stored: the hash of a word must never change (a
        // whole chunk; a chunk and three bytes; five bytes).
        assert_eq!(hash_word(b"benghazi"), 0x041a_44fa_6344_1db4);
        assert_eq!(hash_word(b"minsk"), 0xedc1_9efd_02d7_d3d5);
        assert_eq!(hash_word(b"karankevich"), 0x47e3_15a4_8379_9a13);
    }

    #[test]
    fn the_signature_of_a_normalised_text_is_that_of_its_words() {
        // Words of every length, at the very end of the text too (no room
        // for an 8-byte load there), in Latin, Cyrillic and Arabic script.
        let texts = [
            STORY.to_string(),
            format!("{STORY} Lukashenko"),
            format!("{STORY} a"),
            format!("{STORY} Минск Лукашенко ليبيا counterintelligence 1234567 12345678"),
            "word ".repeat(45),
        ];
        for text in &texts {
            let normalized = normalize(text);
            let expected = Signature::of_words(normalized.word_bytes());
            assert!(expected.is_some());
            assert_eq!(Signature::of_normalized(&normalized), expected, "{text}");
        }
        assert_eq!(Signature::of_normalized(&normalize("too short")), None);
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
    fn a_story_saved_many_times_yields_its_oldest_kept_copy() {
        // 120 copies in every band's chain, 70 of them dropped: each kept
        // copy is compared once, and the oldest kept one wins the tie.
        let mut index = DuplicateIndex::new(50);
        let story = signature(STORY);
        for copy in 0..120 {
            index.insert(format!("copy{copy}"), copy, story.clone());
        }
        assert_eq!(index.best_match(&story, 0), Some(("copy70", 1.0)));
        assert_eq!(
            index.best_match(&story, 100).map(|(id, _)| id),
            Some("copy100")
        );
        let rerun = signature(&STORY.replace("on Sunday", "on 25 May"));
        let (id, similarity) = index.best_match(&rerun, 0).expect("a match");
        assert_eq!(id, "copy70");
        assert!((DUPLICATE_SIMILARITY..1.0).contains(&similarity));
    }

    #[test]
    fn a_copy_is_found_as_the_walk_over_the_bands_finds_it() {
        // Copies of three stories and of a lightly edited rerun of the
        // first, interleaved, in an index that drops its oldest entries:
        // the oldest copy since any time is the walk's answer, before and
        // after drops.
        let stories = [
            signature(STORY),
            signature(
                &STORY
                    .replace("Benghazi", "Tobruk")
                    .replace("Minsk", "Brest"),
            ),
            signature(
                &STORY
                    .replace("agriculture", "oil")
                    .replace("Sunday", "Monday"),
            ),
            signature(&STORY.replace("on Sunday", "on 25 May")),
        ];
        let mut index = DuplicateIndex::new(40);
        let mut state = 7u64;
        for at in 0..200 {
            state = mix(state);
            let story = &stories[(state % 4) as usize];
            for query in &stories {
                for since in [0, at - 30, at - 5, at] {
                    let walked = index.walk_bands(query, since);
                    let copy = index.oldest_copy(query, since);
                    assert_eq!(
                        copy.map(|entry| (&*entry.id, 1.0)),
                        walked.filter(|&(_, similarity)| similarity >= 1.0),
                        "at {at}, since {since}"
                    );
                    assert_eq!(index.best_match(query, since), walked);
                }
            }
            index.insert(format!("article{at}"), at, story.clone());
        }
        assert!(index.copies.len() <= stories.len());
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

    #[test]
    fn the_estimate_follows_the_true_shingle_overlap() {
        // Pairs of texts sharing their first `shared` words: the exact
        // Jaccard similarity of their 4-shingle sets is known, and the mean
        // estimate over many pairs must be close to it (64 slots: one
        // estimate has a standard error of about 0.06). 60 words leave many
        // slots to fill by borrowing; 400 words fill nearly all.
        for (length, shared) in [
            (400, 100),
            (400, 200),
            (400, 300),
            (400, 360),
            (60, 30),
            (60, 45),
        ] {
            let shingles = length - SHINGLE + 1;
            let common = shared - SHINGLE + 1;
            let exact = common as f64 / (2 * shingles - common) as f64;
            let pairs = 40;
            let mut total = 0.0;
            for pair in 0..pairs {
                let text = |side: &str| -> Vec<String> {
                    (0..length)
                        .map(|i| match i < shared {
                            true => format!("p{pair}w{i}"),
                            false => format!("p{pair}{side}{i}"),
                        })
                        .collect()
                };
                let (a, b) = (text("a"), text("b"));
                let a = Signature::of_words(a.iter().map(String::as_str)).unwrap();
                let b = Signature::of_words(b.iter().map(String::as_str)).unwrap();
                total += a.similarity(&b);
            }
            let mean = total / f64::from(pairs);
            assert!(
                (mean - exact).abs() < 0.05,
                "{length} words, {shared} shared: exact {exact:.3}, mean estimate {mean:.3}"
            );
        }
    }
}
