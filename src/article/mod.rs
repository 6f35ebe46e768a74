//! The `Article`: a saved file's bytes turned into the text rules run on.
//!
//! This module owns reading an article out of bytes it is given: deciding
//! whether the file is an article at all (`SkipReason`), decoding it
//! (`decode`), turning each format into text, title and date (`extract`,
//! `date`), and the article's id (BLAKE3 of the raw bytes). It must never do
//! I/O, never block, never panic on any input, and never move text around:
//! match offsets are byte offsets into `Article::text`, which for plain text
//! and Markdown is the decoded file unchanged and for HTML has the file's byte
//! length with every visible character at its offset in the file.
//!
//! Offsets equal offsets in the file itself only when the file is UTF-8
//! without a byte order mark (`.txt`, `.md`, `.html`). Windows-1252 files
//! (`ReadWarning::NotUtf8`), UTF-16 files and files with a UTF-8 byte order
//! mark have offsets into the decoded text; `.json` articles have offsets into
//! the assembled "title, blank line, body" text.

pub mod boilerplate;
mod date;
mod decode;
mod extract;
pub mod fingerprint;

use std::path::PathBuf;

pub use date::find_published;
pub use decode::{ReadWarning, SkipReason};

/// A saved news article, ready for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// BLAKE3 hex of the raw file bytes (64 lowercase hex chars): the same
    /// content under another name has the same id.
    pub id: String,
    pub path: PathBuf,
    /// Trimmed, whitespace collapsed; `None` if nothing usable.
    pub title: Option<String>,
    pub published: Option<chrono::NaiveDate>,
    /// The text rules run on; match offsets are byte offsets into this.
    pub text: String,
    pub warnings: Vec<ReadWarning>,
}

impl Article {
    /// Reads an article from a file's bytes.
    ///
    /// `extension` is the file extension without dot, normally lowercased:
    /// `txt`, `md`, `html`, `htm`, `json`; anything else is treated as plain
    /// text. A file whose text is only whitespace once markup is removed is
    /// `SkipReason::Empty`.
    pub fn from_bytes(
        path: PathBuf,
        extension: &str,
        bytes: &[u8],
        max_size: u64,
    ) -> Result<Article, SkipReason> {
        let decoded = decode::decode(bytes, max_size)?;
        let extracted = extract::extract(extract::Format::from_extension(extension), decoded.text)?;
        if extracted.text.trim().is_empty() {
            return Err(SkipReason::Empty);
        }
        Ok(Article {
            id: blake3::hash(bytes).to_hex().to_string(),
            path,
            title: extracted.title,
            published: extracted.published,
            text: extracted.text,
            warnings: decoded.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    const LIMIT: u64 = 1 << 20;

    fn read(extension: &str, bytes: &[u8]) -> Result<Article, SkipReason> {
        Article::from_bytes(
            PathBuf::from(format!("seeds/a.{extension}")),
            extension,
            bytes,
            LIMIT,
        )
    }

    fn article(extension: &str, bytes: &[u8]) -> Article {
        read(extension, bytes)
            .unwrap_or_else(|reason| panic!("expected an article, got skip: {reason}"))
    }

    #[test]
    fn text_article_has_id_title_date_and_unchanged_text() {
        let bytes = "\nHaftar visits Minsk\r\nby | May 30, 2025 | Diplomacy, Libya\r\n\r\nThe visit to Minsk...\r\n".as_bytes();
        let article = article("txt", bytes);
        assert_eq!(article.id, blake3::hash(bytes).to_hex().to_string());
        assert_eq!(article.id.len(), 64);
        assert!(
            article
                .id
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{}",
            article.id
        );
        assert_eq!(article.path, PathBuf::from("seeds/a.txt"));
        assert_eq!(article.title.as_deref(), Some("Haftar visits Minsk"));
        assert_eq!(article.published, NaiveDate::from_ymd_opt(2025, 5, 30));
        assert_eq!(article.text.as_bytes(), bytes);
        assert!(article.warnings.is_empty());
    }

    #[test]
    fn id_hashes_the_raw_bytes_not_the_decoded_text() {
        let with_bom = article("txt", b"\xEF\xBB\xBFTobruk");
        let without_bom = article("txt", b"Tobruk");
        assert_eq!(with_bom.text, without_bom.text);
        assert_ne!(with_bom.id, without_bom.id);
        assert_eq!(
            with_bom.id,
            blake3::hash(b"\xEF\xBB\xBFTobruk").to_hex().to_string()
        );
    }

    #[test]
    fn windows_1252_file_is_read_with_a_warning() {
        let article = article("txt", b"Haftar\x92s visit to Minsk");
        assert_eq!(article.text, "Haftar\u{2019}s visit to Minsk");
        assert_eq!(
            article.title.as_deref(),
            Some("Haftar\u{2019}s visit to Minsk")
        );
        assert_eq!(article.warnings, vec![ReadWarning::NotUtf8]);
    }

    #[test]
    fn extension_selects_the_extractor() {
        let html = b"<title>Tobruk</title><p>Body</p>";
        assert_eq!(article("html", html).text.len(), html.len());
        assert!(!article("htm", html).text.contains("<title>"));
        assert!(
            article("txt", html).text.contains("<title>"),
            "txt must stay as written"
        );
        assert!(
            article("xml", html).text.contains("<title>"),
            "unknown extensions are plain text"
        );
        assert_eq!(
            article("md", b"## Minsk talks").title.as_deref(),
            Some("Minsk talks")
        );
        assert_eq!(
            article("json", br#"{"title": "T", "body": "B"}"#).text,
            "T\n\nB"
        );
    }

    #[test]
    fn skip_reasons_reach_the_caller() {
        let cases: [(&str, &[u8], u64, SkipReason); 7] = [
            ("txt", b"", LIMIT, SkipReason::Empty),
            ("txt", b"  \r\n\t", LIMIT, SkipReason::Empty),
            (
                "html",
                b"<html><head><script>x()</script></head><body> </body></html>",
                LIMIT,
                SkipReason::Empty,
            ),
            ("json", br#"{"body": "   "}"#, LIMIT, SkipReason::Empty),
            ("txt", b"GIF89a\0\0", LIMIT, SkipReason::Binary),
            (
                "txt",
                b"0123456789",
                9,
                SkipReason::TooLarge { size: 10, limit: 9 },
            ),
            (
                "json",
                br#"{"title": "No body"}"#,
                LIMIT,
                SkipReason::Malformed("json article has no \"body\" or \"text\" field".to_owned()),
            ),
        ];
        for (extension, bytes, limit, want) in cases {
            let got = Article::from_bytes(PathBuf::from("x"), extension, bytes, limit);
            assert_eq!(got, Err(want), "{extension} {bytes:?}");
        }
    }

    /// Any input is either an article or a skip reason, never a panic; and an
    /// HTML article's text keeps the decoded file's byte length. Pseudo-random
    /// inputs built from the characters the parsers care about.
    #[test]
    fn arbitrary_input_never_panics() {
        const PIECES: [&[u8]; 24] = [
            b"<",
            b">",
            b"&",
            b";",
            b"#",
            b"x",
            b"/",
            b"!",
            b"-",
            b"\"",
            b"'",
            b"=",
            b" ",
            b"\n",
            b"\r",
            b"p",
            b"script",
            b"title",
            b"h1",
            b"amp",
            b"2025",
            b"May 30, ",
            "\u{2019}".as_bytes(),
            b"\x92",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..1_000 {
            let length = next() % 60;
            let mut bytes = Vec::new();
            for _ in 0..length {
                let index = usize::try_from(next() % PIECES.len() as u64).unwrap_or(0);
                bytes.extend_from_slice(PIECES[index]);
            }
            for extension in ["txt", "md", "html", "json"] {
                if let Ok(article) =
                    Article::from_bytes(PathBuf::from("x"), extension, &bytes, LIMIT)
                {
                    if extension == "html" && article.warnings.is_empty() {
                        assert_eq!(article.text.len(), bytes.len(), "{bytes:?}");
                    }
                }
            }
        }
    }
}
