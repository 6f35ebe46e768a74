//! Renders an [`Alert`] as the JSON body of a Slack incoming-webhook message:
//! Block Kit blocks plus a plain `text` fallback for notifications. This module
//! owns the message layout, Slack's length limits and the rule that keeps the
//! message safe; it must never do I/O, touch the network, read the clock or the
//! environment, or fail: every alert renders to a body Slack accepts.
//!
//! Safety: every piece of text that comes from an article or from config.toml
//! (rule id, description, title, path, date, entities, snippet, matched text,
//! ids) is made literal before it is placed in the message ("cleaned"):
//! - `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;` ([`escape_mrkdwn`]), so no
//!   article can produce a mention (`<!channel>`, `<@U123>`) or a link
//!   (`<http://evil|click>`). The header's `plain_text` gets these three
//!   escapes too, since Slack treats them as control characters in every text
//!   object.
//! - mrkdwn formatting characters are replaced by look-alikes so they cannot
//!   start formatting: `*` -> `∗` (U+2217), `_` -> `ˍ` (U+02CD), `~` -> `∼`
//!   (U+223C), `` ` `` -> `ˋ` (U+02CB), and the fullwidth forms `＊` -> `﹡`
//!   (U+FE61), `＿` -> `⸏` (U+2E0F), `｀` -> `ˋ` (the same replacements
//!   jsx-slack's `<Escape>` uses).
//! - a text that starts with `>` or `＞` gets an invisible soft hyphen (U+00AD)
//!   in front, because Slack reads even an escaped `&gt;` at the start of a line
//!   as a block quote.
//! - line breaks, tabs and other control characters become spaces, so a piece
//!   of text stays on its line (inside the bold title, inside the quote).
//!
//! Every other character (Cyrillic, Arabic, emoji, `@channel` as plain text)
//! passes through unchanged. The only mrkdwn in the message is what this module
//! writes itself: `*bold*`, the `> ` quote and line breaks. mrkdwn text objects
//! carry `"verbatim": true` so Slack does not turn plain `@here`, `#channel` or
//! URLs in article text into mentions or links, and the body turns off link
//! unfurling.
//!
//! Limits: Slack's limits are measured here in UTF-16 code units of the final,
//! escaped text (never fewer than its chars, so this is the conservative count).
//! Text that does not fit is cut between whole escaped characters, never inside
//! an `&amp;` or a UTF-8 character, a bold span that is cut is closed, and `…`
//! is appended.

use serde_json::{json, Value};

use crate::alert::payload::{Alert, Severity};

/// Slack: header block `plain_text` is at most 150 characters.
const HEADER_MAX: usize = 150;
/// Slack: a section's `text` is at most 3000 characters.
const SECTION_TEXT_MAX: usize = 3000;
/// Slack: each section field's text is at most 2000 characters.
const FIELD_TEXT_MAX: usize = 2000;
/// Slack: each context element's text is at most 2000 characters.
const CONTEXT_TEXT_MAX: usize = 2000;
/// Slack truncates the top-level `text` beyond 4000 characters; stay within it.
const FALLBACK_TEXT_MAX: usize = 4000;
/// How many leading characters of the article hash the context shows.
const ARTICLE_ID_SHORT: usize = 12;

const ELLIPSIS: char = '…';
/// Lets Slack see a `*` next to a letter as a bold marker (mid-word matches).
const ZERO_WIDTH_SPACE: &str = "\u{200B}";
/// Invisible; stops a leading `&gt;` from turning a line into a quote.
const SOFT_HYPHEN: char = '\u{AD}';

/// The JSON body to POST to a Slack incoming webhook for this alert.
///
/// Shape: `{"text", "blocks": [header, summary section, snippet section
/// (omitted when the snippet is blank), context], "unfurl_links": false,
/// "unfurl_media": false}`.
pub fn slack_message(alert: &Alert) -> Value {
    let title = display_title(alert);
    let mut blocks = vec![header_block(alert), summary_block(alert, title)];
    if let Some(block) = snippet_block(alert) {
        blocks.push(block);
    }
    blocks.push(context_block(alert));
    json!({
        "text": fallback_text(alert, title),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// The most alerts listed one by one in a digest message; the rest are counted.
const DIGEST_LISTED: usize = 40;

/// One Slack message summarising `alerts` (a sink's `digest`): a header
/// with the count and period, then one line per alert (severity, rule,
/// title, date, file), at most [`DIGEST_LISTED`] of them.
pub fn slack_digest(alerts: &[Alert], from: &str, to: &str) -> Value {
    let count = format!("{} alerts", alerts.len());
    let header = render(
        &[Piece::Markup("📰 newswatch digest: "), Piece::Text(&count)],
        HEADER_MAX,
    );
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header, "emoji": true},
    })];
    let period = render(
        &[
            Piece::Markup("from "),
            Piece::Text(from),
            Piece::Markup(" to "),
            Piece::Text(to),
        ],
        CONTEXT_TEXT_MAX,
    );
    blocks.push(json!({"type": "context", "elements": [mrkdwn(period)]}));
    for alert in alerts.iter().take(DIGEST_LISTED) {
        let date = alert.article.published.as_deref().unwrap_or("no date");
        let line = render(
            &[
                Piece::Markup(severity_marker(alert.severity)),
                Piece::Markup(" *"),
                Piece::Text(&alert.rule),
                Piece::Markup("*: "),
                Piece::Text(display_title(alert)),
                Piece::Markup(" ("),
                Piece::Text(date),
                Piece::Markup(", "),
                Piece::Text(&alert.article.path),
                Piece::Markup(")"),
            ],
            SECTION_TEXT_MAX,
        );
        blocks.push(json!({"type": "section", "text": mrkdwn(line)}));
    }
    if alerts.len() > DIGEST_LISTED {
        let more = format!("and {} more", alerts.len() - DIGEST_LISTED);
        blocks.push(json!({"type": "context", "elements": [mrkdwn(render(&[Piece::Text(&more)], CONTEXT_TEXT_MAX))]}));
    }
    let fallback = render(
        &[
            Piece::Markup("newswatch digest: "),
            Piece::Text(&count),
            Piece::Markup(" from "),
            Piece::Text(from),
            Piece::Markup(" to "),
            Piece::Text(to),
        ],
        FALLBACK_TEXT_MAX,
    );
    json!({
        "text": fallback,
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// Slack mrkdwn escaping: `&` -> `&amp;`, `<` -> `&lt;`, `>` -> `&gt;` (nothing else).
pub fn escape_mrkdwn(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(c, &mut escaped);
    }
    escaped
}

fn severity_marker(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🔴",
        Severity::Warning => "🟠",
        Severity::Info => "🔵",
    }
}

/// The article's title, or its file name when it has none.
fn display_title(alert: &Alert) -> &str {
    let title = alert.article.title.as_deref().map(str::trim).unwrap_or("");
    if !title.is_empty() {
        return title;
    }
    alert
        .article
        .path
        .rsplit(['/', '\\'])
        .map(str::trim)
        .find(|part| !part.is_empty())
        .unwrap_or("untitled")
}

/// `[warning] minsk-visit: Haftar visits Minsk — "…visit to Minsk…" (seeds/x.txt)`
fn fallback_text(alert: &Alert, title: &str) -> String {
    let mut pieces = vec![
        Piece::Markup("["),
        Piece::Markup(alert.severity.as_str()),
        Piece::Markup("] "),
        Piece::Text(&alert.rule),
        Piece::Markup(": "),
        Piece::Text(title),
    ];
    let first_match = alert
        .matches
        .iter()
        .map(|m| m.text.trim())
        .find(|t| !t.is_empty());
    let snippet = alert.snippet.trim();
    if let Some(matched) = first_match {
        pieces.extend([
            Piece::Markup(" — \"…"),
            Piece::Text(matched),
            Piece::Markup("…\""),
        ]);
    } else if !snippet.is_empty() {
        pieces.extend([
            Piece::Markup(" — \""),
            Piece::Text(snippet),
            Piece::Markup("\""),
        ]);
    }
    pieces.extend([
        Piece::Markup(" ("),
        Piece::Text(&alert.article.path),
        Piece::Markup(")"),
    ]);
    render(&pieces, FALLBACK_TEXT_MAX)
}

/// `🟠 minsk-visit`
fn header_block(alert: &Alert) -> Value {
    let pieces = [
        Piece::Markup(severity_marker(alert.severity)),
        Piece::Markup(" "),
        Piece::Plain(&alert.rule),
    ];
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": render(&pieces, HEADER_MAX), "emoji": true},
    })
}

/// Description, bold title, and the facts as fields.
fn summary_block(alert: &Alert, title: &str) -> Value {
    let mut text = Vec::new();
    let description = alert.description.trim();
    if !description.is_empty() {
        text.extend([Piece::Text(description), Piece::Markup("\n")]);
    }
    text.push(Piece::Bold(title));

    let date = match alert.article.published.as_deref().map(str::trim) {
        Some(date) if !date.is_empty() => Piece::Text(date),
        _ => Piece::Markup("no date"),
    };
    let path = match alert.article.path.trim() {
        "" => Piece::Markup("unknown"),
        path => Piece::Text(path),
    };
    let mut entities = vec![Piece::Markup("*Entities*\n")];
    for (i, entity) in alert.entities.iter().enumerate() {
        if i > 0 {
            entities.push(Piece::Markup(", "));
        }
        entities.push(Piece::Text(entity));
    }
    if alert.entities.is_empty() {
        entities.push(Piece::Markup("none"));
    }
    let fields = [
        render(&[Piece::Markup("*Date*\n"), date], FIELD_TEXT_MAX),
        render(&[Piece::Markup("*File*\n"), path], FIELD_TEXT_MAX),
        render(
            &[
                Piece::Markup("*Severity*\n"),
                Piece::Markup(alert.severity.as_str()),
            ],
            FIELD_TEXT_MAX,
        ),
        render(&entities, FIELD_TEXT_MAX),
    ];
    json!({
        "type": "section",
        "text": mrkdwn(render(&text, SECTION_TEXT_MAX)),
        "fields": fields.into_iter().map(mrkdwn).collect::<Vec<_>>(),
    })
}

/// The snippet as a quote with every matched text in bold; None for a blank snippet.
fn snippet_block(alert: &Alert) -> Option<Value> {
    let snippet = alert.snippet.trim();
    if snippet.is_empty() {
        return None;
    }
    let needles: Vec<&str> = alert.matches.iter().map(|m| m.text.as_str()).collect();
    let mut pieces = vec![Piece::Markup("> ")];
    let mut pos = 0;
    for (start, end) in bold_ranges(snippet, &needles) {
        if start > pos {
            pieces.push(Piece::Text(snippet.get(pos..start).unwrap_or_default()));
        }
        let word_before = snippet.get(..start).and_then(|s| s.chars().next_back());
        if word_before.is_some_and(char::is_alphanumeric) {
            pieces.push(Piece::Markup(ZERO_WIDTH_SPACE));
        }
        pieces.push(Piece::Bold(snippet.get(start..end).unwrap_or_default()));
        let word_after = snippet.get(end..).and_then(|s| s.chars().next());
        if word_after.is_some_and(char::is_alphanumeric) {
            pieces.push(Piece::Markup(ZERO_WIDTH_SPACE));
        }
        pos = end;
    }
    if pos < snippet.len() {
        pieces.push(Piece::Text(snippet.get(pos..).unwrap_or_default()));
    }
    Some(json!({"type": "section", "text": mrkdwn(render(&pieces, SECTION_TEXT_MAX))}))
}

/// Byte ranges of `text` to show in bold: every occurrence (overlapping ones
/// included) of every non-empty needle, case-sensitive; overlapping or touching
/// occurrences merged into one range, then trimmed of surrounding whitespace
/// (Slack does not bold `* x*`). Sorted, disjoint, never empty, never adjacent.
fn bold_ranges(text: &str, needles: &[&str]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for &needle in needles {
        if needle.is_empty() || seen.contains(&needle) {
            continue;
        }
        seen.push(needle);
        let mut from = 0;
        while let Some(offset) = text.get(from..).and_then(|rest| rest.find(needle)) {
            let start = from + offset;
            found.push((start, start + needle.len()));
            // Step one char past this start so an overlapping next occurrence is found too.
            let step = text
                .get(start..)
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
            from = start + step;
        }
    }
    found.sort_unstable();

    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in found {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
        .into_iter()
        .filter_map(|(start, end)| {
            let span = text.get(start..end)?;
            let lead = span.len() - span.trim_start().len();
            let trail = span.len() - span.trim_end().len();
            (lead + trail < span.len()).then_some((start + lead, end - trail))
        })
        .collect()
}

/// Alert id, short article id and firing time; then, when present, the
/// earlier article this one duplicates and the articles a threshold counted.
fn context_block(alert: &Alert) -> Value {
    let article_id: String = alert.article.id.chars().take(ARTICLE_ID_SHORT).collect();
    let mut elements = vec![
        render(
            &[Piece::Markup("alert "), Piece::Text(&alert.id)],
            CONTEXT_TEXT_MAX,
        ),
        render(
            &[Piece::Markup("article "), Piece::Text(&article_id)],
            CONTEXT_TEXT_MAX,
        ),
        render(
            &[Piece::Markup("fired "), Piece::Text(&alert.fired_at)],
            CONTEXT_TEXT_MAX,
        ),
    ];
    if let Some(original) = &alert.duplicate_of {
        let short: String = original.chars().take(ARTICLE_ID_SHORT).collect();
        elements.push(render(
            &[
                Piece::Markup("near-duplicate of article "),
                Piece::Text(&short),
            ],
            CONTEXT_TEXT_MAX,
        ));
    }
    if !alert.articles.is_empty() {
        let names: Vec<String> = alert
            .articles
            .iter()
            .map(|a| a.title.clone().unwrap_or_else(|| a.path.clone()))
            .collect();
        let count = format!("{} articles: ", alert.articles.len());
        elements.push(render(
            &[Piece::Markup(&count), Piece::Text(&names.join(" · "))],
            CONTEXT_TEXT_MAX,
        ));
    }
    json!({
        "type": "context",
        "elements": elements.into_iter().map(mrkdwn).collect::<Vec<_>>(),
    })
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

/// One part of a message text, in order.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    /// Formatting this module writes itself (`*Date*\n`, `> `); kept whole or dropped.
    Markup(&'a str),
    /// Outside text in mrkdwn: cleaned (escaped, formatting neutralised).
    Text(&'a str),
    /// Outside text in mrkdwn, cleaned and wrapped in `*`; a cut one is still closed.
    Bold(&'a str),
    /// Outside text in `plain_text`: escaped, line breaks made spaces.
    Plain(&'a str),
}

/// The pieces as one string of at most `limit` UTF-16 units, cut with `…` when too long.
fn render(pieces: &[Piece], limit: usize) -> String {
    let mut whole = Renderer::new(limit);
    if whole.push_all(pieces) {
        return whole.text;
    }
    let mut cut = Renderer::new(limit.saturating_sub(ELLIPSIS.len_utf16()));
    cut.push_all(pieces);
    let kept = cut.text.trim_end().len();
    cut.text.truncate(kept);
    cut.text.push(ELLIPSIS);
    cut.text
}

struct Renderer {
    text: String,
    /// UTF-16 units in `text`.
    used: usize,
    budget: usize,
    /// Scratch buffer for one cleaned character.
    atom: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Clean {
    /// Escapes, formatting look-alikes, soft hyphen before a leading `>`.
    Mrkdwn { guard_quote: bool },
    /// Escapes only.
    Plain,
}

impl Renderer {
    fn new(budget: usize) -> Self {
        Renderer {
            text: String::new(),
            used: 0,
            budget,
            atom: String::new(),
        }
    }

    /// Appends pieces in order until one does not fit; true when all fitted.
    fn push_all(&mut self, pieces: &[Piece]) -> bool {
        pieces.iter().all(|&piece| self.push_piece(piece))
    }

    fn push_piece(&mut self, piece: Piece) -> bool {
        match piece {
            Piece::Markup(markup) => {
                let units = utf16_len(markup);
                if self.used + units > self.budget {
                    return false;
                }
                self.text.push_str(markup);
                self.used += units;
                true
            }
            Piece::Text(text) => self.push_cleaned(text, Clean::Mrkdwn { guard_quote: true }, 0),
            Piece::Plain(text) => self.push_cleaned(text, Clean::Plain, 0),
            Piece::Bold(text) => {
                // Room for both markers and one character, or no bold at all.
                if self.used + 2 > self.budget {
                    return false;
                }
                let before = self.text.len();
                self.text.push('*');
                self.used += 1;
                let opened = self.text.len();
                // Keep one unit in reserve for the closing `*` throughout.
                let complete = self.push_cleaned(text, Clean::Mrkdwn { guard_quote: false }, 1);
                if self.text.len() == opened {
                    self.text.truncate(before);
                    self.used -= 1;
                } else {
                    self.text.push('*');
                    self.used += 1;
                }
                complete
            }
        }
    }

    /// Appends `text` cleaned, one whole character at a time, while `reserve`
    /// units stay free; true when all of it fitted.
    fn push_cleaned(&mut self, text: &str, clean: Clean, reserve: usize) -> bool {
        let quote_like = text.trim_start().starts_with(['>', '＞']);
        for (i, c) in text.chars().enumerate() {
            self.atom.clear();
            if i == 0 && quote_like && clean == (Clean::Mrkdwn { guard_quote: true }) {
                self.atom.push(SOFT_HYPHEN);
            }
            match clean {
                Clean::Mrkdwn { .. } => push_cleaned_char(c, &mut self.atom),
                Clean::Plain => push_escaped(if c.is_control() { ' ' } else { c }, &mut self.atom),
            }
            let units = utf16_len(&self.atom);
            if self.used + units + reserve > self.budget {
                return false;
            }
            self.text.push_str(&self.atom);
            self.used += units;
        }
        true
    }
}

/// Slack's three escapes for one character.
fn push_escaped(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// One character of outside text made literal for mrkdwn (see the module docs).
fn push_cleaned_char(c: char, out: &mut String) {
    let replaced = match c {
        '*' => '\u{2217}',
        '\u{FF0A}' => '\u{FE61}',
        '_' => '\u{02CD}',
        '\u{FF3F}' => '\u{2E0F}',
        '~' => '\u{223C}',
        '`' | '\u{FF40}' => '\u{02CB}',
        '\u{2028}' | '\u{2029}' => ' ',
        c if c.is_control() => ' ',
        c => c,
    };
    push_escaped(replaced, out);
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alert::payload::{ArticleRef, MatchSpan};

    fn span(text: &str) -> MatchSpan {
        MatchSpan {
            text: text.to_string(),
            start: 0,
            end: text.len(),
            ..MatchSpan::default()
        }
    }

    fn sample() -> Alert {
        Alert {
            id: "5f0c2a9e41b7d3c8a1e2".to_string(),
            rule: "minsk-visit".into(),
            description: "Minsk near a visit".into(),
            severity: Severity::Warning,
            article: Arc::new(ArticleRef {
                id: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string(),
                path: "seeds/x.txt".to_string(),
                title: Some("Haftar visits Minsk".to_string()),
                published: Some("2025-02-18".to_string()),
            }),
            entities: vec!["minsk".into()],
            matches: vec![MatchSpan {
                text: "visit to Minsk".to_string(),
                start: 812,
                end: 826,
                ..MatchSpan::default()
            }],
            snippet: "... The visit to Minsk, which has very close ties ...".to_string(),
            fired_at: "2026-11-22T05:00:00Z".into(),
            duplicate_of: None,
            articles: Vec::new(),
        }
    }

    fn with_snippet(snippet: &str, matches: &[&str]) -> Alert {
        Alert {
            snippet: snippet.to_string(),
            matches: matches.iter().map(|m| span(m)).collect(),
            ..sample()
        }
    }

    /// The snippet section's mrkdwn text.
    fn quote(message: &Value) -> &str {
        message["blocks"][2]["text"]["text"]
            .as_str()
            .unwrap_or_default()
    }

    fn summary(message: &Value) -> &str {
        message["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap_or_default()
    }

    fn field(message: &Value, i: usize) -> &str {
        message["blocks"][1]["fields"][i]["text"]
            .as_str()
            .unwrap_or_default()
    }

    fn units(text: &str) -> usize {
        text.encode_utf16().count()
    }

    /// Every `&` starts one of the three escapes: no half or foreign entity.
    fn assert_escapes_whole(text: &str) {
        for (i, _) in text.match_indices('&') {
            let rest = &text[i..];
            assert!(
                rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
                "broken escape at {i} in {text:?}"
            );
        }
    }

    /// Bold markers pair up with something bold between them: even count, no `**`.
    fn assert_bold_balanced(text: &str) {
        assert_eq!(
            text.matches('*').count() % 2,
            0,
            "odd number of `*` in {text:?}"
        );
        assert!(!text.contains("**"), "empty or nested bold in {text:?}");
    }

    /// Every text in the message within Slack's limits and with whole escapes.
    fn assert_within_slack_limits(message: &Value) {
        let blocks = message["blocks"].as_array().expect("blocks array");
        assert!(blocks.len() <= 50);
        let fallback = message["text"].as_str().expect("text");
        assert!(
            units(fallback) <= FALLBACK_TEXT_MAX,
            "fallback {}",
            units(fallback)
        );
        assert_escapes_whole(fallback);
        for block in blocks {
            match block["type"].as_str() {
                Some("header") => {
                    let text = block["text"]["text"].as_str().expect("header text");
                    assert!(units(text) <= HEADER_MAX, "header {}", units(text));
                    assert_escapes_whole(text);
                }
                Some("section") => {
                    let text = block["text"]["text"].as_str().expect("section text");
                    assert!(!text.is_empty());
                    assert!(units(text) <= SECTION_TEXT_MAX, "section {}", units(text));
                    assert_escapes_whole(text);
                    assert_bold_balanced(text);
                    for field in block["fields"].as_array().into_iter().flatten() {
                        let text = field["text"].as_str().expect("field text");
                        assert!(units(text) <= FIELD_TEXT_MAX, "field {}", units(text));
                        assert_escapes_whole(text);
                        assert_bold_balanced(text);
                    }
                }
                Some("context") => {
                    for element in block["elements"].as_array().expect("elements") {
                        let text = element["text"].as_str().expect("element text");
                        assert!(units(text) <= CONTEXT_TEXT_MAX, "context {}", units(text));
                        assert_escapes_whole(text);
                    }
                }
                other => panic!("unexpected block type {other:?}"),
            }
        }
    }

    #[test]
    fn sample_alert_renders_exact_message() {
        let expected = json!({
            "text": "[warning] minsk-visit: Haftar visits Minsk — \"…visit to Minsk…\" (seeds/x.txt)",
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": "🟠 minsk-visit", "emoji": true},
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": "Minsk near a visit\n*Haftar visits Minsk*", "verbatim": true},
                    "fields": [
                        {"type": "mrkdwn", "text": "*Date*\n2025-02-18", "verbatim": true},
                        {"type": "mrkdwn", "text": "*File*\nseeds/x.txt", "verbatim": true},
                        {"type": "mrkdwn", "text": "*Severity*\nwarning", "verbatim": true},
                        {"type": "mrkdwn", "text": "*Entities*\nminsk", "verbatim": true},
                    ],
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "> ... The *visit to Minsk*, which has very close ties ...",
                        "verbatim": true,
                    },
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": "alert 5f0c2a9e41b7d3c8a1e2", "verbatim": true},
                        {"type": "mrkdwn", "text": "article 9f86d081884c", "verbatim": true},
                        {"type": "mrkdwn", "text": "fired 2026-11-22T05:00:00Z", "verbatim": true},
                    ],
                },
            ],
            "unfurl_links": false,
            "unfurl_media": false,
        });
        assert_eq!(slack_message(&sample()), expected);
    }

    #[test]
    fn header_marker_follows_severity() {
        for (severity, header) in [
            (Severity::Critical, "🔴 minsk-visit"),
            (Severity::Warning, "🟠 minsk-visit"),
            (Severity::Info, "🔵 minsk-visit"),
        ] {
            let message = slack_message(&Alert {
                severity,
                ..sample()
            });
            assert_eq!(message["blocks"][0]["text"]["text"], header);
            assert_eq!(
                field(&message, 2),
                format!("*Severity*\n{}", severity.as_str())
            );
            let fallback = message["text"].as_str().unwrap_or_default();
            assert!(
                fallback.starts_with(&format!("[{}] ", severity.as_str())),
                "{fallback}"
            );
        }
    }

    #[test]
    fn escape_mrkdwn_escapes_exactly_three_characters() {
        assert_eq!(escape_mrkdwn("a & b < c > d"), "a &amp; b &lt; c &gt; d");
        assert_eq!(escape_mrkdwn("&amp;"), "&amp;amp;");
        assert_eq!(
            escape_mrkdwn("*bold* _it_ ~s~ `c` \"q\" 'a' @here"),
            "*bold* _it_ ~s~ `c` \"q\" 'a' @here"
        );
        assert_eq!(escape_mrkdwn("Минск مينسك"), "Минск مينسك");
        assert_eq!(escape_mrkdwn(""), "");
    }

    #[test]
    fn article_cannot_inject_mentions_or_links() {
        let hostile = "<!channel> <!here> <@U024BE7LH> <https://evil.example|click> @channel @here";
        let alert = Alert {
            rule: "<!channel>".into(),
            description: "<!here> <@U1>".into(),
            article: Arc::new(ArticleRef {
                path: "seeds/<!channel>.txt".to_string(),
                title: Some("<https://evil.example|click>".to_string()),
                published: Some("<!here>".to_string()),
                ..ArticleRef::clone(&sample().article)
            }),
            entities: vec!["<@U024BE7LH>".into()],
            id: "<!everyone>".to_string(),
            fired_at: "<!here>".into(),
            ..with_snippet(hostile, &["<@U024BE7LH>"])
        };
        let message = slack_message(&alert);
        let body = message.to_string();
        assert!(!body.contains('<'), "raw `<` reached the body: {body}");
        assert!(!body.contains("<!") && !body.contains("<http") && !body.contains("<@"));
        assert_eq!(
            quote(&message),
            "> &lt;!channel&gt; &lt;!here&gt; *&lt;@U024BE7LH&gt;* \
             &lt;https://evil.example|click&gt; @channel @here"
        );
        assert_eq!(message["blocks"][0]["text"]["text"], "🟠 &lt;!channel&gt;");
        assert_within_slack_limits(&message);
    }

    #[test]
    fn formatting_characters_in_outside_text_are_neutralised() {
        let alert = Alert {
            description: "*not bold* _not italic_ ~not struck~ `not code` ＊x＊ ＿y＿ ｀z｀".into(),
            article: Arc::new(ArticleRef {
                title: Some("a*b_c~d`e".to_string()),
                path: "seeds/my_file*.txt".to_string(),
                ..ArticleRef::clone(&sample().article)
            }),
            ..with_snippet("2*3 = 6 and snake_case ~ `x`", &["snake_case"])
        };
        let message = slack_message(&alert);
        assert_eq!(
            summary(&message),
            "∗not bold∗ ˍnot italicˍ ∼not struck∼ ˋnot codeˋ ﹡x﹡ ⸏y⸏ ˋzˋ\n*a∗bˍc∼dˋe*"
        );
        assert_eq!(field(&message, 1), "*File*\nseeds/myˍfile∗.txt");
        assert_eq!(quote(&message), "> 2∗3 = 6 and *snakeˍcase* ∼ ˋxˋ");
    }

    #[test]
    fn leading_quote_and_line_breaks_in_outside_text_stay_literal() {
        // A line starting with `&gt;` would render as a Slack quote; line breaks would end the bold title.
        let alert = Alert {
            description: "> not a quote".into(),
            article: Arc::new(ArticleRef {
                title: Some("line one\nline two\r\n\tend".to_string()),
                ..ArticleRef::clone(&sample().article)
            }),
            ..sample()
        };
        let message = slack_message(&alert);
        assert_eq!(
            summary(&message),
            "\u{AD}&gt; not a quote\n*line one line two   end*"
        );
    }

    #[test]
    fn every_occurrence_of_every_match_is_bold() {
        let message = slack_message(&with_snippet(
            "Minsk talks; Minsk again, minsk lowercase",
            &["Minsk", "Minsk", "talks"],
        ));
        assert_eq!(
            quote(&message),
            "> *Minsk* *talks*; *Minsk* again, minsk lowercase"
        );
    }

    #[test]
    fn overlapping_matches_become_one_bold_span() {
        let message = slack_message(&with_snippet(
            "The visit to Minsk, which has ties",
            &["visit to Minsk", "Minsk, which"],
        ));
        assert_eq!(quote(&message), "> The *visit to Minsk, which* has ties");
        // A match overlapping its own next occurrence.
        let message = slack_message(&with_snippet("x aaaa y aa", &["aaa"]));
        assert_eq!(quote(&message), "> x *aaaa* y aa");
        // Touching matches: no `**` between them.
        let message = slack_message(&with_snippet("Tor-M2 9K332", &["Tor-M2", " 9K332"]));
        assert_eq!(quote(&message), "> *Tor-M2 9K332*");
    }

    #[test]
    fn bold_span_excludes_surrounding_whitespace() {
        // Slack does not bold `* talks *`, it shows the asterisks.
        let message = slack_message(&with_snippet("Minsk talks today", &[" talks ", " "]));
        assert_eq!(quote(&message), "> Minsk *talks* today");
    }

    #[test]
    fn match_containing_ampersand_is_bold_and_escaped() {
        let message = slack_message(&with_snippet(
            "deal with AT&T <today>",
            &["AT&T", "<today>"],
        ));
        assert_eq!(quote(&message), "> deal with *AT&amp;T* *&lt;today&gt;*");
    }

    #[test]
    fn mid_word_match_gets_zero_width_spaces_and_absent_match_is_ignored() {
        let message = slack_message(&with_snippet(
            "revisited Минску",
            &["visit", "Минск", "absent", ""],
        ));
        assert_eq!(
            quote(&message),
            "> re\u{200B}*visit*\u{200B}ed *Минск*\u{200B}у"
        );
    }

    #[test]
    fn blank_snippet_drops_the_quote_block() {
        let message = slack_message(&with_snippet("  ", &["visit"]));
        let blocks = message["blocks"].as_array().expect("blocks");
        let types: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
        assert_eq!(types, ["header", "section", "context"]);
    }

    #[test]
    fn missing_title_uses_file_name_and_missing_date_says_so() {
        let alert = Alert {
            article: Arc::new(ArticleRef {
                title: None,
                published: None,
                ..ArticleRef::clone(&sample().article)
            }),
            ..sample()
        };
        let message = slack_message(&alert);
        assert_eq!(summary(&message), "Minsk near a visit\n*x.txt*");
        assert_eq!(field(&message, 0), "*Date*\nno date");
        assert_eq!(
            message["text"],
            "[warning] minsk-visit: x.txt — \"…visit to Minsk…\" (seeds/x.txt)"
        );
        // A blank title counts as none; a Windows-style path still yields its file name.
        let alert = Alert {
            article: Arc::new(ArticleRef {
                title: Some("  ".to_string()),
                path: "seeds\\dir\\y.md".to_string(),
                ..ArticleRef::clone(&sample().article)
            }),
            ..sample()
        };
        assert_eq!(
            summary(&slack_message(&alert)),
            "Minsk near a visit\n*y.md*"
        );
    }

    #[test]
    fn no_entities_and_no_matches_still_render() {
        let alert = Alert {
            entities: vec![],
            matches: vec![],
            ..sample()
        };
        let message = slack_message(&alert);
        assert_eq!(field(&message, 3), "*Entities*\nnone");
        assert_eq!(
            quote(&message),
            "> ... The visit to Minsk, which has very close ties ..."
        );
        assert_eq!(
            message["text"],
            "[warning] minsk-visit: Haftar visits Minsk — \"... The visit to Minsk, which has very close ties ...\" (seeds/x.txt)"
        );
        let alert = Alert {
            entities: vec!["minsk".into(), "tor-m2".into()],
            ..sample()
        };
        assert_eq!(
            field(&slack_message(&alert), 3),
            "*Entities*\nminsk, tor-m2"
        );
    }

    #[test]
    fn cyrillic_and_arabic_pass_through_unchanged() {
        let title = "Хафтар посетил Минск — زيارة حفتر إلى مينسك";
        let snippet = "Визит в Минск, который имеет тесные связи. وصل حفتر إلى مينسك";
        let alert = Alert {
            article: Arc::new(ArticleRef {
                title: Some(title.to_string()),
                ..ArticleRef::clone(&sample().article)
            }),
            ..with_snippet(snippet, &["Минск", "مينسك"])
        };
        let message = slack_message(&alert);
        assert_eq!(summary(&message), format!("Minsk near a visit\n*{title}*"));
        assert_eq!(
            quote(&message),
            "> Визит в *Минск*, который имеет тесные связи. وصل حفتر إلى *مينسك*"
        );
    }

    #[test]
    fn huge_snippet_of_escapes_is_cut_within_limit_without_breaking_an_escape() {
        let snippet: String = "&<>a".repeat(2_500);
        assert_eq!(snippet.chars().count(), 10_000);
        let message = slack_message(&with_snippet(&snippet, &["a&"]));
        assert_within_slack_limits(&message);
        let text = quote(&message);
        assert!(text.ends_with('…'), "{}", &text[text.len() - 20..]);
        assert!(
            units(text) > SECTION_TEXT_MAX - 10,
            "cut far too early: {}",
            units(text)
        );
        assert!(text.starts_with("> &amp;&lt;&gt;*a&amp;*&lt;&gt;"));
    }

    #[test]
    fn cut_inside_a_bold_span_still_closes_it() {
        // One bold span longer than the whole section.
        let snippet = format!("start {} end", "Тор".repeat(2_000));
        let message = slack_message(&with_snippet(&snippet, &[&"Тор".repeat(2_000)]));
        let text = quote(&message);
        assert_within_slack_limits(&message);
        assert!(text.starts_with("> start *Тор"));
        assert!(text.ends_with("*…"), "{}", &text[text.len() - 20..]);
        // Every length of a bolded escape-heavy snippet stays balanced and whole.
        for n in [740, 745, 749, 750, 751, 760, 1_000] {
            let snippet = "x&*".repeat(n);
            let message = slack_message(&with_snippet(&snippet, &["x&*x"]));
            assert_within_slack_limits(&message);
        }
    }

    #[test]
    fn text_exactly_at_the_limit_is_not_cut() {
        let snippet = "b".repeat(SECTION_TEXT_MAX - 2);
        let message = slack_message(&with_snippet(&snippet, &[]));
        assert_eq!(quote(&message), format!("> {snippet}"));
        let message = slack_message(&with_snippet(&format!("{snippet}b"), &[]));
        assert_eq!(
            quote(&message),
            format!("> {}…", "b".repeat(SECTION_TEXT_MAX - 3))
        );
    }

    #[test]
    fn long_outside_text_is_cut_everywhere() {
        let long = "Ω<&😀*".repeat(3_000);
        let alert = Alert {
            id: long.clone(),
            rule: long.as_str().into(),
            description: long.as_str().into(),
            article: Arc::new(ArticleRef {
                id: long.clone(),
                path: long.clone(),
                title: Some(long.clone()),
                published: Some(long.clone()),
            }),
            entities: vec![long.as_str().into(); 3],
            fired_at: long.as_str().into(),
            ..with_snippet(&long, &["😀", "&😀*"])
        };
        let message = slack_message(&alert);
        assert_within_slack_limits(&message);
        let header = message["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or_default();
        // plain_text has no formatting, so the header keeps `*` and only escapes.
        assert!(
            header.starts_with("🟠 Ω&lt;&amp;😀*Ω") && header.ends_with('…'),
            "{header}"
        );
        // The short article id is 12 chars, not 12 bytes, and cleaned like any other text.
        assert_eq!(
            message["blocks"][3]["elements"][1]["text"],
            "article Ω&lt;&amp;😀∗Ω&lt;&amp;😀∗Ω&lt;"
        );
    }
}

#[cfg(test)]
mod extension_tests {
    use std::sync::Arc;

    use super::*;
    use crate::alert::payload::ArticleRef;

    #[test]
    fn a_digest_lists_each_alert_escaped_and_counts_the_rest() {
        let alert = |index: usize| Alert {
            id: format!("id{index}"),
            rule: "tobruk".into(),
            description: "d".into(),
            severity: Severity::Warning,
            article: Arc::new(ArticleRef {
                id: "a".repeat(64),
                path: format!("seeds/{index}.txt"),
                title: Some("<!channel> Tobruk".to_string()),
                published: Some("2025-02-18".to_string()),
            }),
            entities: Vec::new(),
            matches: Vec::new(),
            snippet: String::new(),
            fired_at: "2026-11-22T05:00:00Z".into(),
            duplicate_of: None,
            articles: Vec::new(),
        };
        let alerts: Vec<Alert> = (0..45).map(alert).collect();
        let message = slack_digest(&alerts, "2026-11-22T05:00:00Z", "2026-11-22T06:00:00Z");
        let blocks = message["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["text"]["text"], "📰 newswatch digest: 45 alerts");
        assert_eq!(blocks.len(), 2 + DIGEST_LISTED + 1);
        assert_eq!(
            blocks[2]["text"]["text"],
            "🟠 *tobruk*: &lt;!channel&gt; Tobruk (2025-02-18, seeds/0.txt)"
        );
        assert_eq!(
            blocks.last().expect("last")["elements"][0]["text"],
            "and 5 more"
        );
        assert!(!message.to_string().contains("<!"));
    }

    #[test]
    fn duplicates_and_threshold_articles_are_shown_in_the_context() {
        let reference = |title: &str| ArticleRef {
            id: "a".repeat(64),
            path: "seeds/x.txt".to_string(),
            title: Some(title.to_string()),
            published: None,
        };
        let alert = Alert {
            id: "id".to_string(),
            rule: "benghazi-wave".into(),
            description: "d".into(),
            severity: Severity::Info,
            article: reference("Third <report>").into(),
            entities: Vec::new(),
            matches: Vec::new(),
            snippet: "s".to_string(),
            fired_at: "2026-11-22T05:00:00Z".into(),
            duplicate_of: Some("b".repeat(64)),
            articles: vec![reference("First"), reference("Third <report>")],
        };
        let message = slack_message(&alert);
        let blocks = message["blocks"].as_array().expect("blocks");
        let context = blocks
            .iter()
            .find(|b| b["type"] == "context")
            .expect("context");
        let texts: Vec<&str> = context["elements"]
            .as_array()
            .expect("elements")
            .iter()
            .filter_map(|e| e["text"].as_str())
            .collect();
        assert!(
            texts.contains(&"near-duplicate of article bbbbbbbbbbbb"),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"2 articles: First · Third &lt;report&gt;"),
            "{texts:?}"
        );
    }
}
