//! The BM25 inverted index over chunk text.
//!
//! Postings are appended in slot order (slots only grow between optimizations), so
//! every posting list is sorted by slot without sorting. Deleting a chunk updates the
//! statistics BM25 needs at once (document frequencies, chunk count, total length) and
//! leaves its postings behind as dead entries: a search skips them with the same
//! `Allowed` set (live ∩ filter) the vector indexes use, which is also how metadata
//! filters apply before ranking (pre-filtering, never post-filtering). Dead postings
//! are purged when they outnumber the live ones, and `optimize` rebuilds the index.
//!
//! Scoring is Lucene's BM25: `idf = ln(1 + (N - df + 0.5) / (df + 0.5))` (never
//! negative), `tf·(k1 + 1) / (tf + k1·(1 - b + b·dl/avgdl))`, summed over the distinct
//! query terms in term order in `f64` with `libm::log`, so every runtime gets the same
//! bits.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::{Analyzer, TextConfig};
use crate::error::{Error, Result};
use crate::index::{Allowed, Scored, TopK};

/// Purging starts once this many postings are dead (and they outnumber live ones).
const PURGE_MIN_DEAD: u64 = 4096;

/// One term's occurrence count in one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Posting {
    slot: u32,
    tf: u32,
}

/// The inverted index of one library.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TextIndex {
    /// Term → term id (position in `postings` and `df`).
    terms: BTreeMap<String, u32>,
    /// Per term, its postings by increasing slot (dead ones included).
    postings: Vec<Vec<Posting>>,
    /// Per term, the number of live chunks containing it.
    df: Vec<u32>,
    /// Per slot, its number of terms (0 for deleted chunks and empty texts).
    lengths: Vec<u32>,
    /// Live chunks indexed (including those with no terms).
    docs: u64,
    /// Sum of `lengths`.
    total_length: u64,
    /// Postings of deleted chunks still in the lists.
    dead_postings: u64,
    /// All postings in the lists.
    total_postings: u64,
}

/// Distinct terms of a text with their counts, in term order.
fn term_counts(analyzer: &Analyzer, text: &str) -> (BTreeMap<String, u32>, u32) {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut length = 0u32;
    analyzer.terms(text, |term| {
        length = length.saturating_add(1);
        match counts.get_mut(term) {
            Some(n) => *n = n.saturating_add(1),
            None => {
                counts.insert(String::from(term), 1);
            }
        }
    });
    (counts, length)
}

impl TextIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes the text of a new chunk in `slot`, which must be higher than every
    /// slot indexed before (slots are appended).
    pub fn insert(&mut self, analyzer: &Analyzer, slot: u32, text: &str) {
        let (counts, length) = term_counts(analyzer, text);
        let index = slot as usize;
        if self.lengths.len() <= index {
            self.lengths.resize(index + 1, 0);
        }
        if let Some(l) = self.lengths.get_mut(index) {
            *l = length;
        }
        self.docs += 1;
        self.total_length += u64::from(length);
        for (term, tf) in counts {
            let id = match self.terms.get(&term) {
                Some(&id) => id,
                None => {
                    let id = self.postings.len() as u32;
                    self.terms.insert(term, id);
                    self.postings.push(Vec::new());
                    self.df.push(0);
                    id
                }
            };
            if let (Some(list), Some(df)) = (
                self.postings.get_mut(id as usize),
                self.df.get_mut(id as usize),
            ) {
                list.push(Posting { slot, tf });
                *df += 1;
                self.total_postings += 1;
            }
        }
    }

    /// Removes the chunk in `slot`, whose text was `text`, from the statistics. Its
    /// postings stay until purged.
    pub fn remove(&mut self, analyzer: &Analyzer, slot: u32, text: &str) {
        let Some(length) = self.lengths.get_mut(slot as usize) else {
            return;
        };
        self.total_length = self.total_length.saturating_sub(u64::from(*length));
        *length = 0;
        self.docs = self.docs.saturating_sub(1);
        let (counts, _) = term_counts(analyzer, text);
        for term in counts.keys() {
            if let Some(df) = self
                .terms
                .get(term)
                .and_then(|&id| self.df.get_mut(id as usize))
            {
                *df = df.saturating_sub(1);
                self.dead_postings += 1;
            }
        }
        if self.dead_postings >= PURGE_MIN_DEAD && self.dead_postings * 2 > self.total_postings {
            self.purge();
        }
    }

    /// Drops dead postings (a posting is dead when its slot's length is 0: a live
    /// chunk without terms has no postings) and terms no live chunk uses.
    fn purge(&mut self) {
        let lengths = &self.lengths;
        for list in &mut self.postings {
            list.retain(|p| lengths.get(p.slot as usize).is_some_and(|&l| l > 0));
        }
        // Renumber the terms that still have postings, keeping term order.
        let mut renumbered = vec![u32::MAX; self.postings.len()];
        let mut postings = Vec::new();
        let mut df = Vec::new();
        for (old, list) in core::mem::take(&mut self.postings).into_iter().enumerate() {
            if !list.is_empty() {
                if let Some(r) = renumbered.get_mut(old) {
                    *r = postings.len() as u32;
                }
                df.push(self.df.get(old).copied().unwrap_or(0));
                postings.push(list);
            }
        }
        self.terms.retain(|_, id| {
            let new = renumbered.get(*id as usize).copied().unwrap_or(u32::MAX);
            *id = new;
            new != u32::MAX
        });
        self.total_postings = postings.iter().map(|l| l.len() as u64).sum();
        self.postings = postings;
        self.df = df;
        self.dead_postings = 0;
    }

    /// Number of live chunks indexed.
    pub fn docs(&self) -> u64 {
        self.docs
    }

    /// Number of distinct terms in the dictionary.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// The best `k` allowed chunks for `text`, best first (ties by slot). Chunks that
    /// contain none of the query's terms are not returned.
    pub fn search(
        &self,
        analyzer: &Analyzer,
        config: &TextConfig,
        text: &str,
        allowed: &Allowed<'_>,
        k: usize,
    ) -> Vec<Scored> {
        if self.docs == 0 || k == 0 {
            return Vec::new();
        }
        let (query, _) = term_counts(analyzer, text);
        let n = self.docs as f64;
        let avgdl = (self.total_length as f64 / n).max(f64::MIN_POSITIVE);
        let (k1, b) = (f64::from(config.k1), f64::from(config.b));
        let mut scores = vec![0.0f64; self.lengths.len()];
        let mut touched = Vec::new();
        for term in query.keys() {
            let Some(&id) = self.terms.get(term) else {
                continue;
            };
            let (Some(list), Some(&df)) =
                (self.postings.get(id as usize), self.df.get(id as usize))
            else {
                continue;
            };
            if df == 0 {
                continue;
            }
            let df = f64::from(df);
            let idf = libm::log(1.0 + (n - df + 0.5) / (df + 0.5));
            for p in list {
                if !allowed.contains(p.slot) {
                    continue;
                }
                let (Some(score), Some(&dl)) = (
                    scores.get_mut(p.slot as usize),
                    self.lengths.get(p.slot as usize),
                ) else {
                    continue;
                };
                let tf = f64::from(p.tf);
                let norm = k1 * (1.0 - b + b * f64::from(dl) / avgdl);
                if *score == 0.0 {
                    touched.push(p.slot);
                }
                *score += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
        let mut top = TopK::new(k);
        for slot in touched {
            if let Some(&score) = scores.get(slot as usize) {
                top.push(Scored {
                    score: score as f32,
                    slot,
                });
            }
        }
        top.into_sorted()
    }

    /// Checks a decoded index against the library's slot count, so crafted snapshot
    /// bytes can never index out of bounds later.
    ///
    /// # Errors
    /// `Corrupt` naming the first inconsistency.
    pub fn check(&self, slots: usize) -> Result<()> {
        let corrupt = |reason: String| Error::Corrupt {
            what: "snapshot",
            reason: format!("text index: {reason}"),
        };
        let terms = self.postings.len();
        if self.df.len() != terms || self.terms.len() != terms {
            return Err(corrupt(format!(
                "{terms} posting lists, {} frequencies, {} terms",
                self.df.len(),
                self.terms.len()
            )));
        }
        if self.lengths.len() > slots {
            return Err(corrupt(format!(
                "{} lengths for {slots} slots",
                self.lengths.len()
            )));
        }
        let mut seen = vec![false; terms];
        for &id in self.terms.values() {
            match seen.get_mut(id as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err(corrupt(format!("term id {id} is out of range or repeated"))),
            }
        }
        let mut total = 0u64;
        for list in &self.postings {
            let mut previous = None;
            for p in list {
                if p.slot as usize >= self.lengths.len() || previous.is_some_and(|s| s >= p.slot) {
                    return Err(corrupt(format!("posting of slot {} out of order", p.slot)));
                }
                previous = Some(p.slot);
            }
            total += list.len() as u64;
        }
        let length: u64 = self.lengths.iter().map(|&l| u64::from(l)).sum();
        if total != self.total_postings || length != self.total_length {
            return Err(corrupt(String::from("counters disagree with the lists")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Bitset;

    fn index(texts: &[&str]) -> (TextIndex, Bitset) {
        let analyzer = Analyzer::new(&TextConfig::default());
        let mut index = TextIndex::new();
        let mut live = Bitset::default();
        for (slot, text) in texts.iter().enumerate() {
            index.insert(&analyzer, slot as u32, text);
            live.insert(slot as u32);
        }
        (index, live)
    }

    fn search(index: &TextIndex, live: &Bitset, text: &str) -> Vec<(u32, f64)> {
        let analyzer = Analyzer::new(&TextConfig::default());
        index
            .search(
                &analyzer,
                &TextConfig::default(),
                text,
                &Allowed::new(live, None),
                10,
            )
            .into_iter()
            .map(|s| (s.slot, f64::from(s.score)))
            .collect()
    }

    const CORPUS: [&str; 4] = [
        "the quick brown fox",                   // 4 terms
        "the lazy dog",                          // 3 terms
        "the quick dog jumps over the lazy fox", // 8 terms
        "rust vector database",                  // 3 terms
    ];

    /// Hand-computed: N = 4, total length 18, avgdl 4.5, k1 1.2, b 0.75.
    #[test]
    fn scores_match_hand_computed_bm25() {
        let (index, live) = index(&CORPUS);
        let bm25 = |tf: f64, dl: f64, df: f64| {
            let idf = (1.0 + (4.0 - df + 0.5) / (df + 0.5)).ln();
            idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / 4.5))
        };
        // "fox": df 2, in slot 0 (tf 1, dl 4) and slot 2 (tf 1, dl 8).
        let found = search(&index, &live, "fox");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, 0);
        assert_eq!(found[1].0, 2);
        let idf: f64 = (1.0f64 + 2.5 / 2.5).ln();
        assert!((idf - 2.0f64.ln()).abs() < 1e-12);
        assert!((found[0].1 - bm25(1.0, 4.0, 2.0)).abs() < 1e-6);
        assert!((found[1].1 - bm25(1.0, 8.0, 2.0)).abs() < 1e-6);
        // ln 2 · 2.2 / (1 + 1.2 · (0.25 + 0.75 · 4 / 4.5)) = 1.524924 / 2.1
        assert!((found[0].1 - 0.726_154).abs() < 1e-5);

        // "the dog": slot 2 has "the" twice; "the" has df 3, "dog" df 2.
        let found = search(&index, &live, "The DOG");
        let slot2 = bm25(2.0, 8.0, 3.0) + bm25(1.0, 8.0, 2.0);
        let slot1 = bm25(1.0, 3.0, 3.0) + bm25(1.0, 3.0, 2.0);
        let slot0 = bm25(1.0, 4.0, 3.0);
        assert_eq!(
            found.iter().map(|f| f.0).collect::<Vec<_>>(),
            [1, 2, 0],
            "{found:?}"
        );
        assert!((found[0].1 - slot1).abs() < 1e-6);
        assert!((found[1].1 - slot2).abs() < 1e-6);
        assert!((found[2].1 - slot0).abs() < 1e-6);

        assert!(search(&index, &live, "unknown words").is_empty());
        assert!(search(&index, &live, "").is_empty());
    }

    #[test]
    fn deletes_update_statistics_and_purges_keep_results() {
        let analyzer = Analyzer::new(&TextConfig::default());
        let (mut index, mut live) = index(&CORPUS);
        index.remove(&analyzer, 1, CORPUS[1]);
        live.remove(1);
        // Now N = 3, total length 15, avgdl 5; "dog" has df 1 (slot 2 only).
        let found = search(&index, &live, "dog");
        let idf = (1.0f64 + 2.5 / 1.5).ln();
        let expected = idf * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 8.0 / 5.0));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
        assert!((found[0].1 - expected).abs() < 1e-6);

        let before = search(&index, &live, "the quick fox dog");
        index.purge();
        index.check(4).expect("consistent after purge");
        assert_eq!(search(&index, &live, "the quick fox dog"), before);
        assert_eq!(
            index.term_count(),
            11,
            "every term of slot 1 is still used by slot 2"
        );
    }

    #[test]
    fn filters_apply_before_ranking() {
        let (index, live) = index(&CORPUS);
        let mut only = Bitset::default();
        only.insert(2);
        let analyzer = Analyzer::new(&TextConfig::default());
        let found = index.search(
            &analyzer,
            &TextConfig::default(),
            "fox",
            &Allowed::new(&live, Some(&only)),
            1,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].slot, 2);
    }

    #[test]
    fn check_refuses_inconsistent_indexes() {
        let (index, _) = index(&CORPUS);
        index.check(4).expect("fresh index is consistent");
        assert!(index.check(3).is_err(), "more lengths than slots");
        let mut broken = index.clone();
        broken.df.pop();
        assert!(broken.check(4).is_err());
        let mut broken = index.clone();
        if let Some(list) = broken.postings.first_mut() {
            list.push(Posting { slot: 99, tf: 1 });
        }
        assert!(broken.check(4).is_err());
    }
}
