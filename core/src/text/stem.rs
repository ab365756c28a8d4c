//! English stemming for the BM25 index.
//!
//! BM25 matches terms exactly, so without stemming a query for `connect` misses
//! chunks that only say `connected` or `connections`. Reducing every indexed and
//! queried word to a common stem restores that recall.
//!
//! The algorithm is the English Snowball stemmer ("Porter2",
//! <https://snowballstem.org/algorithms/english/stemmer.html>), the classic revision
//! with the `gener`/`commun`/`arsen` R1 prefixes, as shipped by libstemmer 2.x
//! (whose output it matches on an 83,000-word dictionary and 430,000 generated
//! words). It is written here rather than taken from `rust-stemmers` because that
//! crate needs `std` and serde, bundles 18 languages, and allocates a new `String`
//! per replaced suffix; this one works in place in the caller's `String` and never
//! panics.
//!
//! Input is expected to be one lowercase word (the tokenizer lowercases). A word
//! with any non-ASCII byte, any ASCII uppercase letter, or fewer than 3 bytes is
//! passed through unchanged: the algorithm is defined for English letters only, and
//! stemming `café` or `naïve` by their ASCII tail would merge unrelated words.
//! Other ASCII bytes (digits, apostrophes, `-`) count as consonants, as in Snowball.

use alloc::string::String;

/// Stems one lowercase word with the English (Porter2) Snowball algorithm and appends the stem to `out`.
///
/// Words with a non-ASCII byte or an uppercase ASCII letter, and words shorter than
/// 3 bytes, are appended unchanged. The only allocation is `out` growing.
///
/// ```
/// use arrwdb_core::text::stem::stem_english;
///
/// let mut out = String::new();
/// stem_english("connections", &mut out);
/// assert_eq!(out, "connect");
/// ```
pub fn stem_english(word: &str, out: &mut String) {
    let bytes = word.as_bytes();
    if bytes.len() < 3 || !word.is_ascii() || bytes.iter().any(u8::is_ascii_uppercase) {
        out.push_str(word);
        return;
    }
    if let Some(stem) = exception1(word) {
        out.push_str(stem);
        return;
    }
    let start = out.len();
    out.push_str(word.strip_prefix('\'').unwrap_or(word));
    let mut w = Word {
        buf: out,
        start,
        p1: 0,
        p2: 0,
    };
    w.prelude();
    w.mark_regions();
    w.step_1a();
    if !w.is_exception2() {
        w.step_1b();
        w.step_1c();
        w.step_2();
        w.step_3();
        w.step_4();
        w.step_5();
    }
    w.postlude();
}

/// Whole words with a fixed stem, checked before anything else.
fn exception1(word: &str) -> Option<&'static str> {
    Some(match word {
        "skis" => "ski",
        "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "idly" => "idl",
        "gently" => "gentl",
        "ugly" => "ugli",
        "early" => "earli",
        "only" => "onli",
        "singly" => "singl",
        "sky" => "sky",
        "news" => "news",
        "howe" => "howe",
        "atlas" => "atlas",
        "cosmos" => "cosmos",
        "bias" => "bias",
        "andes" => "andes",
        _ => return None,
    })
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// A consonant other than `w`, `x` and a consonant `Y`.
fn is_non_vowel_wxy(c: u8) -> bool {
    !is_vowel(c) && !matches!(c, b'w' | b'x' | b'Y')
}

fn is_double(pair: &[u8]) -> bool {
    matches!(
        pair,
        b"bb" | b"dd" | b"ff" | b"gg" | b"mm" | b"nn" | b"pp" | b"rr" | b"tt"
    )
}

fn is_valid_li(c: u8) -> bool {
    matches!(
        c,
        b'c' | b'd' | b'e' | b'g' | b'h' | b'k' | b'm' | b'n' | b'r' | b't'
    )
}

fn has_vowel(b: &[u8]) -> bool {
    b.iter().any(|&c| is_vowel(c))
}

/// Does `b` end in a short syllable: consonant, vowel, consonant other than
/// `w`/`x`/`Y`; or a vowel at the start followed by one consonant.
fn ends_short_syllable(b: &[u8]) -> bool {
    match b {
        [.., c3, c2, c1] if is_non_vowel_wxy(*c1) && is_vowel(*c2) && !is_vowel(*c3) => true,
        [c2, c1] => is_vowel(*c2) && !is_vowel(*c1),
        _ => false,
    }
}

/// Position just past the first vowel–consonant pair at or after `from`, or the
/// word's length if there is none (Snowball's `gopast v gopast non-v`).
fn region_after(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|rest| {
            rest.windows(2)
                .position(|p| matches!(p, [v, c] if is_vowel(*v) && !is_vowel(*c)))
        })
        .map_or(b.len(), |i| from + i + 2)
}

/// The word being stemmed: the bytes of `buf` from `start` on, all ASCII. A `y`
/// that acts as a consonant is stored as `Y` until [`Word::postlude`].
struct Word<'a> {
    buf: &'a mut String,
    start: usize,
    /// Start of R1, relative to `start`.
    p1: usize,
    /// Start of R2, relative to `start`.
    p2: usize,
}

impl Word<'_> {
    fn bytes(&self) -> &[u8] {
        self.buf.as_bytes().get(self.start..).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Byte just before position `i`, if any.
    fn before(&self, i: usize) -> Option<u8> {
        i.checked_sub(1).and_then(|j| self.bytes().get(j).copied())
    }

    /// The longest of `suffixes` the word ends with, and where it starts.
    fn longest_suffix<'s>(&self, suffixes: &[&'s str]) -> Option<(&'s str, usize)> {
        let b = self.bytes();
        suffixes
            .iter()
            .filter(|s| b.ends_with(s.as_bytes()))
            .max_by_key(|s| s.len())
            .map(|s| (*s, b.len() - s.len()))
    }

    /// Replaces everything from `at` on with `with`.
    fn replace_from(&mut self, at: usize, with: &str) {
        // Every byte after `start` is ASCII, so any `at` is a char boundary.
        self.buf.truncate(self.start + at.min(self.len()));
        self.buf.push_str(with);
    }

    /// Marks a `y` that starts the word or follows a vowel as the consonant `Y`.
    fn prelude(&mut self) {
        // True at the start: a leading `y` is a consonant too.
        let mut prev_vowel = true;
        for i in 0..self.len() {
            let Some(&c) = self.bytes().get(i) else { break };
            if c == b'y' && prev_vowel {
                let at = self.start + i;
                if let Some(s) = self.buf.get_mut(at..=at) {
                    s.make_ascii_uppercase();
                }
                prev_vowel = false;
            } else {
                prev_vowel = is_vowel(c);
            }
        }
    }

    fn mark_regions(&mut self) {
        let b = self.bytes();
        let p1 = if b.starts_with(b"gener") || b.starts_with(b"arsen") {
            5
        } else if b.starts_with(b"commun") {
            6
        } else {
            region_after(b, 0)
        };
        let p2 = region_after(b, p1);
        (self.p1, self.p2) = (p1, p2);
    }

    /// Step 0 (apostrophe endings) and step 1a (plurals).
    fn step_1a(&mut self) {
        if let Some((_, at)) = self.longest_suffix(&["'", "'s", "'s'"]) {
            self.replace_from(at, "");
        }
        match self.longest_suffix(&["sses", "ied", "ies", "s", "us", "ss"]) {
            Some(("sses", at)) => self.replace_from(at + 2, ""),
            Some(("ied" | "ies", at)) => self.replace_from(at, if at >= 2 { "i" } else { "ie" }),
            Some(("s", at)) => {
                // Needs a vowel somewhere before the letter preceding the `s`.
                let b = self.bytes();
                if has_vowel(b.get(..at.saturating_sub(1)).unwrap_or_default()) {
                    self.replace_from(at, "");
                }
            }
            _ => {}
        }
    }

    /// Words left alone after step 1a.
    fn is_exception2(&self) -> bool {
        matches!(
            self.bytes(),
            b"inning"
                | b"outing"
                | b"canning"
                | b"herring"
                | b"earring"
                | b"proceed"
                | b"exceed"
                | b"succeed"
        )
    }

    /// `-eed`, `-ed`, `-ing` and their `-ly` forms.
    fn step_1b(&mut self) {
        let Some((suffix, at)) =
            self.longest_suffix(&["eed", "eedly", "ed", "edly", "ing", "ingly"])
        else {
            return;
        };
        if suffix.starts_with("eed") {
            // Only in R1; a non-R1 `-eed` is never treated as `-ed`.
            if at >= self.p1 {
                self.replace_from(at, "ee");
            }
            return;
        }
        if !has_vowel(self.bytes().get(..at).unwrap_or_default()) {
            return;
        }
        self.replace_from(at, "");
        let b = self.bytes();
        let tail = b.get(at.saturating_sub(2)..).unwrap_or_default();
        if is_double(tail) {
            self.replace_from(at - 1, "");
        } else if matches!(tail, b"at" | b"bl" | b"iz") || (self.p1 == at && ends_short_syllable(b))
        {
            // `p1 == at`: R1 is empty (p1 was fixed on the unstemmed word).
            self.buf.push('e');
        }
    }

    /// Final `y`/`Y` after a consonant that is not the first letter becomes `i`.
    fn step_1c(&mut self) {
        if let [.., _, c, b'y' | b'Y'] = self.bytes()
            && !is_vowel(*c)
        {
            self.replace_from(self.len() - 1, "i");
        }
    }

    fn step_2(&mut self) {
        const SUFFIXES: &[&str] = &[
            "tional", "enci", "anci", "abli", "entli", "izer", "ization", "ational", "ation",
            "ator", "alism", "aliti", "alli", "fulness", "ousli", "ousness", "iveness", "iviti",
            "biliti", "bli", "ogi", "fulli", "lessli", "li",
        ];
        let Some((suffix, at)) = self.longest_suffix(SUFFIXES) else {
            return;
        };
        if at < self.p1 {
            return;
        }
        let with = match suffix {
            "tional" => "tion",
            "enci" => "ence",
            "anci" => "ance",
            "abli" => "able",
            "entli" => "ent",
            "izer" | "ization" => "ize",
            "ational" | "ation" | "ator" => "ate",
            "alism" | "aliti" | "alli" => "al",
            "fulness" | "fulli" => "ful",
            "ousli" | "ousness" => "ous",
            "iveness" | "iviti" => "ive",
            "biliti" | "bli" => "ble",
            "lessli" => "less",
            "ogi" if self.before(at) == Some(b'l') => "og",
            "li" if self.before(at).is_some_and(is_valid_li) => "",
            _ => return,
        };
        self.replace_from(at, with);
    }

    fn step_3(&mut self) {
        const SUFFIXES: &[&str] = &[
            "tional", "ational", "alize", "icate", "iciti", "ical", "ful", "ness", "ative",
        ];
        let Some((suffix, at)) = self.longest_suffix(SUFFIXES) else {
            return;
        };
        if at < self.p1 {
            return;
        }
        let with = match suffix {
            "tional" => "tion",
            "ational" => "ate",
            "alize" => "al",
            "icate" | "iciti" | "ical" => "ic",
            "ful" | "ness" => "",
            "ative" if at >= self.p2 => "",
            _ => return,
        };
        self.replace_from(at, with);
    }

    fn step_4(&mut self) {
        const SUFFIXES: &[&str] = &[
            "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ism",
            "ate", "iti", "ous", "ive", "ize", "ion",
        ];
        let Some((suffix, at)) = self.longest_suffix(SUFFIXES) else {
            return;
        };
        if at < self.p2 {
            return;
        }
        if suffix != "ion" || matches!(self.before(at), Some(b's' | b't')) {
            self.replace_from(at, "");
        }
    }

    fn step_5(&mut self) {
        match self.longest_suffix(&["e", "l"]) {
            Some(("e", at)) => {
                let short = ends_short_syllable(self.bytes().get(..at).unwrap_or_default());
                if at >= self.p2 || (at >= self.p1 && !short) {
                    self.replace_from(at, "");
                }
            }
            Some(("l", at)) if at >= self.p2 && self.before(at) == Some(b'l') => {
                self.replace_from(at, "");
            }
            _ => {}
        }
    }

    /// Turns consonant `Y` back into `y`; the input had no other uppercase.
    fn postlude(&mut self) {
        let start = self.start;
        if let Some(s) = self.buf.get_mut(start..) {
            s.make_ascii_lowercase();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stem_english;
    use alloc::string::String;
    use proptest::prelude::*;

    fn stem(word: &str) -> String {
        let mut out = String::new();
        stem_english(word, &mut out);
        out
    }

    /// Word → stem pairs from the Snowball English sample vocabulary and the
    /// algorithm's own examples, each checked against libstemmer 2.2.0.
    const PAIRS: &[(&str, &str)] = &[
        ("consign", "consign"),
        ("consigned", "consign"),
        ("consigning", "consign"),
        ("consignment", "consign"),
        ("consist", "consist"),
        ("consisted", "consist"),
        ("consistency", "consist"),
        ("consistent", "consist"),
        ("consistently", "consist"),
        ("consisting", "consist"),
        ("consists", "consist"),
        ("consolation", "consol"),
        ("consolations", "consol"),
        ("consolatory", "consolatori"),
        ("console", "consol"),
        ("consoled", "consol"),
        ("consoles", "consol"),
        ("consolidate", "consolid"),
        ("consolidated", "consolid"),
        ("consolidating", "consolid"),
        ("consoling", "consol"),
        ("consolingly", "consol"),
        ("consols", "consol"),
        ("consonant", "conson"),
        ("consort", "consort"),
        ("consorted", "consort"),
        ("consorting", "consort"),
        ("conspicuous", "conspicu"),
        ("conspicuously", "conspicu"),
        ("conspiracy", "conspiraci"),
        ("conspirator", "conspir"),
        ("conspirators", "conspir"),
        ("conspire", "conspir"),
        ("conspired", "conspir"),
        ("conspiring", "conspir"),
        ("constable", "constabl"),
        ("constables", "constabl"),
        ("constance", "constanc"),
        ("constancy", "constanc"),
        ("constant", "constant"),
        ("knack", "knack"),
        ("knackeries", "knackeri"),
        ("knacks", "knack"),
        ("knag", "knag"),
        ("knave", "knave"),
        ("knaves", "knave"),
        ("knavish", "knavish"),
        ("kneaded", "knead"),
        ("kneading", "knead"),
        ("knee", "knee"),
        ("kneel", "kneel"),
        ("kneeled", "kneel"),
        ("kneeling", "kneel"),
        ("kneels", "kneel"),
        ("knees", "knee"),
        ("knell", "knell"),
        ("knelt", "knelt"),
        ("knew", "knew"),
        ("knick", "knick"),
        ("knif", "knif"),
        ("knife", "knife"),
        ("knight", "knight"),
        ("knightly", "knight"),
        ("knights", "knight"),
        ("knit", "knit"),
        ("knits", "knit"),
        ("knitted", "knit"),
        ("knitting", "knit"),
        ("knives", "knive"),
        ("knob", "knob"),
        ("knobs", "knob"),
        ("knock", "knock"),
        ("knocked", "knock"),
        ("knocker", "knocker"),
        ("knockers", "knocker"),
        ("knocking", "knock"),
        ("knocks", "knock"),
        ("knopp", "knopp"),
        ("knot", "knot"),
        ("knots", "knot"),
        ("generously", "generous"),
        ("generate", "generat"),
        ("communism", "communism"),
        ("arsenal", "arsenal"),
        ("caresses", "caress"),
        ("ponies", "poni"),
        ("ties", "tie"),
        ("cries", "cri"),
        ("gas", "gas"),
        ("this", "this"),
        ("gaps", "gap"),
        ("kiwis", "kiwi"),
        ("luxuriated", "luxuri"),
        ("hopping", "hop"),
        ("hoping", "hope"),
        ("fizzed", "fizz"),
        ("agreed", "agre"),
        ("feed", "feed"),
        ("cry", "cri"),
        ("by", "by"),
        ("say", "say"),
        ("happy", "happi"),
        ("skis", "ski"),
        ("skies", "sky"),
        ("dying", "die"),
        ("lying", "lie"),
        ("tying", "tie"),
        ("idly", "idl"),
        ("gently", "gentl"),
        ("ugly", "ugli"),
        ("early", "earli"),
        ("only", "onli"),
        ("singly", "singl"),
        ("sky", "sky"),
        ("news", "news"),
        ("howe", "howe"),
        ("atlas", "atlas"),
        ("cosmos", "cosmos"),
        ("bias", "bias"),
        ("andes", "andes"),
        ("inning", "inning"),
        ("innings", "inning"),
        ("outing", "outing"),
        ("outings", "outing"),
        ("canning", "canning"),
        ("cannings", "canning"),
        ("herring", "herring"),
        ("herrings", "herring"),
        ("earring", "earring"),
        ("earrings", "earring"),
        ("proceed", "proceed"),
        ("proceeds", "proceed"),
        ("exceed", "exceed"),
        ("succeed", "succeed"),
        ("caress", "caress"),
        ("cats", "cat"),
        ("running", "run"),
        ("runs", "run"),
        ("connection", "connect"),
        ("connections", "connect"),
        ("connected", "connect"),
        ("connecting", "connect"),
        ("connective", "connect"),
        ("happiness", "happi"),
        ("happily", "happili"),
        ("abandon", "abandon"),
        ("abandoned", "abandon"),
        ("abandonment", "abandon"),
        ("beautiful", "beauti"),
        ("beautifully", "beauti"),
        ("national", "nation"),
        ("nationality", "nation"),
        ("relational", "relat"),
        ("conditional", "condit"),
        ("rational", "ration"),
        ("valency", "valenc"),
        ("hesitancy", "hesit"),
        ("digitizer", "digit"),
        ("conformably", "conform"),
        ("radically", "radic"),
        ("differently", "differ"),
        ("vilely", "vile"),
        ("analogously", "analog"),
        ("vietnamization", "vietnam"),
        ("predication", "predic"),
        ("operator", "oper"),
        ("feudalism", "feudal"),
        ("decisiveness", "decis"),
        ("hopefulness", "hope"),
        ("callousness", "callous"),
        ("formality", "formal"),
        ("sensitivity", "sensit"),
        ("sensibility", "sensibl"),
        ("triplicate", "triplic"),
        ("formalize", "formal"),
        ("electricity", "electr"),
        ("electrical", "electr"),
        ("hopeful", "hope"),
        ("goodness", "good"),
        ("revival", "reviv"),
        ("allowance", "allow"),
        ("inference", "infer"),
        ("airliner", "airlin"),
        ("gyroscopic", "gyroscop"),
        ("adjustable", "adjust"),
        ("defensible", "defens"),
        ("irritant", "irrit"),
        ("replacement", "replac"),
        ("adjustment", "adjust"),
        ("dependent", "depend"),
        ("adoption", "adopt"),
        ("homologous", "homolog"),
        ("communication", "communic"),
        ("generalization", "general"),
        ("universal", "univers"),
        ("university", "univers"),
        ("organization", "organ"),
        ("organize", "organ"),
        ("yes", "yes"),
        ("yellow", "yellow"),
        ("youth", "youth"),
        ("boyish", "boyish"),
        ("saying", "say"),
        ("played", "play"),
        ("crying", "cri"),
        ("'tis", "tis"),
        ("dog's", "dog"),
        ("dogs'", "dog"),
        ("sses", "ss"),
    ];

    #[test]
    fn matches_snowball_reference_pairs() {
        assert!(PAIRS.len() >= 150);
        let failures: alloc::vec::Vec<_> = PAIRS
            .iter()
            .filter_map(|&(word, want)| {
                let got = stem(word);
                (got != want).then(|| alloc::format!("{word}: got {got}, want {want}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn inflections_share_a_stem() {
        for group in [
            &[
                "connect",
                "connected",
                "connecting",
                "connection",
                "connections",
            ][..],
            &["run", "running", "runs"][..],
            &["index", "indexes", "indexed", "indexing"][..],
        ] {
            let first = stem(group.first().copied().unwrap_or_default());
            for word in group {
                assert_eq!(stem(word), first, "{word}");
            }
        }
    }

    #[test]
    fn short_non_ascii_and_uppercase_words_pass_through() {
        for word in [
            "",
            "a",
            "is",
            "ys",
            "'s",
            "café",
            "naïve",
            "résumés",
            "Running",
            "YES",
            "日本語",
        ] {
            assert_eq!(stem(word), word);
        }
    }

    #[test]
    fn apostrophes_are_handled() {
        assert_eq!(stem("'tis"), "tis");
        assert_eq!(stem("dog's"), "dog");
        assert_eq!(stem("dogs'"), "dog");
        assert_eq!(stem("'''"), "'");
        assert_eq!(stem("'ab"), "ab");
    }

    #[test]
    fn consonant_y_is_restored_to_lowercase() {
        assert_eq!(stem("yelling"), "yell");
        assert_eq!(stem("enjoying"), "enjoy");
        // a-Y-y-Y: the final `Y` follows a vowel `y`, so step 1c leaves it.
        assert_eq!(stem("ayyy"), "ayyy");
    }

    #[test]
    fn appends_after_existing_content() {
        let mut out = String::from("café ");
        stem_english("connections", &mut out);
        out.push(' ');
        stem_english("y'all's", &mut out);
        assert_eq!(out, "café connect y'all");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(word in any::<String>(), prefix in "\\PC{0,3}") {
            let mut out = prefix.clone();
            stem_english(&word, &mut out);
            prop_assert!(out.starts_with(&prefix));
            if !word.is_ascii() {
                prop_assert_eq!(out.get(prefix.len()..), Some(word.as_str()));
            }
        }

        #[test]
        fn never_panics_on_ascii(word in "[ -~]{0,24}") {
            let mut out = String::new();
            stem_english(&word, &mut out);
            prop_assert!(out.len() <= word.len());
        }

        #[test]
        fn lowercase_stem_is_never_longer(word in "'?[a-z']{0,20}") {
            let stemmed = stem(&word);
            prop_assert!(stemmed.len() <= word.len(), "{} -> {}", word, stemmed);
            prop_assert!(stemmed.bytes().all(|c| c.is_ascii_lowercase() || c == b'\''));
        }
    }
}
