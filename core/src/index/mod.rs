//! Vector indexes.
//!
//! Every index reads vectors from one [`VectorStore`] (the rows by slot, which is also
//! what `flat` scans) and answers through one read trait ([`IndexRead`]) and one write
//! trait ([`IndexWrite`]), dispatched through the [`AnyIndex`] enum rather than `dyn`,
//! so snapshots and bindings can name every kind and the compiler sees every call.
//!
//! Indexes are deterministic: any randomness (HNSW levels, LSH hyperplanes, k-means
//! seeds) is derived from a seed stored in the library's config and from slot numbers,
//! never from the OS, so replaying a log builds the same structure in every runtime.
//!
//! Filtering happens inside the search: an index receives the set of [`Allowed`] slots
//! (live, and matching the filter) and only ever returns allowed slots, while still
//! walking through disallowed ones where its structure needs that (graph routing).

mod aligned;
mod bitset;
pub mod flat;
pub mod hnsw;
pub mod ivf;
pub mod kdtree;
pub mod lsh;
pub mod quant;
mod rng;
mod topk;

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

pub use bitset::Bitset;
pub use topk::{Scored, TopK};

use crate::error::Result;
use crate::kernels;
use crate::model::{IndexConfig, Metric, QuantizationConfig};

/// The vectors of a library, by slot, with their norms (for cosine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorStore {
    dimension: u32,
    metric: Metric,
    /// `len * dimension` floats, row-major, starting on a cache line. Rows of deleted
    /// chunks stay in place.
    data: aligned::AlignedF32,
    #[serde(with = "crate::codec::bulk")]
    norms: Vec<f32>,
    /// Compact codes of the rows, scanned first by [`exact_search`].
    codes: quant::QuantizedCodes,
}

/// A query vector with what every score needs precomputed.
#[derive(Debug, Clone, Copy)]
pub struct QueryVector<'a> {
    pub vector: &'a [f32],
    pub norm: f32,
}

impl VectorStore {
    /// An empty store without quantization.
    pub fn new(dimension: u32, metric: Metric) -> Self {
        Self::with_quantization(dimension, metric, QuantizationConfig::None)
    }

    /// An empty store that keeps codes for `quantization` (see [`quant`]).
    pub fn with_quantization(
        dimension: u32,
        metric: Metric,
        quantization: QuantizationConfig,
    ) -> Self {
        VectorStore {
            dimension,
            metric,
            data: aligned::AlignedF32::default(),
            norms: Vec::new(),
            codes: quant::QuantizedCodes::new(quantization),
        }
    }

    /// The quantization this store keeps codes for.
    pub fn quantization(&self) -> QuantizationConfig {
        self.codes.config()
    }

    /// The codes of the rows.
    pub fn codes(&self) -> &quant::QuantizedCodes {
        &self.codes
    }

    /// Bytes held per vector: the full vector (`4·dim`) plus its codes.
    pub fn bytes_per_vector(&self) -> usize {
        4 * self.dimension() + self.codes.bytes_per_vector(self.dimension())
    }

    /// Number of slots (live or not).
    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// `true` if no vector was ever stored.
    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    pub fn dimension(&self) -> usize {
        self.dimension as usize
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The vector in `slot`. Panics on a slot that was never stored (a bug).
    pub fn vector(&self, slot: u32) -> &[f32] {
        let dim = self.dimension();
        let start = slot as usize * dim;
        &self.data.as_slice()[start..start + dim]
    }

    /// Appends a vector (already validated) and returns its slot.
    pub fn push(&mut self, vector: &[f32]) -> u32 {
        let slot = self.len() as u32;
        self.data.extend_from_slice(vector);
        self.norms.push(kernels::norm(vector));
        self.codes.push(self.data.as_slice(), self.dimension());
        slot
    }

    /// Prepares a query for scoring.
    pub fn query<'a>(&self, vector: &'a [f32]) -> QueryVector<'a> {
        QueryVector {
            vector,
            norm: kernels::norm(vector),
        }
    }

    /// Similarity of `query` to `slot`, higher is closer: cosine similarity, inner
    /// product, or negative Euclidean distance.
    #[inline]
    pub fn score(&self, query: &QueryVector<'_>, slot: u32) -> f32 {
        let row = self.vector(slot);
        match self.metric {
            Metric::Dot => kernels::dot(query.vector, row),
            Metric::Cosine => {
                kernels::dot(query.vector, row) / (query.norm * self.norms[slot as usize])
            }
            Metric::L2 => -kernels::sqrt(kernels::l2_squared(query.vector, row)),
        }
    }

    /// Similarity between two stored vectors (used while building indexes).
    #[inline]
    pub fn score_between(&self, a: u32, b: u32) -> f32 {
        let query = QueryVector {
            vector: self.vector(a),
            norm: self.norms[a as usize],
        };
        self.score(&query, b)
    }

    /// Checks the store's shape after decoding outside bytes.
    pub(crate) fn is_consistent(&self) -> bool {
        self.data.len() == self.norms.len() * self.dimension()
            && self.codes.is_consistent(self.len(), self.dimension())
    }
}

/// The slots a search may return: live ones, and, with a filter, matching ones.
#[derive(Debug, Clone, Copy)]
pub struct Allowed<'a> {
    live: &'a Bitset,
    filter: Option<&'a Bitset>,
    count: usize,
    live_count: usize,
}

impl<'a> Allowed<'a> {
    /// `filter`, if any, must only hold live slots.
    pub fn new(live: &'a Bitset, filter: Option<&'a Bitset>) -> Self {
        let live_count = live.count();
        let count = filter.map_or(live_count, Bitset::count);
        Allowed {
            live,
            filter,
            count,
            live_count,
        }
    }

    /// Whether `slot` may be returned.
    #[inline]
    pub fn contains(&self, slot: u32) -> bool {
        self.live.contains(slot) && self.filter.is_none_or(|f| f.contains(slot))
    }

    /// `true` when every live slot is allowed (no filter).
    pub fn is_unfiltered(&self) -> bool {
        self.filter.is_none()
    }

    /// Number of allowed slots.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Fraction of the live slots that are allowed (1.0 without a filter), so an index
    /// can widen its search (HNSW `ef`, IVF `nprobe`) when a filter is selective.
    pub fn fraction(&self) -> f32 {
        if self.live_count == 0 {
            1.0
        } else {
            self.count as f32 / self.live_count as f32
        }
    }
}

/// Per-query parameters of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    pub k: usize,
    /// HNSW: size of the dynamic candidate list (defaults to the index's `ef_search`).
    pub ef: Option<u32>,
    /// IVF: number of lists probed (defaults to the index's `nprobe`).
    pub nprobe: Option<u32>,
}

/// The read side of every index.
pub trait IndexRead {
    /// The best `options.k` allowed slots for `query`, best first, ties broken by slot.
    fn search(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> Vec<Scored>;

    /// Checks internal invariants after decoding outside bytes (every slot it names is
    /// below `slots`), so a crafted snapshot cannot cause an out-of-bounds access later.
    fn check(&self, slots: usize) -> Result<()>;
}

/// The write side of every index. Calls come in log order, so the structure built is
/// the same on every replay.
pub trait IndexWrite {
    /// Indexes the vector just stored in `slot`.
    fn insert(&mut self, store: &VectorStore, slot: u32);
    /// Forgets `slot` (its chunk was deleted or replaced).
    fn remove(&mut self, store: &VectorStore, slot: u32);
}

/// Every index kind, by value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnyIndex {
    Flat(flat::FlatIndex),
    Hnsw(hnsw::HnswIndex),
    Ivf(ivf::IvfIndex),
    KdTree(kdtree::KdTreeIndex),
    Lsh(lsh::LshIndex),
}

macro_rules! dispatch {
    ($self:expr, $index:ident => $body:expr) => {
        match $self {
            AnyIndex::Flat($index) => $body,
            AnyIndex::Hnsw($index) => $body,
            AnyIndex::Ivf($index) => $body,
            AnyIndex::KdTree($index) => $body,
            AnyIndex::Lsh($index) => $body,
        }
    };
}

impl AnyIndex {
    /// An empty index of the configured kind.
    pub fn new(config: &IndexConfig, store: &VectorStore) -> Self {
        match config {
            IndexConfig::Flat => AnyIndex::Flat(flat::FlatIndex::default()),
            IndexConfig::Hnsw(params) => AnyIndex::Hnsw(hnsw::HnswIndex::new(params, store)),
            IndexConfig::Ivf(params) => AnyIndex::Ivf(ivf::IvfIndex::new(params, store)),
            IndexConfig::KdTree(params) => {
                AnyIndex::KdTree(kdtree::KdTreeIndex::new(params, store))
            }
            IndexConfig::Lsh(params) => AnyIndex::Lsh(lsh::LshIndex::new(params, store)),
        }
    }
}

impl AnyIndex {
    /// Index checks that need the library's live slots (see
    /// [`lsh::LshIndex::check_live`]).
    pub fn check_live(&self, live: &bitset::Bitset, slots: usize) -> Result<()> {
        match self {
            AnyIndex::Lsh(index) => index.check_live(live, slots),
            _ => Ok(()),
        }
    }
}

impl IndexRead for AnyIndex {
    fn search(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> Vec<Scored> {
        dispatch!(self, index => index.search(store, query, allowed, options))
    }

    fn check(&self, slots: usize) -> Result<()> {
        dispatch!(self, index => index.check(slots))
    }
}

impl IndexWrite for AnyIndex {
    fn insert(&mut self, store: &VectorStore, slot: u32) {
        dispatch!(self, index => index.insert(store, slot))
    }

    fn remove(&mut self, store: &VectorStore, slot: u32) {
        dispatch!(self, index => index.remove(store, slot))
    }
}

/// Exact search: scores every allowed slot. The reference every index is tested
/// against, and the fallback for very selective filters. In a quantized store it scans
/// the codes first and rescores the best `k × oversample` with full vectors
/// ([`quant`]).
pub fn exact_search(
    store: &VectorStore,
    query: &QueryVector<'_>,
    allowed: &Allowed<'_>,
    k: usize,
) -> Vec<Scored> {
    if let Some(found) = quant::search(store, query, allowed, k) {
        return found;
    }
    let mut top = TopK::new(k);
    for slot in 0..store.len() as u32 {
        if allowed.contains(slot) {
            top.push(Scored {
                score: store.score(query, slot),
                slot,
            });
        }
    }
    top.into_sorted()
}
