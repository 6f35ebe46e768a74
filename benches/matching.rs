//! Throughput of the matching core (normalise + automaton + evaluation) and
//! rule-set compile time, with 10, 1,000, 10,000 and 100,000 rules.
//!
//! ```sh
//! cargo bench --bench matching                 # full run, a few minutes
//! NEWSWATCH_BENCH_MAX_RULES=1000 cargo test --bench matching   # smoke: each case once
//! ```
//!
//! The corpus and the rules are generated here, deterministically, the way
//! `bench/gen_corpus.py` and `bench/gen_rules.py` draw them: planted entities
//! (with possessives, hyphens, upper case, Cyrillic and Arabic spellings and
//! whole-word decoys) in filler news sentences, and rule sets made of the
//! planted entities plus random people, places, organisations and topics.
//! Each rule is an entity with its phrases as aliases and the rule
//! `entity:ID`, as `bench/rules_to_config.py` configures the daemon.
//! Compile memory (automaton bytes and RSS growth) is printed to stderr.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use newswatch::rules::expr::parse;
use newswatch::rules::normalize::normalize;
use newswatch::rules::{EntityDef, RuleDef, RuleSet, RuleSetInput};

const PLANTED: &[(&str, &[&str], &[&str])] = &[
    (
        "E_HAFTAR",
        &["Haftar", "Хафтар", "حفتر"],
        &[
            "Haftar",
            "Haftar’s",
            "Haftar's",
            "Khalifa Haftar",
            "HAFTAR",
            "Lukashenko-Haftar",
            "Хафтар",
            "حفتر",
        ],
    ),
    (
        "E_LUKASHENKO",
        &["Lukashenko", "Lukashenka", "Лукашенко"],
        &[
            "Lukashenko",
            "Lukashenko’s",
            "Lukashenka",
            "Alexander Lukashenko",
            "Лукашенко",
        ],
    ),
    (
        "E_BELARUS",
        &["Belarus", "Belarusian", "Belarussian", "Беларусь"],
        &[
            "Belarus",
            "Belarusian",
            "Belarus’",
            "Belarus’s",
            "Belarusian-Libyan",
            "Беларусь",
        ],
    ),
    (
        "E_LIBYA",
        &["Libya", "Libyan", "Ливия", "ليبيا"],
        &["Libya", "Libyan", "Libya’s", "ليبيا", "Ливия"],
    ),
    (
        "E_RUSSIA",
        &["Russia", "Russian", "Россия"],
        &["Russia", "Russian", "Russia’s", "Россия"],
    ),
    (
        "E_BENGHAZI",
        &["Benghazi", "بنغازي"],
        &["Benghazi", "Benghazi-based", "بنغازي"],
    ),
    ("E_TOBRUK", &["Tobruk"], &["Tobruk", "TOBRUK"]),
    (
        "E_MINSK",
        &["Minsk", "Минск"],
        &["Minsk", "Minsk’s", "Минск"],
    ),
    ("E_TOR_M2", &["Tor-M2"], &["Tor-M2", "Tor-M2’s"]),
    ("E_BM_30", &["BM-30"], &["BM-30", "BM-30 Smerch"]),
    ("E_TRIPOLI", &["Tripoli"], &["Tripoli", "Tripoli’s"]),
    (
        "E_LNA",
        &["Libyan National Army"],
        &["Libyan National Army"],
    ),
    ("E_PANTSIR", &["Pantsir-S1"], &["Pantsir-S1"]),
];
const DECOYS: &[&str] = &["Tripolitania", "Libyana", "Belarusbank", "Belaruskali"];
const FIRST: &[&str] = &[
    "Ahmed", "Mohammed", "Ali", "Omar", "Khaled", "Salem", "Viktor", "Sergei", "Igor", "Olga",
    "Irina", "John", "Anna", "Maria",
];
const LAST: &[&str] = &[
    "Al-Mismari",
    "Bashagha",
    "Swehli",
    "Naji",
    "Mansour",
    "Volfovich",
    "Ivanov",
    "Petrov",
    "Sokolov",
    "Smith",
    "Clarke",
];
const SYL: &[&str] = &[
    "za", "wi", "ya", "ma", "rj", "gha", "dan", "bel", "ko", "vo", "gor", "sk", "ny", "mir", "lu",
    "ka", "shi", "ra", "tal", "bar", "dra", "nov", "ost", "ach", "fu", "jab", "sab", "ha", "zel",
    "pol", "tsk", "vil", "don", "ber", "ul", "kef", "mar", "sun", "tar",
];
const ORG: &[&str] = &[
    "Grain Company",
    "Oil Services",
    "Holding",
    "Trading House",
    "Brigade",
    "Security Company",
    "Logistics",
    "Bank",
];
const TOPIC: &[&str] = &[
    "air defense",
    "drones",
    "sanctions",
    "sanctions relief",
    "grain supply deal",
    "potash exports",
    "arms embargo",
    "mercenaries",
    "cease-fire",
    "Kremlin",
    "Sirte",
    "Misrata",
    "Cairo",
    "Ankara",
    "United Nations",
];
const FILLER: &[&str] = &[
    "The delegation said the two sides had agreed on a grain supply deal despite international sanctions.",
    "A senior official confirmed that the ministry would expand potash exports in the coming weeks.",
    "Officials in Moscow denied that a private military contractor had delivered new air defense systems.",
    "Analysts noted the central bank was negotiating a loan of several hundred million dollars.",
    "The UN envoy warned that foreign mercenaries were preparing a shipment of drones near the Jufra airbase.",
    "Oil production has fluctuated sharply since the blockade ended.",
    "Critics say the arrangement undermines the arms embargo.",
    "Satellite images showed new construction at the airfield.",
    "Farmers in the region have struggled with drought and high fertilizer costs.",
];
const PLANT_TEMPLATES: &[&str] = &[
    "Sources close to {} described the talks as constructive.",
    "{} was mentioned again in the report.",
    "In a statement, {} rejected the accusations.",
];

fn synth_name(rng: &mut fastrand::Rng, lo: usize, hi: usize) -> String {
    let mut name: String = (0..rng.usize(lo..=hi))
        .map(|_| SYL[rng.usize(..SYL.len())])
        .collect();
    if let Some(first) = name.get(..1) {
        let upper = first.to_ascii_uppercase();
        name.replace_range(..1, &upper);
    }
    name
}

/// About 6 KB of filler news with planted entities and decoys, like gen_corpus.py.
fn corpus(articles: usize) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..articles)
        .map(|_| {
            let mut text = String::with_capacity(7000);
            while text.len() < 6000 {
                if rng.f32() < 0.3 {
                    let (_, _, surfaces) = PLANTED[rng.usize(..PLANTED.len())];
                    let surface = surfaces[rng.usize(..surfaces.len())];
                    let template = PLANT_TEMPLATES[rng.usize(..PLANT_TEMPLATES.len())];
                    text.push_str(&template.replace("{}", surface));
                } else if rng.f32() < 0.03 {
                    text.push_str(&format!(
                        "Shares of {} rose.",
                        DECOYS[rng.usize(..DECOYS.len())]
                    ));
                } else if rng.f32() < 0.1 {
                    text.push_str(&format!(
                        "{} {} met {}.",
                        FIRST[rng.usize(..FIRST.len())],
                        LAST[rng.usize(..LAST.len())],
                        synth_name(&mut rng, 2, 4)
                    ));
                } else {
                    text.push_str(FILLER[rng.usize(..FILLER.len())]);
                }
                text.push(if rng.f32() < 0.2 { '\n' } else { ' ' });
            }
            text
        })
        .collect()
}

/// `count` rules drawn like gen_rules.py: the planted entities first, then
/// random people, places, organisations and topic phrases.
fn rules(count: usize) -> RuleSetInput {
    let mut rng = fastrand::Rng::with_seed(11 * 1_000_003 + count as u64);
    let mut seen = std::collections::HashSet::new();
    let mut input = RuleSetInput::default();
    let push = |input: &mut RuleSetInput, id: String, aliases: Vec<String>| {
        input.rules.push(RuleDef {
            id: id.clone(),
            expr: parse(&format!("entity:{id}")).expect("generated ids parse"),
        });
        input.entities.push(EntityDef {
            id,
            class: None,
            aliases,
            not: Vec::new(),
            // As config.toml's defaults: no fuzziness, transliteration on.
            fuzzy: 0,
            translit: true,
        });
    };
    for (id, aliases, _) in PLANTED.iter().take(count) {
        seen.extend(aliases.iter().map(|a| a.to_lowercase()));
        push(
            &mut input,
            id.to_string(),
            aliases.iter().map(|a| a.to_string()).collect(),
        );
    }
    let mut topics = TOPIC.to_vec();
    while input.rules.len() < count {
        let draw = rng.f32();
        let aliases: Vec<String> = if draw < 0.02 && !topics.is_empty() {
            vec![topics.remove(0).to_string()]
        } else if draw < 0.55 {
            let last = if rng.f32() < 0.3 {
                LAST[rng.usize(..LAST.len())].to_string()
            } else {
                synth_name(&mut rng, 2, 4)
                    + ["ov", "enko", "i", "ski", "ev", "a", ""][rng.usize(..7)]
            };
            let first = FIRST[rng.usize(..FIRST.len())];
            let mut person = vec![format!("{first} {last}")];
            if rng.f32() < 0.3 {
                person.push(format!("{}. {last}", &first[..1]));
            }
            person
        } else if draw < 0.75 {
            let place = synth_name(&mut rng, 2, 4);
            if rng.f32() < 0.3 {
                vec![format!("al-{place}"), place]
            } else {
                vec![place]
            }
        } else if draw < 0.9 {
            vec![format!(
                "{} {}",
                synth_name(&mut rng, 2, 4),
                ORG[rng.usize(..ORG.len())]
            )]
        } else {
            vec![format!(
                "covert {} shipment",
                synth_name(&mut rng, 1, 2).to_lowercase()
            )]
        };
        let aliases: Vec<String> = aliases
            .into_iter()
            .filter(|a| seen.insert(a.to_lowercase()))
            .collect();
        if !aliases.is_empty() {
            let id = format!("R{:06}", input.rules.len());
            push(&mut input, id, aliases);
        }
    }
    input
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Rule counts to run; `NEWSWATCH_BENCH_MAX_RULES` caps them for smoke runs.
fn sizes() -> Vec<usize> {
    let max: usize = std::env::var("NEWSWATCH_BENCH_MAX_RULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    [10, 1_000, 10_000, 100_000]
        .into_iter()
        .filter(|&k| k <= max)
        .collect()
}

fn matching(c: &mut Criterion) {
    let articles = corpus(200);
    let bytes: usize = articles.iter().map(String::len).sum();

    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("corpus", |b| {
        b.iter(|| {
            articles
                .iter()
                .map(|a| normalize(black_box(a)).tokens.len())
                .sum::<usize>()
        })
    });
    group.finish();

    for count in sizes() {
        let input = rules(count);
        let before = rss_kb();
        let set = RuleSet::compile(&input).expect("generated rules compile");
        eprintln!(
            "rules={count} patterns={} automaton={:.1} MB rss_growth={:.1} MB",
            set.pattern_count(),
            set.automaton_memory() as f64 / 1e6,
            rss_kb().saturating_sub(before) as f64 / 1024.0
        );
        let fired: usize = articles.iter().map(|a| set.scan(a).len()).sum();
        assert!(fired > 0, "the planted entities must fire");

        // The same scan, reported as MB/s and as articles/s.
        let throughputs = [
            ("scan_mb", Throughput::Bytes(bytes as u64)),
            ("scan_articles", Throughput::Elements(articles.len() as u64)),
        ];
        for (name, throughput) in throughputs {
            let mut group = c.benchmark_group(name);
            group.throughput(throughput);
            group.bench_with_input(BenchmarkId::from_parameter(count), &set, |b, set| {
                b.iter(|| {
                    articles
                        .iter()
                        .map(|a| set.scan(black_box(a)).len())
                        .sum::<usize>()
                })
            });
            group.finish();
        }

        let mut group = c.benchmark_group("compile");
        group.sample_size(10);
        group.bench_with_input(BenchmarkId::from_parameter(count), &input, |b, input| {
            b.iter(|| RuleSet::compile(black_box(input)).map(|set| set.pattern_count()))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = matching
}
criterion_main!(benches);
