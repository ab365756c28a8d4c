//! Hybrid ranking: fusing the vector and keyword result lists, and reranking.
//!
//! - **Fusion** combines two ranked lists. Reciprocal rank fusion (RRF) scores a chunk
//!   `Σ weight / (k + rank)` over the lists it appears in (rank from 1; `k` = 60 by
//!   default, as in Cormack et al.), which needs no score calibration. Linear fusion
//!   normalizes each list's scores (min-max to [0, 1], or z-score) and sums them with
//!   weights; a chunk missing from a list gets that list's lowest normalized value
//!   (0 for min-max), i.e. "no better than the worst candidate seen".
//! - **Rerankers** reorder the fused candidates. Recency, position and length blend a
//!   feature in [0, 1] into the current score: `(1 - weight) · minmax(score) + weight ·
//!   feature`, so they compose in any order and with any mode. MMR (maximal marginal
//!   relevance) greedily picks `λ · relevance - (1 - λ) · max similarity to the picks`
//!   and must come last, since it produces an order, not a score.
//!
//! Everything here is `f64` arithmetic in a fixed order over lists sorted by
//! (score desc, slot asc), so every runtime gets the same ranking.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::index::Scored;

/// Default RRF constant.
pub const DEFAULT_RRF_K: f64 = 60.0;
/// Default blend weight of the recency, position and length rerankers.
pub const DEFAULT_RERANK_WEIGHT: f64 = 0.2;
/// Default MMR trade-off between relevance (1) and diversity (0).
pub const DEFAULT_MMR_LAMBDA: f64 = 0.5;
/// Default ideal chunk length of the length reranker, in characters.
pub const DEFAULT_LENGTH_TARGET: u32 = 500;

/// Per-retriever weights.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub vector: Option<f64>,
    pub keyword: Option<f64>,
}

/// How linear fusion normalizes each list's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    #[default]
    MinMax,
    ZScore,
}

/// How hybrid search combines the vector and keyword lists (`"fusion"` in a search).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fusion {
    Rrf {
        #[serde(default)]
        k: Option<f64>,
        #[serde(default)]
        weights: Weights,
    },
    Linear {
        #[serde(default)]
        normalization: Normalization,
        #[serde(default)]
        weights: Weights,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf {
            k: None,
            weights: Weights::default(),
        }
    }
}

/// One reranking step (`"rerank": [...]` in a search).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reranker {
    /// Newer first: the feature halves every `half_life_days` of age of the metadata
    /// field `field` (an ISO 8601 date string, or a number of seconds since 1970).
    Recency {
        field: String,
        half_life_days: f64,
        #[serde(default)]
        weight: Option<f64>,
    },
    /// Earlier chunks of a document first: the feature is `1 / (1 + position)`.
    Position {
        #[serde(default)]
        weight: Option<f64>,
    },
    /// Chunks near `target` characters first: the feature is `min(len, target) /
    /// max(len, target)`.
    Length {
        #[serde(default)]
        target: Option<u32>,
        #[serde(default)]
        weight: Option<f64>,
    },
    /// Maximal marginal relevance over the chunks' embeddings (cosine similarity).
    Mmr {
        #[serde(default)]
        lambda: Option<f64>,
    },
}

fn invalid(message: String) -> Error {
    Error::invalid(message)
}

fn check_weight(what: &str, w: Option<f64>, default: f64) -> Result<f64> {
    let w = w.unwrap_or(default);
    if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
        return Err(invalid(format!("{what} must be between 0 and 1, got {w}")));
    }
    Ok(w)
}

impl Fusion {
    /// Parses `"fusion"` from its JSON.
    ///
    /// # Errors
    /// `Invalid` for an unknown method or field, or out-of-range numbers.
    pub fn parse(value: &Value) -> Result<Fusion> {
        let fusion: Fusion =
            serde_json::from_value(value.clone()).map_err(|e| invalid(format!("fusion: {e}")))?;
        fusion.resolved_weights()?;
        if let Fusion::Rrf { k: Some(k), .. } = fusion
            && !(k.is_finite() && (0.0..=1e6).contains(&k))
        {
            return Err(invalid(format!(
                "fusion: `k` must be between 0 and 1000000, got {k}"
            )));
        }
        Ok(fusion)
    }

    /// (vector, keyword) weights with defaults: 1 and 1 for RRF, 0.5 and 0.5 for linear.
    fn resolved_weights(&self) -> Result<(f64, f64)> {
        let (weights, default) = match self {
            Fusion::Rrf { weights, .. } => (weights, 1.0),
            Fusion::Linear { weights, .. } => (weights, 0.5),
        };
        let get = |name: &str, w: Option<f64>| {
            let w = w.unwrap_or(default);
            if w.is_finite() && (0.0..=1e6).contains(&w) {
                Ok(w)
            } else {
                Err(invalid(format!(
                    "fusion: weight `{name}` must be a number from 0 to 1000000, got {w}"
                )))
            }
        };
        let pair = (
            get("vector", weights.vector)?,
            get("keyword", weights.keyword)?,
        );
        if pair.0 == 0.0 && pair.1 == 0.0 {
            return Err(invalid(String::from(
                "fusion: the weights cannot both be 0",
            )));
        }
        Ok(pair)
    }
}

impl Reranker {
    /// Parses `"rerank"`: one reranker object or a list of them, MMR only last.
    ///
    /// # Errors
    /// `Invalid` for an unknown type or field, a bad parameter, or MMR before another
    /// reranker.
    pub fn parse_list(value: &Value) -> Result<Vec<Reranker>> {
        let items = match value {
            Value::Array(items) => items.clone(),
            other => alloc::vec![other.clone()],
        };
        if items.len() > 8 {
            return Err(invalid(String::from("rerank: at most 8 rerankers")));
        }
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let reranker: Reranker =
                serde_json::from_value(item).map_err(|e| invalid(format!("rerank[{i}]: {e}")))?;
            reranker.validate(i)?;
            list.push(reranker);
        }
        if let Some(i) = list.iter().position(|r| matches!(r, Reranker::Mmr { .. }))
            && i + 1 != list.len()
        {
            return Err(invalid(format!(
                "rerank[{i}]: mmr orders the final results, so it must be the last reranker"
            )));
        }
        Ok(list)
    }

    fn validate(&self, i: usize) -> Result<()> {
        let what = |name: &str| format!("rerank[{i}].{name}");
        match self {
            Reranker::Recency {
                field,
                half_life_days,
                weight,
            } => {
                crate::filter::FieldPath::parse(field)
                    .map_err(|e| invalid(format!("{}: {e}", what("field"))))?;
                if !(half_life_days.is_finite() && *half_life_days > 0.0) {
                    return Err(invalid(format!(
                        "{} must be a positive number of days, got {half_life_days}",
                        what("half_life_days")
                    )));
                }
                check_weight(&what("weight"), *weight, DEFAULT_RERANK_WEIGHT).map(drop)
            }
            Reranker::Position { weight } => {
                check_weight(&what("weight"), *weight, DEFAULT_RERANK_WEIGHT).map(drop)
            }
            Reranker::Length { target, weight } => {
                if *target == Some(0) {
                    return Err(invalid(format!("{} must be at least 1", what("target"))));
                }
                check_weight(&what("weight"), *weight, DEFAULT_RERANK_WEIGHT).map(drop)
            }
            Reranker::Mmr { lambda } => {
                check_weight(&what("lambda"), *lambda, DEFAULT_MMR_LAMBDA).map(drop)
            }
        }
    }

    /// The blend weight (recency, position, length) with its default.
    pub fn weight(&self) -> f64 {
        match self {
            Reranker::Recency { weight, .. }
            | Reranker::Position { weight }
            | Reranker::Length { weight, .. } => weight.unwrap_or(DEFAULT_RERANK_WEIGHT),
            Reranker::Mmr { lambda } => lambda.unwrap_or(DEFAULT_MMR_LAMBDA),
        }
    }
}

/// A candidate through fusion and reranking: its current score and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub slot: u32,
    pub score: f32,
    /// Score and 1-based rank in the vector list.
    pub vector: Option<(f32, u32)>,
    /// Score and 1-based rank in the keyword list.
    pub keyword: Option<(f32, u32)>,
    /// The fused score (hybrid only).
    pub fused: Option<f32>,
}

fn by_rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.score.total_cmp(&a.score).then(a.slot.cmp(&b.slot))
}

/// Candidates of one retriever, keeping its own scores.
pub fn single(list: &[Scored], keyword: bool) -> Vec<Candidate> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let entry = Some((s.score, i as u32 + 1));
            Candidate {
                slot: s.slot,
                score: s.score,
                vector: if keyword { None } else { entry },
                keyword: if keyword { entry } else { None },
                fused: None,
            }
        })
        .collect()
}

/// Normalized scores of a list, in its order.
pub fn normalize(scores: &[f32], method: Normalization) -> Vec<f64> {
    if scores.is_empty() {
        return Vec::new();
    }
    let values: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    match method {
        Normalization::MinMax => {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let range = max - min;
            values
                .iter()
                .map(|v| if range > 0.0 { (v - min) / range } else { 1.0 })
                .collect()
        }
        Normalization::ZScore => {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let std = libm::sqrt(variance);
            values
                .iter()
                .map(|v| if std > 0.0 { (v - mean) / std } else { 0.0 })
                .collect()
        }
    }
}

/// Fuses the vector and keyword lists (each best first) into one list, best first
/// (ties by slot).
///
/// # Errors
/// `Invalid` for bad weights (see [`Fusion::parse`]).
pub fn fuse(vector: &[Scored], keyword: &[Scored], fusion: &Fusion) -> Result<Vec<Candidate>> {
    let (wv, wk) = fusion.resolved_weights()?;
    let mut merged: BTreeMap<u32, Candidate> = BTreeMap::new();
    for (list, is_keyword) in [(vector, false), (keyword, true)] {
        for (i, s) in list.iter().enumerate() {
            let entry = merged.entry(s.slot).or_insert(Candidate {
                slot: s.slot,
                score: 0.0,
                vector: None,
                keyword: None,
                fused: None,
            });
            let at = Some((s.score, i as u32 + 1));
            if is_keyword {
                entry.keyword = at;
            } else {
                entry.vector = at;
            }
        }
    }
    let score_of = |list: &[Scored], method| -> (BTreeMap<u32, f64>, f64) {
        let scores: Vec<f32> = list.iter().map(|s| s.score).collect();
        let normalized = normalize(&scores, method);
        let floor = normalized.iter().copied().fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 0.0 };
        let floor = if method == Normalization::MinMax {
            0.0
        } else {
            floor
        };
        (list.iter().map(|s| s.slot).zip(normalized).collect(), floor)
    };
    let mut out: Vec<Candidate> = match *fusion {
        Fusion::Rrf { k, .. } => {
            let k = k.unwrap_or(DEFAULT_RRF_K);
            merged
                .into_values()
                .map(|mut c| {
                    let part = |at: Option<(f32, u32)>, w: f64| {
                        at.map_or(0.0, |(_, rank)| w / (k + f64::from(rank)))
                    };
                    let fused = part(c.vector, wv) + part(c.keyword, wk);
                    c.score = fused as f32;
                    c.fused = Some(c.score);
                    c
                })
                .collect()
        }
        Fusion::Linear { normalization, .. } => {
            let (v, v_floor) = score_of(vector, normalization);
            let (kw, k_floor) = score_of(keyword, normalization);
            merged
                .into_values()
                .map(|mut c| {
                    let fused = wv * v.get(&c.slot).copied().unwrap_or(v_floor)
                        + wk * kw.get(&c.slot).copied().unwrap_or(k_floor);
                    c.score = fused as f32;
                    c.fused = Some(c.score);
                    c
                })
                .collect()
        }
    };
    out.sort_by(by_rank);
    Ok(out)
}

/// Blends `feature(slot)` (in [0, 1]) into the min-max normalized current scores with
/// `weight`, then re-sorts.
pub fn blend(list: &mut [Candidate], weight: f64, mut feature: impl FnMut(u32) -> f64) {
    let scores: Vec<f32> = list.iter().map(|c| c.score).collect();
    let normalized = normalize(&scores, Normalization::MinMax);
    for (c, base) in list.iter_mut().zip(normalized) {
        let f = feature(c.slot).clamp(0.0, 1.0);
        c.score = ((1.0 - weight) * base + weight * f) as f32;
    }
    list.sort_by(by_rank);
}

/// Maximal marginal relevance: picks `k` candidates greedily by `λ · relevance - (1 -
/// λ) · max similarity to those already picked`, relevance being the min-max normalized
/// score. Scores are kept; the order is MMR's.
pub fn mmr(
    list: Vec<Candidate>,
    k: usize,
    lambda: f64,
    mut similarity: impl FnMut(u32, u32) -> f64,
) -> Vec<Candidate> {
    let scores: Vec<f32> = list.iter().map(|c| c.score).collect();
    let relevance = normalize(&scores, Normalization::MinMax);
    let mut remaining: Vec<(Candidate, f64, f64)> = list
        .into_iter()
        .zip(relevance)
        .map(|(c, r)| (c, r, f64::NEG_INFINITY))
        .collect();
    let mut picked: Vec<Candidate> = Vec::with_capacity(k.min(remaining.len()));
    while picked.len() < k && !remaining.is_empty() {
        let mut best = 0;
        let mut best_value = f64::NEG_INFINITY;
        for (i, (_, relevance, max_sim)) in remaining.iter().enumerate() {
            let penalty = if picked.is_empty() { 0.0 } else { *max_sim };
            let value = lambda * relevance - (1.0 - lambda) * penalty;
            // Strictly greater: ties keep the earlier (better ranked) candidate.
            if value > best_value {
                best_value = value;
                best = i;
            }
        }
        let (chosen, _, _) = remaining.remove(best);
        for (c, _, max_sim) in &mut remaining {
            let s = similarity(chosen.slot, c.slot);
            if s > *max_sim {
                *max_sim = s;
            }
        }
        picked.push(chosen);
    }
    picked
}

/// Seconds since 1970 of a metadata value: a number is taken as seconds; a string as
/// an ISO 8601 / RFC 3339 date: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, optionally followed by
/// `THH:MM[:SS[.fff]]` (or a space) and `Z` or `±HH:MM` (UTC when absent).
pub fn timestamp_seconds(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
        Value::String(s) => parse_iso8601(s),
        _ => None,
    }
}

fn digits(s: &str, len: usize) -> Option<(i64, &str)> {
    let head = s.get(..len)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, s.get(len..)?))
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_iso8601(s: &str) -> Option<f64> {
    let s = s.trim();
    let (year, mut rest) = digits(s, 4)?;
    let (mut month, mut day) = (1, 1);
    if let Some(r) = rest.strip_prefix('-') {
        (month, rest) = digits(r, 2)?;
        if let Some(r) = rest.strip_prefix('-') {
            (day, rest) = digits(r, 2)?;
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = 0.0;
    if let Some(r) = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' ')) {
        let (hour, r) = digits(r, 2)?;
        let r = r.strip_prefix(':')?;
        let (minute, mut r) = digits(r, 2)?;
        let mut second = 0.0;
        if let Some(after) = r.strip_prefix(':') {
            let (whole, after) = digits(after, 2)?;
            second = whole as f64;
            r = after;
            if let Some(frac) = r.strip_prefix('.') {
                let end = frac
                    .bytes()
                    .position(|b| !b.is_ascii_digit())
                    .unwrap_or(frac.len());
                let (text, after) = frac.split_at(end);
                if !text.is_empty() {
                    second += format!("0.{text}").parse::<f64>().ok()?;
                }
                r = after;
            }
        }
        if hour > 23 || minute > 59 || second >= 61.0 {
            return None;
        }
        seconds = (hour * 3600 + minute * 60) as f64 + second;
        rest = r;
        if let Some(r) = rest.strip_prefix('Z').or_else(|| rest.strip_prefix('z')) {
            rest = r;
        } else if let Some(sign) = rest.chars().next().filter(|c| *c == '+' || *c == '-') {
            let (oh, r) = digits(rest.get(1..)?, 2)?;
            let r = r.strip_prefix(':').unwrap_or(r);
            let (om, r) = digits(r, 2)?;
            let offset = (oh * 3600 + om * 60) as f64;
            seconds -= if sign == '+' { offset } else { -offset };
            rest = r;
        }
    }
    if !rest.is_empty() {
        return None;
    }
    Some(days_from_civil(year, month, day) as f64 * 86_400.0 + seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scored(list: &[(u32, f32)]) -> Vec<Scored> {
        list.iter()
            .map(|&(slot, score)| Scored { score, slot })
            .collect()
    }

    fn slots(list: &[Candidate]) -> Vec<u32> {
        list.iter().map(|c| c.slot).collect()
    }

    #[test]
    fn min_max_and_z_score_match_worked_examples() {
        let n = normalize(&[10.0, 6.0, 2.0], Normalization::MinMax);
        assert_eq!(n, [1.0, 0.5, 0.0]);
        assert_eq!(normalize(&[3.0, 3.0], Normalization::MinMax), [1.0, 1.0]);
        // mean 6, population std sqrt(32/3) = 3.2660
        let z = normalize(&[10.0, 6.0, 2.0], Normalization::ZScore);
        assert!((z[0] - 1.224_745).abs() < 1e-6, "{z:?}");
        assert_eq!(z[1], 0.0);
        assert!((z[2] + 1.224_745).abs() < 1e-6);
        assert_eq!(normalize(&[4.0], Normalization::ZScore), [0.0]);
    }

    #[test]
    fn rrf_matches_a_worked_example() {
        // vector: A(1) B(2) C(3); keyword: C(1) A(2) D(3); k = 60, weights 1.
        let vector = scored(&[(1, 0.9), (2, 0.8), (3, 0.7)]);
        let keyword = scored(&[(3, 7.0), (1, 5.0), (4, 1.0)]);
        let fused = fuse(&vector, &keyword, &Fusion::default()).expect("fuse");
        // A: 1/61 + 1/62 = 0.032522; C: 1/63 + 1/61 = 0.032266; B: 1/62; D: 1/63
        assert_eq!(slots(&fused), [1, 3, 2, 4]);
        assert!((f64::from(fused[0].score) - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        assert!((f64::from(fused[1].score) - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-7);
        assert_eq!(fused[0].vector, Some((0.9, 1)));
        assert_eq!(fused[0].keyword, Some((5.0, 2)));
        assert_eq!(fused[3].vector, None);
        // Weighting the keyword list 3× puts C first: 3/61 + 1/63 vs 1/61 + 3/62.
        let weighted =
            Fusion::parse(&json!({"method":"rrf","weights":{"keyword":3}})).expect("parse");
        assert_eq!(
            slots(&fuse(&vector, &keyword, &weighted).expect("fuse"))[0],
            3
        );
    }

    #[test]
    fn linear_fusion_matches_worked_examples() {
        let vector = scored(&[(1, 0.9), (2, 0.5), (3, 0.1)]);
        let keyword = scored(&[(3, 8.0), (4, 4.0)]);
        // min-max: vector 1: 1, 2: 0.5, 3: 0; keyword 3: 1, 4: 0. Weights 0.5/0.5.
        let fusion = Fusion::parse(&json!({"method":"linear"})).expect("parse");
        let fused = fuse(&vector, &keyword, &fusion).expect("fuse");
        let by_slot = |s: u32| fused.iter().find(|c| c.slot == s).map(|c| c.score);
        assert_eq!(by_slot(1), Some(0.5));
        assert_eq!(by_slot(2), Some(0.25));
        assert_eq!(by_slot(3), Some(0.5));
        assert_eq!(by_slot(4), Some(0.0));
        assert_eq!(slots(&fused), [1, 3, 2, 4], "ties broken by slot");
        // z-score: vector mean 0.5, std 0.32660: 1.2247, 0, -1.2247; keyword ±1.
        // Missing entries get the list's lowest value.
        let fusion = Fusion::parse(&json!({"method":"linear","normalization":"z_score",
            "weights":{"vector":1,"keyword":1}}))
        .expect("parse");
        let fused = fuse(&vector, &keyword, &fusion).expect("fuse");
        let by_slot = |s: u32| {
            fused
                .iter()
                .find(|c| c.slot == s)
                .map(|c| f64::from(c.score))
        };
        assert!((by_slot(1).unwrap_or(0.0) - (1.224_745 - 1.0)).abs() < 1e-5);
        assert!((by_slot(2).unwrap_or(0.0) - (0.0 - 1.0)).abs() < 1e-5);
        assert!((by_slot(3).unwrap_or(0.0) - (-1.224_745 + 1.0)).abs() < 1e-5);
        assert!((by_slot(4).unwrap_or(0.0) - (-1.224_745 - 1.0)).abs() < 1e-5);
    }

    #[test]
    fn bad_fusion_and_rerank_options_are_refused() {
        for bad in [
            json!({"method":"max"}),
            json!({"method":"rrf","k":-1}),
            json!({"method":"rrf","weights":{"vector":0,"keyword":0}}),
            json!({"method":"linear","normalization":"l2"}),
            json!({"method":"rrf","extra":1}),
        ] {
            assert!(Fusion::parse(&bad).is_err(), "{bad}");
        }
        for bad in [
            json!([{"type":"mmr"},{"type":"position"}]),
            json!({"type":"recency","field":"date","half_life_days":0}),
            json!({"type":"recency","half_life_days":3}),
            json!({"type":"length","target":0}),
            json!({"type":"position","weight":2}),
            json!({"type":"mmr","lambda":-0.1}),
            json!({"type":"unknown"}),
        ] {
            assert!(Reranker::parse_list(&bad).is_err(), "{bad}");
        }
        let ok = Reranker::parse_list(&json!([{"type":"position"},{"type":"mmr","lambda":0.7}]))
            .expect("valid");
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn blend_mixes_normalized_score_and_feature() {
        let mut list = single(&scored(&[(1, 0.9), (2, 0.5), (3, 0.1)]), false);
        // feature favours slot 3 fully; weight 0.5: 1: 0.5, 2: 0.25 + 0.25, 3: 0 + 0.5
        blend(&mut list, 0.5, |slot| if slot == 3 { 1.0 } else { 0.5 });
        let got: Vec<(u32, f32)> = list.iter().map(|c| (c.slot, c.score)).collect();
        assert_eq!(got, [(1, 0.75), (2, 0.5), (3, 0.5)], "ties broken by slot");
    }

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        // 1 and 2 are duplicates; 3 is different and a bit less relevant.
        let list = single(&scored(&[(1, 1.0), (2, 0.95), (3, 0.8), (4, 0.0)]), false);
        let sim = |a: u32, b: u32| {
            let group = |s: u32| if s <= 2 { 0 } else { s };
            if group(a) == group(b) { 1.0 } else { 0.0 }
        };
        assert_eq!(slots(&mmr(list.clone(), 3, 1.0, sim)), [1, 2, 3]);
        assert_eq!(slots(&mmr(list, 3, 0.5, sim)), [1, 3, 4]);
    }

    #[test]
    fn timestamps_parse_iso_dates_and_numbers() {
        let t = |v: Value| timestamp_seconds(&v);
        assert_eq!(t(json!("1970-01-01")), Some(0.0));
        assert_eq!(t(json!("1970-01-02T00:00:00Z")), Some(86_400.0));
        assert_eq!(t(json!("2024-02-29")), Some(19_782.0 * 86_400.0));
        assert_eq!(t(json!("2024-02")), Some(19_754.0 * 86_400.0));
        assert_eq!(t(json!("2024")), Some(19_723.0 * 86_400.0));
        assert_eq!(
            t(json!("2024-01-01T12:30:15.5+02:00")),
            Some(19_723.0 * 86_400.0 + 10.0 * 3600.0 + 30.0 * 60.0 + 15.5)
        );
        assert_eq!(t(json!(1_700_000_000)), Some(1_700_000_000.0));
        for bad in [
            json!("yesterday"),
            json!("2024-13-01"),
            json!("2024-01-01T25:00"),
            json!(true),
        ] {
            assert_eq!(t(bad.clone()), None, "{bad}");
        }
    }
}
