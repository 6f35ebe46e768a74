//! newswatch's matching core as one row of the side-by-side benchmark.
//!
//! Same contract as the Python peers in `matchers.py`: articles are read into
//! memory first, the rule set is compiled from a `gen_rules.py` file, and the
//! timed part is `RuleSet::scan` (normalise + automaton + evaluation) over
//! every article. Writes one JSON result in the peers' format.
//!
//! ```sh
//! cargo build --release --example bench_engine
//! target/release/examples/bench_engine --corpus /tmp/nwbench/corpus \
//!     --rules /tmp/nwbench/rules_1000.json --out res.json --repeats 3
//! ```
//!
//! Each input rule `{"id", "phrases"}` becomes an entity with the phrases as
//! aliases and a rule `entity:ID`, exactly as `bench/rules_to_config.py`
//! writes it for the daemon. A rule's count is the number of distinct alias
//! mentions it cites, the peers' "every occurrence" count.

use std::collections::BTreeMap;
use std::time::Instant;

use newswatch::rules::expr::parse;
use newswatch::rules::normalize::normalize;
use newswatch::rules::{EntityDef, RuleDef, RuleSet, RuleSetInput};

struct Args {
    corpus: String,
    rules: String,
    out: String,
    repeats: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        corpus: String::new(),
        rules: String::new(),
        out: String::new(),
        repeats: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--corpus" => args.corpus = value,
            "--rules" => args.rules = value,
            "--out" => args.out = value,
            "--repeats" => args.repeats = value.parse().unwrap_or(3),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if args.corpus.is_empty() || args.rules.is_empty() || args.out.is_empty() {
        eprintln!(
            "usage: bench_engine --corpus DIR --rules RULES.json --out RESULT.json [--repeats N]"
        );
        std::process::exit(2);
    }
    args
}

/// `VmHWM` (peak RSS) of this process, in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Turns `gen_rules.py` output into the rule-set input the daemon would build.
pub fn rule_set_input(rules: &[(String, Vec<String>)]) -> RuleSetInput {
    let mut input = RuleSetInput::default();
    for (id, phrases) in rules {
        input.entities.push(EntityDef {
            id: id.clone(),
            class: None,
            aliases: phrases.clone(),
            not: Vec::new(),
            // As config.toml's defaults: no fuzziness, transliteration on.
            fuzzy: 0,
            translit: true,
        });
        input.rules.push(RuleDef {
            id: id.clone(),
            expr: parse(&format!("entity:{id}")).expect("entity ids from gen_rules.py parse"),
        });
    }
    input
}

fn main() {
    let args = parse_args();
    let mut names: Vec<String> = std::fs::read_dir(format!("{}/articles", args.corpus))
        .expect("corpus/articles is readable")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let articles: Vec<String> = names
        .iter()
        .map(|name| {
            std::fs::read_to_string(format!("{}/articles/{name}", args.corpus))
                .expect("article is UTF-8")
        })
        .collect();
    let bytes: usize = articles.iter().map(String::len).sum();

    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args.rules).expect("rules file"))
            .expect("rules JSON");
    let rules: Vec<(String, Vec<String>)> = raw
        .as_array()
        .expect("rules file is a list")
        .iter()
        .map(|rule| {
            let id = rule["id"].as_str().unwrap_or_default().to_string();
            let phrases = rule["phrases"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (id, phrases)
        })
        .collect();
    let phrase_count: usize = rules.iter().map(|(_, p)| p.len()).sum();
    let input = rule_set_input(&rules);
    drop(raw);
    let rss_base = peak_rss_mb();

    let start = Instant::now();
    let set = match RuleSet::compile(&input) {
        Ok(set) => set,
        Err(errors) => {
            eprintln!("rule set does not compile: {}", errors[0].message);
            std::process::exit(1);
        }
    };
    let compile_s = start.elapsed().as_secs_f64();
    drop(input);

    let mut runs = Vec::new();
    // Counts by rule index, as the Python peers count in a list or dict: a
    // B-tree map here was ~10% of a pass at 100,000 rules (47,000 updates
    // over 4,000 keys), time that is the harness's, not the engine's.
    let mut by_rule: Vec<Option<u64>> = vec![None; set.len()];
    for _ in 0..args.repeats.max(1) {
        by_rule.fill(None);
        let start = Instant::now();
        for text in &articles {
            for fired in set.scan(text) {
                *by_rule[fired.rule].get_or_insert(0) += fired.entities.len() as u64;
            }
        }
        runs.push(start.elapsed().as_secs_f64());
    }
    let counts: BTreeMap<usize, u64> = by_rule
        .iter()
        .enumerate()
        .filter_map(|(rule, &n)| Some((rule, n?)))
        .collect();
    // Normalisation alone, to show where the time goes. After the scans: run
    // first, it paid for sorting out the heap the compile had just freed
    // (glibc's consolidation of those chunks, half its samples at 100,000
    // rules), which the scans' median of passes leaves out.
    let start = Instant::now();
    let mut words = 0usize;
    for text in &articles {
        words += normalize(text).tokens.len();
    }
    let normalize_s = start.elapsed().as_secs_f64();

    // The same scan on every core (articles split between threads), as ripgrep
    // runs by default; the daemon's pipeline is single-threaded today.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut parallel_runs = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let start = Instant::now();
        let chunk = articles.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for part in articles.chunks(chunk) {
                let set = &set;
                scope.spawn(move || part.iter().map(|text| set.scan(text).len()).sum::<usize>());
            }
        });
        parallel_runs.push(start.elapsed().as_secs_f64());
    }
    let med = median(&runs);
    let mb = bytes as f64 / 1e6;
    let result = serde_json::json!({
        "engine": "newswatch",
        "rules_file": args.rules,
        "k": rules.len(),
        "phrases": phrase_count,
        "patterns": set.pattern_count(),
        "automaton_bytes": set.automaton_memory(),
        "articles": articles.len(),
        "words": words,
        "mb": mb,
        "compile_s": compile_s,
        "normalize_mb_per_s": mb / normalize_s,
        "match_s_runs": runs,
        "match_s_median": med,
        "first_pass_mb_per_s": mb / runs[0],
        "mb_per_s": mb / med,
        "articles_per_s": articles.len() as f64 / med,
        "threads": threads,
        "threads_mb_per_s": mb / median(&parallel_runs),
        "rss_base_mb": rss_base,
        "peak_rss_mb": peak_rss_mb(),
        "partial": false,
        "articles_done": articles.len(),
        "total_matches": counts.values().sum::<u64>(),
        "rules_matched": counts.len(),
        "counts": counts.iter().map(|(&rule, &n)| (set.rule_id(rule).to_string(), n)).collect::<BTreeMap<_, _>>(),
    });
    std::fs::write(&args.out, result.to_string()).expect("write result");
    println!(
        "newswatch k={} compile={:.3}s match={:.1} MB/s ({:.0} articles/s; {threads} threads: {:.1} MB/s) normalise={:.1} MB/s rss={:.0} MB matches={}",
        rules.len(),
        compile_s,
        mb / med,
        articles.len() as f64 / med,
        mb / median(&parallel_runs),
        mb / normalize_s,
        peak_rss_mb(),
        result["total_matches"]
    );
}
