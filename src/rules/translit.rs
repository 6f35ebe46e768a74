//! Cyrillic to Latin, so that an alias written in Latin letters also finds
//! the Cyrillic spelling: Лукашенко -> lukashenko, Минск -> minsk,
//! Евкуров -> yevkurov, Хафтар -> khaftar (and haftar).
//!
//! The table follows BGN/PCGN for Russian (е is "ye" at the start of a word
//! and after a vowel, ъ and ь are dropped), with the Belarusian ў (w) and і
//! and the Ukrainian ї, є, ґ. A second, plainer form is also produced (х ->
//! h, е -> e everywhere), because English-language reporting often writes
//! it so (Haftar, not Khaftar). Words reach this module folded by the
//! normaliser, which already turned ё into е and й into и.
//!
//! Arabic script is not transliterated: it is written without most vowels,
//! so no table links حفتر to "Haftar" reliably. Arabic forms stay explicit
//! aliases.

/// The Latin forms of a folded word with Cyrillic letters (BGN/PCGN first,
/// then the plainer form when it differs); empty for any other word.
pub(super) fn latin_forms(word: &str) -> Vec<String> {
    if !word.chars().any(is_cyrillic) {
        return Vec::new();
    }
    let standard = transliterate(word, false);
    let plain = transliterate(word, true);
    if plain == standard {
        vec![standard]
    } else {
        vec![standard, plain]
    }
}

fn is_cyrillic(character: char) -> bool {
    matches!(character, '\u{0400}'..='\u{04FF}')
}

fn transliterate(word: &str, plain: bool) -> String {
    let mut out = String::with_capacity(word.len());
    let mut previous: Option<char> = None;
    for character in word.chars() {
        let after_vowel = previous.is_none_or(|p| "аеёиоуыэюяіїєъь".contains(p));
        let latin: &str = match character {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' | 'ґ' => "g",
            'д' => "d",
            'е' if after_vowel && !plain => "ye",
            'е' | 'э' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' | 'і' => "i",
            'й' => "y",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' => "n",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' => "u",
            'ў' => "w",
            'ф' => "f",
            'х' if plain => "h",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ъ' | 'ь' => "",
            'ы' => "y",
            'ю' => "yu",
            'я' => "ya",
            'ї' => "yi",
            'є' => "ye",
            other => {
                out.push(other);
                previous = Some(other);
                continue;
            }
        };
        out.push_str(latin);
        previous = Some(character);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::normalize::normalize_term;
    use super::*;

    #[test]
    fn cyrillic_names_get_their_usual_latin_forms() {
        let cases: &[(&str, &[&str])] = &[
            ("Лукашенко", &["lukashenko"]),
            ("Минск", &["minsk"]),
            ("Каранкевич", &["karankevich"]),
            ("Евкуров", &["yevkurov", "evkurov"]),
            ("Хафтар", &["khaftar", "haftar"]),
            ("Тертель", &["tertel"]),
            ("Бенгази", &["bengazi"]),
            ("Лукашэнка", &["lukashenka"]),
            ("Tobruk", &[]),
            ("حفتر", &[]),
        ];
        for (word, expected) in cases {
            assert_eq!(
                latin_forms(&normalize_term(word)),
                *expected,
                "word {word:?}"
            );
        }
    }
}
