//! From a fired rule to an [`Alert`]: the stable id, the cited matches and a
//! short snippet around them. Pure: the time of firing is a parameter.

use crate::alert::payload::{Alert, ArticleRef, MatchSpan, Severity};

/// Roughly how many bytes of context a snippet shows before the first match.
const CONTEXT_BEFORE: usize = 100;
/// The most bytes a snippet takes from the article.
const SNIPPET_LENGTH: usize = 320;

/// What an alert needs to know about the rule that fired.
pub struct FiredRule<'a> {
    pub id: &'a str,
    pub description: &'a str,
    pub severity: Severity,
}

/// Stable id of (article, rule): the same on every retry and restart.
pub fn alert_id(article_id: &str, rule_id: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(article_id.as_bytes());
    hasher.update(b"\0");
    hasher.update(rule_id.as_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// Builds the alert for `rule` firing on `article`, citing `spans` (byte
/// ranges of `text`, sorted) and naming `entities`.
pub fn build_alert(
    rule: &FiredRule<'_>,
    article: ArticleRef,
    text: &str,
    spans: &[std::ops::Range<usize>],
    entities: Vec<String>,
    fired_at: &str,
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
        id: alert_id(&article.id, rule.id),
        rule: rule.id.to_string(),
        description: rule.description.to_string(),
        severity: rule.severity,
        snippet: snippet(text, spans),
        article,
        entities,
        matches,
        fired_at: fired_at.to_string(),
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
    let plain = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_graphic());
    let mut space_owed = false;
    let mut wrote = false;
    let mut index = 0;
    while index < bytes.len() {
        // A run of printable ASCII, single spaces between its words.
        let run = index;
        while plain(index) || (bytes.get(index) == Some(&b' ') && index > run && plain(index + 1)) {
            index += 1;
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
