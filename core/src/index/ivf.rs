//! `ivf`: an inverted file index (k-means lists, `nprobe`), with optional product
//! quantization of the residuals (IVF-PQ).
//!
//! Why: a query scores `nlist` centroids and then only the vectors of the `nprobe`
//! closest lists, so its cost is a tunable fraction of an exact scan; the structure is a
//! few flat arrays that snapshot and load without rebuilding.
//!
//! Key choices:
//! - **Train once, in the log**: until `train_size` slots are indexed the index keeps
//!   them in insertion order and searches them exactly (always correct). The insert that
//!   reaches `train_size` trains on exactly those vectors, in slot order, and files
//!   every slot into its list; later inserts go to their nearest centroid. Training runs
//!   inside `apply`, so every replica and replay trains on the same data the same way.
//! - **Deterministic k-means**: k-means++ seeding from a splitmix64 seeded by
//!   `params.seed`, then [`LLOYD_ITERATIONS`] Lloyd iterations (fewer if assignments stop
//!   changing). Ties go to the lower centroid; an empty cluster is re-seeded with the
//!   training point farthest from its centroid (ties: lower point). Sums are taken in
//!   `f64` in point order. For cosine and dot it is spherical k-means (unit vectors and
//!   unit centroids, assignment by inner product); for L2 plain k-means.
//! - **Filtered search**: only allowed slots are scored while scanning lists, and
//!   `nprobe` is divided by `allowed.fraction()` (capped at `nlist`) so a selective
//!   filter still finds `k` hits.
//! - **PQ** (`pq_m > 0` and `dimension % pq_m == 0`; otherwise PQ is off): `pq_m`
//!   sub-quantizers of up to 256 codewords, trained with k-means on the residuals
//!   (vector minus its centroid; the unit vector for cosine) of the training set. Each
//!   slot stores `pq_m` bytes beside its list entry. A query builds asymmetric distance
//!   tables (one per query for cosine/dot, whose score is linear; one per probed list
//!   for L2), keeps the best `max(8·k, 64)` by approximate score and rescores them with
//!   the full vectors from the [`VectorStore`]. The full vectors stay the reference, so
//!   PQ trades memory for speed of the list scan, not for storage.
//! - **Removes** take the slot out of its list (found again as the nearest centroid of
//!   the stored row), so replace-heavy workloads do not grow the lists.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::rng::SplitMix64;
use super::{
    Allowed, Bitset, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, TopK, VectorStore,
};
use crate::error::{Error, Result};
use crate::kernels;
use crate::model::{IvfParams, Metric};

/// Lloyd iterations of the coarse quantizer.
pub const LLOYD_ITERATIONS: usize = 12;
/// Lloyd iterations of each PQ sub-quantizer.
const PQ_ITERATIONS: usize = 8;
/// Codewords per PQ sub-quantizer (one byte per code).
const PQ_CODEWORDS: usize = 256;
/// With PQ, the best `max(RESCORE_FACTOR · k, MIN_RESCORE)` approximate hits are
/// rescored with the full vectors.
const RESCORE_FACTOR: usize = 8;
const MIN_RESCORE: usize = 64;

/// Inverted lists over k-means centroids; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IvfIndex {
    params: IvfParams,
    dimension: u32,
    metric: Metric,
    /// Indexed slots in insertion order while untrained; empty once trained.
    #[serde(with = "crate::codec::bulk")]
    pending: Vec<u32>,
    /// `lists.len() · dimension` floats (unit vectors for cosine and dot); empty until
    /// trained.
    #[serde(with = "crate::codec::bulk")]
    centroids: Vec<f32>,
    /// The slots of each list; empty until trained.
    #[serde(with = "crate::codec::bulk::lists")]
    lists: Vec<Vec<u32>>,
    /// Product quantizer, once trained with `pq_m > 0`.
    pq: Option<ProductQuantizer>,
}

/// Codebooks and the codes of every listed slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProductQuantizer {
    /// Number of sub-quantizers; divides the dimension.
    m: u32,
    /// Codewords per sub-quantizer (1..=256).
    ksub: u32,
    /// `m · (dimension / m) · ksub` floats: sub-quantizer, then component, then
    /// codeword (component-major, so one pass scores a sub-vector against every
    /// codeword with SIMD across codewords).
    #[serde(with = "crate::codec::bulk")]
    codebooks: Vec<f32>,
    /// Per list, `m` codes per entry of the list, in the list's order.
    #[serde(with = "crate::codec::bulk::lists")]
    codes: Vec<Vec<u8>>,
}

impl IvfIndex {
    /// An empty, untrained index for vectors of `store`'s dimension and metric.
    pub fn new(params: &IvfParams, store: &VectorStore) -> Self {
        IvfIndex {
            params: *params,
            dimension: store.dimension() as u32,
            metric: store.metric(),
            pending: Vec::new(),
            centroids: Vec::new(),
            lists: Vec::new(),
            pq: None,
        }
    }

    /// Whether k-means has run (before, searches are exact).
    pub fn is_trained(&self) -> bool {
        !self.lists.is_empty()
    }

    /// Number of lists (0 until trained; at most `params.nlist`).
    pub fn nlist(&self) -> usize {
        self.lists.len()
    }

    /// Number of indexed slots.
    pub fn len(&self) -> usize {
        self.pending.len() + self.lists.iter().map(Vec::len).sum::<usize>()
    }

    /// `true` when no slot is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether slots carry PQ codes (trained, with `pq_m` dividing the dimension).
    pub fn has_pq(&self) -> bool {
        self.pq.is_some()
    }

    /// Approximate heap bytes of the structure (centroids, lists, codes, codebooks),
    /// excluding the vectors themselves, which the [`VectorStore`] holds.
    pub fn structure_bytes(&self) -> usize {
        let lists = self.lists.iter().map(|l| l.len() * 4 + 24).sum::<usize>();
        let pq = self.pq.as_ref().map_or(0, |pq| {
            pq.codebooks.len() * 4 + pq.codes.iter().map(|c| c.len() + 24).sum::<usize>()
        });
        self.pending.len() * 4 + self.centroids.len() * 4 + lists + pq
    }

    /// Re-trains from scratch on the `live` slots (an `optimize` step, e.g. after the
    /// data drifted): k-means on up to `train_size` of them (evenly strided, in slot
    /// order), then every live slot is filed again. With fewer than `train_size` live
    /// slots the index goes back to the untrained, exact state.
    pub fn retrain(&mut self, store: &VectorStore, live: &Bitset) {
        self.pending = live
            .iter()
            .filter(|&s| (s as usize) < store.len())
            .collect();
        self.centroids.clear();
        self.lists.clear();
        self.pq = None;
        if self.pending.len() >= self.train_threshold() {
            self.train(store);
        }
    }

    fn dim(&self) -> usize {
        self.dimension as usize
    }

    fn train_threshold(&self) -> usize {
        (self.params.train_size as usize).max(1)
    }

    fn spherical(&self) -> bool {
        self.metric != Metric::L2
    }

    /// Whether this index can read `store` (a mismatch only comes from crafted input).
    fn fits(&self, store: &VectorStore) -> bool {
        store.dimension() == self.dim() && self.dim() > 0
    }

    /// Trains on the pending slots and files all of them.
    fn train(&mut self, store: &VectorStore) {
        let dim = self.dim();
        let mut slots = core::mem::take(&mut self.pending);
        slots.sort_unstable();
        let wanted = self.train_threshold().min(slots.len());
        let sample: Vec<u32> = (0..wanted)
            .filter_map(|i| slots.get((i as u64 * slots.len() as u64 / wanted as u64) as usize))
            .copied()
            .collect();
        let spherical = self.spherical();
        let mut data = Vec::with_capacity(sample.len() * dim);
        for &slot in &sample {
            push_prepared(&mut data, store.vector(slot), spherical);
        }
        let mut rng = SplitMix64(self.params.seed);
        let nlist = (self.params.nlist as usize).clamp(1, sample.len().max(1));
        self.centroids = kmeans(&data, dim, nlist, spherical, LLOYD_ITERATIONS, &mut rng);
        let nlist = self.centroids.len() / dim;
        self.lists = vec![Vec::new(); nlist];

        let m = self.params.pq_m as usize;
        if m > 0 && dim.is_multiple_of(m) {
            self.pq = Some(self.train_pq(store, &sample, m, &mut rng));
        }
        for slot in slots {
            self.file(store, slot);
        }
    }

    /// Trains the sub-quantizers on the residuals of `sample`.
    fn train_pq(
        &self,
        store: &VectorStore,
        sample: &[u32],
        m: usize,
        rng: &mut SplitMix64,
    ) -> ProductQuantizer {
        let dim = self.dim();
        let dsub = dim / m;
        let mut residuals = Vec::with_capacity(sample.len() * dim);
        let mut prepared = Vec::with_capacity(dim);
        for &slot in sample {
            let list = self.nearest_list(store.vector(slot));
            prepared.clear();
            push_prepared(
                &mut prepared,
                store.vector(slot),
                self.metric == Metric::Cosine,
            );
            let centroid = self.centroid(list);
            residuals.extend(prepared.iter().zip(centroid).map(|(x, c)| x - c));
        }
        let ksub = PQ_CODEWORDS.min(sample.len()).max(1);
        let mut codebooks = Vec::with_capacity(m * ksub * dsub);
        let mut sub = Vec::with_capacity(sample.len() * dsub);
        for j in 0..m {
            sub.clear();
            for row in residuals.chunks_exact(dim) {
                sub.extend_from_slice(&row[j * dsub..(j + 1) * dsub]);
            }
            let mut book = kmeans(&sub, dsub, ksub, false, PQ_ITERATIONS, rng);
            // `kmeans` returns `ksub` rows since `ksub ≤ n`; keep the shape regardless.
            book.resize(ksub * dsub, 0.0);
            codebooks.extend_from_slice(&transpose(&book, dsub));
        }
        ProductQuantizer {
            m: m as u32,
            ksub: ksub as u32,
            codebooks,
            codes: vec![Vec::new(); self.lists.len()],
        }
    }

    fn centroid(&self, list: usize) -> &[f32] {
        let dim = self.dim();
        &self.centroids[list * dim..(list + 1) * dim]
    }

    /// The list whose centroid is closest to `vector` (ties: lower list).
    fn nearest_list(&self, vector: &[f32]) -> usize {
        let mut best = (f32::NEG_INFINITY, 0usize);
        for (list, c) in self.centroids.chunks_exact(self.dim()).enumerate() {
            let a = affinity(self.metric, vector, c);
            if a > best.0 {
                best = (a, list);
            }
        }
        best.1
    }

    /// Adds `slot` to its nearest list (trained index).
    fn file(&mut self, store: &VectorStore, slot: u32) {
        let vector = store.vector(slot);
        let list = self.nearest_list(vector);
        let dim = self.dim();
        let metric = self.metric;
        let centroid = &self.centroids[list * dim..(list + 1) * dim];
        if let Some(pq) = &mut self.pq {
            let code = pq.encode(metric, vector, centroid);
            if let Some(codes) = pq.codes.get_mut(list) {
                codes.extend_from_slice(&code);
            }
        }
        if let Some(entries) = self.lists.get_mut(list) {
            entries.push(slot);
        }
    }

    /// Takes `slot` out of `list`; returns whether it was there.
    fn unfile(&mut self, list: usize, slot: u32) -> bool {
        let Some(entries) = self.lists.get_mut(list) else {
            return false;
        };
        let Some(pos) = entries.iter().position(|&s| s == slot) else {
            return false;
        };
        entries.swap_remove(pos);
        if let Some(pq) = &mut self.pq {
            let m = pq.m as usize;
            if let Some(codes) = pq.codes.get_mut(list) {
                // Same swap-remove as the list: the last entry's codes move to `pos`.
                let last = codes.len().saturating_sub(m);
                if pos * m < last {
                    codes.copy_within(last.., pos * m);
                }
                codes.truncate(last);
            }
        }
        true
    }

    /// Scores the centroids and returns the best `nprobe` lists, best first.
    fn probe(&self, query: &[f32], nprobe: usize) -> Vec<Scored> {
        let mut top = TopK::new(nprobe);
        for (list, c) in self.centroids.chunks_exact(self.dim()).enumerate() {
            top.push(Scored {
                score: affinity(self.metric, query, c),
                slot: list as u32,
            });
        }
        top.into_sorted()
    }

    fn search_untrained(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        k: usize,
    ) -> Vec<Scored> {
        let mut top = TopK::new(k);
        for &slot in &self.pending {
            if allowed.contains(slot) {
                top.push(Scored {
                    score: store.score(query, slot),
                    slot,
                });
            }
        }
        top.into_sorted()
    }

    fn search_pq(
        &self,
        pq: &ProductQuantizer,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        probes: &[Scored],
        k: usize,
    ) -> Vec<Scored> {
        let m = pq.m as usize;
        let dim = self.dim();
        let mut approx = TopK::new((RESCORE_FACTOR * k).max(MIN_RESCORE));
        let mut table = vec![0.0f32; m * PQ_CODEWORDS];
        let linear = self.metric != Metric::L2;
        if linear {
            pq.inner_product_table(query.vector, &mut table);
        }
        let mut shifted = Vec::with_capacity(dim);
        for probe in probes {
            let list = probe.slot as usize;
            let (Some(entries), Some(codes)) = (self.lists.get(list), pq.codes.get(list)) else {
                continue;
            };
            let base = if linear {
                probe.score
            } else {
                shifted.clear();
                let centroid = self.centroid(list);
                shifted.extend(query.vector.iter().zip(centroid).map(|(q, c)| q - c));
                pq.l2_table(&shifted, &mut table);
                0.0
            };
            for (&slot, code) in entries.iter().zip(codes.chunks_exact(m)) {
                if !allowed.contains(slot) {
                    continue;
                }
                let mut sum = 0.0f32;
                for (j, &c) in code.iter().enumerate() {
                    sum += table[j * PQ_CODEWORDS + c as usize];
                }
                let score = if linear { base + sum } else { -sum };
                approx.push(Scored { score, slot });
            }
        }
        let mut top = TopK::new(k);
        for candidate in approx.into_sorted() {
            top.push(Scored {
                score: store.score(query, candidate.slot),
                slot: candidate.slot,
            });
        }
        top.into_sorted()
    }
}

impl ProductQuantizer {
    fn dsub(&self, dim: usize) -> usize {
        dim / (self.m as usize).max(1)
    }

    /// The `m` codes of `vector`'s residual to `centroid`.
    fn encode(&self, metric: Metric, vector: &[f32], centroid: &[f32]) -> Vec<u8> {
        let dim = vector.len();
        let dsub = self.dsub(dim);
        let ksub = self.ksub as usize;
        let mut residual = Vec::with_capacity(dim);
        push_prepared(&mut residual, vector, metric == Metric::Cosine);
        for (r, c) in residual.iter_mut().zip(centroid) {
            *r -= c;
        }
        let mut code = Vec::with_capacity(self.m as usize);
        let mut dist = vec![0.0f32; ksub];
        for (part, book) in residual
            .chunks_exact(dsub.max(1))
            .zip(self.codebooks.chunks_exact((ksub * dsub).max(1)))
        {
            squared_distances(part, book, &mut dist);
            code.push(argmin(&dist) as u8);
        }
        code
    }

    /// `table[j · 256 + w]` = inner product of the query's part `j` with codeword `w`.
    fn inner_product_table(&self, query: &[f32], table: &mut [f32]) {
        self.fill_table(query, table, inner_products);
    }

    /// `table[j · 256 + w]` = squared distance of `shifted`'s part `j` to codeword `w`.
    fn l2_table(&self, shifted: &[f32], table: &mut [f32]) {
        self.fill_table(shifted, table, squared_distances);
    }

    fn fill_table(&self, query: &[f32], table: &mut [f32], f: fn(&[f32], &[f32], &mut [f32])) {
        let dsub = self.dsub(query.len()).max(1);
        let ksub = self.ksub as usize;
        for ((part, book), row) in query
            .chunks_exact(dsub)
            .zip(self.codebooks.chunks_exact((ksub * dsub).max(1)))
            .zip(table.chunks_exact_mut(PQ_CODEWORDS))
        {
            if let Some(row) = row.get_mut(..ksub) {
                f(part, book, row);
            }
        }
    }
}

impl IndexRead for IvfIndex {
    fn search(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> Vec<Scored> {
        if options.k == 0 || allowed.count() == 0 {
            return Vec::new();
        }
        if !self.fits(store) || query.vector.len() != self.dim() {
            return super::exact_search(store, query, allowed, options.k);
        }
        if !self.is_trained() {
            return self.search_untrained(store, query, allowed, options.k);
        }
        let nlist = self.lists.len();
        let nprobe = options.nprobe.unwrap_or(self.params.nprobe).max(1) as f32;
        // Widen by the filter's selectivity, so a selective filter still fills k hits.
        let widened = nprobe / allowed.fraction().max(1.0 / nlist as f32);
        let nprobe = (libm::ceilf(widened) as usize).clamp(1, nlist);
        let probes = self.probe(query.vector, nprobe);
        if let Some(pq) = &self.pq {
            return self.search_pq(pq, store, query, allowed, &probes, options.k);
        }
        let mut top = TopK::new(options.k);
        for probe in &probes {
            let Some(entries) = self.lists.get(probe.slot as usize) else {
                continue;
            };
            for &slot in entries {
                if allowed.contains(slot) {
                    top.push(Scored {
                        score: store.score(query, slot),
                        slot,
                    });
                }
            }
        }
        top.into_sorted()
    }

    fn check(&self, slots: usize) -> Result<()> {
        let corrupt = |reason: String| Error::Corrupt {
            what: "snapshot",
            reason,
        };
        let dim = self.dim();
        if dim == 0 {
            return Err(corrupt(String::from("ivf index with dimension 0")));
        }
        if self.is_trained() {
            if Some(self.centroids.len()) != self.lists.len().checked_mul(dim) {
                return Err(corrupt(format!(
                    "ivf has {} lists but {} centroid floats (dimension {dim})",
                    self.lists.len(),
                    self.centroids.len()
                )));
            }
            if !self.pending.is_empty() {
                return Err(corrupt(String::from("trained ivf with pending slots")));
            }
        } else if !self.centroids.is_empty() || self.pq.is_some() {
            return Err(corrupt(String::from(
                "untrained ivf with centroids or codes",
            )));
        }
        let mut seen = Bitset::with_capacity(slots);
        for &slot in self.pending.iter().chain(self.lists.iter().flatten()) {
            if slot as usize >= slots {
                return Err(corrupt(format!("ivf names slot {slot} of {slots}")));
            }
            if seen.contains(slot) {
                return Err(corrupt(format!("ivf lists slot {slot} twice")));
            }
            seen.insert(slot);
        }
        if let Some(pq) = &self.pq {
            let (m, ksub) = (pq.m as usize, pq.ksub as usize);
            if m == 0 || !dim.is_multiple_of(m) || !(1..=PQ_CODEWORDS).contains(&ksub) {
                return Err(corrupt(format!("ivf pq with m={m}, ksub={ksub}")));
            }
            if pq.codebooks.len() != ksub * dim || pq.codes.len() != self.lists.len() {
                return Err(corrupt(String::from("ivf pq arrays have the wrong size")));
            }
            for (codes, entries) in pq.codes.iter().zip(&self.lists) {
                if Some(codes.len()) != entries.len().checked_mul(m)
                    || codes.iter().any(|&c| c as usize >= ksub)
                {
                    return Err(corrupt(String::from("ivf pq codes disagree with lists")));
                }
            }
        }
        Ok(())
    }
}

impl IndexWrite for IvfIndex {
    fn insert(&mut self, store: &VectorStore, slot: u32) {
        if !self.fits(store) || slot as usize >= store.len() {
            return;
        }
        if self.is_trained() {
            self.file(store, slot);
        } else {
            self.pending.push(slot);
            if self.pending.len() >= self.train_threshold() {
                self.train(store);
            }
        }
    }

    fn remove(&mut self, store: &VectorStore, slot: u32) {
        if !self.is_trained() {
            if let Some(pos) = self.pending.iter().position(|&s| s == slot) {
                self.pending.remove(pos);
            }
            return;
        }
        if self.fits(store) && (slot as usize) < store.len() {
            let list = self.nearest_list(store.vector(slot));
            if self.unfile(list, slot) {
                return;
            }
        }
        // Not where it should be (only after outside edits): look everywhere.
        for list in 0..self.lists.len() {
            if self.unfile(list, slot) {
                return;
            }
        }
    }
}

/// Higher is closer: inner product with a unit centroid (cosine, dot; same ranking as
/// cosine to the centroid), or negative squared distance (L2).
#[inline]
fn affinity(metric: Metric, vector: &[f32], centroid: &[f32]) -> f32 {
    match metric {
        Metric::L2 => -kernels::l2_squared(vector, centroid),
        Metric::Cosine | Metric::Dot => kernels::dot(vector, centroid),
    }
}

/// Appends `vector`, scaled to unit length if `normalize` (a zero vector stays zero).
fn push_prepared(out: &mut Vec<f32>, vector: &[f32], normalize: bool) {
    let norm = if normalize {
        kernels::norm(vector)
    } else {
        0.0
    };
    if norm > 0.0 {
        out.extend(vector.iter().map(|x| x / norm));
    } else {
        out.extend_from_slice(vector);
    }
}

/// Distance minimised by k-means: `1 - cos` on unit vectors, or squared L2.
#[inline]
fn distance(spherical: bool, a: &[f32], b: &[f32]) -> f32 {
    if spherical {
        (1.0 - kernels::dot(a, b)).max(0.0)
    } else if a.len() < kernels::LANES {
        // Short rows: a plain in-order sum beats the 16-lane kernel's reduction.
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    } else {
        kernels::l2_squared(a, b)
    }
}

/// Row-major `rows × dim` to component-major `dim × rows`.
fn transpose(rows: &[f32], dim: usize) -> Vec<f32> {
    let n = rows.len() / dim.max(1);
    let mut out = vec![0.0f32; n * dim];
    for (r, row) in rows.chunks_exact(dim.max(1)).enumerate() {
        for (d, &x) in row.iter().enumerate() {
            out[d * n + r] = x;
        }
    }
    out
}

/// `out[w] = ‖x − word w‖²` for the component-major `book` (`x.len() × out.len()`).
/// Each sum runs over the components in order, so it is the same on every target;
/// the loop over codewords is what vectorizes.
fn squared_distances(x: &[f32], book: &[f32], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    let k = out.len();
    for (&xd, row) in x.iter().zip(book.chunks_exact(k.max(1))) {
        for (o, &c) in out.iter_mut().zip(row) {
            let e = xd - c;
            *o += e * e;
        }
    }
}

/// `out[w] = ⟨x, word w⟩` for the component-major `book`, like [`squared_distances`].
fn inner_products(x: &[f32], book: &[f32], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    let k = out.len();
    for (&xd, row) in x.iter().zip(book.chunks_exact(k.max(1))) {
        for (o, &c) in out.iter_mut().zip(row) {
            *o += xd * c;
        }
    }
}

/// Index of the smallest value (ties: the lower index).
fn argmin(values: &[f32]) -> usize {
    let mut best = (f32::INFINITY, 0usize);
    for (i, &v) in values.iter().enumerate() {
        if v < best.0 {
            best = (v, i);
        }
    }
    best.1
}

/// k-means++ then Lloyd on the rows of `data` (`dim` floats each, unit rows if
/// `spherical`). Returns `min(k, rows) · dim` centroid floats.
fn kmeans(
    data: &[f32],
    dim: usize,
    k: usize,
    spherical: bool,
    iterations: usize,
    rng: &mut SplitMix64,
) -> Vec<f32> {
    let n = data.len() / dim.max(1);
    let k = k.min(n);
    if k == 0 || dim == 0 {
        return Vec::new();
    }
    let row = |i: usize| &data[i * dim..(i + 1) * dim];

    // k-means++: each next centre is drawn with probability proportional to D².
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.below(n);
    centroids.extend_from_slice(row(first));
    let mut nearest: Vec<f32> = (0..n)
        .map(|i| distance(spherical, row(i), row(first)))
        .collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let target = rng.unit() * total;
            let mut acc = 0.0f64;
            let mut pick = None;
            for (i, &d) in nearest.iter().enumerate() {
                acc += f64::from(d);
                if d > 0.0 && acc > target {
                    pick = Some(i);
                    break;
                }
            }
            pick.or_else(|| nearest.iter().rposition(|&d| d > 0.0))
                .unwrap_or(0)
        } else {
            rng.below(n)
        };
        let start = centroids.len();
        centroids.extend_from_slice(row(pick));
        for (i, d) in nearest.iter_mut().enumerate() {
            let e = distance(spherical, row(i), &centroids[start..start + dim]);
            if e < *d {
                *d = e;
            }
        }
    }

    // Lloyd iterations.
    let mut assign = vec![u32::MAX; n];
    let mut dist = vec![0.0f32; n];
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0u32; k];
    // Short L2 rows (PQ sub-vectors) are scored against all centroids at once.
    let across = !spherical && dim < kernels::LANES;
    let mut all = vec![0.0f32; if across { k } else { 0 }];
    for iteration in 0..iterations {
        let mut changed = 0usize;
        let transposed = if across {
            transpose(&centroids, dim)
        } else {
            Vec::new()
        };
        for i in 0..n {
            let x = row(i);
            let mut best = (f32::INFINITY, 0usize);
            if across {
                squared_distances(x, &transposed, &mut all);
                let c = argmin(&all);
                best = (all[c], c);
            } else {
                for (c, centroid) in centroids.chunks_exact(dim).enumerate() {
                    let d = distance(spherical, x, centroid);
                    if d < best.0 {
                        best = (d, c);
                    }
                }
            }
            if assign[i] != best.1 as u32 {
                changed += 1;
                assign[i] = best.1 as u32;
            }
            dist[i] = best.0;
        }
        if iteration > 0 && changed == 0 {
            break;
        }
        sums.iter_mut().for_each(|s| *s = 0.0);
        counts.iter_mut().for_each(|c| *c = 0);
        for (i, &c) in assign.iter().enumerate() {
            let c = c as usize;
            counts[c] += 1;
            for (s, &x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                *s += f64::from(x);
            }
        }
        for c in 0..k {
            let centroid = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                // Re-seed with the point farthest from its centroid (not reused).
                let mut far = (f32::NEG_INFINITY, 0usize);
                for (i, &d) in dist.iter().enumerate() {
                    if d > far.0 {
                        far = (d, i);
                    }
                }
                dist[far.1] = f32::NEG_INFINITY;
                centroid.copy_from_slice(row(far.1));
                continue;
            }
            let count = f64::from(counts[c]);
            for (x, &s) in centroid.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *x = (s / count) as f32;
            }
            if spherical {
                let norm = kernels::norm(centroid);
                if norm > 0.0 {
                    centroid.iter_mut().for_each(|x| *x /= norm);
                }
            }
        }
    }
    centroids
}
