//! `lsh`: approximate search by random-hyperplane locality-sensitive hashing (SimHash).
//!
//! Why it exists: it is the simplest sub-linear index to update: an insert hashes the
//! vector once per table and appends the slot to one bucket, a remove drops it, and
//! nothing is ever rebuilt or trained. It fits cosine (and dot on normalised vectors),
//! where two vectors at angle θ agree on a random hyperplane's side with probability
//! `1 - θ/π`. Recall per scanned vector is below `hnsw`'s; use it when writes dominate.
//!
//! Key choices:
//! - `num_tables` tables of `hash_size` hyperplanes through the origin; the components
//!   are Gaussian (Box–Muller over a splitmix64 stream from the library's `seed`, with
//!   `libm`), so the same seed gives the same planes on every runtime.
//! - A table maps a hash to the ascending slots holding it (`BTreeMap`, fixed order).
//! - **Query-directed multi-probe**: besides its own bucket, a query visits the
//!   neighbouring buckets (up to 3 flipped bits) whose flipped hyperplanes pass closest
//!   to it, cheapest first; `2.5 × hash_size` buckets per table by default (30 for the
//!   default 12 bits), or `nprobe` from the query's params. A filter keeping a fraction
//!   `f` of the live slots multiplies that by `1/f` (capped), since each bucket then
//!   yields fewer allowed candidates. Measured on the dataset (cosine, default params):
//!   20k rows, 200 queries: recall@10 0.89 scoring 23% of the vectors (0.82 at 20
//!   probes and 17%, 0.73 at 13 and 12%); all 100k rows, 1000 queries: recall@10 0.94
//!   scoring 23%, 1.7× the QPS of flat, ~50 bytes per vector (16 slot ids).
//! - Candidates are deduplicated with a bitset, skipped unless allowed while being
//!   collected, and rescored exactly; fewer than `k` allowed candidates falls back to
//!   exact search over the allowed slots.
//! - Limitation: hyperplanes through the origin see only directions, so for `l2` (and
//!   `dot`) the buckets are right only when the vectors have similar norms (e.g.
//!   normalised embeddings); rescoring stays exact, recall is what suffers.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::rng::SplitMix64;
use super::{
    Allowed, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, TopK, VectorStore,
};
use crate::error::{Error, Result};
use crate::kernels;
use crate::model::LshParams;

/// Upper bound on the buckets probed per table and query.
pub const MAX_PROBES_PER_TABLE: usize = 512;

/// Random-hyperplane hash tables over the vectors of a [`VectorStore`]; see the module
/// docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LshIndex {
    params: LshParams,
    dimension: u32,
    /// `num_tables * hash_size` hyperplane normals of `dimension` floats, table-major.
    #[serde(with = "crate::codec::bulk")]
    planes: Vec<f32>,
    /// Per table, hash → ascending slots.
    tables: Vec<BTreeMap<u64, Vec<u32>>>,
    /// Slots indexed.
    len: u32,
}

impl LshIndex {
    /// Empty tables, with the hyperplanes drawn from `params.seed`.
    pub fn new(params: &LshParams, store: &VectorStore) -> Self {
        let dim = store.dimension();
        let count = params.num_tables as usize * params.hash_size as usize * dim;
        let mut rng = SplitMix64(params.seed);
        LshIndex {
            params: *params,
            dimension: dim as u32,
            planes: (0..count).map(|_| rng.gaussian()).collect(),
            tables: vec![BTreeMap::new(); params.num_tables as usize],
            len: 0,
        }
    }

    /// Number of slots indexed.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// `true` if nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Buckets probed per table without a filter or `nprobe`.
    fn default_probes(&self) -> usize {
        5 * self.bits() / 2
    }

    fn bits(&self) -> usize {
        self.params.hash_size.clamp(1, 64) as usize
    }

    fn fits(&self, store: &VectorStore) -> bool {
        let dim = self.dimension as usize;
        store.dimension() == dim
            && self.tables.len() == self.params.num_tables as usize
            && self.planes.len() == self.tables.len() * self.bits() * dim
    }

    /// The hash of `v` in `table`, and (if asked) each bit's projection.
    fn hash(&self, table: usize, v: &[f32], margins: Option<&mut Vec<f32>>) -> u64 {
        let dim = self.dimension as usize;
        let bits = self.bits();
        let start = table * bits * dim;
        let Some(planes) = self.planes.get(start..start + bits * dim) else {
            return 0;
        };
        let mut hash = 0u64;
        let mut projections = margins;
        for (b, plane) in planes.chunks_exact(dim.max(1)).enumerate() {
            let p = kernels::dot(plane, v);
            if p >= 0.0 {
                hash |= 1 << b;
            }
            if let Some(m) = projections.as_deref_mut() {
                m.push(p);
            }
        }
        hash
    }

    /// Like [`IndexRead::search`], also returning how many candidates were scored.
    pub fn search_counting(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> (Vec<Scored>, usize) {
        let k = options.k;
        if k == 0 || allowed.count() == 0 {
            return (Vec::new(), 0);
        }
        if !self.fits(store) || query.vector.len() != self.dimension as usize {
            return (
                super::exact_search(store, query, allowed, k),
                allowed.count(),
            );
        }
        // A selective filter leaves fewer allowed candidates per bucket: probe more.
        let base = options
            .nprobe
            .map_or_else(|| self.default_probes(), |p| p.max(1) as usize);
        let widened = base as f32 / allowed.fraction().max(1.0 / 64.0);
        let budget = (widened as usize).clamp(1, MAX_PROBES_PER_TABLE);
        let bits = self.bits();
        let mut seen = vec![0u64; store.len().div_ceil(64)];
        let mut top = TopK::new(k);
        let mut scored = 0usize;
        let mut margins = Vec::with_capacity(bits);
        let mut probes = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            margins.clear();
            let hash = self.hash(t, query.vector, Some(&mut margins));
            probe_masks(&margins, budget, &mut probes);
            for &(_, mask) in &probes {
                let Some(bucket) = table.get(&(hash ^ mask)) else {
                    continue;
                };
                for &slot in bucket {
                    let Some(word) = seen.get_mut(slot as usize / 64) else {
                        continue;
                    };
                    let bit = 1u64 << (slot % 64);
                    if *word & bit != 0 {
                        continue;
                    }
                    *word |= bit;
                    if allowed.contains(slot) {
                        scored += 1;
                        top.push(Scored {
                            score: store.score(query, slot),
                            slot,
                        });
                    }
                }
            }
        }
        if top.len() < k.min(allowed.count()) {
            return (
                super::exact_search(store, query, allowed, k),
                scored + allowed.count(),
            );
        }
        (top.into_sorted(), scored)
    }
}

/// The `budget` most promising buckets around the query's own: masks of up to 3 flipped
/// bits (2 beyond 16 bits), ranked by the sum of the squared projections of the query
/// on the flipped hyperplanes (a near plane is cheap to cross), ties by mask.
fn probe_masks(margins: &[f32], budget: usize, out: &mut Vec<(f32, u64)>) {
    out.clear();
    out.push((0.0, 0));
    let n = margins.len();
    let cost = |b: usize| margins[b] * margins[b];
    if budget > 1 {
        for i in 0..n {
            out.push((cost(i), 1 << i));
            for j in i + 1..n {
                out.push((cost(i) + cost(j), 1 << i | 1 << j));
                if n <= 16 {
                    for l in j + 1..n {
                        out.push((cost(i) + cost(j) + cost(l), 1 << i | 1 << j | 1 << l));
                    }
                }
            }
        }
    }
    out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    out.truncate(budget);
}

impl IndexRead for LshIndex {
    fn search(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> Vec<Scored> {
        self.search_counting(store, query, allowed, options).0
    }

    fn check(&self, slots: usize) -> Result<()> {
        let corrupt = |reason| {
            Err(Error::Corrupt {
                what: "snapshot",
                reason,
            })
        };
        let (tables, bits) = (self.params.num_tables as usize, self.params.hash_size);
        let planes = tables
            .checked_mul(bits as usize)
            .and_then(|n| n.checked_mul(self.dimension as usize));
        if self.tables.len() != tables
            || !(1..=64).contains(&bits)
            || planes != Some(self.planes.len())
        {
            return corrupt(format!(
                "lsh: {} tables of {bits} bits, {} plane floats",
                self.tables.len(),
                self.planes.len()
            ));
        }
        for table in &self.tables {
            let mut held = 0usize;
            for bucket in table.values() {
                if let Some(bad) = bucket.iter().find(|&&s| s as usize >= slots) {
                    return corrupt(format!("lsh bucket holds slot {bad} of {slots}"));
                }
                held += bucket.len();
            }
            if held != self.len as usize {
                return corrupt(format!("lsh table holds {held} slots, counts {}", self.len));
            }
        }
        Ok(())
    }
}

impl LshIndex {
    /// Checks, against the library's live slots, what [`IndexRead::check`] cannot:
    /// every table holds exactly the live slots, each once, in sorted buckets.
    /// Insert and remove keep every table in step on that assumption; a crafted
    /// snapshot whose tables disagree (the same counts, different slots, or a slot
    /// twice) would otherwise drift further with each write.
    pub fn check_live(&self, live: &super::bitset::Bitset, slots: usize) -> Result<()> {
        let corrupt = |reason| {
            Err(Error::Corrupt {
                what: "snapshot",
                reason,
            })
        };
        if self.len as usize != live.count() {
            return corrupt(format!(
                "lsh counts {} slots, {} are live",
                self.len,
                live.count()
            ));
        }
        for (t, table) in self.tables.iter().enumerate() {
            let mut seen = super::bitset::Bitset::with_capacity(slots);
            for bucket in table.values() {
                if bucket.windows(2).any(|w| w[0] >= w[1]) {
                    return corrupt(format!("lsh table {t} has an unsorted bucket"));
                }
                for &slot in bucket {
                    if !live.contains(slot) || seen.contains(slot) {
                        return corrupt(format!(
                            "lsh table {t} holds slot {slot} that is not live or is held twice"
                        ));
                    }
                    seen.insert(slot);
                }
            }
        }
        Ok(())
    }
}

impl IndexWrite for LshIndex {
    fn insert(&mut self, store: &VectorStore, slot: u32) {
        if !self.fits(store) || slot as usize >= store.len() {
            return;
        }
        let v = store.vector(slot);
        let hashes: Vec<u64> = (0..self.tables.len())
            .map(|t| self.hash(t, v, None))
            .collect();
        // All tables or none, so every table keeps `len` entries.
        let first = self.tables.first().zip(hashes.first());
        if first.is_some_and(|(t, h)| t.get(h).is_some_and(|b| b.binary_search(&slot).is_ok())) {
            return;
        }
        for (table, hash) in self.tables.iter_mut().zip(hashes) {
            let bucket = table.entry(hash).or_default();
            if let Err(at) = bucket.binary_search(&slot) {
                bucket.insert(at, slot);
            }
        }
        self.len += 1;
    }

    fn remove(&mut self, store: &VectorStore, slot: u32) {
        if !self.fits(store) || slot as usize >= store.len() {
            return;
        }
        let v = store.vector(slot);
        let hashes: Vec<u64> = (0..self.tables.len())
            .map(|t| self.hash(t, v, None))
            .collect();
        // The slot is normally in the bucket its vector hashes to; if the stored tables
        // disagree with the vector (a crafted snapshot), find it by scanning, so every
        // table keeps exactly `len` slots.
        let mut removed = false;
        for (table, hash) in self.tables.iter_mut().zip(hashes) {
            let holds = |b: &Vec<u32>| b.binary_search(&slot).is_ok();
            let key = if table.get(&hash).is_some_and(holds) {
                Some(hash)
            } else {
                table.iter().find(|(_, b)| holds(b)).map(|(h, _)| *h)
            };
            let Some(key) = key else { continue };
            if let Some(bucket) = table.get_mut(&key) {
                if let Ok(at) = bucket.binary_search(&slot) {
                    bucket.remove(at);
                    removed = true;
                }
                if bucket.is_empty() {
                    table.remove(&key);
                }
            }
        }
        if !removed {
            return;
        }
        self.len = self.len.saturating_sub(1);
    }
}
