//! Per-library quantization of the stored vectors, read by the exact scan and the HNSW
//! walk.
//!
//! A quantized library keeps compact codes next to its full vectors, inside the
//! [`super::VectorStore`], so snapshots carry them and loading never recomputes them.
//! The exact scan ([`super::exact_search`], used by `flat`, by the engine's path for
//! very selective filters, and by the fallbacks of other indexes) then scores the codes
//! of every allowed slot, keeps the best `k × oversample` candidates, rescores those
//! with the full vectors and returns the exact best `k` of them. HNSW does the same
//! with SQ8 codes ([`Sq8Query`]): its graph is built and searched on the codes, and the
//! best `k × oversample` of a search are rescored. The full vectors stay (they are
//! needed for that rescoring), so a quantized library uses more memory, not less:
//! `4·dim` bytes plus `dim` (SQ8) or `dim / 8` (binary) bytes per vector; what it saves
//! is memory bandwidth — a quarter of the bytes per visited vector with SQ8, which
//! makes HNSW searches and builds about twice as fast at the same recall
//! (docs/benchmarks.md). Tree, hash and IVF indexes keep scoring full vectors (IVF has
//! its own product quantization).
//!
//! - **SQ8**: one byte per dimension, `min + code · scale` with a per-dimension range.
//!   The range is trained once, deterministically, on the first
//!   [`SQ8_TRAIN_AT`] rows (deleted ones included, since their rows stay); every
//!   existing row is then encoded, and later rows are encoded on push, clamped to the
//!   range. Until then the store answers exactly. Codes are scored without decoding
//!   them: `q·min + Σ q_i·scale_i·code_i` for dot and cosine (the latter divided by the
//!   row's exact norm), the sum taken in integers against the query's weights rounded
//!   to `i16` ([`Sq8Query`]); `Σ (q_i − min_i − scale_i·code_i)²` in `f32` for L2.
//! - **Binary**: one bit per dimension (`x > 0`), no training. The approximate
//!   similarity is `dim − 2·hamming` for cosine and dot; for L2 the Hamming distance is
//!   the distance. It is coarse, so it needs a larger `oversample`.
//!
//! Candidates are kept with [`TopK`] (score, then slot), so the result is deterministic.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::aligned::AlignedU8;
use super::{Allowed, QueryVector, Scored, TopK, VectorStore};
use crate::kernels;
use crate::model::{Metric, QuantizationConfig, QuantizationParams};

/// Number of rows an SQ8 store waits for before training its ranges.
pub const SQ8_TRAIN_AT: usize = 1000;

/// The codes of every stored row, by slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QuantizedCodes {
    None,
    Sq8(Sq8Codes),
    Binary(BinaryCodes),
}

/// Scalar 8-bit codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sq8Codes {
    oversample: u32,
    /// Per-dimension minimum; empty until trained.
    #[serde(with = "crate::codec::bulk")]
    min: Vec<f32>,
    /// Per-dimension step (`(max − min) / 255`); empty until trained.
    #[serde(with = "crate::codec::bulk")]
    scale: Vec<f32>,
    /// `len × dim` codes, row-major, starting on a cache line; empty until trained.
    codes: AlignedU8,
}

/// Sign-bit codes, `dim.div_ceil(64)` words per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryCodes {
    oversample: u32,
    #[serde(with = "crate::codec::bulk")]
    bits: Vec<u64>,
}

impl QuantizedCodes {
    /// No codes yet, for `config`.
    pub fn new(config: QuantizationConfig) -> Self {
        match config {
            QuantizationConfig::None => QuantizedCodes::None,
            QuantizationConfig::Sq8(p) => QuantizedCodes::Sq8(Sq8Codes {
                oversample: p.oversample,
                min: Vec::new(),
                scale: Vec::new(),
                codes: AlignedU8::default(),
            }),
            QuantizationConfig::Binary(p) => QuantizedCodes::Binary(BinaryCodes {
                oversample: p.oversample,
                bits: Vec::new(),
            }),
        }
    }

    /// The configuration these codes follow.
    pub fn config(&self) -> QuantizationConfig {
        match self {
            QuantizedCodes::None => QuantizationConfig::None,
            QuantizedCodes::Sq8(c) => QuantizationConfig::Sq8(QuantizationParams {
                oversample: c.oversample,
            }),
            QuantizedCodes::Binary(c) => QuantizationConfig::Binary(QuantizationParams {
                oversample: c.oversample,
            }),
        }
    }

    /// Candidates kept per result before rescoring (1 without codes).
    pub fn oversample(&self) -> u32 {
        match self {
            QuantizedCodes::None => 1,
            QuantizedCodes::Sq8(c) => c.oversample,
            QuantizedCodes::Binary(c) => c.oversample,
        }
    }

    /// Bytes of codes per vector (SQ8 counts once trained).
    pub fn bytes_per_vector(&self, dim: usize) -> usize {
        match self {
            QuantizedCodes::None => 0,
            QuantizedCodes::Sq8(_) => dim,
            QuantizedCodes::Binary(_) => dim.div_ceil(64) * 8,
        }
    }

    /// `true` once the codes answer searches (SQ8 after training, binary always).
    pub fn is_active(&self) -> bool {
        match self {
            QuantizedCodes::None => false,
            QuantizedCodes::Sq8(c) => !c.min.is_empty(),
            QuantizedCodes::Binary(_) => true,
        }
    }

    /// Encodes the row just appended to `data` (`dim` floats per row).
    pub(super) fn push(&mut self, data: &[f32], dim: usize) {
        if dim == 0 || data.len() < dim {
            return;
        }
        let row = &data[data.len() - dim..];
        match self {
            QuantizedCodes::None => {}
            QuantizedCodes::Sq8(c) => {
                if !c.min.is_empty() {
                    c.encode(row);
                } else if data.len() / dim >= SQ8_TRAIN_AT {
                    c.train(data, dim);
                }
            }
            QuantizedCodes::Binary(c) => {
                for word in row.chunks(64) {
                    c.bits.push(sign_bits(word));
                }
            }
        }
    }

    /// Checks the shape against a store of `len` rows of `dim` floats.
    pub(super) fn is_consistent(&self, len: usize, dim: usize) -> bool {
        let ok_oversample = |o: u32| (1..=64).contains(&o);
        match self {
            QuantizedCodes::None => true,
            QuantizedCodes::Sq8(c) => {
                if !ok_oversample(c.oversample) {
                    false
                } else if len >= SQ8_TRAIN_AT {
                    c.min.len() == dim
                        && c.scale.len() == dim
                        && len.checked_mul(dim) == Some(c.codes.len())
                } else {
                    c.min.is_empty() && c.scale.is_empty() && c.codes.is_empty()
                }
            }
            QuantizedCodes::Binary(c) => {
                ok_oversample(c.oversample)
                    && len.checked_mul(dim.div_ceil(64)) == Some(c.bits.len())
            }
        }
    }
}

impl Sq8Codes {
    /// Fixes the per-dimension ranges on every row of `data` and encodes them all.
    fn train(&mut self, data: &[f32], dim: usize) {
        let mut min = alloc::vec![f32::INFINITY; dim];
        let mut max = alloc::vec![f32::NEG_INFINITY; dim];
        for row in data.chunks_exact(dim) {
            for ((lo, hi), &x) in min.iter_mut().zip(max.iter_mut()).zip(row) {
                *lo = lo.min(x);
                *hi = hi.max(x);
            }
        }
        self.scale = min
            .iter()
            .zip(&max)
            .map(|(lo, hi)| (hi - lo) / 255.0)
            .collect();
        self.min = min;
        self.codes.reserve(data.len());
        for row in data.chunks_exact(dim) {
            self.encode(row);
        }
    }

    fn encode(&mut self, row: &[f32]) {
        for ((&x, &lo), &step) in row.iter().zip(&self.min).zip(&self.scale) {
            let code = if step > 0.0 {
                // `as u8` saturates (and maps NaN to 0): values outside the range clamp.
                libm::floorf((x - lo) / step + 0.5) as u8
            } else {
                0
            };
            self.codes.push(code);
        }
    }
}

/// The sign bits of up to 64 floats, bit `i` for `x[i] > 0`.
fn sign_bits(x: &[f32]) -> u64 {
    x.iter()
        .enumerate()
        .fold(0u64, |w, (i, &v)| if v > 0.0 { w | (1 << i) } else { w })
}

const LANES: usize = 8;

/// Largest `|w|` of an integer weight.
const WEIGHT_MAX: f32 = 32767.0;
/// Bound of `Σ |w_i| · 255` (the largest sum of an integer dot), under `i32::MAX`
/// with room for the rounding of every weight.
const SUM_MAX: f32 = 2.0e9;

/// A query prepared for scoring SQ8 codes: the scan of [`search`] and the graph walk of
/// [`super::hnsw`] when the store is quantized.
///
/// For dot and cosine, `q · (min + scale ⊙ code) = q·min + Σ (q_i·scale_i)·code_i`; the
/// weights `q_i·scale_i` are rounded to `i16` with one step per query, chosen so that no
/// weight exceeds `±32767` and `Σ |w_i|·255` stays below `2·10⁹`, so the integer sum
/// ([`kernels::dot_u8_i16`]) never overflows and is the same in every runtime whatever
/// order SIMD adds in. The rounding error (at most half a step per weight) is far below
/// the codes' own error (half a code step per dimension), and results are rescored with
/// full vectors anyway. L2 uses the `f32` residual `Σ (q_i − min_i − scale_i·code_i)²`.
#[derive(Debug)]
pub struct Sq8Query<'a> {
    store: &'a VectorStore,
    codes: &'a Sq8Codes,
    dim: usize,
    approx: Approx,
}

#[derive(Debug)]
enum Approx {
    Dot {
        weights: Vec<i16>,
        step: f32,
        base: f32,
        cosine: bool,
    },
    L2 {
        residual: Vec<f32>,
    },
}

impl<'a> Sq8Query<'a> {
    /// `None` unless `store` keeps trained SQ8 codes.
    pub fn new(store: &'a VectorStore, query: &QueryVector<'_>) -> Option<Self> {
        let QuantizedCodes::Sq8(codes) = &store.codes else {
            return None;
        };
        if codes.min.is_empty() {
            return None;
        }
        let dim = store.dimension();
        let q = query.vector;
        let approx = match store.metric {
            Metric::Dot | Metric::Cosine => {
                let real = || q.iter().zip(&codes.scale).map(|(x, s)| x * s);
                let largest = real().fold(0.0f32, |m, w| m.max(w.abs()));
                let total: f32 = real().map(|w| w.abs()).sum();
                let step = (largest / WEIGHT_MAX).max(total * 255.0 / SUM_MAX);
                // An overflowing query (validated vectors are finite, but their products
                // may not be) walks on `base` alone; rescoring still ranks exactly.
                let step = if step.is_finite() { step } else { 0.0 };
                let weights = real()
                    .map(|w| {
                        if step > 0.0 {
                            // `as i16` saturates (and maps NaN to 0).
                            libm::floorf(w / step + 0.5) as i16
                        } else {
                            0
                        }
                    })
                    .collect();
                Approx::Dot {
                    weights,
                    step,
                    base: q.iter().zip(&codes.min).map(|(x, m)| x * m).sum(),
                    cosine: store.metric == Metric::Cosine,
                }
            }
            Metric::L2 => Approx::L2 {
                residual: q.iter().zip(&codes.min).map(|(x, m)| x - m).collect(),
            },
        };
        Some(Sq8Query {
            store,
            codes,
            dim,
            approx,
        })
    }

    /// The codes of `slot` (a slot of the store).
    #[inline]
    pub fn row(&self, slot: u32) -> &'a [u8] {
        let start = slot as usize * self.dim;
        &self.codes.codes.as_slice()[start..start + self.dim]
    }

    /// Approximate similarity of the query to `slot`, higher is closer (as
    /// [`VectorStore::score`]).
    #[inline]
    pub fn score(&self, slot: u32) -> f32 {
        let row = self.row(slot);
        match &self.approx {
            Approx::Dot {
                weights,
                step,
                base,
                cosine,
            } => {
                let sum = kernels::dot_u8_i16(row, weights);
                let score = base + step * sum as f32;
                if *cosine {
                    score / self.store.norms[slot as usize]
                } else {
                    score
                }
            }
            Approx::L2 { residual } => -residual_l2(residual, &self.codes.scale, row),
        }
    }
}

/// `Σ (r_i − s_i · c_i)²`.
#[inline]
fn residual_l2(r: &[f32], s: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (cr, cs, cc) = (
        r.chunks_exact(LANES),
        s.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let (rr, rs, rc) = (cr.remainder(), cs.remainder(), cc.remainder());
    for ((x, y), z) in cr.zip(cs).zip(cc) {
        for i in 0..LANES {
            let d = x[i] - y[i] * f32::from(z[i]);
            acc[i] += d * d;
        }
    }
    for (i, ((x, y), z)) in rr.iter().zip(rs).zip(rc).enumerate() {
        let d = x - y * f32::from(*z);
        acc[i] += d * d;
    }
    acc.iter().sum()
}

/// The quantized scan behind [`super::exact_search`], or `None` when the store answers
/// exactly (no codes, SQ8 not trained yet, or `k × oversample` covers every allowed
/// slot anyway).
pub(super) fn search(
    store: &VectorStore,
    query: &QueryVector<'_>,
    allowed: &Allowed<'_>,
    k: usize,
) -> Option<Vec<Scored>> {
    let oversample = match &store.codes {
        QuantizedCodes::None => return None,
        QuantizedCodes::Sq8(c) => c.oversample,
        QuantizedCodes::Binary(c) => c.oversample,
    };
    let wanted = k.saturating_mul(oversample as usize);
    if k == 0 || !store.codes.is_active() || wanted >= allowed.count() {
        return None;
    }
    let dim = store.dimension();
    let len = store.len() as u32;
    let mut candidates = TopK::new(wanted);
    match &store.codes {
        QuantizedCodes::None => return None,
        QuantizedCodes::Sq8(_) => {
            let approx = Sq8Query::new(store, query)?;
            for slot in 0..len {
                if allowed.contains(slot) {
                    candidates.push(Scored {
                        score: approx.score(slot),
                        slot,
                    });
                }
            }
        }
        QuantizedCodes::Binary(c) => {
            let words = dim.div_ceil(64);
            let q: Vec<u64> = query.vector.chunks(64).map(sign_bits).collect();
            let l2 = store.metric == Metric::L2;
            for (slot, row) in (0..len).zip(c.bits.chunks_exact(words.max(1))) {
                if allowed.contains(slot) {
                    let hamming: u32 = q.iter().zip(row).map(|(a, b)| (a ^ b).count_ones()).sum();
                    let score = if l2 {
                        -(hamming as f32)
                    } else {
                        dim as f32 - 2.0 * hamming as f32
                    };
                    candidates.push(Scored { score, slot });
                }
            }
        }
    }
    Some(rescore(store, query, &candidates.into_sorted(), k))
}

/// The last step of every quantized search (this scan and the HNSW walk on SQ8 codes):
/// scores `candidates` again with the full vectors and returns the exact best `k` of
/// them, best first. Their vectors are requested together before the first is scored.
pub(super) fn rescore(
    store: &VectorStore,
    query: &QueryVector<'_>,
    candidates: &[Scored],
    k: usize,
) -> Vec<Scored> {
    for c in candidates {
        kernels::prefetch(store.vector(c.slot));
    }
    let mut top = TopK::new(k);
    for c in candidates {
        top.push(Scored {
            score: store.score(query, c.slot),
            slot: c.slot,
        });
    }
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QuantizationParams;
    use alloc::vec;
    use proptest::prelude::*;

    /// A trained SQ8 store of `rows` (at least [`SQ8_TRAIN_AT`] of them).
    fn trained(rows: &[Vec<f32>], metric: Metric) -> VectorStore {
        let dim = rows[0].len() as u32;
        let config = QuantizationConfig::Sq8(QuantizationParams { oversample: 4 });
        let mut store = VectorStore::with_quantization(dim, metric, config);
        for _ in 0..SQ8_TRAIN_AT / rows.len() + 1 {
            for r in rows {
                store.push(r);
            }
        }
        store
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The integer weights never overflow the `i32` sum, whatever the query's
        /// magnitudes and the dimension, and the approximate score stays within the
        /// rounding bound of the dequantized dot product.
        #[test]
        fn integer_weights_never_overflow_and_stay_close(
            dim in 1usize..1200,
            scale in prop_oneof![Just(1.0e-30f32), Just(1.0f32), Just(1.0e15f32)],
            seed in any::<u64>(),
        ) {
            let mut state = seed;
            let mut next = || {
                state = crate::index::rng::splitmix64(state);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            };
            let rows: Vec<Vec<f32>> = (0..8).map(|_| (0..dim).map(|_| next()).collect()).collect();
            let query: Vec<f32> = (0..dim).map(|_| next() * scale).collect();
            let store = trained(&rows, Metric::Dot);
            let q = store.query(&query);
            let approx = Sq8Query::new(&store, &q).expect("trained");
            let Approx::Dot { weights, step, base, .. } = &approx.approx else {
                panic!("dot metric");
            };
            let QuantizedCodes::Sq8(codes) = &store.codes else { panic!("sq8") };
            for slot in 0..8u32 {
                let row = approx.row(slot);
                let wide: i64 = row.iter().zip(weights).map(|(&c, &w)| i64::from(c) * i64::from(w)).sum();
                prop_assert_eq!(i64::from(kernels::dot_u8_i16(row, weights)), wide);
                // Against the dequantized vector in f64: the weights' rounding (half a
                // step each, times the code) plus the f32 rounding of the terms.
                let exact: f64 = query.iter().zip(row).enumerate().map(|(i, (&x, &c))| {
                    f64::from(x) * (f64::from(codes.min[i]) + f64::from(codes.scale[i]) * f64::from(c))
                }).sum();
                let bound = f64::from(*step) * 0.5 * row.iter().map(|&c| f64::from(c)).sum::<f64>()
                    + 1e-4 * (query.iter().map(|x| f64::from(x.abs())).sum::<f64>() + f64::from(base.abs()));
                let got = f64::from(approx.score(slot));
                prop_assert!((got - exact).abs() <= bound, "{} vs {} (bound {})", got, exact, bound);
            }
        }
    }

    /// A query whose weights overflow `f32` still scores (on `base`) without panicking.
    #[test]
    fn overflowing_query_walks_on_base() {
        let rows = vec![
            vec![1.0e30f32, -1.0e30, 3.0],
            vec![-1.0e30f32, 1.0e30, -3.0],
        ];
        let store = trained(&rows, Metric::Dot);
        let query = [3.0e38f32, 3.0e38, 3.0e38];
        let q = store.query(&query);
        let approx = Sq8Query::new(&store, &q).expect("trained");
        let Approx::Dot { step, weights, .. } = &approx.approx else {
            panic!("dot metric");
        };
        assert_eq!(*step, 0.0);
        assert!(weights.iter().all(|&w| w == 0));
        let _ = approx.score(0);
    }
}
