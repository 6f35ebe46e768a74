//! Boilerplate around a saved story: reader comments, "Related articles"
//! lists, "Read-to-Earn" widgets, service footers, share bars and
//! subscription pitches. Rules must not fire on those alone, so they are
//! blanked out of the text the rules see.
//!
//! Blanking replaces every byte of a boilerplate region with an ASCII space,
//! so the matchable text has the article's exact byte length and every match
//! offset still points into the article as read. Pure: no I/O, cannot fail.
//!
//! Recognition is by marker lines: a short line (a header, not prose) that
//! starts with a known marker, never the first line of the article.
//! Section markers ("Related articles", "Comments (2)", "Read-to-Earn", ...)
//! end the story: everything from them to the end is blanked. Pitch markers
//! ("Subscribe to ...", "Enjoyed this analysis? ...") blank their paragraph
//! only, since pitches also sit in the middle of stories.

use std::borrow::Cow;

/// Lines starting so begin the trailing boilerplate.
const SECTION_MARKERS: &[&str] = &[
    "related articles",
    "related stories",
    "related posts",
    "related coverage",
    "related:",
    "read more:",
    "read also",
    "you may also like",
    "more from",
    "more stories",
    "recommended for you",
    "comments",
    "reader comments",
    "readers' comments",
    "leave a comment",
    "leave a reply",
    "join the discussion",
    "read-to-earn",
    "read to earn",
    "explore our services",
    "share this article",
    "share this story",
    "share on",
    "tags:",
];

/// Lines starting so are a pitch: their paragraph is blanked.
const PITCH_MARKERS: &[&str] = &[
    "subscribe",
    "sign up",
    "enjoyed this",
    "support our journalism",
    "support independent",
    "become a member",
    "advertisement",
    "sponsored",
    "follow us",
    "download our app",
];

/// The longest line (in bytes) that can be a marker; longer lines are prose.
const MAX_MARKER_LINE: usize = 120;

/// `text` with its boilerplate blanked (same byte length), or `text` itself
/// when it has none.
pub fn matchable(text: &str) -> Cow<'_, str> {
    let regions = boilerplate_regions(text);
    if regions.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut bytes = text.as_bytes().to_vec();
    for (start, end) in regions {
        bytes[start..end].fill(b' ');
    }
    // Whole lines were replaced by ASCII spaces, so the bytes stay UTF-8.
    match String::from_utf8(bytes) {
        Ok(blanked) => Cow::Owned(blanked),
        Err(_) => Cow::Borrowed(text),
    }
}

/// Byte ranges of boilerplate, each made of whole lines.
pub fn boilerplate_regions(text: &str) -> Vec<(usize, usize)> {
    let mut regions = Vec::new();
    let mut offset = 0;
    let mut seen_content = false;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let undecorated = trimmed.trim_start_matches(is_decoration);
        if undecorated.is_empty() {
            continue;
        }
        if !seen_content {
            seen_content = true;
            continue;
        }
        // Most lines are paragraphs: lower-casing them was most of the time
        // this took.
        if trimmed.len() > MAX_MARKER_LINE {
            continue;
        }
        let key = undecorated.to_lowercase();
        if SECTION_MARKERS.iter().any(|marker| key.starts_with(marker)) {
            regions.push((start, text.len()));
            break;
        }
        if PITCH_MARKERS.iter().any(|marker| key.starts_with(marker)) {
            // The paragraph: this line and the following non-blank lines.
            let mut end = offset;
            while let Some(next) = lines.peek() {
                if next.trim().is_empty() {
                    break;
                }
                end += next.len();
                offset += next.len();
                lines.next();
            }
            regions.push((start, end));
        }
    }
    regions
}

/// Markdown and bullet decoration that may lead a marker line.
fn is_decoration(c: char) -> bool {
    matches!(c, '#' | '*' | '•' | '-' | '—' | '=' | '>' | '_') || c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(text: &str) -> String {
        matchable(text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn trailing_sections_and_pitches_are_blanked_keeping_offsets() {
        let cases = [
            (
                "Title\n\nStory about Benghazi.\n\nRelated articles\n• Tobruk base talks\n",
                "Title Story about Benghazi.",
            ),
            (
                "Title\n\nStory.\n\n## Reader comments (3)\n\nAli: what about Tobruk?\n",
                "Title Story.",
            ),
            (
                "Title\n\nStory one.\n\nEnjoyed this analysis? Subscribe to our\nnewsletter about Tobruk.\n\nStory two.\n",
                "Title Story one. Story two.",
            ),
            ("Title\n\nRead-to-Earn\nTobruk\nMinsk\n", "Title"),
            // Prose that merely mentions comments is not a marker.
            (
                "Title\n\nComments by the minister on Tobruk were brief, and the ministry declined to elaborate on the base plans in any detail whatsoever today.\n",
                "Title Comments by the minister on Tobruk were brief, and the ministry declined to elaborate on the base plans in any detail whatsoever today.",
            ),
            // The first line is never boilerplate, even when it looks like it.
            ("Comments on Tobruk\n\nStory.\n", "Comments on Tobruk Story."),
            ("Plain story about Tobruk.\n", "Plain story about Tobruk."),
        ];
        for (text, expected) in cases {
            assert_eq!(visible(text), expected, "text {text:?}");
            assert_eq!(matchable(text).len(), text.len(), "same byte length");
        }
    }

    #[test]
    fn unicode_in_blanked_regions_keeps_the_text_valid_and_aligned() {
        let text = "Заголовок\n\nМинск.\n\nComments (2)\nХафтар — حفتر\n";
        let blanked = matchable(text);
        assert_eq!(blanked.len(), text.len());
        assert_eq!(blanked.find("Минск"), text.find("Минск"));
        assert!(!blanked.contains("Хафтар"));
    }
}
