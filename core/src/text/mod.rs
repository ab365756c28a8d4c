//! Keyword search: text analysis and the BM25 inverted index over chunk text.
//!
//! Every runtime gets the same keyword search because it lives here, in `no_std`
//! core: the same tokens from the same text, the same postings in the same order, and
//! scores summed in a fixed order with `libm`'s `log`, so a keyword or hybrid query
//! ranks identically in the browser, the edge and the host.
//!
//! Analysis is configured per library ([`TextConfig`]): Unicode word boundaries
//! (UAX #29, from `unicode-segmentation`), lowercasing, optional ASCII folding
//! (canonical decomposition without the combining marks, plus a few letters that do
//! not decompose, such as `ß` and `ø`), optional English stop words (Lucene's list)
//! and an optional English (Porter2) stemmer. Stop words are off by default: BM25's
//! IDF already discounts them, and removing them breaks phrase-like queries such as
//! "to be or not to be".

mod analyze;
mod bm25;
pub mod stem;

pub use analyze::{Analyzer, MAX_TERM_BYTES};
pub use bm25::TextIndex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A language choice for stop words and stemming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Off.
    #[default]
    None,
    English,
}

/// How a library analyzes chunk text and scores keyword matches. Fixed at creation:
/// the inverted index holds analyzed terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// Fold accented and other non-ASCII Latin letters to ASCII (`café` → `cafe`).
    pub ascii_folding: bool,
    /// Drop the language's stop words (`none` by default).
    pub stop_words: Language,
    /// Reduce words to their stem (`none` by default; `english` is Porter2).
    pub stemmer: Language,
    /// BM25 term-frequency saturation (default 1.2).
    pub k1: f32,
    /// BM25 length normalization, 0 (none) to 1 (full; default 0.75).
    pub b: f32,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            ascii_folding: false,
            stop_words: Language::None,
            stemmer: Language::None,
            k1: 1.2,
            b: 0.75,
        }
    }
}

impl TextConfig {
    /// Checks the BM25 parameters.
    ///
    /// # Errors
    /// `Invalid` for a `k1` outside 0–10 or a `b` outside 0–1 (or not finite).
    pub fn validate(&self) -> Result<()> {
        if !(self.k1.is_finite() && (0.0..=10.0).contains(&self.k1)) {
            return Err(Error::invalid(alloc::format!(
                "text parameter `k1` must be between 0 and 10, got {}",
                self.k1
            )));
        }
        if !(self.b.is_finite() && (0.0..=1.0).contains(&self.b)) {
            return Err(Error::invalid(alloc::format!(
                "text parameter `b` must be between 0 and 1, got {}",
                self.b
            )));
        }
        Ok(())
    }
}
