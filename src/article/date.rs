//! Finding an article's publication date in the first lines of its text.
//!
//! This file owns the date formats newswatch understands and where it looks for
//! them: the first 12 non-empty lines, within the first 2,000 bytes, first date
//! wins. It must never guess: an impossible date (30 February), a year outside
//! 1990-2100 or a number that is not part of a date ("BM-30 2025") gives no date,
//! never an error and never "today". Ambiguous numeric forms (`02/03/2025`,
//! US or European?) are deliberately not recognised.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

/// How many non-empty lines from the top are searched.
const MAX_LINES: usize = 12;
/// How many bytes from the top are searched.
const MAX_BYTES: usize = 2_000;
const MIN_YEAR: i32 = 1990;
const MAX_YEAR: i32 = 2100;

/// Month names, full or abbreviated; longer alternatives first ("sept" before "sep").
const MONTH: &str = r"(?P<m>january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\b\.?";
/// A day of the month with an optional ordinal suffix ("17", "17th").
const DAY: &str = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?";
/// The rest of a day range ("-19" in "17-19 February"); the first day is kept.
const RANGE_END: &str = r"(?:\s*[-–—]\s*\d{1,2}(?:st|nd|rd|th)?)?";
const YEAR: &str = r"(?P<y>\d{4})\b";

/// Every pattern names its parts `y`, `m` (number or month name) and `d`.
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let sources = [
        // "18 February 2025", "On 18 February 2025", "17-19 February 2025", "18th of Feb, 2025"
        format!(r"(?i)\b{DAY}{RANGE_END}\s+(?:of\s+)?{MONTH},?\s+{YEAR}"),
        // "May 30, 2025", "Feb. 17-19, 2025", "Tuesday, October 21, 2025"
        format!(r"(?i)\b{MONTH}\s+{DAY}{RANGE_END},?\s+{YEAR}"),
        // "Published on 2025 February 24, Monday"
        format!(r"(?i)\b(?P<y>\d{{4}}),?\s+{MONTH}\s+{DAY}\b"),
        // ISO 8601 "2025-02-18", also the date part of "2025-02-18T10:00:00Z"
        r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:T|\b)".to_owned(),
        // "2025/02/18"
        r"\b(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})\b".to_owned(),
        // "18.02.2025"
        r"\b(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})\b".to_owned(),
    ];
    sources
        .iter()
        .map(|source| Regex::new(source).expect("built-in date pattern is a valid regex"))
        .collect()
});

/// Publication date found in the first lines of `text`.
///
/// Looks at the first 12 non-empty lines, and only within the first 2,000
/// bytes, and returns the first valid date: earlier lines win, and within a
/// line the leftmost date wins. Understood forms (month names full or
/// three-letter, any case, weekdays and commas optional): `May 30, 2025`,
/// `18 February 2025`, `17-19 February 2025` (first day of the range),
/// `2025 February 24`, `2025-02-18`, `2025-02-18T10:00:00Z`, `2025/02/18`,
/// `18.02.2025`. Impossible dates and years outside 1990-2100 are skipped.
pub fn find_published(text: &str) -> Option<NaiveDate> {
    let window = &text[..floor_char_boundary(text, MAX_BYTES)];
    window
        .lines()
        .filter(|line| !line.trim().is_empty())
        .take(MAX_LINES)
        .find_map(first_date_in_line)
}

/// The leftmost valid date in one line, whatever its format.
fn first_date_in_line(line: &str) -> Option<NaiveDate> {
    // Every form has a four-digit year, and only ASCII digits parse as one:
    // most lines have none, and skipping them spares six regex searches.
    if !has_four_ascii_digits(line) {
        return None;
    }
    PATTERNS
        .iter()
        .filter(|pattern| pattern.is_match(line))
        .filter_map(|pattern| {
            pattern.captures_iter(line).find_map(|caps| {
                Some((
                    caps.get(0)?.start(),
                    date_from_parts(&caps["y"], &caps["m"], &caps["d"])?,
                ))
            })
        })
        .min_by_key(|(start, _)| *start)
        .map(|(_, date)| date)
}

fn has_four_ascii_digits(line: &str) -> bool {
    let mut run = 0;
    for byte in line.bytes() {
        run = if byte.is_ascii_digit() { run + 1 } else { 0 };
        if run == 4 {
            return true;
        }
    }
    false
}

fn date_from_parts(year: &str, month: &str, day: &str) -> Option<NaiveDate> {
    let year: i32 = year.parse().ok()?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return None;
    }
    let month = match month.parse::<u32>() {
        Ok(number) => number,
        Err(_) => month_number(month)?,
    };
    NaiveDate::from_ymd_opt(year, month, day.parse().ok()?)
}

/// 1-12 for an English month name or its abbreviation, any case.
fn month_number(name: &str) -> Option<u32> {
    const PREFIXES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let prefix = name.get(..3)?.to_ascii_lowercase();
    let index = PREFIXES.iter().position(|candidate| *candidate == prefix)?;
    u32::try_from(index + 1).ok()
}

/// The largest char boundary of `text` not after `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year, month, day)
    }

    #[test]
    fn recognises_each_supported_format() {
        let cases = [
            ("May 30, 2025", ymd(2025, 5, 30)),
            (
                "by Staff | May 30, 2025 | Diplomacy, Libya",
                ymd(2025, 5, 30),
            ),
            (
                "by | May 30, 2025 | Diplomacy, Libya, Russia",
                ymd(2025, 5, 30),
            ),
            ("October 21, 2025", ymd(2025, 10, 21)),
            ("Tuesday, October 21, 2025 - 10:42", ymd(2025, 10, 21)),
            ("Published on 2025 February 24, Monday", ymd(2025, 2, 24)),
            ("On 18 February 2025", ymd(2025, 2, 18)),
            ("18 February 2025", ymd(2025, 2, 18)),
            ("Wednesday 18 February 2025", ymd(2025, 2, 18)),
            ("17-19 February 2025", ymd(2025, 2, 17)),
            ("Haftar was in Minsk 17–19 February 2025.", ymd(2025, 2, 17)),
            (
                "0n 17-19 February 2025 Field Marshal Haftar visited Minsk",
                ymd(2025, 2, 17),
            ),
            ("2025-02-18", ymd(2025, 2, 18)),
            ("2025-02-18T10:00:00Z", ymd(2025, 2, 18)),
            ("Updated: 2025-02-18T23:59:59+03:00", ymd(2025, 2, 18)),
            ("18.02.2025", ymd(2025, 2, 18)),
            ("2025/02/18", ymd(2025, 2, 18)),
            ("feb. 18, 2025", ymd(2025, 2, 18)),
            ("SEPT 3, 2025", ymd(2025, 9, 3)),
            ("Sep 3 2025", ymd(2025, 9, 3)),
            ("the 18th of February, 2025", ymd(2025, 2, 18)),
            ("Feb 17-19, 2025", ymd(2025, 2, 17)),
            ("MAY 26, 2025", ymd(2025, 5, 26)),
            ("25 May 2025", ymd(2025, 5, 25)),
        ];
        for (line, want) in cases {
            assert_eq!(find_published(line), want, "{line:?}");
        }
    }

    #[test]
    fn ignores_things_that_are_not_dates() {
        let cases = [
            "no date here",
            "The BM-30 2025 variant was on parade",
            "BM-30, 2025 edition",
            "12 monkeys 2025",
            "February 30, 2025",
            "30 February 2025",
            "2025-02-30",
            "31.04.2025",
            "2025/13/01",
            "May 30, 1989",
            "May 30, 2101",
            "May 30, 20255",
            "march 2025 was cold",
            "Tornado-S, Tor-M2 and 9K332 were shown",
            "2025-02-1899",
        ];
        for line in cases {
            assert_eq!(find_published(line), None, "{line:?}");
        }
    }

    #[test]
    fn skips_an_impossible_date_and_keeps_looking_in_the_line() {
        assert_eq!(
            find_published("February 30, 2025, corrected: March 1, 2025"),
            ymd(2025, 3, 1)
        );
    }

    #[test]
    fn leftmost_date_in_a_line_wins_whatever_its_format() {
        assert_eq!(
            find_published("18.02.2025, updated May 30, 2025"),
            ymd(2025, 2, 18)
        );
        assert_eq!(
            find_published("May 30, 2025 (first published 2025-02-18)"),
            ymd(2025, 5, 30)
        );
    }

    #[test]
    fn earlier_line_wins_over_later_line() {
        let text = "Haftar visits Minsk\nOn 18 February 2025 he landed\nUpdated October 21, 2025";
        assert_eq!(find_published(text), ymd(2025, 2, 18));
    }

    #[test]
    fn looks_only_at_the_first_twelve_non_empty_lines() {
        let lines_before = |count: usize| {
            (1..=count)
                .map(|n| format!("line {n}\n"))
                .collect::<String>()
        };

        let date_on_line_20 = format!("{}May 30, 2025\n", lines_before(19));
        assert_eq!(find_published(&date_on_line_20), None);

        let date_on_line_12 = format!("{}May 30, 2025\n", lines_before(11));
        assert_eq!(find_published(&date_on_line_12), ymd(2025, 5, 30));

        let date_on_line_13 = format!("{}May 30, 2025\n", lines_before(12));
        assert_eq!(find_published(&date_on_line_13), None);

        // Blank lines do not count towards the twelve.
        let spaced = format!(
            "\n\n \r\n{}\n\n\n\nMay 30, 2025\n",
            lines_before(11).replace('\n', "\n\n")
        );
        assert_eq!(find_published(&spaced), ymd(2025, 5, 30));
    }

    #[test]
    fn looks_only_at_the_first_two_thousand_bytes() {
        let long_first_line = "word ".repeat(500);
        assert_eq!(
            find_published(&format!("{long_first_line}\nMay 30, 2025")),
            None
        );
        assert_eq!(
            find_published(&format!("{}\nMay 30, 2025", "word ".repeat(300))),
            ymd(2025, 5, 30)
        );
    }

    #[test]
    fn window_edge_inside_a_multibyte_character_does_not_panic() {
        // 'é' is two bytes: byte 2,000 falls in the middle of one when prefixed by one byte.
        let text = format!("x{}\nMay 30, 2025", "é".repeat(1_200));
        assert_eq!(find_published(&text), None);
        assert_eq!(find_published("é"), None);
        assert_eq!(find_published(""), None);
    }

    #[test]
    fn crlf_lines_are_searched_like_lf_lines() {
        assert_eq!(
            find_published("Title\r\n\r\nOn 18 February 2025\r\nbody"),
            ymd(2025, 2, 18)
        );
    }
}
