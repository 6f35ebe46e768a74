//! Decoded file text -> the text rules run on, the title and the publication date.
//!
//! This file owns the per-format rules: plain text and Markdown are kept
//! byte-for-byte; HTML is turned into text of exactly the same byte length in
//! which every visible character sits at its offset in the file; JSON articles
//! are assembled from their fields. It must never do I/O, never reorder or drop
//! visible text (offsets into HTML and plain text must keep pointing at the
//! file), and never fail on odd markup: broken HTML still yields text, only a
//! `.json` file that is not a JSON article is rejected.

use std::ops::Range;
use std::sync::LazyLock;

use chrono::NaiveDate;
use encoding_rs::WINDOWS_1252;
use regex::Regex;
use serde_json::Value;

use super::date::find_published;
use super::decode::SkipReason;

/// How the decoded text is interpreted, chosen from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Plain,
    Markdown,
    Html,
    Json,
}

impl Format {
    /// `md`/`markdown`, `html`/`htm` and `json` (any case); everything else is plain text.
    pub(crate) fn from_extension(extension: &str) -> Format {
        match extension.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Format::Markdown,
            "html" | "htm" => Format::Html,
            "json" => Format::Json,
            _ => Format::Plain,
        }
    }
}

/// What one file yields once its format is understood.
#[derive(Debug)]
pub(crate) struct Extracted {
    pub(crate) text: String,
    pub(crate) title: Option<String>,
    pub(crate) published: Option<NaiveDate>,
}

pub(crate) fn extract(format: Format, decoded: String) -> Result<Extracted, SkipReason> {
    match format {
        Format::Plain => Ok(plain(decoded, false)),
        Format::Markdown => Ok(plain(decoded, true)),
        Format::Html => Ok(html(&decoded)),
        Format::Json => json(&decoded),
    }
}

// ---------------------------------------------------------------- titles

/// Titles longer than this many characters are shortened.
const TITLE_MAX_CHARS: usize = 300;
/// A shortened title has at most this many characters, the "…" included.
const TITLE_CUT_CHARS: usize = 200;

/// Trims and collapses whitespace; `None` when nothing is left.
///
/// A title longer than 300 characters is almost certainly a body paragraph
/// (the file has no title line), so it is cut at a word boundary to at most
/// 200 characters ending in "…": still recognisable in an alert, never a wall
/// of text.
fn tidy_title(raw: &str) -> Option<String> {
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    if collapsed.chars().count() <= TITLE_MAX_CHARS {
        return Some(collapsed);
    }
    let budget = TITLE_CUT_CHARS - 1; // room for the ellipsis
    let cut_at = collapsed
        .char_indices()
        .nth(budget)
        .map_or(collapsed.len(), |(index, _)| index);
    let head = &collapsed[..cut_at];
    let word_end = if collapsed[cut_at..].starts_with(' ') {
        cut_at
    } else {
        head.rfind(' ').unwrap_or(cut_at)
    };
    let kept = collapsed[..word_end].trim_end_matches([' ', ',', ';', ':', '-', '–', '—', '|']);
    let kept = if kept.is_empty() { head } else { kept };
    Some(format!("{kept}…"))
}

/// The title of a text file: its first usable line.
///
/// "Usable" means the line, once Markdown marks are removed, has at least one
/// letter or digit, so rulers (`---`, `* * *`) and lone bullets are passed
/// over. The first such line is used even when it is only a byline or a date
/// line ("by Staff | May 30, 2025 | Diplomacy", "Published on 2025 February
/// 24"): guessing a later line risks picking a sentence from the body, and the
/// alert carries the file name and date anyway.
fn first_line_title(text: &str, markdown: bool) -> Option<String> {
    text.lines().find_map(|line| {
        let cleaned = if markdown {
            strip_markdown(line)
        } else {
            line.trim()
        };
        if cleaned.chars().any(char::is_alphanumeric) {
            tidy_title(cleaned)
        } else {
            None
        }
    })
}

/// Removes heading marks (`## Title ##`) and emphasis wrapping the whole line
/// (`**Title**`, `_Title_`).
fn strip_markdown(line: &str) -> &str {
    let mut line = line.trim();
    if line.starts_with('#') {
        line = line.trim_start_matches('#').trim_start();
        let without_closing = line.trim_end_matches('#');
        if without_closing.ends_with(char::is_whitespace) || without_closing.is_empty() {
            line = without_closing.trim_end();
        }
    }
    let is_mark = |c: char| c == '*' || c == '_';
    let leading = line.len() - line.trim_start_matches(is_mark).len();
    let trailing = line.len() - line.trim_end_matches(is_mark).len();
    let wrap = leading.min(trailing);
    if wrap > 0 && line.len() > 2 * wrap {
        // The marks are ASCII, so these are char boundaries.
        line = line[wrap..line.len() - wrap].trim();
    }
    line
}

// ---------------------------------------------------------------- plain text and markdown

fn plain(text: String, markdown: bool) -> Extracted {
    let title = first_line_title(&text, markdown);
    let published = find_published(&text);
    Extracted {
        text,
        title,
        published,
    }
}

// ---------------------------------------------------------------- html

/// Elements whose whole content is hidden from the reader.
const HIDDEN_ELEMENTS: &[&str] = &["script", "style", "noscript", "template"];

/// Elements that start or end a line; their tags become "\n" + spaces.
const BLOCK_ELEMENTS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "title",
    "tr",
    "ul",
    "tbody",
];

/// `<meta>` names, properties or itemprops that carry the publication date.
const META_DATE_KEYS: &[&str] = &[
    "article:published_time",
    "og:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish-date",
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.created",
    "sailthru.date",
    "parsely-pub-date",
];

/// An HTML page as text of the same byte length, plus what the scan noticed.
#[derive(Debug)]
struct HtmlScan {
    /// Same byte length as the source; every visible character at its source offset.
    text: String,
    /// Byte range in the source of the first `<title>`'s content.
    title: Option<Range<usize>>,
    /// Byte range in the source of the first `<h1>`'s content.
    h1: Option<Range<usize>>,
    /// Date of the first `<meta>` publication-date tag that parses.
    meta_published: Option<NaiveDate>,
}

/// Markup starting at a `<`.
enum Markup {
    /// `<!-- ... -->`, `<!DOCTYPE ...>`, `<?xml ...?>`: blanked.
    Ignored { end: usize },
    Tag {
        end: usize,
        name: String,
        closing: bool,
    },
}

/// The title is the first `<title>`, else the first `<h1>`, else the first
/// usable line of the visible text. The date comes from a publication-date
/// `<meta>` tag, else from the first lines of the visible text with blank
/// space removed (a long `<head>` would otherwise use up the 2,000-byte window).
fn html(source: &str) -> Extracted {
    let scan = scan_html(source);
    let visible_lines = compact_lines(&scan.text);
    let fragment_title = |range: &Option<Range<usize>>| {
        range
            .as_ref()
            .and_then(|range| source.get(range.clone()))
            .and_then(|raw| tidy_title(&inline_text(raw)))
    };
    let title = fragment_title(&scan.title)
        .or_else(|| fragment_title(&scan.h1))
        .or_else(|| first_line_title(&visible_lines, false));
    let published = scan
        .meta_published
        .or_else(|| find_published(&visible_lines));
    Extracted {
        text: scan.text,
        title,
        published,
    }
}

/// Replaces markup by whitespace of the same byte length and character
/// references by their character padded with spaces, so that `text.len() ==
/// source.len()` and every visible character keeps its byte offset.
fn scan_html(source: &str) -> HtmlScan {
    let bytes = source.as_bytes();
    let mut text = String::with_capacity(source.len());
    // Everything before `copied` is already in `text`. Every index used to
    // slice `source` is at an ASCII byte (`<`, `>`, `&`, `;`) or at the end,
    // hence a char boundary.
    let mut copied = 0;
    let mut at = 0;
    let last_gt = bytes.iter().rposition(|&byte| byte == b'>');
    let mut title = None;
    let mut title_searched = false;
    let mut h1_start = None;
    let mut h1 = None;
    let mut meta_published = None;

    while at < bytes.len() {
        match bytes[at] {
            b'<' => {
                let Some(markup) = parse_markup(bytes, at, last_gt) else {
                    at += 1; // a literal "<", as in "3 < 4"
                    continue;
                };
                text.push_str(&source[copied..at]);
                let end = match markup {
                    Markup::Ignored { end } => {
                        push_spaces(&mut text, end - at);
                        end
                    }
                    Markup::Tag { end, name, closing } => {
                        let name = name.as_str();
                        if !closing && HIDDEN_ELEMENTS.contains(&name) {
                            let hidden_end = end_of_element(bytes, end, name);
                            push_spaces(&mut text, hidden_end - at);
                            hidden_end
                        } else {
                            if BLOCK_ELEMENTS.contains(&name) {
                                text.push('\n');
                                push_spaces(&mut text, end - at - 1);
                            } else {
                                push_spaces(&mut text, end - at);
                            }
                            match (name, closing) {
                                ("title", false) if !title_searched => {
                                    title_searched = true;
                                    title = find_closing_tag(bytes, end, "title")
                                        .map(|close| end..close);
                                }
                                ("h1", false) if h1_start.is_none() => h1_start = Some(end),
                                ("h1", true) if h1.is_none() => {
                                    h1 = h1_start.map(|start| start..at)
                                }
                                ("meta", false) if meta_published.is_none() => {
                                    meta_published = meta_date(&source[at..end]);
                                }
                                _ => {}
                            }
                            end
                        }
                    }
                };
                at = end;
                copied = end;
            }
            b'&' => {
                let Some((character, length)) = decode_reference(&source[at..]) else {
                    at += 1;
                    continue;
                };
                text.push_str(&source[copied..at]);
                text.push(character);
                push_spaces(&mut text, length - character.len_utf8());
                at += length;
                copied = at;
            }
            _ => at += 1,
        }
    }
    text.push_str(&source[copied..]);
    debug_assert_eq!(text.len(), source.len());
    HtmlScan {
        text,
        title,
        h1,
        meta_published,
    }
}

fn push_spaces(text: &mut String, count: usize) {
    text.extend(std::iter::repeat_n(' ', count));
}

/// Recognises the markup starting at `bytes[at] == b'<'`; `None` when the
/// `<` is plain text (not followed by a tag name, or never closed).
///
/// `last_gt` is the index of the last `>` in `bytes`: a `<` after it cannot
/// start a tag, which keeps the scan linear on text full of `<` (without
/// it, every `<` would be followed to the end of the file).
fn parse_markup(bytes: &[u8], at: usize, last_gt: Option<usize>) -> Option<Markup> {
    let rest = bytes.get(at..)?;
    if rest.starts_with(b"<!--") {
        let end = find_from(bytes, at + 4, b"-->").map_or(bytes.len(), |close| close + 3);
        return Some(Markup::Ignored { end });
    }
    if last_gt.is_none_or(|last_gt| last_gt < at) {
        return None;
    }
    match rest.get(1) {
        Some(b'!' | b'?') => {
            let close = find_from(bytes, at + 2, b">")?;
            Some(Markup::Ignored { end: close + 1 })
        }
        Some(b'/') => {
            let (name, end) = parse_tag(bytes, at + 2)?;
            Some(Markup::Tag {
                end,
                name,
                closing: true,
            })
        }
        Some(_) => {
            let (name, end) = parse_tag(bytes, at + 1)?;
            Some(Markup::Tag {
                end,
                name,
                closing: false,
            })
        }
        None => None,
    }
}

/// Reads a tag name starting at `name_start` and finds the `>` ending the
/// tag, skipping quoted attribute values (a quote never closed is ignored).
/// Returns the lowercased name and the index just past the `>`.
fn parse_tag(bytes: &[u8], name_start: usize) -> Option<(String, usize)> {
    if !bytes.get(name_start)?.is_ascii_alphabetic() {
        return None;
    }
    let name_length = bytes[name_start..]
        .iter()
        .take_while(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b':' | b'_'))
        .count();
    let name_end = name_start + name_length;
    let name = String::from_utf8_lossy(&bytes[name_start..name_end]).to_ascii_lowercase();

    let mut quote = None;
    let mut after_equals = false;
    for (index, &byte) in bytes.iter().enumerate().skip(name_end) {
        if let Some(open) = quote {
            if byte == open {
                quote = None;
            }
            continue;
        }
        match byte {
            b'>' => return Some((name, index + 1)),
            b'=' => after_equals = true,
            b'"' | b'\'' if after_equals => {
                quote = Some(byte);
                after_equals = false;
            }
            byte if byte.is_ascii_whitespace() => {}
            _ => after_equals = false,
        }
    }
    // Only an unclosed quote gets here: end the tag at the first `>` instead.
    find_from(bytes, name_end, b">").map(|gt| (name, gt + 1))
}

/// Index just past the closing tag of a hidden element opened before
/// `content_start`, or the end of the source when it is never closed.
fn end_of_element(bytes: &[u8], content_start: usize, name: &str) -> usize {
    find_closing_tag(bytes, content_start, name).map_or(bytes.len(), |close| {
        find_from(bytes, close, b">").map_or(bytes.len(), |gt| gt + 1)
    })
}

/// Index of the first `</name` (any case, followed by `>`, `/`, whitespace or
/// the end) at or after `from`.
fn find_closing_tag(bytes: &[u8], from: usize, name: &str) -> Option<usize> {
    let mut search_from = from;
    while let Some(index) = find_from(bytes, search_from, b"</") {
        let name_start = index + 2;
        let name_end = name_start + name.len();
        let name_matches = bytes
            .get(name_start..name_end)
            .is_some_and(|candidate| candidate.eq_ignore_ascii_case(name.as_bytes()));
        let boundary = bytes
            .get(name_end)
            .is_none_or(|byte| matches!(byte, b'>' | b'/') || byte.is_ascii_whitespace());
        if name_matches && boundary {
            return Some(index);
        }
        search_from = name_start;
    }
    None
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|index| from + index)
}

static META_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:property|name|itemprop)\s*=\s*["']?([^"'\s>]+)"#)
        .expect("built-in meta pattern is valid")
});
static META_CONTENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\bcontent\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#)
        .expect("built-in meta pattern is valid")
});

/// The date of a `<meta property="article:published_time" content="...">`-like tag.
fn meta_date(tag: &str) -> Option<NaiveDate> {
    let key = META_KEY
        .captures(tag)?
        .get(1)?
        .as_str()
        .to_ascii_lowercase();
    if !META_DATE_KEYS.contains(&key.as_str()) {
        return None;
    }
    let content = META_CONTENT.captures(tag)?;
    let value = content
        .get(1)
        .or_else(|| content.get(2))
        .or_else(|| content.get(3))?;
    find_published(value.as_str())
}

/// Text of an HTML fragment for display: tags dropped, references decoded
/// without padding, so "Haftar&rsquo;s" reads "Haftar’s".
fn inline_text(fragment: &str) -> String {
    let bytes = fragment.as_bytes();
    let last_gt = bytes.iter().rposition(|&byte| byte == b'>');
    let mut out = String::with_capacity(fragment.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let replacement = match bytes[at] {
            b'<' => parse_markup(bytes, at, last_gt).map(|markup| match markup {
                Markup::Ignored { end } | Markup::Tag { end, .. } => (' ', end - at),
            }),
            b'&' => decode_reference(&fragment[at..]),
            _ => None,
        };
        match replacement {
            Some((character, length)) => {
                out.push_str(&fragment[copied..at]);
                out.push(character);
                at += length;
                copied = at;
            }
            None => at += 1,
        }
    }
    out.push_str(&fragment[copied..]);
    out
}

/// The visible lines of a text, whitespace collapsed, blank lines dropped.
fn compact_lines(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes the character reference at the start of `text` (which starts
/// with `&`): the character and the reference's byte length. Only references
/// ending in `;` are decoded; unknown names are left as written. The decoded
/// character is never longer than the reference.
fn decode_reference(text: &str) -> Option<(char, usize)> {
    const MAX_NAME: usize = 32;
    let bytes = text.as_bytes();
    let (character, length) = if bytes.get(1) == Some(&b'#') {
        let (digits_start, radix, max_digits) = match bytes.get(2) {
            Some(b'x' | b'X') => (3, 16, 6),
            _ => (2, 10, 7),
        };
        let digits = bytes.get(digits_start..).unwrap_or_default();
        let digit_count = digits
            .iter()
            .take(max_digits + 1)
            .take_while(|byte| char::from(**byte).is_digit(radix))
            .count();
        if digit_count == 0 || digit_count > max_digits {
            return None;
        }
        let end = digits_start + digit_count;
        if bytes.get(end) != Some(&b';') {
            return None;
        }
        let value = u32::from_str_radix(text.get(digits_start..end)?, radix).ok()?;
        (numeric_reference(value), end + 1)
    } else {
        let name_length = bytes
            .get(1..)
            .unwrap_or_default()
            .iter()
            .take(MAX_NAME + 1)
            .take_while(|byte| byte.is_ascii_alphanumeric())
            .count();
        if name_length == 0 || name_length > MAX_NAME || bytes.get(1 + name_length) != Some(&b';') {
            return None;
        }
        (
            named_reference(text.get(1..1 + name_length)?)?,
            name_length + 2,
        )
    };
    (character.len_utf8() <= length).then_some((character, length))
}

/// The character of `&#N;`, following the HTML rules: 128-159 are read as
/// Windows-1252 (`&#146;` is ’), invalid code points give U+FFFD.
fn numeric_reference(value: u32) -> char {
    const REPLACEMENT: char = '\u{FFFD}';
    match value {
        0 => REPLACEMENT,
        0x80..=0x9F => u8::try_from(value)
            .ok()
            .and_then(|byte| {
                WINDOWS_1252
                    .decode_without_bom_handling(&[byte])
                    .0
                    .chars()
                    .next()
            })
            .unwrap_or(REPLACEMENT),
        _ => char::from_u32(value).unwrap_or(REPLACEMENT),
    }
}

/// The named references found in news pages (names are case-sensitive, as in HTML).
fn named_reference(name: &str) -> Option<char> {
    let character = match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "thinsp" => '\u{2009}',
        "zwnj" => '\u{200C}',
        "zwj" => '\u{200D}',
        "shy" => '\u{AD}',
        "rsquo" => '’',
        "lsquo" => '‘',
        "sbquo" => '‚',
        "rdquo" => '”',
        "ldquo" => '“',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "prime" => '′',
        "Prime" => '″',
        "mdash" => '—',
        "ndash" => '–',
        "minus" => '−',
        "hyphen" | "dash" => '‐',
        "hellip" => '…',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sect" => '§',
        "para" => '¶',
        "dagger" => '†',
        "Dagger" => '‡',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "curren" => '¤',
        "iexcl" => '¡',
        "iquest" => '¿',
        "ordf" => 'ª',
        "ordm" => 'º',
        "acute" => '´',
        "uml" => '¨',
        "aacute" => 'á',
        "Aacute" => 'Á',
        "agrave" => 'à',
        "Agrave" => 'À',
        "acirc" => 'â',
        "Acirc" => 'Â',
        "atilde" => 'ã',
        "auml" => 'ä',
        "Auml" => 'Ä',
        "aring" => 'å',
        "aelig" => 'æ',
        "ccedil" => 'ç',
        "Ccedil" => 'Ç',
        "eacute" => 'é',
        "Eacute" => 'É',
        "egrave" => 'è',
        "Egrave" => 'È',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "iacute" => 'í',
        "Iacute" => 'Í',
        "igrave" => 'ì',
        "icirc" => 'î',
        "iuml" => 'ï',
        "ntilde" => 'ñ',
        "Ntilde" => 'Ñ',
        "oacute" => 'ó',
        "Oacute" => 'Ó',
        "ograve" => 'ò',
        "ocirc" => 'ô',
        "otilde" => 'õ',
        "ouml" => 'ö',
        "Ouml" => 'Ö',
        "oslash" => 'ø',
        "szlig" => 'ß',
        "uacute" => 'ú',
        "Uacute" => 'Ú',
        "ugrave" => 'ù',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "Uuml" => 'Ü',
        "yacute" => 'ý',
        "yuml" => 'ÿ',
        _ => return None,
    };
    Some(character)
}

// ---------------------------------------------------------------- json

/// A `.json` article: an object with a string `body` or `text`, and
/// optionally `title`, `published`, `url`, `source` (other fields are
/// ignored, so exports from other tools load as they are). The text is the
/// title, a blank line and the body, so match offsets refer to that text,
/// not to the file. `body` wins over `text` unless it is blank. Without a
/// `title` field the title is the body's first usable line.
fn json(source: &str) -> Result<Extracted, SkipReason> {
    let value: Value = serde_json::from_str(source)
        .map_err(|error| SkipReason::Malformed(format!("invalid json article: {error}")))?;
    let Some(object) = value.as_object() else {
        return Err(SkipReason::Malformed(
            "json article is not an object".to_owned(),
        ));
    };

    const BODY_FIELDS: [&str; 2] = ["body", "text"];
    let bodies: Vec<&str> = BODY_FIELDS
        .iter()
        .filter_map(|field| object.get(*field).and_then(Value::as_str))
        .collect();
    let body = match bodies
        .iter()
        .find(|body| !body.trim().is_empty())
        .or(bodies.first())
    {
        Some(body) => *body,
        None => {
            let message = match BODY_FIELDS
                .iter()
                .find(|field| object.get(**field).is_some_and(|value| !value.is_null()))
            {
                Some(field) => format!("json article field \"{field}\" is not a string"),
                None => "json article has no \"body\" or \"text\" field".to_owned(),
            };
            return Err(SkipReason::Malformed(message));
        }
    };

    let title_field = object
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|title| !title.is_empty());
    let (text, title) = match title_field {
        Some(title) => (format!("{title}\n\n{body}"), tidy_title(title)),
        None => (body.to_owned(), first_line_title(body, false)),
    };
    let published = object
        .get("published")
        .and_then(Value::as_str)
        .and_then(find_published)
        .or_else(|| find_published(&text));
    Ok(Extracted {
        text,
        title,
        published,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year, month, day)
    }

    fn extracted(format: Format, source: &str) -> Extracted {
        match extract(format, source.to_owned()) {
            Ok(extracted) => extracted,
            Err(reason) => panic!("expected an article, got skip: {reason}"),
        }
    }

    /// Every non-whitespace character of the text sits at the offset of the
    /// same character in the source, or at the `&` of the reference it decodes.
    fn assert_offsets_preserved(source: &str, text: &str) {
        assert_eq!(
            text.len(),
            source.len(),
            "byte length differs for {source:?}"
        );
        for (offset, character) in text.char_indices() {
            if character.is_whitespace() {
                continue;
            }
            let same = source
                .get(offset..)
                .is_some_and(|rest| rest.starts_with(character));
            let reference = source.as_bytes().get(offset) == Some(&b'&');
            assert!(
                same || reference,
                "{character:?} at {offset} is not in the source there: {source:?} -> {text:?}"
            );
        }
    }

    // ------------------------------------------------------------ titles

    #[test]
    fn plain_title_is_the_first_usable_line() {
        let cases = [
            (
                "leading blank line",
                "\n\nHaftar visits Minsk\n\nBody.",
                Some("Haftar visits Minsk"),
            ),
            (
                "whitespace collapsed",
                "  Haftar \t visits   Minsk  \nBody",
                Some("Haftar visits Minsk"),
            ),
            (
                "crlf",
                "\r\nTobruk air base\r\nBody",
                Some("Tobruk air base"),
            ),
            (
                "byline line used as is",
                "by | May 30, 2025 | Diplomacy, Libya\n\nBody",
                Some("by | May 30, 2025 | Diplomacy, Libya"),
            ),
            (
                "date line used as is",
                "Published on 2025 February 24, Monday\nBody",
                Some("Published on 2025 February 24, Monday"),
            ),
            (
                "ruler skipped",
                "-----\n* * *\nMinsk talks\n",
                Some("Minsk talks"),
            ),
            (
                "markdown marks kept in plain text",
                "# Minsk\n",
                Some("# Minsk"),
            ),
            ("nothing usable", "---\n•\n", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                extracted(Format::Plain, text).title.as_deref(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn markdown_title_drops_heading_and_emphasis_marks() {
        let cases = [
            ("# Haftar in Minsk", "Haftar in Minsk"),
            ("### Haftar in Minsk ###", "Haftar in Minsk"),
            ("## **Tor-M2 seen in Benghazi**", "Tor-M2 seen in Benghazi"),
            ("__Tobruk__", "Tobruk"),
            ("*Tobruk*", "Tobruk"),
            ("\n---\n\n# Title after a ruler", "Title after a ruler"),
            ("#   \n## Second heading", "Second heading"),
            ("* bullet stays a bullet", "* bullet stays a bullet"),
            ("Model_9K332_", "Model_9K332_"),
            ("# C# in Minsk", "C# in Minsk"),
        ];
        for (text, want) in cases {
            assert_eq!(
                extracted(Format::Markdown, text).title.as_deref(),
                Some(want),
                "{text:?}"
            );
        }
    }

    #[test]
    fn body_paragraph_without_title_is_cut_at_a_word_boundary() {
        let paragraph = "Field Marshal Khalifa Haftar arrived in Minsk with his sons ".repeat(8);
        assert!(paragraph.chars().count() > TITLE_MAX_CHARS);
        let title = extracted(Format::Plain, &format!("\n{paragraph}\n"))
            .title
            .unwrap_or_default();
        assert!(title.chars().count() <= TITLE_CUT_CHARS, "{title:?}");
        assert!(title.chars().count() > TITLE_CUT_CHARS / 2, "{title:?}");
        let kept = title
            .strip_suffix('…')
            .unwrap_or_else(|| panic!("no ellipsis: {title:?}"));
        assert!(
            paragraph.starts_with(&format!("{kept} ")),
            "not cut at a word boundary: {title:?}"
        );
    }

    #[test]
    fn lines_up_to_three_hundred_chars_are_kept_whole() {
        let line = "x".repeat(TITLE_MAX_CHARS);
        assert_eq!(tidy_title(&line), Some(line.clone()));
        let too_long = "x".repeat(TITLE_MAX_CHARS + 1);
        // One giant word: cut hard rather than return nothing.
        assert_eq!(
            tidy_title(&too_long),
            Some(format!("{}…", "x".repeat(TITLE_CUT_CHARS - 1)))
        );
    }

    #[test]
    fn plain_text_is_kept_byte_for_byte() {
        let source = "\r\nHaftar\u{2019}s visit\r\n\u{a0}• bullet\r\n";
        assert_eq!(extracted(Format::Plain, source).text, source);
        assert_eq!(extracted(Format::Markdown, source).text, source);
    }

    #[test]
    fn plain_published_comes_from_the_first_lines() {
        let article = extracted(
            Format::Plain,
            "Haftar in Minsk\nby Staff | May 30, 2025 | Diplomacy\n\nBody",
        );
        assert_eq!(article.published, ymd(2025, 5, 30));
    }

    #[test]
    fn extension_selects_the_format() {
        let cases = [
            ("txt", Format::Plain),
            ("md", Format::Markdown),
            ("markdown", Format::Markdown),
            ("html", Format::Html),
            ("htm", Format::Html),
            ("HTML", Format::Html),
            ("json", Format::Json),
            ("log", Format::Plain),
            ("", Format::Plain),
        ];
        for (extension, want) in cases {
            assert_eq!(Format::from_extension(extension), want, "{extension:?}");
        }
    }

    // ------------------------------------------------------------ html

    const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Haftar&rsquo;s  visit to
  Minsk | Libya Review</title>
<style>body { font-family: "Tobruk Sans"; } p > a { color: red; }</style>
<script type="text/javascript">var x = "<p>Tobruk</p>"; if (a < b && c > d) {}</script>
</head>
<body>
<!-- <p>Tobruk hidden in a comment</p> -->
<noscript><p>Enable JavaScript for Tobruk</p></noscript>
<h1 class="headline">Haftar in <em>Minsk</em></h1>
<p>On 18 February 2025 Field Marshal Haftar&rsquo;s delegation discussed the
<a href="/tags/tobruk" title="a > b">Tobruk</a> air base&nbsp;&mdash; with Лукашенко &amp; Tertel.</p>
<ul><li>MAZ buses</li><li>Tor&#8209;M2 &#x2019;quoted&#8217;</li></ul>
<template><p>Tobruk template</p></template>
</body>
</html>
"#;

    #[test]
    fn html_text_keeps_every_visible_character_at_its_offset() {
        let samples = [
            PAGE,
            "<p>plain</p>",
            "no markup at all, 3 < 4 and 5 > 2",
            "<div data-x='it&apos;s > fine'>Минск حفتر</div>",
            "<p>unclosed <b>bold",
            "<SCRIPT>document.write('Tobruk')</SCRIPT>Tobruk",
            "<script>never closed Tobruk",
            "<!-- never closed comment",
            "a &bogus; b &amp c &#; d &#xZZ; e &#99999999; f &#0; g",
            "<p>x</p\n><br/><img src=\"a.png\" alt=\"Tobruk\">",
            "<",
            "&",
            "<<>>&&;;",
        ];
        for source in samples {
            let text = scan_html(source).text;
            assert_offsets_preserved(source, &text);
        }
    }

    /// Guards against quadratic scanning: each input below took minutes when
    /// every `<` was followed to the end of the file; linear, it takes milliseconds.
    #[test]
    fn html_scan_stays_fast_on_pathological_markup() {
        let cases = [
            "<a".repeat(100_000),
            format!("{}>", "<a".repeat(100_000)),
            "<title>".repeat(50_000),
            "<!x".repeat(100_000),
            format!("{}>", "<a x=\"".repeat(50_000)),
            "<h1>".repeat(50_000),
            format!("<title>{}", "<b>x".repeat(50_000)),
        ];
        for source in &cases {
            let scan = scan_html(source);
            assert_eq!(scan.text.len(), source.len());
            let _ = html(source);
        }
    }

    #[test]
    fn html_unclosed_attribute_quote_ends_the_tag_at_the_next_bracket() {
        let source = r#"<p class="lead>Tobruk</p>"#;
        let text = scan_html(source).text;
        assert_offsets_preserved(source, &text);
        assert_eq!(text.trim(), "Tobruk");
    }

    #[test]
    fn html_tobruk_is_at_the_same_offset_as_in_the_file() {
        let text = extracted(Format::Html, PAGE).text;
        let visible_in_file = PAGE.find(">Tobruk</a>").map(|index| index + 1);
        assert!(visible_in_file.is_some());
        assert_eq!(
            text.find("Tobruk"),
            visible_in_file,
            "the first Tobruk in the text must be the visible one"
        );
        assert_eq!(
            text.matches("Tobruk").count(),
            1,
            "hidden Tobruk mentions leaked: {text}"
        );
    }

    #[test]
    fn html_hidden_content_is_blanked() {
        let text = extracted(Format::Html, PAGE).text;
        for hidden in [
            "var x",
            "font-family",
            "Enable JavaScript",
            "hidden in a comment",
            "template",
            "href",
            "headline",
            "DOCTYPE",
            "charset",
        ] {
            assert!(!text.contains(hidden), "{hidden:?} leaked into {text}");
        }
        for visible in ["Field Marshal Haftar", "MAZ buses", "Лукашенко", "Minsk"] {
            assert!(text.contains(visible), "{visible:?} missing from {text}");
        }
    }

    #[test]
    fn html_references_are_decoded_at_their_offset() {
        let cases = [
            ("&amp;", '&'),
            ("&nbsp;", '\u{A0}'),
            ("&#8217;", '’'),
            ("&#x2019;", '’'),
            ("&#X2019;", '’'),
            ("&rsquo;", '’'),
            ("&mdash;", '—'),
            ("&ndash;", '–'),
            ("&quot;", '"'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&apos;", '\''),
            ("&hellip;", '…'),
            ("&ldquo;", '“'),
            ("&rdquo;", '”'),
            ("&lsquo;", '‘'),
            ("&eacute;", 'é'),
            ("&#146;", '’'),
            ("&#128512;", '😀'),
            ("&#0;", '\u{FFFD}'),
        ];
        for (reference, want) in cases {
            let source = format!("<p>Haftar{reference}s</p>");
            let text = scan_html(&source).text;
            let offset = "<p>Haftar".len();
            let padding = reference.len() - want.len_utf8();
            let expected = format!("{want}{}s", " ".repeat(padding));
            assert_eq!(
                text.get(offset..offset + expected.len()),
                Some(expected.as_str()),
                "{reference}"
            );
            assert_eq!(text.len(), source.len(), "{reference}");
        }
    }

    #[test]
    fn html_attribute_values_may_contain_angle_brackets() {
        let cases = [
            r#"<a title="a > b" href="/x">Tobruk</a>"#,
            r#"<a title='a > b' href='/x'>Tobruk</a>"#,
            r#"<img alt = "x>y" src=a.png><span data-q='it"s > fine'>Tobruk</span>"#,
        ];
        for source in cases {
            assert_eq!(scan_html(source).text.trim(), "Tobruk", "{source}");
        }
    }

    #[test]
    fn html_rsquo_in_the_page_is_decoded_at_its_offset() {
        let text = extracted(Format::Html, PAGE).text;
        let offset = PAGE
            .find("Haftar&rsquo;s delegation")
            .map(|index| index + "Haftar".len());
        let offset = offset.unwrap_or_else(|| panic!("sample changed"));
        assert_eq!(text.get(offset..offset + "’    s".len()), Some("’    s"));
    }

    #[test]
    fn html_unknown_or_unterminated_references_stay_as_written() {
        for source in [
            "AT&T",
            "a &bogus; b",
            "a &amp b",
            "&#;",
            "&#xZZ;",
            "&#99999999;",
            "&",
        ] {
            assert_eq!(scan_html(source).text, source);
        }
    }

    #[test]
    fn html_block_tags_break_lines_and_inline_tags_do_not() {
        let text = extracted(
            Format::Html,
            "<div><p>One</p><p>Two<br>Three</p></div><b>Four</b><i>Five</i>",
        )
        .text;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        assert_eq!(lines, ["One", "Two", "Three", "Four       Five"]);
    }

    #[test]
    fn html_title_from_title_then_h1_then_first_line() {
        let cases = [
            (
                "title element, decoded and collapsed",
                PAGE,
                Some("Haftar’s visit to Minsk | Libya Review"),
            ),
            (
                "first title wins",
                "<title>One</title><title>Two</title>",
                Some("One"),
            ),
            (
                "h1 when no title",
                "<body><h1>Tor-M2 <em>seen</em> in Benghazi</h1><h1>Later</h1></body>",
                Some("Tor-M2 seen in Benghazi"),
            ),
            (
                "h1 when title is blank",
                "<title>  </title><h1>Tobruk</h1>",
                Some("Tobruk"),
            ),
            (
                "first line when neither",
                "<html><body>\n\n<p>  Minsk   talks </p><p>Body</p>",
                Some("Minsk talks"),
            ),
            (
                "uppercase tags",
                "<TITLE>Benghazi parade</TITLE>",
                Some("Benghazi parade"),
            ),
        ];
        for (name, source, want) in cases {
            assert_eq!(
                extracted(Format::Html, source).title.as_deref(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn html_published_from_meta_then_visible_text() {
        let meta = r#"<head><meta property="article:published_time" content="2025-02-18T10:00:00Z"></head><p>October 21, 2025</p>"#;
        assert_eq!(extracted(Format::Html, meta).published, ymd(2025, 2, 18));

        let itemprop =
            r#"<meta content='May 30, 2025' itemprop="datePublished"><p>October 21, 2025</p>"#;
        assert_eq!(
            extracted(Format::Html, itemprop).published,
            ymd(2025, 5, 30)
        );

        let other_meta = r#"<meta name="description" content="2025-01-01"><p>October 21, 2025</p>"#;
        assert_eq!(
            extracted(Format::Html, other_meta).published,
            ymd(2025, 10, 21)
        );

        // A long <head> is blank space in the text, not a reason to miss the date.
        let long_head = format!(
            "<head><style>{}</style></head><body><p>On 18 February 2025</p>",
            "a{b:c}\n".repeat(800)
        );
        assert!(long_head.len() > 5_000);
        assert_eq!(
            extracted(Format::Html, &long_head).published,
            ymd(2025, 2, 18)
        );
    }

    // ------------------------------------------------------------ json

    #[test]
    fn json_articles_are_assembled_from_their_fields() {
        let with_title = r#"{"title": "  Haftar in   Minsk ", "body": "Talks on 18 February 2025.", "url": "https://example.org/a", "source": "Libya Review", "author": "x"}"#;
        let article = extracted(Format::Json, with_title);
        assert_eq!(
            article.text,
            "Haftar in   Minsk\n\nTalks on 18 February 2025."
        );
        assert_eq!(article.title.as_deref(), Some("Haftar in Minsk"));
        assert_eq!(article.published, ymd(2025, 2, 18));

        let text_only = r#"{"text": "Tobruk air base\nRussia and Belarus"}"#;
        let article = extracted(Format::Json, text_only);
        assert_eq!(article.text, "Tobruk air base\nRussia and Belarus");
        assert_eq!(article.title.as_deref(), Some("Tobruk air base"));

        let blank_body = r#"{"body": "  ", "text": "Minsk"}"#;
        assert_eq!(extracted(Format::Json, blank_body).text, "Minsk");
    }

    #[test]
    fn json_published_field_wins_and_falls_back_to_the_text() {
        let cases = [
            (
                r#"{"body": "On 18 February 2025", "published": "2025-05-30"}"#,
                ymd(2025, 5, 30),
            ),
            (
                r#"{"body": "x", "published": "2025-02-18T10:00:00Z"}"#,
                ymd(2025, 2, 18),
            ),
            (
                r#"{"body": "x", "published": "October 21, 2025"}"#,
                ymd(2025, 10, 21),
            ),
            (
                r#"{"body": "x", "published": "18.02.2025"}"#,
                ymd(2025, 2, 18),
            ),
            (
                r#"{"body": "On 18 February 2025", "published": "soon"}"#,
                ymd(2025, 2, 18),
            ),
            (
                r#"{"body": "On 18 February 2025", "published": 1739872800}"#,
                ymd(2025, 2, 18),
            ),
            (r#"{"body": "no date"}"#, None),
        ];
        for (source, want) in cases {
            assert_eq!(extracted(Format::Json, source).published, want, "{source}");
        }
    }

    #[test]
    fn json_that_is_not_an_article_is_malformed() {
        const NO_BODY: &str = "json article has no \"body\" or \"text\" field";
        const INVALID: &str = "invalid json article: ";
        // (source, expected message, whether the message may go on after it)
        let cases = [
            (r#"{"title": "Only a title"}"#, NO_BODY, false),
            (r#"{"title": "t", "body": null}"#, NO_BODY, false),
            (
                r#"{"body": 42}"#,
                "json article field \"body\" is not a string",
                false,
            ),
            (
                r#"{"text": ["a"]}"#,
                "json article field \"text\" is not a string",
                false,
            ),
            (r#"["body"]"#, "json article is not an object", false),
            (r#"{"body": "unterminated"#, INVALID, true),
            ("Haftar in Minsk", INVALID, true),
        ];
        for (source, want, is_prefix) in cases {
            match extract(Format::Json, source.to_owned()) {
                Err(SkipReason::Malformed(message)) => {
                    let ok = if is_prefix {
                        message.starts_with(want)
                    } else {
                        message == want
                    };
                    assert!(ok, "{source}: got message {message:?}, want {want:?}");
                }
                Err(other) => panic!("{source}: expected malformed, got {other:?}"),
                Ok(article) => panic!("{source}: expected malformed, got {:?}", article.text),
            }
        }
    }
}
