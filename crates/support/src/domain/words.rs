//! How knowledge-base text becomes search terms, the same for articles and
//! queries, in English, German, Chinese and Hindi:
//!
//! - Unicode NFKC and lower case, so full-width letters, ligatures and the two
//!   spellings of a Devanagari nukta letter (फ़ and फ + ़) are one term.
//! - Words by the Unicode word-boundary rules (UAX #29), which keep Devanagari
//!   vowel signs and viramas inside their word.
//! - English and German words reduced to their Snowball stem ("charging" and
//!   "charger" meet "charge"; "Akkus" meets "Akku").
//! - Chinese has no spaces: a run of Han characters becomes its characters
//!   and their overlapping pairs (充电器 → 充, 电, 器, 充电, 电器), the usual way
//!   to index Chinese without a dictionary (a CJK bigram analyser with
//!   unigrams): pairs rank exact phrases first, characters still match a
//!   phrase split by another word (充不进电 still finds 充电).

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization as _;
use unicode_segmentation::UnicodeSegmentation as _;

/// The longest query a search takes, in bytes.
pub const MAX_QUERY_BYTES: usize = 500;

fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2A6DF}')
}

/// A tokenizer for one language (its stemmer); text in other scripts inside
/// it (a model name in Latin letters in a Hindi article) is still split.
pub struct Words {
    stemmer: Option<Stemmer>,
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words")
            .field("stems", &self.stemmer.is_some())
            .finish()
    }
}

impl Words {
    /// For `language` (`en`, `de`, `zh-CN`, `hi`; others get no stemming).
    pub fn for_language(language: &str) -> Self {
        let algorithm = match language {
            "en" => Some(Algorithm::English),
            "de" => Some(Algorithm::German),
            _ => None,
        };
        Self {
            stemmer: algorithm.map(Stemmer::create),
        }
    }

    /// The search terms of `text`.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let normal: String = text.nfkc().flat_map(char::to_lowercase).collect();
        let mut terms = Vec::new();
        // UAX #29 makes each Han character a word: adjacent ones are one run.
        let mut han = String::new();
        let mut han_end = 0;
        for (at, word) in normal.unicode_word_indices() {
            if word.chars().any(is_han) {
                if at != han_end && !han.is_empty() {
                    han_terms(&std::mem::take(&mut han), &mut terms);
                }
                han.push_str(word);
                han_end = at + word.len();
                continue;
            }
            if !han.is_empty() {
                han_terms(&std::mem::take(&mut han), &mut terms);
            }
            match &self.stemmer {
                Some(stemmer) => terms.push(stemmer.stem(word).into_owned()),
                None => terms.push(word.to_owned()),
            }
        }
        if !han.is_empty() {
            han_terms(&han, &mut terms);
        }
        terms
    }
}

/// A word with Han characters: each run of them as its characters and their
/// overlapping pairs, anything else in it as a word of its own.
fn han_terms(word: &str, terms: &mut Vec<String>) {
    let mut run: Vec<char> = Vec::new();
    let mut other = String::new();
    let flush_run = |run: &mut Vec<char>, terms: &mut Vec<String>| {
        terms.extend(run.iter().map(char::to_string));
        terms.extend(run.windows(2).map(|pair| pair.iter().collect::<String>()));
        run.clear();
    };
    for c in word.chars() {
        if is_han(c) {
            if !other.is_empty() {
                terms.push(std::mem::take(&mut other));
            }
            run.push(c);
        } else {
            flush_run(&mut run, terms);
            other.push(c);
        }
    }
    flush_run(&mut run, terms);
    if !other.is_empty() {
        terms.push(other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_german_words_meet_at_their_stems() {
        let en = Words::for_language("en");
        assert_eq!(
            en.terms("Charging CHARGES charged"),
            ["charg", "charg", "charg"]
        );
        let de = Words::for_language("de");
        assert_eq!(de.terms("Ladegeräte"), de.terms("Ladegerät"));
        assert_eq!(de.terms("lädt"), de.terms("LÄDT"));
    }

    #[test]
    fn chinese_runs_become_characters_and_overlapping_pairs() {
        let zh = Words::for_language("zh-CN");
        assert_eq!(
            zh.terms("手机充电"),
            ["手", "机", "充", "电", "手机", "机充", "充电"]
        );
        assert_eq!(zh.terms("充电器"), ["充", "电", "器", "充电", "电器"]);
        // A model name inside Chinese text stays a word; full-width letters fold.
        let terms = zh.terms("Ａｕｒｏｒａ 4 屏幕");
        assert_eq!(terms, ["aurora", "4", "屏", "幕", "屏幕"]);
    }

    #[test]
    fn hindi_keeps_its_vowel_signs_and_folds_the_two_nukta_spellings() {
        let hi = Words::for_language("hi");
        assert_eq!(
            hi.terms("फ़ोन चार्ज नहीं हो रहा"),
            ["फ़ोन", "चार्ज", "नहीं", "हो", "रहा"]
        );
        // U+095E (precomposed) and U+092B U+093C spell the same letter.
        assert_eq!(hi.terms("\u{095E}ोन"), hi.terms("\u{092B}\u{093C}ोन"));
    }
}
