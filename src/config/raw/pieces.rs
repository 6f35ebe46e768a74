//! Reading a large config.toml in pieces, on every core.
//!
//! With 100,000 entities and rules, `toml`'s parse of the document is half
//! of loading it, on one thread, and its temporaries (a token and an event
//! for each of the file's millions of tokens, then a table of spanned values)
//! make most of the load's peak memory and page faults. Yet each
//! `[entities.NAME]` or `[rules.NAME]` table stands on its own. So this
//! module finds where those tables are (a scan that knows TOML's strings,
//! comments and brackets, so that a header-like line inside a multi-line
//! string is not taken for a header), cuts their runs into pieces of about
//! [`PIECE_LEN`], and parses and reads the pieces on every core, each into its
//! structs before the next. The rest of the document is parsed as usual, from
//! a copy in which each run of those tables is blanked out to one line of
//! spaces of the same length, so its offsets stay put; a piece's spans are
//! moved by the piece's offset.
//!
//! Anything this does not cover returns `None`, and the caller parses the
//! document whole (which then reports any error at its place, the first in
//! the file): a piece that does not parse or read, a name in two pieces, or
//! `rules`/`entities` written other than as `[rules.NAME]`/`[entities.NAME]`
//! headers with bare keys (and their `[rules.NAME.SUB]` sub-tables).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Deserialize;
use smallvec::SmallVec;
use toml::Spanned;

use super::{table, RawConfig, RawEntity, RawRule, RawThreshold, Table};

/// Documents shorter than this are parsed whole: a few pieces would gain
/// nothing over one parse.
pub(super) const MIN_LEN: usize = 256 * 1024;

/// About how many bytes of tables one piece holds: small enough that a
/// piece's temporaries are reused from the heap by the next piece, instead
/// of being fresh pages.
pub(super) const PIECE_LEN: usize = 128 * 1024;

/// Reads `source` in pieces of about `piece_len` bytes; `None` when it has
/// no `[entities.NAME]`/`[rules.NAME]` tables to split or anything above
/// is not as expected.
pub(super) fn parse(source: &str, piece_len: usize) -> Option<RawConfig> {
    let segments = segments(source.as_bytes())?;
    let runs = runs(&segments, source.len());
    if runs.is_empty() {
        return None;
    }
    let pieces = pieces(&segments, &runs, piece_len);

    let next = AtomicUsize::new(0);
    let read: Mutex<Vec<(usize, Option<Piece>)>> = Mutex::new(Vec::with_capacity(pieces.len()));
    let work = || {
        let mut mine = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(range) = pieces.get(index) else {
                break;
            };
            let piece = read_piece(source, range.clone());
            let failed = piece.is_none();
            mine.push((index, piece));
            if failed {
                // No point reading on: the caller parses the whole document.
                next.store(pieces.len(), Ordering::Relaxed);
                break;
            }
        }
        read.lock().expect("no reader panics").append(&mut mine);
    };
    let helpers = std::thread::available_parallelism()
        .map_or(1, |cores| cores.get())
        .clamp(1, 4)
        - 1;
    let rest = std::thread::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(work);
        }
        let rest = read_rest(&blank(source, &runs));
        if rest.is_none() {
            // The caller parses the whole document: stop the helpers.
            next.store(pieces.len(), Ordering::Relaxed);
        }
        work();
        rest
    })?;

    let mut read = read.into_inner().expect("no reader panics");
    // In document order, so that a document written in name order (as
    // generated ones are) needs no sorting below.
    read.sort_unstable_by_key(|(index, _)| *index);
    let read: Vec<Piece> = read
        .into_iter()
        .map(|(_, piece)| piece)
        .collect::<Option<_>>()?;
    let mut entities = Vec::with_capacity(read.iter().map(|piece| piece.entities.len()).sum());
    let mut rules = Vec::with_capacity(read.iter().map(|piece| piece.rules.len()).sum());
    for piece in read {
        entities.extend(piece.entities);
        rules.extend(piece.rules);
    }
    let mut raw = rest;
    raw.entities = sorted_table(entities)?;
    raw.rules = sorted_table(rules)?;
    Some(raw)
}

/// What one piece holds, spans moved to where the piece is in the document.
struct Piece {
    entities: Vec<(String, Spanned<RawEntity>)>,
    rules: Vec<(String, Spanned<RawRule>)>,
}

fn read_piece(source: &str, range: Range<usize>) -> Option<Piece> {
    let offset = range.start;
    let mut document = toml::de::DeTable::parse(&source[range]).ok()?;
    let entities = document.get_mut().remove("entities");
    let rules = document.get_mut().remove("rules");
    if !document.get_ref().is_empty() {
        return None;
    }
    let entities: Table<Spanned<RawEntity>> = table(entities).ok()?;
    let rules: Table<Spanned<RawRule>> = table(rules).ok()?;
    Some(Piece {
        entities: moved(entities, offset),
        rules: moved(rules, offset),
    })
}

/// The items of `table`, spans moved by `by`.
fn moved<T: Shift>(table: Table<T>, by: usize) -> Vec<(String, T)> {
    table
        .items
        .into_iter()
        .map(|(name, item)| (name, item.shift(by)))
        .collect()
}

/// Everything but the tables read in pieces, which must be the only
/// `entities` and `rules` of the document.
fn read_rest(rest: &str) -> Option<RawConfig> {
    let document = toml::de::DeTable::parse(rest).ok()?;
    let table = document.get_ref();
    if table.contains_key("entities") || table.contains_key("rules") {
        return None;
    }
    RawConfig::deserialize(toml::de::Deserializer::from(document)).ok()
}

/// The items of every piece as one table; `None` when a name comes twice
/// (the whole parse reports where).
fn sorted_table<T>(items: Vec<(String, T)>) -> Option<Table<T>> {
    let table = Table::from_items(items);
    let twice = table.items.windows(2).any(|pair| pair[0].0 == pair[1].0);
    (!twice).then_some(table)
}

/// A stretch of the document from one table header to the next (the first
/// from the start of the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: usize,
    /// `[entities.NAME]` or `[rules.NAME]`, with the byte range of `NAME`,
    /// or `None` for any other table (and the document's start).
    table: Option<(Section, (usize, usize))>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Entities,
    Rules,
}

/// The document cut at its table headers. A header of a sub-table of the
/// table before it (`[rules.NAME.threshold]` after `[rules.NAME]`) does not
/// cut. `None` when the scan meets something it does not know (the parser
/// will then say what is wrong).
fn segments(source: &[u8]) -> Option<Vec<Segment>> {
    let mut segments = vec![Segment {
        start: 0,
        table: None,
    }];
    let mut at = 0;
    // Open `[` and `{` of values: a header can only be outside them.
    let mut depth = 0usize;
    // Only whitespace since the last newline outside strings.
    let mut line_start = true;
    while let Some(&byte) = source.get(at) {
        match byte {
            b'\n' => {
                line_start = true;
                at += 1;
            }
            b' ' | b'\t' | b'\r' => at += 1,
            b'#' => at = line_end(source, at),
            b'[' if line_start && depth == 0 => {
                let header = header(source, at)?;
                let last = segments.last().expect("the first is pushed above");
                let continues = match (last.table, &header.path) {
                    (Some((section, name)), Some(path)) => {
                        path.len() > 2
                            && path[0] == section.key()
                            && path[1] == &source[name.0..name.1]
                    }
                    _ => false,
                };
                if !continues {
                    let table = match header.path.as_deref() {
                        Some([section, name]) if !header.array => {
                            Section::of(section).map(|section| {
                                let start = name.as_ptr() as usize - source.as_ptr() as usize;
                                (section, (start, start + name.len()))
                            })
                        }
                        _ => None,
                    };
                    segments.push(Segment { start: at, table });
                }
                at = header.end;
                line_start = false;
            }
            b'"' | b'\'' => {
                at = string_end(source, at)?;
                line_start = false;
            }
            b'[' | b'{' => {
                depth += 1;
                at += 1;
                line_start = false;
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                at += 1;
                line_start = false;
            }
            _ => {
                at += 1;
                line_start = false;
            }
        }
    }
    (depth == 0).then_some(segments)
}

impl Section {
    fn of(key: &[u8]) -> Option<Section> {
        match key {
            b"entities" => Some(Section::Entities),
            b"rules" => Some(Section::Rules),
            _ => None,
        }
    }

    fn key(self) -> &'static [u8] {
        match self {
            Section::Entities => b"entities",
            Section::Rules => b"rules",
        }
    }
}

/// A table header: where it ends, and its keys when all are bare.
struct Header<'a> {
    end: usize,
    array: bool,
    path: Option<SmallVec<[&'a [u8]; 4]>>,
}

/// The header starting at `source[at]` (a `[`).
fn header(source: &[u8], at: usize) -> Option<Header<'_>> {
    let array = source.get(at + 1) == Some(&b'[');
    let mut i = at + if array { 2 } else { 1 };
    let mut path = Some(SmallVec::new());
    loop {
        i = skip_blanks(source, i);
        match *source.get(i)? {
            b'"' | b'\'' => {
                i = string_end(source, i)?;
                path = None;
            }
            _ => {
                let key_end = i + source[i..]
                    .iter()
                    .take_while(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
                    .count();
                if key_end == i {
                    return None;
                }
                if let Some(path) = &mut path {
                    path.push(&source[i..key_end]);
                }
                i = key_end;
            }
        }
        i = skip_blanks(source, i);
        match *source.get(i)? {
            b'.' => i += 1,
            b']' => break,
            _ => return None,
        }
    }
    let close: &[u8] = if array { b"]]" } else { b"]" };
    source[i..].starts_with(close).then_some(Header {
        end: i + close.len(),
        array,
        path,
    })
}

fn skip_blanks(source: &[u8], at: usize) -> usize {
    at + source[at..]
        .iter()
        .take_while(|byte| matches!(byte, b' ' | b'\t'))
        .count()
}

/// Where the line holding `source[at]` ends (at its `\n`, or the end).
fn line_end(source: &[u8], at: usize) -> usize {
    memchr::memchr(b'\n', &source[at..]).map_or(source.len(), |offset| at + offset)
}

/// Just past the string (basic or literal, one line or several) that
/// starts at `source[at]`; `None` when it does not end as TOML says.
fn string_end(source: &[u8], at: usize) -> Option<usize> {
    let quote = source[at];
    let basic = quote == b'"';
    if source[at..].starts_with(&[quote; 3]) {
        let mut i = at + 3;
        loop {
            let rest = source.get(i..)?;
            let found = if basic {
                memchr::memchr2(b'"', b'\\', rest)?
            } else {
                memchr::memchr(quote, rest)?
            };
            i += found;
            if source[i] == b'\\' {
                i += 2;
                continue;
            }
            let quotes = source[i..]
                .iter()
                .take_while(|&&byte| byte == quote)
                .count();
            if quotes >= 3 {
                // Up to two quotes may end the content before the closing three.
                return (quotes <= 5).then_some(i + quotes);
            }
            i += quotes;
        }
    }
    let mut i = at + 1;
    loop {
        let rest = source.get(i..)?;
        let found = if basic {
            memchr::memchr3(b'"', b'\\', b'\n', rest)?
        } else {
            memchr::memchr2(quote, b'\n', rest)?
        };
        i += found;
        match source[i] {
            b'\n' => return None,
            b'\\' => i += 2,
            _ => return Some(i + 1),
        }
    }
}

/// The byte ranges of the runs of `[entities.NAME]`/`[rules.NAME]` tables.
fn runs(segments: &[Segment], len: usize) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        if segment.table.is_none() {
            continue;
        }
        let end = segments.get(index + 1).map_or(len, |next| next.start);
        match runs.last_mut() {
            Some(run) if run.end == segment.start => run.end = end,
            _ => runs.push(segment.start..end),
        }
    }
    runs
}

/// The runs cut, between tables, into pieces of at least `piece_len` bytes
/// (a run's last piece may be shorter).
fn pieces(segments: &[Segment], runs: &[Range<usize>], piece_len: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut cuts = segments.iter().map(|segment| segment.start).peekable();
    for run in runs {
        let mut start = run.start;
        while let Some(&cut) = cuts.peek() {
            if cut >= run.end {
                break;
            }
            cuts.next();
            if cut > start && cut - start >= piece_len {
                pieces.push(start..cut);
                start = cut;
            }
        }
        pieces.push(start..run.end);
    }
    pieces
}

/// `source` without its runs: each is replaced by a line of spaces of the
/// same length (which the parser skips ~3 times faster than a comment, that
/// it checks byte by byte), and a run at the end is cut off.
fn blank(source: &str, runs: &[Range<usize>]) -> String {
    let end = match runs.last() {
        Some(last) if last.end == source.len() => last.start,
        _ => source.len(),
    };
    let mut rest = source.as_bytes()[..end].to_vec();
    for run in runs.iter().filter(|run| run.end <= end) {
        // A run is a header and more, so it is at least two bytes long.
        let bytes = &mut rest[run.clone()];
        bytes.fill(b' ');
        *bytes.last_mut().expect("runs are not empty") = b'\n';
    }
    String::from_utf8(rest).expect("runs start and end at line starts, and ASCII replaced them")
}

/// Moves every span in a value read from a piece of the document by where
/// the piece starts. Structs are taken apart field by field, so that a new
/// field does not compile until it is moved too.
trait Shift {
    fn shift(self, by: usize) -> Self;
}

impl<T: Shift> Shift for Spanned<T> {
    fn shift(self, by: usize) -> Self {
        let span = self.span();
        Spanned::new(span.start + by..span.end + by, self.into_inner().shift(by))
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(self, by: usize) -> Self {
        self.map(|value| value.shift(by))
    }
}

impl<T: Shift> Shift for Box<T> {
    fn shift(self, by: usize) -> Self {
        Box::new((*self).shift(by))
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(self, by: usize) -> Self {
        self.into_iter().map(|value| value.shift(by)).collect()
    }
}

/// Values without spans inside.
macro_rules! unmoved {
    ($($type:ty),*) => {
        $(impl Shift for $type {
            fn shift(self, _: usize) -> Self {
                self
            }
        })*
    };
}

unmoved!(String, bool, u8);

impl Shift for RawThreshold {
    fn shift(self, _: usize) -> Self {
        let RawThreshold { count, within } = self;
        RawThreshold { count, within }
    }
}

impl Shift for RawEntity {
    fn shift(self, by: usize) -> Self {
        let RawEntity {
            class,
            aliases,
            not,
            fuzzy,
            translit,
        } = self;
        RawEntity {
            class: class.shift(by),
            aliases: aliases.shift(by),
            not: not.shift(by),
            fuzzy: fuzzy.shift(by),
            translit,
        }
    }
}

impl Shift for RawRule {
    fn shift(self, by: usize) -> Self {
        let RawRule {
            description,
            match_expr,
            severity,
            sinks,
            first_seen,
            throttle,
            throttle_by,
            threshold,
            on_duplicate,
        } = self;
        RawRule {
            description,
            match_expr: match_expr.shift(by),
            severity,
            sinks: sinks.shift(by),
            first_seen: first_seen.shift(by),
            throttle: throttle.shift(by),
            throttle_by: throttle_by.shift(by),
            threshold: threshold.shift(by),
            on_duplicate: on_duplicate.shift(by),
        }
    }
}

#[cfg(test)]
mod tests;
