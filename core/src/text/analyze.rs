//! Text → terms: word boundaries, lowercasing, folding, stop words, stemming.

use alloc::string::String;
#[cfg(not(feature = "small-fold"))]
use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use unicode_segmentation::UnicodeSegmentation as _;

use super::{Language, TextConfig, stem};

/// Longer terms are dropped (they are never useful keywords: base64, hashes, URLs
/// without separators) so one chunk cannot bloat the term dictionary.
pub const MAX_TERM_BYTES: usize = 64;

/// Lucene's English stop words (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), sorted.
const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Turns text into terms according to a [`TextConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Analyzer {
    ascii_folding: bool,
    stop_words: bool,
    stem: bool,
}

impl Analyzer {
    /// The analyzer of a library's text configuration.
    pub fn new(config: &TextConfig) -> Self {
        Analyzer {
            ascii_folding: config.ascii_folding,
            stop_words: config.stop_words == Language::English,
            stem: config.stemmer == Language::English,
        }
    }

    /// Calls `emit` with every term of `text`, in order (repeats included).
    pub fn terms(&self, text: &str, mut emit: impl FnMut(&str)) {
        let mut word = String::new();
        let mut stemmed = String::new();
        for raw in text.unicode_words() {
            word.clear();
            for c in raw.chars().flat_map(char::to_lowercase) {
                if self.ascii_folding && !c.is_ascii() {
                    fold(c, &mut word);
                } else {
                    word.push(c);
                }
            }
            if word.is_empty() || word.len() > MAX_TERM_BYTES {
                continue;
            }
            if self.stop_words && ENGLISH_STOP_WORDS.binary_search(&word.as_str()).is_ok() {
                continue;
            }
            if self.stem {
                stemmed.clear();
                stem::stem_english(&word, &mut stemmed);
                if !stemmed.is_empty() {
                    emit(&stemmed);
                }
            } else {
                emit(&word);
            }
        }
    }
}

/// Appends the ASCII folding of a lowercase non-ASCII character: its canonical
/// decomposition without combining marks (`é` → `e`), a few letters that do not
/// decompose, or the character itself when it has no Latin equivalent.
fn fold(c: char, out: &mut String) {
    let special = match c {
        'ß' => Some("ss"),
        'æ' => Some("ae"),
        'œ' => Some("oe"),
        'ø' => Some("o"),
        'ł' => Some("l"),
        'đ' | 'ð' => Some("d"),
        'þ' => Some("th"),
        'ı' => Some("i"),
        _ => None,
    };
    if let Some(s) = special {
        out.push_str(s);
        return;
    }
    decomposed_without_marks(c, out);
}

/// Appends the canonical decomposition of `c` without its combining marks, or `c` when
/// that is empty.
#[cfg(not(feature = "small-fold"))]
fn decomposed_without_marks(c: char, out: &mut String) {
    let before = out.len();
    decompose_canonical(c, |d| {
        if !is_combining_mark(d) {
            out.push(d);
        }
    });
    if out.len() == before {
        out.push(c);
    }
}

/// [`decomposed_without_marks`] from the table build.rs generates (`small-fold`).
#[cfg(feature = "small-fold")]
fn decomposed_without_marks(c: char, out: &mut String) {
    fold_table::fold(c, out);
}

/// The table of the `small-fold` feature (compiled for tests too, which compare it
/// with `unicode-normalization` for every character).
#[cfg(any(test, feature = "small-fold"))]
mod fold_table {
    use alloc::string::String;

    include!(concat!(env!("OUT_DIR"), "/fold_table.rs"));

    /// Hangul syllables: first syllable, and the counts of the arithmetic
    /// decomposition (Unicode § 3.12).
    const S_BASE: u32 = 0xAC00;
    const S_COUNT: u32 = 11_172;
    const N_COUNT: u32 = 588;
    const T_COUNT: u32 = 28;

    /// Appends the canonical decomposition of `c` without combining marks, or `c`.
    pub(super) fn fold(c: char, out: &mut String) {
        let code = u32::from(c);
        if let Some(s) = code.checked_sub(S_BASE).filter(|s| *s < S_COUNT) {
            // Leading consonant, vowel and optional trailing consonant jamo.
            let jamo = [
                Some(0x1100 + s / N_COUNT),
                Some(0x1161 + (s % N_COUNT) / T_COUNT),
                (s % T_COUNT != 0).then_some(0x11A7 + s % T_COUNT),
            ];
            out.extend(jamo.into_iter().flatten().filter_map(char::from_u32));
            return;
        }
        let folded = FOLD_KEYS.binary_search(&code).ok().and_then(|i| {
            let (start, end) = (*FOLD_OFFSETS.get(i)?, *FOLD_OFFSETS.get(i + 1)?);
            FOLDED.get(usize::from(start)..usize::from(end))
        });
        match folded {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    #[cfg(feature = "small-fold")]
    use unicode_normalization::char::{decompose_canonical, is_combining_mark};

    fn terms(config: TextConfig, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        Analyzer::new(&config).terms(text, |t| out.push(t.into()));
        out
    }

    #[test]
    fn splits_on_unicode_word_boundaries_and_lowercases() {
        let t = terms(
            TextConfig::default(),
            "Hello, World! Größe-Test: 3.14 naïve Ünïcode 東京 don't",
        );
        assert_eq!(
            t,
            [
                "hello",
                "world",
                "größe",
                "test",
                "3.14",
                "naïve",
                "ünïcode",
                "東",
                "京",
                "don't"
            ]
        );
    }

    #[test]
    fn ascii_folding_strips_marks_and_maps_special_letters() {
        let config = TextConfig {
            ascii_folding: true,
            ..TextConfig::default()
        };
        assert_eq!(
            terms(config, "Café Straße Ærø Łódź naïve 東京"),
            ["cafe", "strasse", "aero", "lodz", "naive", "東", "京"]
        );
    }

    #[test]
    fn stop_words_and_stemming_are_opt_in() {
        let text = "The runners were running to the races";
        assert_eq!(
            terms(TextConfig::default(), text),
            ["the", "runners", "were", "running", "to", "the", "races"]
        );
        let config = TextConfig {
            stop_words: Language::English,
            stemmer: Language::English,
            ..TextConfig::default()
        };
        assert_eq!(terms(config, text), ["runner", "were", "run", "race"]);
    }

    #[test]
    fn overlong_terms_are_dropped() {
        let long = "x".repeat(MAX_TERM_BYTES + 1);
        let ok = "y".repeat(MAX_TERM_BYTES);
        assert_eq!(
            terms(TextConfig::default(), &alloc::format!("{long} {ok}")),
            [ok]
        );
    }

    #[test]
    fn small_fold_table_folds_every_character_like_unicode_normalization() {
        let mut checked = 0;
        for c in (0x80..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let mut want = String::new();
            decompose_canonical(c, |d| {
                if !is_combining_mark(d) {
                    want.push(d);
                }
            });
            if want.is_empty() {
                want.push(c);
            }
            let mut got = String::new();
            fold_table::fold(c, &mut got);
            assert_eq!(got, want, "U+{:04X}", u32::from(c));
            checked += 1;
        }
        assert!(checked > 1_000_000);
    }

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(ENGLISH_STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }
}
