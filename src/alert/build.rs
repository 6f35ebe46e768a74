//! From a fired rule to an [`Alert`]: the stable id, the cited matches and a
//! short snippet around them. Pure: the time of firing is a parameter.

use std::sync::Arc;

use crate::alert::payload::{Alert, ArticleRef, MatchSpan, Severity};

/// Roughly how many bytes of context a snippet shows before the first match.
const CONTEXT_BEFORE: usize = 100;
/// The most bytes a snippet takes from the article.
const SNIPPET_LENGTH: usize = 320;

/// What an alert needs to know about the rule that fired.
pub struct FiredRule<'a> {
    pub id: &'a Arc<str>,
    pub description: &'a Arc<str>,
    pub severity: Severity,
}

/// Stable id of (article, rule): the same on every retry and restart.
pub fn alert_id(article_id: &str, rule_id: &str) -> String {
    AlertIds::new(article_id).of(rule_id)
}

/// The ids of one article's alerts, [`alert_id`] with the article's part of
/// the hash done once: the first 16 bytes of BLAKE3(article id, NUL, rule
/// id), in lower-case hex. An article id (64 hex digits) fills a block of
/// the hash, so each alert's id costs one block's compression instead of
/// two (an article fires dozens of rules at 10,000 rules).
pub struct AlertIds(blake3::Hasher);

impl AlertIds {
    pub fn new(article_id: &str) -> AlertIds {
        let mut hasher = blake3::Hasher::new();
        hasher.update(article_id.as_bytes());
        hasher.update(b"\0");
        AlertIds(hasher)
    }

    /// The id of the alert `rule_id` raises on the article.
    pub fn of(&self, rule_id: &str) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hasher = self.0.clone();
        hasher.update(rule_id.as_bytes());
        let hash = hasher.finalize();
        let mut hex = [0u8; 32];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(hash.as_bytes()) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        std::str::from_utf8(&hex).unwrap_or_default().to_owned()
    }
}

/// Builds the alert for `rule` firing on `article`, citing `spans` (byte
/// ranges of `text`, sorted) and naming `entities`; `ids` are the
/// article's ([`AlertIds::new`] of `article.id`).
pub fn build_alert(
    rule: &FiredRule<'_>,
    ids: &AlertIds,
    article: Arc<ArticleRef>,
    text: &str,
    spans: &[std::ops::Range<usize>],
    entities: Vec<Arc<str>>,
    fired_at: &Arc<str>,
) -> Alert {
    let matches = spans
        .iter()
        .map(|span| MatchSpan {
            text: text[span.clone()].to_string(),
            start: span.start,
            end: span.end,
            ..MatchSpan::default()
        })
        .collect();
    Alert {
        id: ids.of(rule.id),
        rule: Arc::clone(rule.id),
        description: Arc::clone(rule.description),
        severity: rule.severity,
        snippet: snippet(text, spans),
        article,
        entities,
        matches,
        fired_at: Arc::clone(fired_at),
        duplicate_of: None,
        articles: Vec::new(),
    }
}

/// Matches in the article's title (when the title is not part of the text):
/// `spans` are byte ranges of `title`.
pub fn title_matches(title: &str, spans: &[std::ops::Range<usize>]) -> Vec<MatchSpan> {
    spans
        .iter()
        .filter_map(|span| {
            Some(MatchSpan {
                text: title.get(span.clone())?.to_string(),
                start: span.start,
                end: span.end,
                field: Some("title".to_string()),
                ..MatchSpan::default()
            })
        })
        .collect()
}

/// A plain-text extract around the first matches: starts a little before
/// the first one, cut at word boundaries, whitespace collapsed, with "..."
/// where the article goes on.
pub fn snippet(text: &str, spans: &[std::ops::Range<usize>]) -> String {
    let Some(first) = spans.first() else {
        return String::new();
    };
    let mut start = first.start.saturating_sub(CONTEXT_BEFORE);
    // Prefer to start at a sentence or line start close to the match.
    // (ASCII bytes, so the byte after one starts a character.)
    let lead = floor_boundary(text, start);
    if let Some(boundary) = text.as_bytes()[lead..first.start]
        .iter()
        .rposition(|b| matches!(b, b'.' | b'\n' | b'!' | b'?'))
    {
        start = lead + boundary + 1;
    }
    start = floor_boundary(text, start);
    let mut end = floor_boundary(
        text,
        (start + SNIPPET_LENGTH).min(text.len()).max(first.end),
    );
    if start > 0 {
        // Do not start in the middle of a word.
        if let Some(space) = text[start..first.start].find(char::is_whitespace) {
            if !text[..start].ends_with(char::is_whitespace) {
                start += space;
            }
        }
    }
    if end < text.len() {
        if let Some(space) = text[first.end..end].rfind(char::is_whitespace) {
            end = first.end + space;
        }
    }
    let mut out = String::with_capacity(end - start + 8);
    if start > 0 {
        out.push_str("... ");
    }
    push_collapsed(&mut out, &text[start..end]);
    if end < text.len() {
        out.push_str(" ...");
    }
    out
}

/// Appends the words of `text` to `out`, one space between them: what
/// `split_whitespace().join(" ")` gives. Alerts are built by the thousand
/// per second, each with a snippet, so it copies whole runs of ASCII words
/// joined by single spaces at once, and decodes only non-ASCII characters.
pub(crate) fn push_collapsed(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let plain = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_graphic);
    let mut space_owed = false;
    let mut wrote = false;
    let mut index = 0;
    while index < bytes.len() {
        // A run of printable ASCII, single spaces between its words.
        let run = index;
        while let Some(&byte) = bytes.get(index) {
            if let Some(word) = bytes.get(index..index + 8) {
                let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
                if plain_word(word, index > run) {
                    index += 8;
                    continue;
                }
            }
            if byte.is_ascii_graphic() {
                index += 1;
            } else if byte == b' ' && index > run && plain(index + 1) {
                index += 2;
            } else {
                break;
            }
        }
        let end = if index > run {
            index
        } else {
            // Not printable ASCII: one character, whitespace or part of a word.
            let c = text[index..]
                .chars()
                .next()
                .expect("index is a char boundary");
            index += c.len_utf8();
            if c.is_whitespace() {
                space_owed = wrote;
                continue;
            }
            index
        };
        if space_owed {
            out.push(' ');
            space_owed = false;
        }
        out.push_str(&text[run..end]);
        wrote = true;
    }
}

/// Whether the run loop of [`push_collapsed`] would take all eight bytes
/// of `word` one by one: printable ASCII and single spaces, the last byte
/// not a space, the first one a space only inside a run (`in_run`).
fn plain_word(word: u64, in_run: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    if word & HIGH != 0 {
        return false; // not ASCII
    }
    // Each byte is below 0x80 now, so these sums carry into no other byte:
    // a byte's high bit says exactly whether it is >= 0x21, >= 0x7f, != ' '.
    let from_0x21 = word.wrapping_add(ONES * (0x80 - 0x21)) & HIGH;
    let from_0x7f = word.wrapping_add(ONES) & HIGH; // 0x7f + 1 = 0x80
    let not_space = (word ^ (ONES * 0x20)).wrapping_add(ONES * 0x7f) & HIGH;
    let graphic = from_0x21 & !from_0x7f;
    let space = HIGH & !not_space;
    let first_is_space = space & 0x80 != 0;
    (graphic | space) == HIGH
        && space & (space >> 8) == 0
        && space >> 63 == 0
        && (in_run || !first_is_space)
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_stable_and_distinct() {
        assert_eq!(alert_id("abc", "tobruk"), alert_id("abc", "tobruk"));
        assert_ne!(alert_id("abc", "tobruk"), alert_id("abc", "minsk-visit"));
        assert_ne!(alert_id("ab", "ctobruk"), alert_id("abc", "tobruk"));
        assert_eq!(alert_id("abc", "tobruk").len(), 32);
        // Stored and sent: an id must never change.
        let article = "ab".repeat(32);
        assert_eq!(
            alert_id(&article, "minsk-visit"),
            blake3::hash(format!("{article}\0minsk-visit").as_bytes()).to_hex()[..32]
        );
        assert_eq!(
            alert_id(&article, "tobruk"),
            "f4c564422e4522e43de0d325a59ad1bf"
        );
    }

    #[test]
    fn snippets_show_the_match_in_context() {
        let text = "Title line\n\nFirst sentence here. The visit to Minsk, which has very close ties to Moscow, lasted three days.\n";
        let start = text.find("visit to Minsk").expect("present");
        let end = start + "visit to Minsk".len();
        let spans = [std::ops::Range { start, end }];
        let snippet = snippet(text, &spans);
        assert_eq!(
            snippet,
            "... The visit to Minsk, which has very close ties to Moscow, lasted three days."
        );
    }

    #[test]
    fn long_texts_are_cut_at_word_boundaries_without_splitting_characters() {
        let text = format!("{} Минск {}", "слово ".repeat(100), "ещё ".repeat(200));
        let start = text.find("Минск").expect("present");
        let end = start + "Минск".len();
        let spans = [std::ops::Range { start, end }];
        let snippet = snippet(&text, &spans);
        assert!(snippet.starts_with("... слово"), "{snippet}");
        assert!(snippet.ends_with("ещё ..."), "{snippet}");
        assert!(snippet.contains("Минск"));
        assert!(snippet.len() < SNIPPET_LENGTH + 10);
    }

    #[test]
    fn a_plain_word_is_what_the_byte_loop_would_take() {
        // The byte loop's rule, for a word followed by a printable byte.
        let by_bytes = |bytes: [u8; 8], in_run: bool| {
            bytes.iter().enumerate().all(|(i, &b)| {
                let next = bytes.get(i + 1).copied().unwrap_or(b'x');
                b.is_ascii_graphic() || (b == b' ' && (i > 0 || in_run) && next.is_ascii_graphic())
            }) && bytes[7] != b' '
        };
        for base in [*b"abcdefgh", *b"ab cd ef", *b" b d f h", *b"a.c-e~g!"] {
            for position in 0..8 {
                for byte in 0u8..=0xff {
                    let mut bytes = base;
                    bytes[position] = byte;
                    for in_run in [false, true] {
                        assert_eq!(
                            plain_word(u64::from_le_bytes(bytes), in_run),
                            by_bytes(bytes, in_run),
                            "{bytes:?} in_run={in_run}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn long_mixed_texts_collapse_like_split_whitespace() {
        // Deterministic pseudo-random texts over an alphabet of the cases.
        let alphabet = [
            "a",
            "Z",
            " ",
            "  ",
            "\n",
            "\t",
            ".",
            "~",
            "\u{7f}",
            "é",
            "\u{a0}",
            "Минск",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(state % 60) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let mut collapsed = String::new();
            push_collapsed(&mut collapsed, &text);
            assert_eq!(
                collapsed,
                text.split_whitespace().collect::<Vec<_>>().join(" "),
                "{text:?}"
            );
        }
    }

    #[test]
    fn whitespace_collapses_like_split_whitespace() {
        for text in [
            "",
            "   ",
            "one",
            "  one two\t\tthree\n",
            "a\u{0B}b\u{0C}c\r\nd",
            "Минск\u{00A0}\u{2003}Брест\u{3000} x",
            "\u{0085}lead and trail\u{2028}",
            "Tobruk  and\u{00A0}Минск, 2024 ",
            "end. Next\n\nline\tafter tab ",
            " x",
            "x ",
        ] {
            let mut collapsed = String::new();
            push_collapsed(&mut collapsed, text);
            assert_eq!(
                collapsed,
                text.split_whitespace().collect::<Vec<_>>().join(" "),
                "{text:?}"
            );
        }
    }
}
