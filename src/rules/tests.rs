//! Rule behaviour as data: an article, a rule set, the rules that fire and
//! the text they cite.

use super::expr::parse;
use super::*;

/// The entities and lists every case can use (a small slice of the shipped config).
fn input(rules: &[(&str, &str)]) -> RuleSetInput {
    let spelled = |id: &str, aliases: &[&str], fuzzy: u8, translit: bool| EntityDef {
        id: id.to_string(),
        class: Some("person".to_string()),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        fuzzy,
        translit,
        ..EntityDef::default()
    };
    let entity = |id: &str, class: Option<&str>, aliases: &[&str], not: &[&str]| EntityDef {
        id: id.to_string(),
        class: class.map(str::to_string),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        not: not.iter().map(|s| s.to_string()).collect(),
        fuzzy: 0,
        translit: true,
    };
    RuleSetInput {
        entities: vec![
            entity(
                "minsk",
                Some("place"),
                &["Minsk", "Минск*", "Belarusian capital"],
                &["Minsk agreements", "Minsk format", "Minsk accords"],
            ),
            entity(
                "tor-m2",
                Some("air-defense"),
                &["Tor-M2", "9K332", "SA-15 Gauntlet"],
                &[],
            ),
            entity(
                "pantsir",
                Some("air-defense"),
                &["Pantsir", "SA-22 Greyhound"],
                &[],
            ),
            entity("haftar", Some("person"), &["Haftar", "Хафтар", "حفتر"], &[]),
            spelled(
                "karankevich",
                &["Karankevich", "Viktor Karankevich"],
                1,
                true,
            ),
            EntityDef {
                not: vec!["Lukashenka Street".to_string()],
                ..spelled("lukashenko", &["Lukashenko"], 1, true)
            },
            spelled("yevkurov", &["Yevkurov"], 0, true),
            spelled("benghazi", &["Benghazi"], 1, false),
            spelled("tor", &["Tor"], 2, true),
        ],
        lists: [(
            "visit".to_string(),
            ["visit*", "delegation", "talks", "arrived", "met", "hosted"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )]
        .into_iter()
        .collect(),
        rules: rules
            .iter()
            .map(|(id, source)| RuleDef {
                id: id.to_string(),
                expr: parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}")),
            })
            .collect(),
    }
}

/// Runs one rule on `article`; returns the cited texts, or None when it did not fire.
fn fire(rule: &str, article: &str) -> Option<Vec<String>> {
    let set = RuleSet::compile(&input(&[("r", rule)])).expect("rule compiles");
    let mut fired = set.scan(article);
    assert!(fired.len() <= 1);
    fired.pop().map(|m| {
        m.spans
            .iter()
            .map(|s| article[s.clone()].to_string())
            .collect()
    })
}

#[test]
fn rules_fire_on_the_right_text() {
    // (rule, article, cited texts or None when the rule must stay silent)
    let cases: &[(&str, &str, Option<&[&str]>)] = &[
        ("Tobruk", "Talks on the Tobruk air base.", Some(&["Tobruk"])),
        ("Tobruk", "TOBRUK’s runway", Some(&["TOBRUK"])),
        ("Tobruk", "Tobruks and Tobrukian", None),
        ("Tor-M2", "the TOR M2 system", Some(&["TOR M2"])),
        (
            "Tor-M2",
            "a tor\u{2011}m2 battery",
            Some(&["tor\u{2011}m2"]),
        ),
        ("Tor-M2", "the Tor browser; M2 later", None),
        ("Haftar", "Field Marshal Haftar’s sons", Some(&["Haftar"])),
        (
            "\"air defense\"",
            "new Air-Defense units",
            Some(&["Air-Defense"]),
        ),
        ("\"air defense\"", "air and defense", None),
        ("visit*", "the visitors arrived", Some(&["visitors"])),
        ("visit*", "revisit", None),
        (
            "entity:minsk",
            "He flew to Минске on Monday",
            Some(&["Минске"]),
        ),
        ("entity:minsk", "under the Minsk agreements of 2015", None),
        (
            "entity:minsk",
            "the Minsk format; later a visit to Minsk",
            Some(&["Minsk"]),
        ),
        (
            "entity:minsk NEAR/12 list:visit",
            "Haftar’s visit to Minsk was long",
            Some(&["visit to Minsk"]),
        ),
        (
            "entity:minsk NEAR/2 list:visit",
            "Minsk, the capital, where the delegation arrived",
            None,
        ),
        (
            "entity:minsk NEAR/3 list:visit",
            "Minsk, the capital, where talks",
            Some(&["Minsk, the capital, where talks"]),
        ),
        (
            "entity:minsk NEAR/12 list:visit",
            "talks on the Minsk agreements",
            None,
        ),
        (
            "class:air-defense",
            "a Pantsir and a 9K332",
            Some(&["Pantsir", "9K332"]),
        ),
        (
            "class:air-defense",
            "the Tornado storm and the Tor network",
            None,
        ),
        ("Tobruk AND Minsk", "Tobruk only", None),
        (
            "Tobruk Minsk",
            "Minsk then Tobruk",
            Some(&["Minsk", "Tobruk"]),
        ),
        ("Tobruk OR Minsk", "Minsk only", Some(&["Minsk"])),
        ("Tobruk AND NOT Minsk", "Tobruk and Minsk", None),
        ("Tobruk AND NOT Minsk", "Tobruk alone", Some(&["Tobruk"])),
        // An operand that does not hold cites nothing, even when part of it
        // matched.
        (
            "(Tobruk AND Paris) OR Minsk",
            "Tobruk and Minsk",
            Some(&["Minsk"]),
        ),
        (
            "Minsk AND NOT (Tobruk AND Paris)",
            "Tobruk and Minsk",
            Some(&["Minsk"]),
        ),
        (
            "2 OF (Tobruk AND Paris, Minsk, Benghazi)",
            "Tobruk, Minsk, Benghazi",
            Some(&["Minsk", "Benghazi"]),
        ),
        (
            "count(Tobruk AND Paris) < 1 AND Minsk",
            "Tobruk and Minsk",
            Some(&["Minsk"]),
        ),
        (
            "(Tobruk OR Benghazi) NEAR/1 base",
            "the Benghazi air base",
            Some(&["Benghazi air base"]),
        ),
        ("entity:haftar", "حفتر في مينسك", Some(&["حفتر"])),
        ("entity:haftar", "Маршал Хафтар", Some(&["Хафтар"])),
        // N OF: at least N different operands.
        (
            "2 OF (Tobruk, Benghazi, Minsk)",
            "From Benghazi to Tobruk.",
            Some(&["Benghazi", "Tobruk"]),
        ),
        (
            "2 OF (Tobruk, Benghazi, Minsk)",
            "Tobruk, and Tobruk again.",
            None,
        ),
        // Minsk agreements are not Minsk, so only one operand holds.
        (
            "2 OF (Tobruk, entity:minsk, Paris)",
            "Tobruk and the Minsk agreements",
            None,
        ),
        (
            "2 OF (Tobruk, NOT Paris, Minsk)",
            "Tobruk only",
            Some(&["Tobruk"]),
        ),
        // count: distinct occurrences.
        (
            "count(Tobruk) >= 2",
            "Tobruk. Then TOBRUK!",
            Some(&["Tobruk", "TOBRUK"]),
        ),
        ("count(Tobruk) >= 2", "Tobruk once", None),
        (
            "count(Tobruk) > 1",
            "Tobruk, Tobruk",
            Some(&["Tobruk", "Tobruk"]),
        ),
        ("count(Tobruk) = 1", "Tobruk, Tobruk", None),
        (
            "count(entity:minsk) >= 2",
            "the Minsk agreements, the Minsk format, then Minsk",
            None,
        ),
        (
            "Tobruk AND count(Benghazi) = 0",
            "Tobruk alone",
            Some(&["Tobruk"]),
        ),
        (
            "Tobruk AND count(Benghazi) < 1",
            "Tobruk and Benghazi",
            None,
        ),
        (
            "Tobruk AND count(Benghazi) <= 1",
            "Tobruk and Benghazi",
            Some(&["Tobruk", "Benghazi"]),
        ),
        // SENTENCE: every operand inside one sentence.
        (
            "SENTENCE(entity:minsk, list:visit)",
            "Haftar arrived in Minsk. Tobruk later.",
            Some(&["arrived", "Minsk"]),
        ),
        (
            "SENTENCE(entity:minsk, list:visit)",
            "Haftar arrived. Minsk is far.",
            None,
        ),
        (
            "SENTENCE(entity:minsk, list:visit)",
            "Haftar arrived\n\nMinsk is far",
            None,
        ),
        (
            "SENTENCE(entity:minsk, list:visit)",
            "Haftar arrived\nin Minsk, the text wrapped.",
            Some(&["arrived", "Minsk"]),
        ),
        (
            "SENTENCE(Haftar, entity:minsk)",
            "Field Marshal Gen. Haftar flew to Minsk. Haftar left.",
            Some(&["Haftar", "Minsk"]),
        ),
        (
            "SENTENCE(entity:minsk, list:visit)",
            "Talks on the Minsk agreements.",
            None,
        ),
        (
            "SENTENCE(Tobruk, Benghazi, Minsk)",
            "Tobruk and Benghazi. Minsk.",
            None,
        ),
        // Regexes run on the original text, case-insensitive, cited by whole words.
        (
            "/Tor-?M\\d/",
            "a tor-m2 and a TorM1",
            Some(&["tor-m2", "TorM1"]),
        ),
        ("/Tor-?M\\d/", "the Tor network", None),
        ("/(?-i)TOR/", "the Tor network", None),
        ("/9K3\\d{2}/", "the 9K332 system", Some(&["9K332"])),
        // A match inside a word cites the whole word.
        ("/ankev/", "Karankevich arrived", Some(&["Karankevich"])),
        ("/[.;]{3}/", "Minsk;;; Tobruk", None),
        (
            "/B-?52H?/ NEAR/3 Libya",
            "B-52H bombers flew over Libya",
            Some(&["B-52H bombers flew over Libya"]),
        ),
        (
            "SENTENCE(/Tor-?M2/, Benghazi)",
            "A Tor-M2 in Benghazi. TorM2 again.",
            Some(&["Tor-M2", "Benghazi"]),
        ),
        (
            "count(/tor-?m2/) >= 2",
            "Tor-M2, tor m2 and TorM2",
            Some(&["Tor-M2", "TorM2"]),
        ),
        // WEIGHTS: the weights of the operands present, summed (each counted once).
        (
            "WEIGHTS(Tobruk:3, \"air base\":2, Benghazi:1) >= 4",
            "The Tobruk air base.",
            Some(&["Tobruk", "air base"]),
        ),
        (
            "WEIGHTS(Tobruk:3, \"air base\":2, Benghazi:1) >= 4",
            "Tobruk, Tobruk and Tobruk again.",
            None,
        ),
        (
            "WEIGHTS(Tobruk:3, \"air base\":2, Benghazi:1) >= 4",
            "Benghazi and Tobruk",
            Some(&["Benghazi", "Tobruk"]),
        ),
        // The Minsk agreements are not Minsk: weight 2 is not added.
        (
            "WEIGHTS(entity:minsk:2, list:visit:1) >= 3",
            "Talks on the Minsk agreements",
            None,
        ),
        (
            "WEIGHTS(Tobruk:1, NOT Paris:1) >= 2",
            "Tobruk",
            Some(&["Tobruk"]),
        ),
        (
            "WEIGHTS(Tobruk:1, NOT Paris:1) >= 2",
            "Tobruk and Paris",
            None,
        ),
        // fuzzy = 1: one edit on words of 6+ letters.
        (
            "entity:karankevich",
            "Deputy PM Karankvich arrived",
            Some(&["Karankvich"]),
        ),
        (
            "entity:karankevich",
            "Viktor Karankvich arrived",
            Some(&["Viktor Karankvich"]),
        ),
        ("entity:karankevich", "Karenkovych arrived", None),
        ("entity:benghazi", "flights to Bengazi", Some(&["Bengazi"])),
        // Short words are never fuzzy: "Tor" (fuzzy = 2) never finds "Top" or "Toronto".
        ("entity:tor", "the Top ten and Toronto", None),
        ("entity:tor", "the Tor system", Some(&["Tor"])),
        // Transliteration: Latin aliases find Cyrillic spellings.
        (
            "entity:karankevich",
            "Каранкевич в Бенгази",
            Some(&["Каранкевич"]),
        ),
        (
            "entity:lukashenko",
            "Лукашенко принял делегацию",
            Some(&["Лукашенко"]),
        ),
        ("entity:yevkurov", "Евкуров прибыл", Some(&["Евкуров"])),
        ("entity:tor", "система Тор", Some(&["Тор"])),
        // Transliterated and then one edit away: an inflected form.
        (
            "entity:lukashenko",
            "встреча с Лукашенку",
            Some(&["Лукашенку"]),
        ),
        // translit = false on this entity.
        ("entity:benghazi", "в Бенгази", None),
        // Fuzzy mentions inside a `not` context do not count either.
        (
            "entity:lukashenko",
            "President Lukashenka met",
            Some(&["Lukashenka"]),
        ),
        ("entity:lukashenko", "a cafe on Lukashenka Street", None),
        // Minsk (5 letters) is never fuzzy; the Minsk agreements stay excluded.
        ("entity:minsk", "talks on the Minsk agreements", None),
    ];
    for (rule, article, expected) in cases {
        let expected =
            expected.map(|texts| texts.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            fire(rule, article),
            expected,
            "rule {rule:?} on {article:?}"
        );
    }
}

#[test]
fn every_rule_is_evaluated_in_one_scan_and_reports_entities() {
    let set = RuleSet::compile(&input(&[
        ("tobruk", "Tobruk"),
        ("minsk-visit", "entity:minsk NEAR/12 list:visit"),
        ("air", "class:air-defense"),
        ("silent", "Paris"),
    ]))
    .expect("compiles");
    let article = "Haftar met Lukashenko in Minsk. Tobruk base: Tor-M2 and Pantsir.";
    let fired = set.scan(article);
    let ids: Vec<&str> = fired.iter().map(|m| set.rule_id(m.rule)).collect();
    assert_eq!(ids, ["tobruk", "minsk-visit", "air"]);
    let air = &fired[2];
    let entities: Vec<(&str, &str)> = air
        .entities
        .iter()
        .map(|(entity, span)| (set.entity_id(*entity), &article[span.clone()]))
        .collect();
    assert_eq!(entities, [("tor-m2", "Tor-M2"), ("pantsir", "Pantsir")]);
    assert_eq!(fired[1].entities.len(), 1);
}

#[test]
fn names_are_resolved_with_hints() {
    let errors = RuleSet::compile(&input(&[
        ("a", "entity:minks"),
        ("b", "class:air-defence"),
        ("c", "list:visits OR Tobruk"),
        ("d", "NOT Tobruk"),
        ("e", "Tobruk NEAR/3 NOT Minsk"),
        ("f", "count(Tobruk) <= 2"),
        ("g", "SENTENCE(Tobruk, NOT Minsk)"),
        ("h", "2 OF (NOT Tobruk, NOT Minsk, Paris)"),
        ("i", "Paris AND count(NOT Minsk) = 0"),
        ("j", "WEIGHTS(Tobruk:1, NOT Minsk:3) >= 2"),
    ]))
    .expect_err("must not compile");
    let messages: Vec<(&str, Option<std::ops::Range<usize>>)> = errors
        .iter()
        .map(|e| {
            let span = match &e.origin {
                Origin::Rule { span, .. } => Some(span.clone()),
                _ => None,
            };
            (e.message.as_str(), span)
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("rule \"a\": unknown entity \"minks\" (did you mean \"minsk\"?)", Some(0..12)),
            ("rule \"b\": no entity has class \"air-defence\" (did you mean \"air-defense\"?)", Some(0..17)),
            ("rule \"c\": unknown list \"visits\" (did you mean \"visit\"?)", Some(0..11)),
            ("rule \"d\" could fire on an article that matches nothing: every alternative needs a term that must be present (NOT alone is not enough)", Some(0..0)),
            ("NOT cannot be a side of NEAR: an absent word has no position", Some(18..23)),
            ("rule \"f\" could fire on an article that matches nothing: every alternative needs a term that must be present (NOT alone is not enough)", Some(0..0)),
            ("NOT cannot be inside SENTENCE: an absent word has no position", Some(21..26)),
            ("rule \"h\" could fire on an article that matches nothing: every alternative needs a term that must be present (NOT alone is not enough)", Some(0..0)),
            ("NOT cannot be inside count: an absent word has no position", Some(20..25)),
            ("rule \"j\" could fire on an article that matches nothing: every alternative needs a term that must be present (NOT alone is not enough)", Some(0..0)),
        ]
    );
}

#[test]
fn identical_terms_share_one_pattern() {
    let set = RuleSet::compile(&input(&[
        ("a", "Tobruk"),
        ("b", "TOBRUK base"),
        ("c", "tobruk"),
    ]))
    .expect("compiles");
    // minsk: 3 aliases + 3 not; tor-m2 3; pantsir 2; haftar 3; karankevich 2;
    // lukashenko 1 + 1 not; yevkurov, benghazi, tor 1 each; rules: tobruk, base.
    assert_eq!(set.pattern_count(), 3 + 3 + 3 + 2 + 3 + 2 + 2 + 3 + 2);
    assert_eq!(set.scan("Tobruk").len(), 2);
}

/// Runs one rule on an article with a title; returns the cited texts (title
/// citations prefixed "title:"), or None when it did not fire.
fn fire_article(rule: &str, title: Option<&str>, text: &str) -> Option<Vec<String>> {
    let set = RuleSet::compile(&input(&[("r", rule)])).expect("rule compiles");
    let mut fired = set.scan_article(title, text);
    assert!(fired.len() <= 1);
    fired.pop().map(|m| {
        let in_text = m.spans.iter().map(|s| text[s.clone()].to_string());
        let in_title = m
            .title_spans
            .iter()
            .map(|s| format!("title:{}", &title.unwrap_or_default()[s.clone()]));
        in_text.chain(in_title).collect()
    })
}

#[test]
fn title_terms_look_at_the_title_only() {
    // (rule, title, text, cited texts or None)
    let txt = "Haftar visits Minsk\nby | May 30, 2025\n\nTalks on the Tobruk air base.";
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Option<&'a [&'a str]>);
    let cases: &[Case] = &[
        // The title is the text's first line: cited where it is in the text.
        (
            "title:Minsk",
            Some("Haftar visits Minsk"),
            txt,
            Some(&["Minsk"]),
        ),
        (
            "title:entity:minsk",
            Some("Haftar visits Minsk"),
            txt,
            Some(&["Minsk"]),
        ),
        // Tobruk is in the text, not in the title.
        ("title:Tobruk", Some("Haftar visits Minsk"), txt, None),
        (
            "Tobruk",
            Some("Haftar visits Minsk"),
            txt,
            Some(&["Tobruk"]),
        ),
        ("title:Tobruk", None, "Tobruk\n\nTobruk again", None),
        (
            "title:\"visits Minsk\" AND Tobruk",
            Some("Haftar visits Minsk"),
            txt,
            Some(&["visits Minsk", "Tobruk"]),
        ),
        // A title the text never shows (an HTML <title>): cited in the title.
        (
            "title:visit* AND Tobruk",
            Some("Haftar’s visit | News site"),
            "Talks on the Tobruk air base.",
            Some(&["Tobruk", "title:visit"]),
        ),
        // Entity `not` contexts hold in titles too: Minsk agreements are not Minsk.
        (
            "title:entity:minsk",
            Some("New life for the Minsk agreements"),
            "Body.",
            None,
        ),
        // A title scanned apart is never NEAR a word of the text.
        (
            "title:Minsk NEAR/5 list:visit",
            Some("Minsk"),
            "The visit was long.",
            None,
        ),
        // The title's first occurrence counts, later mentions of its words do not.
        ("title:Tobruk", Some("Benghazi"), "Benghazi\n\nTobruk", None),
    ];
    for (rule, title, text, expected) in cases {
        let expected =
            expected.map(|texts| texts.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            fire_article(rule, *title, text),
            expected,
            "rule {rule:?} on title {title:?}, text {text:?}"
        );
    }
}

#[test]
fn the_alias_behind_each_spelling_is_known() {
    let set = RuleSet::compile(&input(&[("r", "Tobruk")])).expect("compiles");
    let entity = |id: &str| {
        (0..20)
            .find(|&index| set.entity_id(index) == id)
            .expect("entity exists")
    };
    let cases = [
        ("karankevich", "Karankvich", Some("Karankevich")),
        (
            "karankevich",
            "Viktor  Karankevich",
            Some("Viktor Karankevich"),
        ),
        ("karankevich", "Каранкевич", Some("Karankevich")),
        ("lukashenko", "Лукашенку", Some("Lukashenko")),
        ("lukashenko", "Lukashenka", Some("Lukashenko")),
        ("minsk", "Минске", Some("Минск*")),
        ("minsk", "MINSK", Some("Minsk")),
        ("tor", "Top", None),
        ("tor", "Tor", Some("Tor")),
        ("tor-m2", "Tor", None),
    ];
    // The second round is answered from the rule set's memory.
    for round in 0..2 {
        for (id, surface, alias) in cases {
            assert_eq!(
                set.alias_of(entity(id), surface).map(|alias| &**alias),
                alias,
                "{id}: {surface:?}, round {round}"
            );
        }
    }
}

#[test]
fn without_fuzziness_transliteration_finds_cyrillic_words_anywhere_in_the_text() {
    // No entity is fuzzy, so only the words with a non-ASCII letter are
    // transliterated: here the second word of a two-word alias, a word
    // after an Arabic one, and the article's last word.
    let entity = |id: &str, aliases: &[&str]| EntityDef {
        id: id.to_string(),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        translit: true,
        ..EntityDef::default()
    };
    let input = RuleSetInput {
        entities: vec![
            entity("lukashenko", &["Alexander Lukashenko", "Lukashenko"]),
            entity("yevkurov", &["Yevkurov"]),
            entity("haftar", &["حفتر"]),
        ],
        lists: Default::default(),
        rules: ["lukashenko", "yevkurov", "haftar"]
            .iter()
            .map(|id| RuleDef {
                id: id.to_string(),
                expr: parse(&format!("entity:{id}")).expect("parses"),
            })
            .collect(),
    };
    let set = RuleSet::compile(&input).expect("compiles");
    let article = "On Monday Alexander Лукашенко met envoys of حفتر; Евкуров \
                   spoke later, and so did Лукашенко";
    let cited: Vec<Vec<&str>> = set
        .scan(article)
        .iter()
        .map(|found| found.spans.iter().map(|s| &article[s.clone()]).collect())
        .collect();
    assert_eq!(
        cited,
        [
            vec!["Alexander Лукашенко", "Лукашенко"],
            vec!["Евкуров"],
            vec!["حفتر"],
        ]
    );
}
