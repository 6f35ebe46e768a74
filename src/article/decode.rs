//! Raw bytes of a saved file -> text, or the reason the file is not an article.
//!
//! This file owns the skip decisions that need only the bytes (too large,
//! empty, binary) and the choice of text encoding: UTF-16 when a UTF-16 byte
//! order mark says so, UTF-8 when the bytes are valid UTF-8 (a UTF-8 byte order
//! mark is dropped), Windows-1252 otherwise, with a warning. It must never touch
//! the file system and never normalise the text: no CRLF conversion, no Unicode
//! normalisation, no trimming, because match offsets are byte offsets into the
//! text as read.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// Why a file is not an article.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// Zero bytes, or only whitespace once decoded (and, for HTML and JSON,
    /// once markup is removed).
    #[error("file is empty")]
    Empty,
    /// A NUL byte outside a UTF-16 file: images, PDFs, archives, editor swap files.
    #[error("file looks binary (contains NUL bytes)")]
    Binary,
    /// Larger than the configured `max_file_size`.
    #[error("file is larger than the limit of {limit} bytes ({size} bytes)")]
    TooLarge { size: u64, limit: u64 },
    /// The file claims a structure it does not have, e.g. a `.json` article
    /// that is not valid JSON or has no text field.
    #[error("{0}")]
    Malformed(String),
}

/// A warning worth logging while the article is still processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadWarning {
    /// The bytes were not valid UTF-8 and were decoded as Windows-1252, so
    /// match offsets refer to the decoded text, not to the file's bytes.
    NotUtf8,
}

impl std::fmt::Display for ReadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadWarning::NotUtf8 => f.write_str("file is not valid utf-8, decoded as windows-1252"),
        }
    }
}

/// The decoded text of a file and what was worth noting on the way.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) text: String,
    pub(crate) warnings: Vec<ReadWarning>,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a file's bytes, checking the size limit first.
pub(crate) fn decode(bytes: &[u8], max_size: u64) -> Result<Decoded, SkipReason> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > max_size {
        return Err(SkipReason::TooLarge {
            size,
            limit: max_size,
        });
    }
    if bytes.is_empty() {
        return Err(SkipReason::Empty);
    }

    let decoded = if let Some(encoding) = utf16_encoding(bytes) {
        // UTF-16 text is full of zero bytes, so the NUL check runs on the
        // decoded characters instead.
        let (text, _had_errors) = encoding.decode_with_bom_removal(bytes);
        if text.contains('\0') {
            return Err(SkipReason::Binary);
        }
        Decoded {
            text: text.into_owned(),
            warnings: Vec::new(),
        }
    } else {
        if bytes.contains(&0) {
            return Err(SkipReason::Binary);
        }
        let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        match std::str::from_utf8(body) {
            Ok(text) => Decoded {
                text: text.to_owned(),
                warnings: Vec::new(),
            },
            Err(_) => {
                // Windows-1252 maps every byte to a character, so this cannot fail.
                let (text, _had_errors) = WINDOWS_1252.decode_without_bom_handling(body);
                Decoded {
                    text: text.into_owned(),
                    warnings: vec![ReadWarning::NotUtf8],
                }
            }
        }
    };

    if decoded.text.trim().is_empty() {
        return Err(SkipReason::Empty);
    }
    Ok(decoded)
}

/// The UTF-16 flavour announced by a byte order mark, if any.
fn utf16_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    match bytes {
        [0xFF, 0xFE, ..] => Some(UTF_16LE),
        [0xFE, 0xFF, ..] => Some(UTF_16BE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1024;

    fn text_of(bytes: &[u8]) -> (String, Vec<ReadWarning>) {
        match decode(bytes, LIMIT) {
            Ok(decoded) => (decoded.text, decoded.warnings),
            Err(reason) => panic!("expected text, got skip: {reason}"),
        }
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut bytes = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for unit in text.encode_utf16() {
            let pair = if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            };
            bytes.extend_from_slice(&pair);
        }
        bytes
    }

    #[test]
    fn decodes_each_encoding_to_the_expected_text() {
        let cases: &[(&str, Vec<u8>, &str, Vec<ReadWarning>)] = &[
            (
                "plain utf-8",
                b"Haftar in Minsk".to_vec(),
                "Haftar in Minsk",
                vec![],
            ),
            (
                "utf-8 multibyte",
                "Haftar’s trip to Минск, حفتر".as_bytes().to_vec(),
                "Haftar’s trip to Минск, حفتر",
                vec![],
            ),
            (
                "utf-8 bom is stripped",
                b"\xEF\xBB\xBFTobruk air base".to_vec(),
                "Tobruk air base",
                vec![],
            ),
            (
                "windows-1252 curly apostrophe",
                b"Haftar\x92s visit".to_vec(),
                "Haftar\u{2019}s visit",
                vec![ReadWarning::NotUtf8],
            ),
            (
                "windows-1252 after a utf-8 bom",
                b"\xEF\xBB\xBF\x93Minsk\x94 \x96 caf\xE9".to_vec(),
                "\u{201C}Minsk\u{201D} \u{2013} caf\u{e9}",
                vec![ReadWarning::NotUtf8],
            ),
            (
                "utf-16 le with bom",
                utf16("Tor-M2 in Benghazi", false),
                "Tor-M2 in Benghazi",
                vec![],
            ),
            (
                "utf-16 be with bom",
                utf16("Лукашенко met Haftar", true),
                "Лукашенко met Haftar",
                vec![],
            ),
        ];
        for (name, bytes, want_text, want_warnings) in cases {
            let (text, warnings) = text_of(bytes);
            assert_eq!(&text, want_text, "{name}");
            assert_eq!(&warnings, want_warnings, "{name}");
        }
    }

    #[test]
    fn keeps_line_endings_and_spacing_exactly() {
        let raw = "  Title\r\n\r\nBody line\r\n\tindented\n";
        let (text, _) = text_of(raw.as_bytes());
        assert_eq!(text, raw);
    }

    #[test]
    fn skips_files_that_are_not_articles() {
        let cases: &[(&str, &[u8], SkipReason)] = &[
            ("zero bytes", b"", SkipReason::Empty),
            ("whitespace only", b" \r\n\t \n ", SkipReason::Empty),
            ("bom then whitespace", b"\xEF\xBB\xBF \n", SkipReason::Empty),
            ("nbsp only", "\u{a0}\n".as_bytes(), SkipReason::Empty),
            ("nul byte", b"Minsk\0visit", SkipReason::Binary),
            (
                "png header",
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                SkipReason::Binary,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(
                decode(bytes, LIMIT).map(|d| d.text).as_ref(),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn utf16_with_an_encoded_nul_is_binary() {
        let bytes = utf16("abc\0def", false);
        assert_eq!(
            decode(&bytes, LIMIT).map(|d| d.text),
            Err(SkipReason::Binary)
        );
    }

    #[test]
    fn size_limit_is_checked_before_anything_else() {
        let bytes = vec![0u8; 11];
        assert_eq!(
            decode(&bytes, 10).map(|d| d.text),
            Err(SkipReason::TooLarge {
                size: 11,
                limit: 10
            })
        );
        // Exactly at the limit is allowed.
        assert_eq!(
            decode(b"0123456789", 10).map(|d| d.text),
            Ok("0123456789".to_owned())
        );
    }

    #[test]
    fn messages_are_lowercase_and_name_the_numbers() {
        let too_large = SkipReason::TooLarge {
            size: 20,
            limit: 10,
        };
        assert_eq!(
            too_large.to_string(),
            "file is larger than the limit of 10 bytes (20 bytes)"
        );
        assert_eq!(
            SkipReason::Binary.to_string(),
            "file looks binary (contains NUL bytes)"
        );
        assert_eq!(SkipReason::Empty.to_string(), "file is empty");
        assert_eq!(
            SkipReason::Malformed("bad json".into()).to_string(),
            "bad json"
        );
        assert_eq!(
            ReadWarning::NotUtf8.to_string(),
            "file is not valid utf-8, decoded as windows-1252"
        );
    }
}
