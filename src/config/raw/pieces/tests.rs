use super::*;

/// `source` read in pieces of `piece_len` bytes, as `{:?}`, which shows
/// every span.
fn in_pieces(source: &str, piece_len: usize) -> String {
    let raw = parse(source, piece_len).expect("read in pieces");
    format!("{raw:?}")
}

fn whole(source: &str) -> String {
    format!("{:?}", RawConfig::parse_whole(source).expect("parses"))
}

/// Every kind of value a piece can hold, the rest of the document before,
/// between and after the runs of tables, and what could pass for a header
/// where none is: inside multi-line strings and arrays, after quotes,
/// escapes and comments.
const FULL: &str = r####"# A config with "quotes" and 'apostrophes' in a comment [rules.not_a_header]
[watch]
dir = "articles"
extensions = ["txt", "md"]
max_article_age = "30d"

[state]
dir = 'C:\state\'

[lists]
places = ["Tobruk", "Benghazi"]

[entities.haftar]
class = "person"
aliases = [
    "Haftar",   # [entities.in_a_comment]
    "Хафтар",
    "حفتر",
]
not = ["Haftar Street"]
fuzzy = 1
translit = true

  [entities.tor_m2]   # an indented header
aliases = ["Tor-M2", "Tor M2"]
class = 'air-defense'

[ entities . minsk ]
aliases = ["Minsk"]
not = ["Minsk agreements", """Minsk
[rules.inside_a_string]
format"""]

[sinks.archive]
type = "file"
dir = "alerts"

[rules.tobruk]
description = """
A multi-line description, with "quotes", \"""escaped\""" ones and a line like
[rules.fake]
that is no header."""
match = 'entity:haftar NEAR/5 "Tobruk"'
severity = "critical"
sinks = ["archive"]
throttle = "6h"
throttle_by = "entity"
on_duplicate = "suppress"

[rules.tobruk.threshold]
count = 3
within = "24h"

[rules.new_system]
match = "class:air-defense"
first_seen = true
threshold = { count = 2, within = "1h" }

[rules.minsk_visit]
match = '''entity:minsk AND "visit"'''
description = '''ends in two quotes: '''''
sinks = [
  [ "not", "a", "header" ][0],
]

[[tests]]
name = "a test"
text = """
[entities.in_a_test]
Haftar's forces moved towards Tobruk.""""
expect = ["tobruk"]

[[tests]]
text = 'Lukashenko'
expect_not = ["tobruk"]

[server]
listen = "127.0.0.1:9464"

[classes.person]
discover = ['(\w+) said']

[entities.benghazi]
aliases = ["Benghazi"]
[rules.benghazi]
match = "entity:benghazi"
"####;

#[test]
fn the_pieces_read_as_the_whole_document_does_spans_and_all() {
    // A broken sink list in `minsk_visit` is not what this test is about:
    // everything it reads must be valid.
    let source = FULL.replace("  [ \"not\", \"a\", \"header\" ][0],\n", "  \"archive\",\n");
    let expected = whole(&source);
    for piece_len in [1, 64, 200, 1 << 20] {
        assert_eq!(
            in_pieces(&source, piece_len),
            expected,
            "pieces of {piece_len}"
        );
    }
    let crlf = source.replace('\n', "\r\n");
    assert_eq!(in_pieces(&crlf, 1), whole(&crlf));
}

#[test]
fn the_scan_cuts_only_at_headers() {
    let source = FULL;
    let segments = segments(source.as_bytes()).expect("scans");
    let headers: Vec<&str> = segments[1..]
        .iter()
        .map(|segment| source[segment.start..].lines().next().expect("a line"))
        .collect();
    assert_eq!(
        headers,
        [
            "[watch]",
            "[state]",
            "[lists]",
            "[entities.haftar]",
            "[entities.tor_m2]   # an indented header",
            "[ entities . minsk ]",
            "[sinks.archive]",
            "[rules.tobruk]",
            "[rules.new_system]",
            "[rules.minsk_visit]",
            "[[tests]]",
            "[[tests]]",
            "[server]",
            "[classes.person]",
            "[entities.benghazi]",
            "[rules.benghazi]",
        ]
    );
    let names: Vec<&str> = segments
        .iter()
        .filter_map(|segment| segment.table)
        .map(|(_, (start, end))| &source[start..end])
        .collect();
    assert_eq!(
        names,
        [
            "haftar",
            "tor_m2",
            "minsk",
            "tobruk",
            "new_system",
            "minsk_visit",
            "benghazi",
            "benghazi"
        ]
    );
}

#[test]
fn the_rest_keeps_its_offsets_with_each_run_one_blank_line() {
    let segments = segments(FULL.as_bytes()).expect("scans");
    let runs = runs(&segments, FULL.len());
    assert_eq!(runs.len(), 3, "{runs:?}");
    let outside = |text: &str| -> String {
        let mut kept = String::new();
        let mut at = 0;
        for run in &runs {
            kept.push_str(&text[at..run.start]);
            at = run.end.min(text.len());
        }
        kept + &text[at.min(text.len())..]
    };
    // The last run ends the document: it is cut off.
    let rest = blank(FULL, &runs);
    assert_eq!(rest.len(), runs[2].start);
    for run in &runs[..2] {
        let line = &rest[run.clone()];
        assert!(line.ends_with('\n') && line.trim().is_empty(), "{line:?}");
    }
    assert_eq!(outside(&rest), outside(FULL));
    // Followed by more, it is blanked like the others.
    let more = format!("{FULL}[server]\nlisten = \"127.0.0.1:1\"\n");
    let rest = blank(&more, &runs);
    assert_eq!(rest.len(), more.len());
    assert!(rest[runs[2].clone()].trim().is_empty());
    assert_eq!(outside(&rest), outside(&more));
}

#[test]
fn pieces_end_between_tables_and_hold_at_least_the_piece_length() {
    let segments = segments(FULL.as_bytes()).expect("scans");
    let runs = runs(&segments, FULL.len());
    let starts: Vec<usize> = segments.iter().map(|segment| segment.start).collect();
    for piece_len in [1, 100, 1 << 20] {
        let pieces = pieces(&segments, &runs, piece_len);
        let mut covered = 0;
        for piece in &pieces {
            assert!(starts.contains(&piece.start), "{piece:?}");
            let run = runs
                .iter()
                .find(|run| run.start <= piece.start && piece.end <= run.end)
                .expect("a piece lies in one run");
            assert!(
                piece.len() >= piece_len || piece.end == run.end,
                "{piece:?}"
            );
            covered += piece.len();
        }
        assert_eq!(covered, runs.iter().map(|run| run.len()).sum::<usize>());
    }
    assert_eq!(pieces(&segments, &runs, 1).len(), 8);
    assert_eq!(pieces(&segments, &runs, 1 << 20).len(), 3);
}

#[test]
fn strings_end_where_toml_ends_them() {
    let end = |text: &'static str| string_end(text.as_bytes(), 0).map(|end| &text[..end]);
    assert_eq!(end(r#""a\"b" rest"#), Some(r#""a\"b""#));
    assert_eq!(end(r#""a\\" rest""#), Some(r#""a\\""#));
    assert_eq!(end(r"'C:\' rest'"), Some(r"'C:\'"));
    assert_eq!(
        end("\"\"\"a\n\"b\"\"\"\" rest\"\"\""),
        Some("\"\"\"a\n\"b\"\"\"\"")
    );
    assert_eq!(end("'''a''''' rest'''"), Some("'''a'''''"));
    assert_eq!(
        end("\"\"\"a\\\"\"\"b\"\"\" rest"),
        Some("\"\"\"a\\\"\"\"b\"\"\"")
    );
    assert_eq!(end("\"no end\n\""), None);
    assert_eq!(end("'''no end"), None);
    assert_eq!(end("\"ends in a backslash\\"), None);
    assert_eq!(end("'''six''''''"), None);
}

#[test]
fn what_the_pieces_do_not_cover_is_left_to_the_whole_parse() {
    let base =
        "[watch]\ndir = \"a\"\n[entities.a]\naliases = [\"A\"]\n[rules.a]\nmatch = \"entity:a\"\n";
    let cases = [
        // `rules` written otherwise, in the rest of the document.
        format!("{base}[rules]\nb.match = \"entity:a\"\n"),
        format!("rules = {{}}\n{base}"),
        format!("{base}[rules.\"quoted\"]\nmatch = \"entity:a\"\n"),
        format!("{base}[entities.b]\naliases = [\"B\"]\n[rules.a.threshold]\ncount = 2\nwithin = \"1h\"\n"),
        // A name twice, in two pieces: the whole parse says where.
        format!("{base}[rules.a]\nmatch = \"entity:a\"\n"),
        // A piece that does not read: an unknown key, a bad value.
        format!("{base}[rules.b]\nmatch = \"entity:a\"\nseverty = \"info\"\n"),
        format!("{base}[entities.b]\naliases = \"B\"\n"),
        // A piece that does not parse, and the rest.
        format!("{base}[rules.b]\nmatch = \n"),
        format!("{base}[watch.x]\n= 1\n"),
        // No tables to read in pieces at all.
        "[watch]\ndir = \"a\"\n".to_string(),
        // Brackets the scan cannot place.
        format!("{base}[rules.b]\nmatch = \"entity:a\"\nsinks = []]\n"),
    ];
    for source in &cases {
        assert!(parse(source, 1).is_none(), "{source}");
    }
    // The first of them is valid TOML: the whole parse reads it.
    assert!(RawConfig::parse_whole(&cases[0]).is_ok());
}

/// A config as large as [`MIN_LEN`] and more, with one mistake or none.
fn large(mistake: Option<usize>) -> String {
    let mut source = String::from("[watch]\ndir = \"articles\"\n\n");
    for index in 0..6_000 {
        source.push_str(&format!(
            "[entities.e{index:05}]\naliases = [\"Name{index}\", \"Other {index}\"]\n"
        ));
    }
    for index in 0..6_000 {
        let key = if mistake == Some(index) {
            "mtach"
        } else {
            "match"
        };
        source.push_str(&format!(
            "[rules.r{index:05}]\n{key} = 'entity:e{index:05}'\n"
        ));
    }
    source.push_str("[[tests]]\ntext = \"Name1\"\nexpect = [\"r00001\"]\n");
    source
}

#[test]
fn a_large_config_is_read_in_pieces_on_every_core_as_if_whole() {
    let source = large(None);
    assert!(source.len() >= MIN_LEN);
    let pieces = parse(&source, PIECE_LEN).expect("read in pieces");
    assert_eq!(pieces.entities.len(), 6_000);
    assert_eq!(pieces.rules.len(), 6_000);
    let expected = whole(&source);
    assert_eq!(format!("{pieces:?}"), expected);
    assert_eq!(
        format!("{:?}", RawConfig::parse(&source).expect("parses")),
        expected
    );
}

#[test]
fn a_mistake_in_a_large_config_is_reported_where_the_whole_parse_reports_it() {
    let source = large(Some(4_321));
    assert!(parse(&source, PIECE_LEN).is_none());
    let error = RawConfig::parse(&source).expect_err("a misspelt key");
    let expected = RawConfig::parse_whole(&source).expect_err("a misspelt key");
    assert_eq!(error.span(), expected.span());
    assert_eq!(error.message(), expected.message());
    let at = error.span().expect("a span").start;
    assert!(
        source[at..].starts_with("mtach"),
        "{}",
        &source[at..at + 20]
    );
}

/// Random configs, valid and not, written every way TOML allows where the
/// scan could go wrong: the pieces must read each as the whole parse does,
/// or leave it to the whole parse, and never accept what it rejects.
#[test]
fn random_configs_read_in_pieces_as_whole_or_not_at_all() {
    let mut read_in_pieces = 0;
    let mut valid = 0;
    for seed in 0..400 {
        let source = random_config(&mut fastrand::Rng::with_seed(seed));
        let whole = RawConfig::parse_whole(&source);
        for piece_len in [1, 60, 400] {
            match (&whole, parse(&source, piece_len)) {
                (Err(error), Some(_)) => {
                    panic!("seed {seed}: the pieces accept what the whole parse rejects ({error})\n{source}")
                }
                (Ok(whole), Some(pieces)) => {
                    assert_eq!(
                        format!("{pieces:?}"),
                        format!("{whole:?}"),
                        "seed {seed}\n{source}"
                    );
                    read_in_pieces += 1;
                }
                (_, None) => {}
            }
        }
        valid += usize::from(whole.is_ok());
    }
    // Not a test of nothing: most valid configs do go through the pieces.
    assert!(valid > 150, "{valid} valid of 400");
    assert!(
        read_in_pieces > 2 * valid,
        "{read_in_pieces} reads in pieces, {valid} valid configs"
    );
}

fn random_config(rng: &mut fastrand::Rng) -> String {
    let pick = |rng: &mut fastrand::Rng, items: &[&'static str]| items[rng.usize(..items.len())];
    // Strings that hold what could pass for a header, a comment or a bracket.
    let string = |rng: &mut fastrand::Rng| -> String {
        match rng.u8(..6) {
            0 => "\"plain [x] # not a comment\"".to_string(),
            1 => "'C:\\literal\\ [rules.y]'".to_string(),
            2 => "\"\"\"\n[rules.inside]\n\\\"\"\" still inside\"\"\"".to_string(),
            3 => "'''\n[entities.inside]\n'' two quotes'''''".to_string(),
            4 => "\"escaped \\\" quote ]\"".to_string(),
            _ => format!("\"word{}\"", rng.u16(..)),
        }
    };
    let mut names: Vec<String> = Vec::new();
    let mut name = |rng: &mut fastrand::Rng, prefix: &str| -> String {
        // Now and then a name again: two tables of one name are an error.
        if !names.is_empty() && rng.u8(..120) == 0 {
            return names[rng.usize(..names.len())].clone();
        }
        let name = format!("{prefix}{}", rng.u32(..1_000_000));
        names.push(name.clone());
        name
    };
    let mut out = String::from("[watch]\ndir = \"articles\"\n");
    for _ in 0..rng.usize(1..40) {
        let indent = pick(rng, &["", "", "  ", "\t"]);
        let comment = pick(rng, &["", "", "  # note [rules.no] \"x", " #"]);
        match rng.u8(..10) {
            0..=3 => {
                let id = name(rng, "e");
                out += &format!("{indent}[entities.{id}]{comment}\n");
                out += &match rng.u8(..3) {
                    0 => format!("aliases = [{}]\n", string(rng)),
                    1 => format!(
                        "aliases = [\n  {},  # an alias [rules.no]\n  {}\n  ,\n]\n",
                        string(rng),
                        string(rng)
                    ),
                    _ => format!(
                        "aliases = [{}, {}]\nclass = {}\n",
                        string(rng),
                        string(rng),
                        string(rng)
                    ),
                };
                if rng.bool() {
                    out += &format!(
                        "not = [{}]\nfuzzy = {}\ntranslit = {}\n",
                        string(rng),
                        rng.u8(..3),
                        rng.bool()
                    );
                }
            }
            4..=7 => {
                let id = name(rng, "r");
                out += &format!("{indent}[rules.{id}]{comment}\n");
                out += &format!("match = {}\n", string(rng));
                if rng.bool() {
                    out += &format!(
                        "description = {}\nsinks = [\"a\", {}]\n",
                        string(rng),
                        string(rng)
                    );
                }
                match rng.u8(..4) {
                    0 => out += "threshold = { count = 2, within = \"1h\" }\n",
                    1 => out += &format!("\n[rules.{id}.threshold]\ncount = 3\nwithin = \"2h\"\n"),
                    _ => {}
                }
            }
            8 => {
                out += &format!(
                    "{indent}[sinks.{}]\ntype = \"file\"\ndir = {}\n",
                    name(rng, "s"),
                    string(rng)
                );
            }
            _ => out += &format!("[[tests]]\ntext = {}\nexpect = [\"r1\"]\n", string(rng)),
        }
        // Mistakes, now and then, of the kinds the pieces must leave alone.
        match rng.u16(..240) {
            0 => out += "unknown_key = 1\n",
            1 => out += "broken = \"no end\n",
            2 => out += "[rules]\nx.match = \"entity:a\"\n",
            3 => out += "aliases = [\"unclosed\"\n",
            4 => out += "[rules.\"quoted\"]\nmatch = \"x\"\n",
            5 => out += "aliases = [[\"nested\"]]\n",
            6 => out += "[rules.x] match = \"on the header's line\"\n",
            _ => {}
        }
        out += pick(rng, &["", "\n", "# a comment line\n"]);
    }
    if rng.u8(..4) == 0 {
        out = out.replace('\n', "\r\n");
    }
    out
}
