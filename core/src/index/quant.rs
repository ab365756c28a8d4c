//! Per-library quantization of the stored vectors, read by the exact scan.
//!
//! A quantized library keeps compact codes next to its full vectors, inside the
//! [`super::VectorStore`], so snapshots carry them and loading never recomputes them.
//! The exact scan ([`super::exact_search`], used by `flat`, by the engine's path for
//! very selective filters, and by the fallbacks of other indexes) then scores the codes
//! of every allowed slot, keeps the best `k × oversample` candidates, rescores those
//! with the full vectors and returns the exact best `k` of them. The full vectors stay
//! (they are needed for that rescoring), so a quantized library uses more memory, not
//! less: `4·dim` bytes plus `dim` (SQ8) or `dim / 8` (binary) bytes per vector; what it
//! saves is memory bandwidth during the scan. Graph, tree, hash and IVF indexes keep
//! scoring full vectors (IVF has its own product quantization).
//!
//! - **SQ8**: one byte per dimension, `min + code · scale` with a per-dimension range.
//!   The range is trained once, deterministically, on the first
//!   [`SQ8_TRAIN_AT`] rows (deleted ones included, since their rows stay); every
//!   existing row is then encoded, and later rows are encoded on push, clamped to the
//!   range. Until then the store answers exactly. The query stays in `f32`; codes are
//!   dequantized on the fly (`q·min + Σ q_i·scale_i·code_i` for dot and cosine, the
//!   latter divided by the row's exact norm; `Σ (q_i − min_i − scale_i·code_i)²` for L2).
//! - **Binary**: one bit per dimension (`x > 0`), no training. The approximate
//!   similarity is `dim − 2·hamming` for cosine and dot; for L2 the Hamming distance is
//!   the distance. It is coarse, so it needs a larger `oversample`.
//!
//! Candidates are kept with [`TopK`] (score, then slot), so the result is deterministic.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::{Allowed, QueryVector, Scored, TopK, VectorStore};
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
    min: Vec<f32>,
    /// Per-dimension step (`(max − min) / 255`); empty until trained.
    scale: Vec<f32>,
    /// `len × dim` codes, row-major; empty until trained.
    codes: Vec<u8>,
}

/// Sign-bit codes, `dim.div_ceil(64)` words per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryCodes {
    oversample: u32,
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
                codes: Vec::new(),
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

/// `Σ w_i · c_i`.
#[inline]
fn weighted_sum(w: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (cw, cc) = (w.chunks_exact(LANES), c.chunks_exact(LANES));
    let (rw, rc) = (cw.remainder(), cc.remainder());
    for (x, y) in cw.zip(cc) {
        for i in 0..LANES {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    for (i, (x, y)) in rw.iter().zip(rc).enumerate() {
        acc[i] += x * f32::from(*y);
    }
    acc.iter().sum()
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
        QuantizedCodes::Sq8(c) => {
            let q = query.vector;
            let rows = c.codes.chunks_exact(dim.max(1));
            match store.metric {
                Metric::Dot | Metric::Cosine => {
                    let weights: Vec<f32> = q.iter().zip(&c.scale).map(|(x, s)| x * s).collect();
                    let base: f32 = q.iter().zip(&c.min).map(|(x, m)| x * m).sum();
                    let cosine = store.metric == Metric::Cosine;
                    for (slot, row) in (0..len).zip(rows) {
                        if allowed.contains(slot) {
                            let mut score = base + weighted_sum(&weights, row);
                            if cosine {
                                score /= store.norms[slot as usize];
                            }
                            candidates.push(Scored { score, slot });
                        }
                    }
                }
                Metric::L2 => {
                    let residual: Vec<f32> = q.iter().zip(&c.min).map(|(x, m)| x - m).collect();
                    for (slot, row) in (0..len).zip(rows) {
                        if allowed.contains(slot) {
                            let score = -residual_l2(&residual, &c.scale, row);
                            candidates.push(Scored { score, slot });
                        }
                    }
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
    let mut top = TopK::new(k);
    for candidate in candidates.into_sorted() {
        top.push(Scored {
            score: store.score(query, candidate.slot),
            slot: candidate.slot,
        });
    }
    Some(top.into_sorted())
}
