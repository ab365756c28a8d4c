//! `hnsw`: a hierarchical navigable small world graph (Malkov & Yashunin, 2016).
//!
//! Why: sub-linear approximate search with high recall, built incrementally, so every
//! insert of the log extends the graph in place and a snapshot holds the graph itself.
//!
//! Key choices:
//! - **Deterministic levels**: a slot's level is `floor(-ln(u) / ln(m))` with `u` drawn
//!   from `splitmix64(seed ^ slot)`, capped at [`MAX_LEVEL`]; no other randomness, and
//!   every comparison breaks score ties by slot ([`Scored::rank_cmp`]), so replaying the
//!   same inserts and removes builds the same bytes on every platform.
//! - **Heuristic neighbour selection** (algorithm 4 of the paper): a candidate is kept
//!   only if it is closer to the base node than to every neighbour already kept, both
//!   when linking a new node (`m` links per layer) and when pruning a neighbour list that
//!   overflows (`m` on upper layers, `2·m` on layer 0).
//! - **Flat storage**: layer 0 is one `Vec<u32>` with a fixed stride of `1 + 2·m` per
//!   node (a count, then the links); the upper layers of a node are one block of
//!   `level · (1 + m)` words in a second `Vec<u32>`, found through `upper_offset`.
//!   Compact, and postcard (de)serializes it as a few flat arrays.
//! - **Deletes without rebuilding**: `remove` marks the node deleted. It stays in the
//!   graph and keeps routing (also as the entry point); searches never return it since
//!   the engine's [`Allowed`] set excludes it, and later inserts prefer live nodes as
//!   neighbours and drop deleted links first when a list overflows.
//! - **Filtered search**: the layer-0 search walks through every node but only
//!   collects allowed ones, and widens `ef` by `1 / allowed.fraction()` (capped), so a
//!   selective filter still fills the result list without post-filtering.
//! - **SQ8 stores walk their codes**: when the library keeps SQ8 codes
//!   ([`quant::Sq8Query`]), both the inserts' candidate search and the queries score the
//!   one-byte codes (a quarter of the memory traffic, which is what a search waits on);
//!   an insert rescores its candidates with full vectors before choosing neighbours,
//!   and a query rescores its best `k × oversample` before returning, so returned
//!   scores are always exact.
//! - **Speed without changing results**: distances dominate and wait on memory, so a
//!   search first gathers a node's unvisited neighbours, touches their vectors (one read
//!   per cache line, so the loads overlap), scores them in one loop, and only then updates
//!   the heaps in the original order. Inserts reuse a generation-stamped visited array and
//!   their heaps and lists (`Scratch`, never serialized). Queries (`&self`, possibly on
//!   many threads) take their heaps, lists and visited set from a small pool (`Pool`)
//!   and give them back, so a warm query allocates only its result
//!   (`tests/search_allocations.rs`); the visited set is a small open-addressing table
//!   sized by `ef`, not a bitset over all nodes.

use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;
use serde::{Deserialize, Serialize};

use super::quant;
use super::rng::splitmix64;
use super::topk::{Best, Worst};
use super::{
    Allowed, Bitset, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, VectorStore,
};
use crate::error::{Error, Result};
use crate::kernels;
use crate::model::HnswParams;

/// Highest layer a node can reach.
pub const MAX_LEVEL: u8 = 16;

/// Upper bound of the widened `ef` of a filtered search (before the node-count cap).
pub const MAX_FILTERED_EF: usize = 2048;

/// An HNSW graph over the slots of a [`VectorStore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswIndex {
    params: HnswParams,
    /// Level of every node (node = slot); its length is the number of nodes.
    #[serde(with = "crate::codec::bulk")]
    levels: Vec<u8>,
    /// Layer 0: `1 + 2·m` words per node, a link count then the links.
    #[serde(with = "crate::codec::bulk")]
    links0: Vec<u32>,
    /// Start in `upper` of each node's block of `level` lists of `1 + m` words.
    #[serde(with = "crate::codec::bulk")]
    upper_offset: Vec<u32>,
    /// Layers 1.. of every node with a level above 0, node after node.
    #[serde(with = "crate::codec::bulk")]
    upper: Vec<u32>,
    /// Nodes removed: still routed through, never returned.
    deleted: Bitset,
    /// Entry point (a node of the top layer), `None` while the graph is empty.
    entry: Option<u32>,
    /// Level of the entry point.
    max_level: u8,
    /// Buffers reused by the inserts (not part of the graph).
    #[serde(skip)]
    scratch: Box<Scratch>,
    /// Buffers reused by the queries (not part of the graph).
    #[serde(skip)]
    queries: Pool,
}

/// Requests every cache line of `slot`'s vector ([`kernels::prefetch`]), so that the
/// lines of a whole batch of neighbours load together before their distances are
/// computed.
#[inline]
fn touch_vector(store: &VectorStore, slot: u32) {
    kernels::prefetch(store.vector(slot));
}

/// `a` ranks strictly before `b`.
#[inline]
fn better(a: &Scored, b: &Scored) -> bool {
    a.rank_cmp(b) == Ordering::Less
}

/// A set of visited nodes.
trait Visit {
    /// Marks `node`; returns whether it was new.
    fn visit(&mut self, node: u32) -> bool;
}

/// Visited set of the inserts: one generation stamp per node, reused across searches so
/// starting a search costs nothing.
#[derive(Default)]
struct Stamps {
    marks: Vec<u32>,
    now: u32,
}

impl Stamps {
    /// Starts a new search over `nodes` nodes.
    fn reset(&mut self, nodes: usize) {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        self.now = self.now.wrapping_add(1);
        if self.now == 0 {
            self.marks.fill(0);
            self.now = 1;
        }
    }
}

impl Visit for Stamps {
    #[inline]
    fn visit(&mut self, node: u32) -> bool {
        match self.marks.get_mut(node as usize) {
            Some(mark) if *mark != self.now => {
                *mark = self.now;
                true
            }
            _ => false,
        }
    }
}

/// Visited set of one query: open addressing with linear probing, sized by `ef` and not
/// by the graph, so a query never zeroes or touches memory of the size of the graph.
#[derive(Default)]
struct Probed {
    table: Vec<u32>,
    len: usize,
}

impl Probed {
    const EMPTY: u32 = u32::MAX;

    /// Empties the set for a search expecting about `expected` visits. A table more than
    /// four times too large (left by a widened filtered search) is replaced, so clearing
    /// stays O(expected).
    fn reset(&mut self, expected: usize) {
        let size = (expected * 2).next_power_of_two().max(64);
        if self.table.len() < size || self.table.len() > size * 4 {
            self.table = vec![Self::EMPTY; size];
        } else {
            self.table.fill(Self::EMPTY);
        }
        self.len = 0;
    }

    #[inline]
    fn home(node: u32, mask: usize) -> usize {
        (node.wrapping_mul(0x9e37_79b1) as usize) & mask
    }

    fn grow(&mut self) {
        let bigger = vec![Self::EMPTY; self.table.len() * 2];
        let old = core::mem::replace(&mut self.table, bigger);
        let mask = self.table.len() - 1;
        for node in old.into_iter().filter(|&n| n != Self::EMPTY) {
            let mut i = Self::home(node, mask);
            while self.table[i] != Self::EMPTY {
                i = (i + 1) & mask;
            }
            self.table[i] = node;
        }
    }
}

impl Visit for Probed {
    #[inline]
    fn visit(&mut self, node: u32) -> bool {
        if node == Self::EMPTY {
            return false;
        }
        if (self.len + 1) * 2 > self.table.len() {
            self.grow();
        }
        // The table length is a power of two, so `& mask` stays in bounds.
        let mask = self.table.len() - 1;
        let mut i = Self::home(node, mask);
        loop {
            let at = self.table[i];
            if at == node {
                return false;
            }
            if at == Self::EMPTY {
                self.table[i] = node;
                self.len += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Buffers of one search, reused by the inserts.
#[derive(Default)]
struct Heaps {
    candidates: BinaryHeap<Best>,
    results: BinaryHeap<Worst>,
    /// Unvisited neighbours of the node being expanded, and their scores.
    batch: Vec<u32>,
    scores: Vec<f32>,
}

/// Working memory of the inserts, kept between them; never serialized or compared.
#[derive(Default)]
struct Scratch {
    visited: Stamps,
    heaps: Heaps,
    /// Search results of the current layer and of the layer above (its entries).
    found: Vec<Scored>,
    entries: Vec<Scored>,
    /// Candidates and chosen neighbours of the inserted node.
    pool: Vec<Scored>,
    chosen: Vec<u32>,
    /// Used by `link`.
    links: Vec<u32>,
    scored: Vec<Scored>,
    kept: Vec<u32>,
}

/// Working memory of one query, kept in [`Pool`] for the next one.
#[derive(Default)]
struct QueryScratch {
    visited: Probed,
    heaps: Heaps,
    found: Vec<Scored>,
}

/// Scratch kept between queries. A query takes one (or makes one when the pool is empty,
/// or busy for the instant another thread pops or pushes) and gives it back, so a warm
/// query allocates nothing but its result. A lock held only for a pop or a push, tried
/// and never waited on: queries on many threads never block each other.
#[derive(Default)]
struct Pool(spin::Mutex<Vec<QueryScratch>>);

impl Pool {
    /// More scratch than this is dropped (a burst of parallel queries leaves no more).
    const MAX: usize = 64;

    fn take(&self) -> QueryScratch {
        self.0
            .try_lock()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    fn give(&self, scratch: QueryScratch) {
        if let Some(mut pool) = self.0.try_lock()
            && pool.len() < Self::MAX
        {
            pool.push(scratch);
        }
    }
}

/// Working memory kept beside the graph (`Scratch`, `Pool`): not part of the index's
/// value, so a clone starts empty, any two compare equal, and `Debug` shows the name.
macro_rules! transient {
    ($($name:ident),*) => {$(
        impl Clone for $name {
            fn clone(&self) -> Self {
                $name::default()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    )*};
}

transient!(Pool, Scratch);

impl HnswIndex {
    /// An empty graph with `params` (already validated by the library config).
    pub fn new(params: &HnswParams, _store: &VectorStore) -> Self {
        HnswIndex {
            params: *params,
            levels: Vec::new(),
            links0: Vec::new(),
            upper_offset: Vec::new(),
            upper: Vec::new(),
            deleted: Bitset::default(),
            entry: None,
            max_level: 0,
            scratch: Box::default(),
            queries: Pool::default(),
        }
    }

    /// Number of nodes (inserted slots, deleted ones included).
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// `true` before the first insert.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Links per node on upper layers.
    fn m(&self) -> usize {
        self.params.m.max(1) as usize
    }

    /// Maximum links of a node on `layer`.
    fn cap(&self, layer: usize) -> usize {
        if layer == 0 { 2 * self.m() } else { self.m() }
    }

    /// Words per list on `layer` (count + links).
    fn stride(&self, layer: usize) -> usize {
        1 + self.cap(layer)
    }

    /// The level drawn for `slot`.
    fn level_of(&self, slot: u32) -> u8 {
        let bits = splitmix64(self.params.seed ^ u64::from(slot)) >> 11;
        // u in (0, 1]: never ln(0).
        let u = (bits + 1) as f64 / (1u64 << 53) as f64;
        let m = self.m().max(2) as f64;
        let level = -libm::log(u) / libm::log(m);
        if level >= f64::from(MAX_LEVEL) {
            MAX_LEVEL
        } else {
            level as u8
        }
    }

    /// Word range of `node`'s list on `layer` (count first), if the node reaches it.
    fn list_range(&self, node: u32, layer: usize) -> Option<core::ops::Range<usize>> {
        let node = node as usize;
        let stride = self.stride(layer);
        let start = if layer == 0 {
            node.checked_mul(stride)?
        } else {
            if layer > usize::from(*self.levels.get(node)?) {
                return None;
            }
            (*self.upper_offset.get(node)? as usize).checked_add((layer - 1) * stride)?
        };
        Some(start..start.checked_add(stride)?)
    }

    /// The links of `node` on `layer` (empty if the node does not reach it).
    #[inline]
    fn neighbours(&self, node: u32, layer: usize) -> &[u32] {
        let words = if layer == 0 {
            &self.links0
        } else {
            &self.upper
        };
        self.list_range(node, layer)
            .and_then(|r| words.get(r))
            .and_then(|list| {
                let (count, links) = list.split_first()?;
                links.get(..*count as usize)
            })
            .unwrap_or(&[])
    }

    /// Replaces the links of `node` on `layer` (at most `cap(layer)` are kept).
    fn set_neighbours(&mut self, node: u32, layer: usize, links: &[u32]) {
        let cap = self.cap(layer);
        let Some(range) = self.list_range(node, layer) else {
            return;
        };
        let words = if layer == 0 {
            &mut self.links0
        } else {
            &mut self.upper
        };
        let Some(list) = words.get_mut(range) else {
            return;
        };
        let n = links.len().min(cap);
        list.fill(0);
        list[0] = n as u32;
        list[1..=n].copy_from_slice(&links[..n]);
    }

    /// Greedy walk on one layer towards the best-scoring node (search with `ef = 1`).
    fn greedy(
        &self,
        score: &impl Fn(u32) -> f32,
        touch: &impl Fn(u32),
        mut best: Scored,
        layer: usize,
        scores: &mut Vec<f32>,
    ) -> Scored {
        let limit = self.len() as u32;
        loop {
            let links = self.neighbours(best.slot, layer);
            // All scores first, then the comparisons: the distance loads overlap.
            for &n in links.iter().filter(|&&n| n < limit) {
                touch(n);
            }
            scores.clear();
            scores.extend(
                links
                    .iter()
                    .map(|&n| if n < limit { score(n) } else { f32::NAN }),
            );
            let mut moved = false;
            for (&n, &s) in links.iter().zip(scores.iter()) {
                if n >= limit {
                    continue;
                }
                let candidate = Scored { score: s, slot: n };
                if better(&candidate, &best) {
                    best = candidate;
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// Best-first search of one layer from `entries`, keeping the `ef` best nodes that
    /// `admit` accepts while walking through all of them. Writes them to `out`, best first.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        score: &impl Fn(u32) -> f32,
        admit: &impl Fn(u32) -> bool,
        touch: &impl Fn(u32),
        entries: &[Scored],
        ef: usize,
        layer: usize,
        visited: &mut impl Visit,
        heaps: &mut Heaps,
        out: &mut Vec<Scored>,
    ) {
        let limit = self.len() as u32;
        let Heaps {
            candidates,
            results,
            batch,
            scores,
        } = heaps;
        candidates.clear();
        results.clear();
        for &e in entries {
            if visited.visit(e.slot) {
                candidates.push(Best(e));
                if admit(e.slot) {
                    results.push(Worst(e));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        while let Some(Best(current)) = candidates.pop() {
            if results.len() >= ef {
                match results.peek() {
                    Some(Worst(worst)) if better(worst, &current) => break,
                    _ => {}
                }
            }
            // Visit marks do not depend on scores, so gather the new neighbours, score
            // them in one tight loop (their loads overlap), then update the heaps in the
            // same order as one neighbour at a time would.
            batch.clear();
            batch.extend(
                self.neighbours(current.slot, layer)
                    .iter()
                    .copied()
                    .filter(|&n| n < limit && visited.visit(n)),
            );
            for &n in batch.iter() {
                touch(n);
            }
            scores.clear();
            scores.extend(batch.iter().map(|&n| score(n)));
            for (&n, &s) in batch.iter().zip(scores.iter()) {
                let candidate = Scored { score: s, slot: n };
                let promising = results.len() < ef
                    || results
                        .peek()
                        .is_some_and(|Worst(worst)| better(&candidate, worst));
                if promising {
                    candidates.push(Best(candidate));
                    if admit(n) {
                        results.push(Worst(candidate));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        out.clear();
        out.extend(results.drain().map(|Worst(s)| s));
        out.sort_unstable_by(Scored::rank_cmp);
    }

    /// Algorithm 4: from `candidates` (scored against `base`, best first), keeps in `kept`
    /// each one that is closer to `base` than to every one kept before, up to `max`.
    fn select(store: &VectorStore, candidates: &[Scored], max: usize, kept: &mut Vec<u32>) {
        kept.clear();
        for c in candidates {
            if kept.len() >= max {
                break;
            }
            let diverse = kept
                .iter()
                .all(|&r| c.score > store.score_between(c.slot, r));
            if diverse {
                kept.push(c.slot);
            }
        }
    }

    /// Adds `new` to the links of `node` on `layer`, pruning with the heuristic when the
    /// list overflows (deleted links are dropped first).
    fn link(&mut self, store: &VectorStore, node: u32, layer: usize, new: u32, s: &mut Scratch) {
        let cap = self.cap(layer);
        let links = &mut s.links;
        links.clear();
        links.extend_from_slice(self.neighbours(node, layer));
        if links.contains(&new) {
            return;
        }
        links.push(new);
        if links.len() <= cap {
            self.set_neighbours(node, layer, links);
            return;
        }
        let deleted = &self.deleted;
        let any_live = links.iter().any(|&l| !deleted.contains(l));
        for &l in links.iter() {
            touch_vector(store, l);
        }
        s.scored.clear();
        s.scored.extend(
            links
                .iter()
                .copied()
                .filter(|&l| !any_live || !deleted.contains(l))
                .map(|slot| Scored {
                    score: store.score_between(node, slot),
                    slot,
                }),
        );
        // `rank_cmp` is total and entries equal under it are the same (slot, score), so
        // the unstable sort gives the stable one's order (and the npm package one sort
        // fewer: docs/npm.md).
        s.scored.sort_unstable_by(Scored::rank_cmp);
        Self::select(store, &s.scored, cap, &mut s.kept);
        self.set_neighbours(node, layer, &s.kept);
    }

    /// Appends an unlinked node of `level` for `slot` (which must be `self.len()`).
    fn push_node(&mut self, level: u8) {
        let offset = self.upper.len();
        self.levels.push(level);
        self.upper_offset.push(offset as u32);
        self.links0.resize(self.links0.len() + self.stride(0), 0);
        self.upper
            .resize(offset + usize::from(level) * self.stride(1), 0);
    }

    /// The search proper: greedy descent from `entry` through the upper layers, then a
    /// best-first search of layer 0 with `ef` widened for a filter; leaves its `ef` best
    /// allowed nodes by `score`, best first, in `scratch.found`.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        score: &impl Fn(u32) -> f32,
        touch: &impl Fn(u32),
        entry: u32,
        nodes: usize,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
        scratch: &mut QueryScratch,
    ) {
        let QueryScratch {
            visited,
            heaps,
            found,
        } = scratch;
        let mut best = Scored {
            score: score(entry),
            slot: entry,
        };
        for layer in (1..=usize::from(self.max_level)).rev() {
            best = self.greedy(score, touch, best, layer, &mut heaps.scores);
        }
        let ef = options.ef.map_or(self.params.ef_search, |ef| ef.max(1)) as usize;
        let mut ef = ef.max(options.k);
        let fraction = allowed.fraction();
        if fraction < 1.0 {
            let widened = libm::ceilf(ef as f32 / fraction.max(1e-6));
            let cap = MAX_FILTERED_EF.max(ef);
            ef = if widened >= cap as f32 {
                cap
            } else {
                widened as usize
            };
        }
        let ef = ef.min(nodes.max(options.k));
        let admit = |slot: u32| allowed.contains(slot);
        // Visits grow with `ef`, not with the graph; the set grows if needed.
        visited.reset(ef.saturating_mul(8).min(nodes));
        self.search_layer(score, &admit, touch, &[best], ef, 0, visited, heaps, found);
    }
}

/// Number of linked nodes (gaps not counted) below which [`HnswIndex::build`] inserts one
/// node at a time, exactly as [`IndexWrite::insert`] does: small libraries get the same
/// bytes as when built from the log, and batches only start once the graph can route
/// them.
pub const BUILD_SERIAL_BELOW: usize = 1024;

/// Largest batch of [`HnswIndex::build`]. A node is scored against every earlier node of
/// its batch, so the batch bounds that extra work (about half a batch of distances per
/// node, against a few thousand for the search itself at the default `ef_construction`).
/// Like [`BUILD_SERIAL_BELOW`], it decides the graph a rebuild makes: changing either
/// changes the bytes a log replays to (as changing `insert` would).
pub const BUILD_BATCH_MAX: usize = 1024;

/// Nodes of a batch a worker claims at a time.
#[cfg(feature = "std")]
const BUILD_CLAIM: usize = 8;

/// Size of the next batch of [`HnswIndex::build`] for a graph of `linked` nodes (gaps
/// not counted): an eighth of them, capped. A function of the graph alone, never of the
/// thread count.
fn build_batch(linked: usize) -> usize {
    (linked / 8).clamp(1, BUILD_BATCH_MAX)
}

/// The neighbours chosen for a node of a batch, per layer (layer 0 first).
type Plan = Vec<Vec<u32>>;

/// Working memory of one thread of [`HnswIndex::build`]'s first phase.
#[derive(Default)]
struct BuildScratch {
    search: Scratch,
    /// The best earlier nodes of the batch, scored against the node being planned.
    mates: Vec<Scored>,
    /// The earlier nodes of the batch that reach layer 1 or above, with their levels.
    upper: Vec<(Scored, u8)>,
}

impl HnswIndex {
    /// Builds the graph of `slots` (ascending; slots not given become deleted, unlinked
    /// gaps as with [`IndexWrite::insert`]) in batches, the search of each batch's nodes
    /// on `threads` threads.
    ///
    /// The bytes built do not depend on `threads`: batch boundaries depend only on the
    /// number of nodes linked so far ([`build_batch`]), and each batch runs in two
    /// phases.
    /// 1. Every node of the batch, independently (in parallel with `std`): greedy descent
    ///    and an `ef_construction` search of each layer it reaches on the graph as it was
    ///    before the batch (read-only), its candidates rescored with full vectors on an
    ///    SQ8 store as [`IndexWrite::insert`] does, merged with the earlier nodes of the
    ///    same batch that reach the layer (scored exactly, since the graph cannot find
    ///    them yet), the best `ef_construction` kept (ties by slot) and its neighbours
    ///    chosen with the same heuristic. This is a pure function of the node, the store
    ///    and the graph before the batch.
    /// 2. Serially, in slot order: the node is appended, its links set, each neighbour
    ///    linked back (pruning as `insert` does), and the entry point raised.
    ///
    /// The result differs from inserting the same slots one at a time (a node does not
    /// route through the earlier nodes of its batch, but compares with all of them); the
    /// recall is the same within noise (`tests/hnsw_build.rs`).
    pub fn build(params: &HnswParams, store: &VectorStore, slots: &[u32], threads: usize) -> Self {
        match Self::build_until(params, store, slots, threads, &|| false) {
            Some(index) => index,
            None => unreachable!("a build that is never stopped finishes"),
        }
    }

    /// [`HnswIndex::build`], given up (`None`) once `stop` answers `true`. `stop` is
    /// asked before every node of the serial start and of phase 2, and by each thread
    /// before every few nodes it plans in phase 1, so a build stops within a few
    /// nodes' work of being told to (a host enforcing a deadline on a build running
    /// outside its sandbox relies on this).
    pub fn build_until(
        params: &HnswParams,
        store: &VectorStore,
        slots: &[u32],
        threads: usize,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Option<Self> {
        let mut index = HnswIndex::new(params, store);
        let mut scratch: Vec<BuildScratch> = Vec::new();
        scratch.resize_with(threads.max(1), BuildScratch::default);
        let mut rest = slots;
        let mut batch: Vec<(u32, u8)> = Vec::new();
        // Nodes linked so far (gaps not counted, so that a sparse live set does not get
        // batches as large as the graph's live part).
        let mut linked = 0usize;
        while !rest.is_empty() {
            if stop() {
                return None;
            }
            if linked < BUILD_SERIAL_BELOW {
                let before = index.len();
                index.insert(store, rest[0]);
                rest = &rest[1..];
                linked += usize::from(index.len() > before);
                continue;
            }
            // The next nodes, skipped as `insert` skips them (out of order or absent).
            let size = build_batch(linked);
            let mut next = index.len();
            batch.clear();
            while batch.len() < size
                && let Some((&slot, tail)) = rest.split_first()
            {
                rest = tail;
                if (slot as usize) >= next && (slot as usize) < store.len() {
                    batch.push((slot, index.level_of(slot)));
                    next = slot as usize + 1;
                }
            }
            linked += batch.len();
            let plans = index.plan_batch(store, &batch, &mut scratch, stop)?;
            let mut s = core::mem::take(&mut *index.scratch);
            for (&(slot, level), plan) in batch.iter().zip(&plans) {
                if stop() {
                    return None;
                }
                index.apply_plan(store, slot, level, plan, &mut s);
            }
            *index.scratch = s;
        }
        Some(index)
    }

    /// Phase 1 of a batch: the plan of every node, on as many threads as `scratch` holds
    /// (with `std`), in batch order whatever the threads; `None` once `stop` answers
    /// `true`.
    fn plan_batch(
        &self,
        store: &VectorStore,
        batch: &[(u32, u8)],
        scratch: &mut [BuildScratch],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Option<Vec<Plan>> {
        #[cfg(feature = "std")]
        if scratch.len() > 1 && batch.len() > BUILD_CLAIM {
            extern crate std;
            use core::sync::atomic::{AtomicUsize, Ordering as Atomic};
            let claimed = AtomicUsize::new(0);
            let mut plans: Vec<Plan> = vec![Vec::new(); batch.len()];
            let done: Vec<Vec<(usize, Plan)>> = std::thread::scope(|scope| {
                let workers: Vec<_> = scratch
                    .iter_mut()
                    .map(|s| {
                        let claimed = &claimed;
                        scope.spawn(move || {
                            let mut out = Vec::new();
                            loop {
                                let start = claimed.fetch_add(BUILD_CLAIM, Atomic::Relaxed);
                                if start >= batch.len() || stop() {
                                    break out;
                                }
                                for i in start..(start + BUILD_CLAIM).min(batch.len()) {
                                    out.push((i, self.plan(store, batch, i, s)));
                                }
                            }
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            // A worker that saw `stop` left its claims unplanned.
            if done.iter().map(Vec::len).sum::<usize>() < batch.len() {
                return None;
            }
            for (i, plan) in done.into_iter().flatten() {
                plans[i] = plan;
            }
            return Some(plans);
        }
        let s = &mut scratch[0];
        (0..batch.len())
            .map(|i| (!stop()).then(|| self.plan(store, batch, i, s)))
            .collect()
    }

    /// The plan of node `i` of `batch` (see [`HnswIndex::build`]); reads the graph only.
    fn plan(
        &self,
        store: &VectorStore,
        batch: &[(u32, u8)],
        i: usize,
        b: &mut BuildScratch,
    ) -> Plan {
        let (slot, level) = batch[i];
        let query = store.query(store.vector(slot));
        let ef = (self.params.ef_construction as usize).max(self.m());
        // The earlier nodes of the batch, scored exactly: the best `ef` of them for layer
        // 0 (more could not be kept below), and all that reach layer 1 or above (a few),
        // best first.
        let BuildScratch {
            search,
            mates,
            upper,
        } = b;
        mates.clear();
        upper.clear();
        for &(mate, mate_level) in &batch[..i] {
            let scored = Scored {
                score: store.score(&query, mate),
                slot: mate,
            };
            mates.push(scored);
            if mate_level > 0 {
                upper.push((scored, mate_level));
            }
        }
        if mates.len() > ef {
            mates.select_nth_unstable_by(ef - 1, Scored::rank_cmp);
            mates.truncate(ef);
        }
        upper.sort_unstable_by(|x, y| x.0.rank_cmp(&y.0));
        self.plan_node(store, &query, slot, level, mates, upper, search)
    }

    /// The neighbours of the new node `slot` of `level` on each layer it reaches: found
    /// by searching the graph from its entry point and merged with `mates` (layer 0) and
    /// `upper` (the layers they reach), earlier nodes of a batch that the graph cannot
    /// find yet. With none, this is one node's insert ([`IndexWrite::insert`]).
    #[allow(clippy::too_many_arguments)]
    fn plan_node(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        slot: u32,
        level: u8,
        mates: &[Scored],
        upper: &[(Scored, u8)],
        s: &mut Scratch,
    ) -> Plan {
        // With SQ8 codes the candidate search walks the codes (as queries do) and only
        // the candidates kept for linking are rescored with full vectors.
        match quant::Sq8Query::new(store, query) {
            Some(approx) => self.plan_with(
                store,
                query,
                (slot, level),
                (mates, upper),
                &|other| approx.score(other),
                &|other| kernels::prefetch_bytes(approx.row(other)),
                true,
                s,
            ),
            None => self.plan_with(
                store,
                query,
                (slot, level),
                (mates, upper),
                &|other| store.score(query, other),
                &|other| touch_vector(store, other),
                false,
                s,
            ),
        }
    }

    /// [`HnswIndex::plan_node`] with the search's `score`; with `rescore`, the candidates
    /// found are scored again with full vectors (`score` walks SQ8 codes).
    #[allow(clippy::too_many_arguments)]
    fn plan_with(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        (slot, level): (u32, u8),
        (mates, upper): (&[Scored], &[(Scored, u8)]),
        score: &impl Fn(u32) -> f32,
        touch: &impl Fn(u32),
        rescore: bool,
        s: &mut Scratch,
    ) -> Plan {
        let level_us = usize::from(level);
        let ef = (self.params.ef_construction as usize).max(self.m());
        let mut plan: Plan = vec![Vec::new(); level_us + 1];
        let top = usize::from(self.max_level);
        let Some(entry) = self.entry else {
            return plan;
        };
        let mut best = Scored {
            score: score(entry),
            slot: entry,
        };
        for layer in (level_us + 1..=top).rev() {
            best = self.greedy(score, touch, best, layer, &mut s.heaps.scores);
        }
        s.entries.clear();
        s.entries.push(best);
        let everything = |_: u32| true;
        for layer in (0..=level_us).rev() {
            s.pool.clear();
            if layer <= top {
                s.visited.reset(self.len());
                self.search_layer(
                    score,
                    &everything,
                    touch,
                    &s.entries,
                    ef,
                    layer,
                    &mut s.visited,
                    &mut s.heaps,
                    &mut s.found,
                );
                s.pool.extend_from_slice(&s.found);
                if rescore {
                    for p in &s.pool {
                        touch_vector(store, p.slot);
                    }
                    for p in &mut s.pool {
                        p.score = store.score(query, p.slot);
                    }
                }
                core::mem::swap(&mut s.entries, &mut s.found);
            }
            // The best `ef` earlier nodes of the batch on this layer.
            if layer == 0 {
                s.pool.extend_from_slice(mates);
            } else {
                s.pool.extend(
                    upper
                        .iter()
                        .filter(|&&(_, l)| usize::from(l) >= layer)
                        .map(|&(m, _)| m)
                        .take(ef),
                );
            }
            s.pool.sort_unstable_by(Scored::rank_cmp);
            s.pool.truncate(ef);
            let deleted = &self.deleted;
            if s.pool.iter().any(|p| !deleted.contains(p.slot)) {
                s.pool.retain(|p| !deleted.contains(p.slot));
            }
            Self::select(store, &s.pool, self.m(), &mut s.chosen);
            plan[layer].extend_from_slice(&s.chosen);
        }
        debug_assert!(plan.iter().flatten().all(|&n| n != slot));
        plan
    }

    /// Phase 2 for one node: appends it (after any gap), sets its links, links its
    /// neighbours back, and makes it the entry point if it is the highest node.
    fn apply_plan(
        &mut self,
        store: &VectorStore,
        slot: u32,
        level: u8,
        plan: &[Vec<u32>],
        s: &mut Scratch,
    ) {
        while self.len() < slot as usize {
            let gap = self.len() as u32;
            self.push_node(0);
            self.deleted.insert(gap);
        }
        self.push_node(level);
        for (layer, chosen) in plan.iter().enumerate() {
            self.set_neighbours(slot, layer, chosen);
            for &n in chosen {
                self.link(store, n, layer, slot, s);
            }
        }
        if level > self.max_level || self.entry.is_none() {
            self.entry = Some(slot);
            self.max_level = level;
        }
    }
}

impl IndexRead for HnswIndex {
    fn search(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> Vec<Scored> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let nodes = self.len().min(store.len());
        if options.k == 0 || (entry as usize) >= nodes || allowed.count() == 0 {
            return Vec::new();
        }
        // A store with SQ8 codes is walked on its codes (a quarter of the bytes per
        // visit), and the best `k × oversample` found are rescored with full vectors.
        if let Some(approx) = quant::Sq8Query::new(store, query) {
            let score = |slot: u32| approx.score(slot);
            let touch = |slot: u32| kernels::prefetch_bytes(approx.row(slot));
            let mut scratch = self.queries.take();
            self.walk(&score, &touch, entry, nodes, allowed, options, &mut scratch);
            let rescored = options
                .k
                .saturating_mul(store.codes().oversample() as usize)
                .max(options.k);
            let found = &scratch.found[..scratch.found.len().min(rescored)];
            let best = quant::rescore(store, query, found, options.k);
            self.queries.give(scratch);
            return best;
        }
        let score = |slot: u32| store.score(query, slot);
        let touch = |slot: u32| touch_vector(store, slot);
        let mut scratch = self.queries.take();
        self.walk(&score, &touch, entry, nodes, allowed, options, &mut scratch);
        let best = scratch.found[..scratch.found.len().min(options.k)].to_vec();
        self.queries.give(scratch);
        best
    }

    fn check(&self, slots: usize) -> Result<()> {
        let corrupt = |reason: alloc::string::String| {
            Err(Error::Corrupt {
                what: "snapshot",
                reason,
            })
        };
        let m = self.params.m as usize;
        if !(1..=4096).contains(&m) {
            return corrupt(format!("hnsw m = {m}"));
        }
        let n = self.len();
        if n > slots || n > u32::MAX as usize {
            return corrupt(format!("hnsw has {n} nodes for {slots} slots"));
        }
        if self.upper_offset.len() != n || Some(self.links0.len()) != n.checked_mul(self.stride(0))
        {
            return corrupt(format!("hnsw layer 0 does not fit {n} nodes"));
        }
        let mut offset = 0usize;
        for (node, &level) in self.levels.iter().enumerate() {
            if level > MAX_LEVEL {
                return corrupt(format!("hnsw node {node} has level {level}"));
            }
            if self.upper_offset[node] as usize != offset {
                return corrupt(format!("hnsw node {node} has a misplaced upper block"));
            }
            offset = match offset.checked_add(usize::from(level) * self.stride(1)) {
                Some(end) if end <= u32::MAX as usize => end,
                _ => return corrupt(format!("hnsw upper layers overflow at node {node}")),
            };
        }
        if offset != self.upper.len() {
            return corrupt(format!("hnsw upper layers hold {} words", self.upper.len()));
        }
        match self.entry {
            None if n == 0 && self.max_level == 0 => {}
            Some(e) if (e as usize) < n && self.levels[e as usize] == self.max_level => {}
            _ => return corrupt(format!("hnsw entry point {:?}", self.entry)),
        }
        for node in 0..n as u32 {
            let level = usize::from(self.levels[node as usize]);
            for layer in 0..=level {
                let words = if layer == 0 {
                    &self.links0
                } else {
                    &self.upper
                };
                let Some(count) = self
                    .list_range(node, layer)
                    .and_then(|r| words.get(r.start))
                else {
                    return corrupt(format!("hnsw node {node} misses layer {layer}"));
                };
                if *count as usize > self.cap(layer) {
                    return corrupt(format!("hnsw node {node} has {count} links"));
                }
                for &link in self.neighbours(node, layer) {
                    if link as usize >= n || usize::from(self.levels[link as usize]) < layer {
                        return corrupt(format!(
                            "hnsw node {node} links to {link} on layer {layer}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl IndexWrite for HnswIndex {
    /// Links the vector of `slot` into the graph. Slots arrive once each, in increasing
    /// order; a gap (slots never given to the index) becomes deleted, unlinked nodes.
    fn insert(&mut self, store: &VectorStore, slot: u32) {
        if (slot as usize) < self.len() || slot as usize >= store.len() {
            return;
        }
        let level = self.level_of(slot);
        let query = store.query(store.vector(slot));
        let mut s = core::mem::take(&mut *self.scratch);
        let plan = self.plan_node(store, &query, slot, level, &[], &[], &mut s);
        self.apply_plan(store, slot, level, &plan, &mut s);
        *self.scratch = s;
    }

    /// Marks `slot` deleted; it keeps routing searches.
    fn remove(&mut self, _store: &VectorStore, slot: u32) {
        if (slot as usize) < self.len() {
            self.deleted.insert(slot);
        }
    }
}
