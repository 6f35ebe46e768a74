//! The alert's JSON, written directly: byte for byte what
//! `serde_json::to_string` gives for [`Alert`] (the tests hold the two
//! together), in half the instructions.
//!
//! Every alert is serialised once for its deliveries, and once more by
//! `newswatch test --json`. An alert is ~900 bytes, mostly its snippet and
//! ids, and serde_json escapes strings one byte at a time: ~11,000
//! instructions an alert, a fifth of what `newswatch test` does per
//! article at 10,000 rules (callgrind). This looks eight bytes at a time
//! for the few that need escaping: ~5,600. Reading alerts back (the sinks
//! parse stored payloads) stays with serde.

use std::sync::Arc;

use crate::alert::payload::{Alert, ArticleRef, MatchSpan};

/// The JSON of the article last written, for the next alert about it: the
/// alerts of one article share its [`ArticleRef`] (at 10,000 rules an
/// article fires ~40 rules, and its id, path and title were a fifth of
/// writing each alert).
#[derive(Debug, Default)]
pub struct ArticleJson {
    /// Held, so that the same address is the same article.
    article: Option<Arc<ArticleRef>>,
    json: String,
}

impl ArticleJson {
    /// `article` as JSON, written anew only when it is not the last one.
    fn of(&mut self, article: &Arc<ArticleRef>) -> &str {
        let known = self
            .article
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, article));
        if !known {
            self.json.clear();
            push_article(&mut self.json, article);
            self.article = Some(Arc::clone(article));
        }
        &self.json
    }
}

impl Alert {
    /// The alert as compact JSON: the webhook body, the file sink's line
    /// and the stored payload.
    pub fn to_json(&self) -> String {
        self.to_json_sharing(&mut ArticleJson::default())
    }

    /// [`Alert::to_json`], taking the article's JSON from `article_json`
    /// (see [`Alert::write_json_sharing`]).
    pub fn to_json_sharing(&self, article_json: &mut ArticleJson) -> String {
        let mut out = String::with_capacity(1024);
        self.write_json_sharing(&mut out, article_json);
        out
    }

    /// Appends [`Alert::to_json`] to `out`.
    pub fn write_json(&self, out: &mut String) {
        self.write_json_sharing(out, &mut ArticleJson::default());
    }

    /// [`Alert::write_json`], taking the article's JSON from `article_json`
    /// when the alert before was about the same article.
    pub fn write_json_sharing(&self, out: &mut String, article_json: &mut ArticleJson) {
        // Destructured in full: a new field does not compile until it is
        // written here too.
        let Alert {
            id,
            rule,
            description,
            severity,
            article,
            entities,
            matches,
            snippet,
            fired_at,
            duplicate_of,
            articles,
        } = self;
        out.push_str("{\"id\":");
        push_str(out, id);
        out.push_str(",\"rule\":");
        push_str(out, rule);
        out.push_str(",\"description\":");
        push_str(out, description);
        out.push_str(",\"severity\":\"");
        out.push_str(severity.as_str());
        out.push_str("\",\"article\":");
        out.push_str(article_json.of(article));
        out.push_str(",\"entities\":[");
        for (index, entity) in entities.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_str(out, entity);
        }
        out.push_str("],\"matches\":[");
        for (index, found) in matches.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_match(out, found);
        }
        out.push_str("],\"snippet\":");
        push_str(out, snippet);
        out.push_str(",\"fired_at\":");
        push_str(out, fired_at);
        if let Some(duplicate_of) = duplicate_of {
            out.push_str(",\"duplicate_of\":");
            push_str(out, duplicate_of);
        }
        if !articles.is_empty() {
            out.push_str(",\"articles\":[");
            for (index, article) in articles.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_article(out, article);
            }
            out.push(']');
        }
        out.push('}');
    }
}

fn push_article(out: &mut String, article: &ArticleRef) {
    let ArticleRef {
        id,
        path,
        title,
        published,
    } = article;
    out.push_str("{\"id\":");
    push_str(out, id);
    out.push_str(",\"path\":");
    push_str(out, path);
    out.push_str(",\"title\":");
    push_option(out, title);
    out.push_str(",\"published\":");
    push_option(out, published);
    out.push('}');
}

fn push_match(out: &mut String, found: &MatchSpan) {
    let MatchSpan {
        text,
        start,
        end,
        field,
        entity,
        alias,
        surface,
    } = found;
    out.push_str("{\"text\":");
    push_str(out, text);
    out.push_str(",\"start\":");
    push_number(out, *start);
    out.push_str(",\"end\":");
    push_number(out, *end);
    for (key, value) in [
        (",\"field\":", field.as_deref()),
        (",\"entity\":", entity.as_deref()),
        (",\"alias\":", alias.as_deref()),
        (",\"surface\":", surface.as_deref()),
    ] {
        if let Some(value) = value {
            out.push_str(key);
            push_str(out, value);
        }
    }
    out.push('}');
}

fn push_option(out: &mut String, value: &Option<String>) {
    match value {
        Some(value) => push_str(out, value),
        None => out.push_str("null"),
    }
}

/// Appends `value` in decimal (`write!` costs ten times as much).
fn push_number(out: &mut String, mut value: usize) {
    let mut digits = [0u8; 20];
    let mut first = digits.len();
    loop {
        first -= 1;
        digits[first] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // One copy of the digits (pushed one `char` at a time, each checked for
    // room and encoded, a number cost ~150 instructions).
    out.push_str(std::str::from_utf8(&digits[first..]).unwrap_or_default());
}

/// Appends `value` as a JSON string, escaped as serde_json escapes it:
/// `"` and `\` with a backslash, the control characters U+0000 to U+001F
/// as `\b \t \n \f \r` or `\u00xx`, everything else as it is.
fn push_str(out: &mut String, value: &str) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        if let Some(word) = bytes.get(index..index + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !needs_escape(word) {
                index += 8;
                continue;
            }
        }
        let byte = bytes[index];
        index += 1;
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        // An ASCII byte: the text before it ends on a character boundary.
        out.push_str(&value[copied..index - 1]);
        copied = index;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&value[copied..]);
    out.push('"');
}

/// Whether any of the eight bytes in `word` is below 0x20, `"` or `\`.
/// (Exact as a whole; bytes of 0x80 and above never count.)
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    control
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        != 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alert::payload::Severity;

    /// Every ASCII character, some of them twice at other offsets, and
    /// characters of two, three and four bytes (U+2028 is left alone by
    /// serde_json, as here).
    fn tricky() -> String {
        let ascii: String = (0u8..=0x7f).map(char::from).collect();
        format!("{ascii}Минск\u{2028}–«ليبيا»🛰{ascii}\"\\x\u{1f}\u{7f}é")
    }

    fn full(text: &str) -> Alert {
        let article = ArticleRef {
            id: format!("{text}-id"),
            path: format!("seeds/{text}.txt"),
            title: Some(format!("title {text}")),
            published: Some("2025-02-18".to_string()),
        };
        Alert {
            id: format!("id{text}"),
            rule: format!("rule{text}").into(),
            description: format!("description {text}").into(),
            severity: Severity::Critical,
            article: Arc::new(article.clone()),
            entities: vec![text.into(), "minsk".into()],
            matches: vec![
                MatchSpan {
                    text: text.to_string(),
                    start: 0,
                    end: usize::MAX,
                    field: Some(format!("f{text}")),
                    entity: Some(format!("e{text}").into()),
                    alias: Some(format!("a{text}").into()),
                    surface: Some(format!("s{text}")),
                },
                MatchSpan {
                    text: "Minsk".to_string(),
                    start: 17,
                    end: 22,
                    ..MatchSpan::default()
                },
            ],
            snippet: format!("... {text} ..."),
            fired_at: "2026-01-01T00:00:00Z".into(),
            duplicate_of: Some(format!("dup{text}")),
            articles: vec![
                article,
                ArticleRef {
                    id: String::new(),
                    path: String::new(),
                    title: None,
                    published: None,
                },
            ],
        }
    }

    #[test]
    fn the_json_is_serde_jsons_with_every_field_set() {
        let alert = full(&tricky());
        assert_eq!(
            alert.to_json(),
            serde_json::to_string(&alert).expect("json")
        );
        let parsed: Alert = serde_json::from_str(&alert.to_json()).expect("parses back");
        assert_eq!(parsed, alert);
    }

    #[test]
    fn alerts_sharing_an_article_write_it_as_alone_and_another_article_anew() {
        let first = full("plain");
        let mut same = full("other");
        same.article = Arc::clone(&first.article);
        let other = full("third");
        let mut shared = ArticleJson::default();
        for alert in [&first, &same, &other, &first] {
            let mut out = String::new();
            alert.write_json_sharing(&mut out, &mut shared);
            assert_eq!(out, alert.to_json());
        }
    }

    #[test]
    fn the_json_is_serde_jsons_with_optional_fields_absent() {
        let mut alert = full("plain");
        alert.duplicate_of = None;
        alert.articles.clear();
        alert.entities.clear();
        alert.matches.clear();
        let article = Arc::make_mut(&mut alert.article);
        article.title = None;
        article.published = None;
        alert.severity = Severity::Info;
        assert_eq!(
            alert.to_json(),
            serde_json::to_string(&alert).expect("json")
        );
    }

    #[test]
    fn each_character_is_escaped_alike_at_every_offset_of_a_word() {
        // Where a byte falls in the eight-byte words decides which path
        // sees it: try each offset, before and after the last whole word.
        for c in (0u8..=0x7f).map(char::from).chain(['é', 'Ж', '€', '🛰']) {
            for before in 0..20 {
                for after in [0, 1, 7, 8, 9] {
                    let text = format!("{}{c}{}", "a".repeat(before), "b".repeat(after));
                    let mut ours = String::new();
                    push_str(&mut ours, &text);
                    let theirs = serde_json::to_string(&text).expect("json");
                    assert_eq!(ours, theirs, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        let powers = (0..20).flat_map(|exp| {
            let power = 10usize.pow(exp);
            [power - 1, power, power + 1]
        });
        for value in (0..1000).chain(powers).chain([usize::MAX]) {
            let mut out = String::from("x");
            push_number(&mut out, value);
            assert_eq!(out, format!("x{value}"));
        }
    }

    #[test]
    fn a_word_needs_escaping_exactly_when_one_of_its_bytes_does() {
        for byte in 0u8..=0xff {
            for position in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[position] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(
                    needs_escape(u64::from_le_bytes(bytes)),
                    expected,
                    "byte {byte:#04x} at {position}"
                );
            }
        }
    }
}
