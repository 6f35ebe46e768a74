//! A config error that points at a place: `FILE:LINE:COL: message`.
//! Owns the byte-offset to line/column conversion; never formats secrets.

use std::fmt;
use std::path::{Path, PathBuf};

/// One error in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at byte `offset` of `source` (clamped to the text).
    pub fn at(file: &Path, source: &str, offset: usize, message: impl Into<String>) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source[line_start..offset].chars().count() + 1;
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A diagnostic about the file as a whole (line 1, column 1).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let source = "a = 1\n# Минск\nb = 'x'\n";
        let file = Path::new("config.toml");
        let at = |offset| {
            let d = Diagnostic::at(file, source, offset, "m");
            (d.line, d.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(4), (1, 5));
        assert_eq!(at(6), (2, 1));
        // "# Минск" is 2 + 10 bytes; the newline after it is column 8.
        assert_eq!(at(18), (2, 8));
        assert_eq!(at(19), (3, 1));
        assert_eq!(at(10_000), (4, 1));
        assert_eq!(
            Diagnostic::at(file, source, 19, "bad").to_string(),
            "config.toml:3:1: bad"
        );
    }
}
