//! `kdtree`: exact k-nearest-neighbour search by branch and bound over a k-d tree.
//!
//! Why it exists: in low dimension (roughly 2–8, or more when the data has a low
//! intrinsic dimension: coordinates, colour spaces, small learned features) a k-d tree
//! answers *exactly* while scoring a small part of the data. Measured with
//! `benchmark_kdtree` (50k uniform points, k = 10, QPS against flat in the same run):
//! dim 3: 160× for l2 (0.26% of points scored), 185× for dot, 24× for cosine; dim 8:
//! 12× for l2 (4% scored), 9× for dot, 3× for cosine. It does not help with text
//! embeddings, nor with uniform data at dim 16 (0.3×, 65% scored): at 384 dimensions a
//! tree of depth ~12 splits only 12 of the 384 axes, the boxes bound nothing, and a
//! search scores every vector in scattered order plus the cost of the boxes (20k-row
//! prefix of the 384-d dataset: 0.22× the QPS of flat, 100% scored, and ~320 bytes of
//! boxes per vector). Use `hnsw` or `ivf` for embeddings.
//!
//! Key choices:
//! - **Bounding boxes, one per node**, in the metric's coordinates (the raw vector for
//!   `l2` and `dot`, the unit vector `x / |x|` for `cosine`). A box gives an exact upper
//!   bound of the score of anything inside it for every metric: the nearest point of the
//!   box for `l2`, `Σ max(q·lo, q·hi)` per dimension for `dot` and `cosine`. The bound
//!   is computed in `f64` and widened by the worst rounding of the `f32` kernels, so
//!   pruning never drops a vector whose computed score could enter the top k: results
//!   equal [`super::exact_search`] bit for bit (ids, scores and order).
//! - **Best-first** traversal with a heap keyed by bound; it stops when the best bound
//!   left is below the k-th score. Disallowed slots are skipped while scanning leaves.
//! - **Incremental and deterministic**: an insert walks to its leaf (widening the boxes
//!   on the way); a leaf above `leaf_size` splits on the dimension of largest spread at
//!   the median. The whole tree is rebuilt (median splits, iteratively, no recursion)
//!   whenever the changes since the last rebuild reach the size it had then, or when an
//!   insert lands too deep (adversarial insertion order). All of this depends only on
//!   the sequence of inserts and removes, so replay gives the same tree everywhere.
//! - A remove walks to the slot's leaf and drops it; boxes never shrink (they stay valid
//!   upper bounds) until the next rebuild.

use alloc::collections::BinaryHeap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;
use serde::{Deserialize, Serialize};

use super::{
    Allowed, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, TopK, VectorStore,
};
use crate::error::{Error, Result};
use crate::kernels;
use crate::model::{KdTreeParams, Metric};

/// A node of the tree, in an arena where children always come after their parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    /// Slots, ascending.
    Leaf(Vec<u32>),
    /// Points with `coordinate[dim] < value` are under `left`, the others under `right`.
    Split {
        dim: u32,
        value: f32,
        left: u32,
        right: u32,
    },
}

/// A k-d tree over the vectors of a [`VectorStore`]; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KdTreeIndex {
    params: KdTreeParams,
    dimension: u32,
    metric: Metric,
    /// Node 0 is the root (when there is one).
    nodes: Vec<Node>,
    /// Per node, `dimension` lower bounds then `dimension` upper bounds.
    #[serde(with = "crate::codec::bulk")]
    bounds: Vec<f32>,
    /// Slots in the leaves.
    len: u32,
    /// `len` at the last full rebuild.
    rebuilt_len: u32,
    /// Inserts and removes since the last full rebuild.
    changes: u32,
}

/// A node waiting in the best-first queue; the heap pops the highest bound first, ties
/// by lower node.
#[derive(Debug, Clone, Copy)]
struct Pending {
    bound: f32,
    node: u32,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bound
            .total_cmp(&other.bound)
            .then(other.node.cmp(&self.node))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

/// The coordinates the tree works in: the vector itself, or its unit vector for cosine.
fn point<'a>(metric: Metric, row: &'a [f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
    if metric != Metric::Cosine {
        return row;
    }
    let norm = kernels::norm(row);
    if !(norm > 0.0 && norm.is_finite()) {
        return row;
    }
    buf.clear();
    buf.extend(row.iter().map(|x| x / norm));
    buf
}

/// The smallest `f32` not below `x`.
fn round_up(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) < x { y.next_up() } else { y }
}

impl KdTreeIndex {
    /// An empty tree for vectors of `store`'s dimension and metric.
    pub fn new(params: &KdTreeParams, store: &VectorStore) -> Self {
        KdTreeIndex {
            params: *params,
            dimension: store.dimension() as u32,
            metric: store.metric(),
            nodes: Vec::new(),
            bounds: Vec::new(),
            len: 0,
            rebuilt_len: 0,
            changes: 0,
        }
    }

    /// Number of slots in the tree.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// `true` if the tree holds no slot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn fits(&self, store: &VectorStore) -> bool {
        store.dimension() == self.dimension as usize && store.metric() == self.metric
    }

    fn leaf_size(&self) -> usize {
        self.params.leaf_size.max(1) as usize
    }

    /// Like [`IndexRead::search`], also returning how many vectors were scored.
    pub fn search_counting(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> (Vec<Scored>, usize) {
        if options.k == 0 || allowed.count() == 0 {
            return (Vec::new(), 0);
        }
        let dim = self.dimension as usize;
        if !self.fits(store) || query.vector.len() != dim {
            return (
                super::exact_search(store, query, allowed, options.k),
                allowed.count(),
            );
        }
        let mut buf = Vec::new();
        let q: &[f32] = if self.metric == Metric::Cosine && query.norm > 0.0 {
            buf.extend(query.vector.iter().map(|x| x / query.norm));
            &buf
        } else {
            query.vector
        };
        // Worst relative rounding of the f32 kernels (sums of `dim` terms, norms,
        // divisions) against the f64 bound, with a wide margin.
        let rel = 4.0 * (dim as f64 + 64.0) * f64::from(f32::EPSILON);
        let mut top = TopK::new(options.k);
        let mut heap = BinaryHeap::new();
        if !self.nodes.is_empty() {
            heap.push(Pending {
                bound: self.bound(0, q, rel),
                node: 0,
            });
        }
        let mut scored = 0usize;
        while let Some(next) = heap.pop() {
            if top.threshold().is_some_and(|t| next.bound < t.score) {
                break;
            }
            match self.nodes.get(next.node as usize) {
                Some(Node::Leaf(slots)) => {
                    for &slot in slots {
                        if allowed.contains(slot) && (slot as usize) < store.len() {
                            scored += 1;
                            top.push(Scored {
                                score: store.score(query, slot),
                                slot,
                            });
                        }
                    }
                }
                Some(Node::Split { left, right, .. }) => {
                    for child in [*left, *right] {
                        let bound = self.bound(child as usize, q, rel);
                        if top.threshold().is_none_or(|t| bound >= t.score) {
                            heap.push(Pending { bound, node: child });
                        }
                    }
                }
                None => {}
            }
        }
        (top.into_sorted(), scored)
    }

    /// An upper bound of the score of any point inside `node`'s box.
    fn bound(&self, node: usize, q: &[f32], rel: f64) -> f32 {
        let dim = self.dimension as usize;
        let Some(b) = self.bounds.get(node * 2 * dim..(node + 1) * 2 * dim) else {
            return f32::INFINITY;
        };
        let (lo, hi) = b.split_at(dim);
        if self.metric == Metric::L2 {
            let mut sum = 0.0f64;
            for ((&x, &l), &h) in q.iter().zip(lo).zip(hi) {
                let (x, l, h) = (f64::from(x), f64::from(l), f64::from(h));
                let gap = if x < l {
                    l - x
                } else if x > h {
                    x - h
                } else {
                    0.0
                };
                sum += gap * gap;
            }
            round_up(-libm::sqrt((sum * (1.0 - rel)).max(0.0)))
        } else {
            let (mut sum, mut scale) = (0.0f64, 0.0f64);
            for ((&x, &l), &h) in q.iter().zip(lo).zip(hi) {
                let (a, b) = (f64::from(x) * f64::from(l), f64::from(x) * f64::from(h));
                sum += a.max(b);
                scale += a.abs().max(b.abs());
            }
            round_up(sum + rel * scale + f64::from(f32::MIN_POSITIVE))
        }
    }

    /// Sets `node`'s box to the bounding box of `slots` (which must be non-empty).
    fn set_box(&mut self, store: &VectorStore, node: usize, slots: &[u32]) {
        let dim = self.dimension as usize;
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        let mut buf = Vec::new();
        for &slot in slots {
            let p = point(self.metric, store.vector(slot), &mut buf);
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(p) {
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        if let Some(b) = self.bounds.get_mut(node * 2 * dim..(node + 1) * 2 * dim) {
            b[..dim].copy_from_slice(&lo);
            b[dim..].copy_from_slice(&hi);
        }
    }

    /// Builds the subtree rooted at `root` (an existing node) over `slots`: median splits
    /// on the dimension of largest spread until leaves hold at most `leaf_size` slots.
    fn build(&mut self, store: &VectorStore, root: usize, slots: Vec<u32>) {
        let dim = self.dimension as usize;
        let leaf_size = self.leaf_size();
        let mut tasks = vec![(root, slots)];
        let mut buf = Vec::new();
        while let Some((node, mut slots)) = tasks.pop() {
            if slots.is_empty() {
                continue;
            }
            self.set_box(store, node, &slots);
            let b = &self.bounds[node * 2 * dim..(node + 1) * 2 * dim];
            let (axis, spread) = (0..dim).fold((0, 0.0f32), |best, d| {
                let spread = b[dim + d] - b[d];
                if spread > best.1 { (d, spread) } else { best }
            });
            if slots.len() <= leaf_size || spread.partial_cmp(&0.0) != Some(Ordering::Greater) {
                slots.sort_unstable();
                self.nodes[node] = Node::Leaf(slots);
                continue;
            }
            let mut keys: Vec<(f32, u32)> = slots
                .iter()
                .map(|&s| (point(self.metric, store.vector(s), &mut buf)[axis], s))
                .collect();
            keys.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut value = keys[keys.len() / 2].0;
            if keys[0].0 >= value {
                // The lower half is all equal to the median: split just above it.
                value = keys
                    .iter()
                    .map(|k| k.0)
                    .find(|&x| x > value)
                    .unwrap_or(value);
            }
            let cut = keys.partition_point(|k| k.0 < value);
            if cut == 0 || cut == keys.len() {
                slots.sort_unstable();
                self.nodes[node] = Node::Leaf(slots);
                continue;
            }
            let left = self.nodes.len();
            let right = left + 1;
            self.nodes.push(Node::Leaf(Vec::new()));
            self.nodes.push(Node::Leaf(Vec::new()));
            self.bounds.resize(self.nodes.len() * 2 * dim, 0.0);
            self.nodes[node] = Node::Split {
                dim: axis as u32,
                value,
                left: left as u32,
                right: right as u32,
            };
            let right_slots = keys[cut..].iter().map(|k| k.1).collect();
            let left_slots = keys[..cut].iter().map(|k| k.1).collect();
            tasks.push((right, right_slots));
            tasks.push((left, left_slots));
        }
    }

    /// Rebuilds the whole tree from the slots it holds.
    fn rebuild(&mut self, store: &VectorStore) {
        let mut slots: Vec<u32> = Vec::with_capacity(self.len as usize);
        for node in &self.nodes {
            if let Node::Leaf(s) = node {
                slots.extend_from_slice(s);
            }
        }
        slots.sort_unstable();
        self.nodes.clear();
        self.bounds.clear();
        self.len = slots.len() as u32;
        self.rebuilt_len = self.len;
        self.changes = 0;
        if slots.is_empty() {
            return;
        }
        self.nodes.push(Node::Leaf(Vec::new()));
        self.bounds.resize(2 * self.dimension as usize, 0.0);
        self.build(store, 0, slots);
    }

    /// The leaf `p` falls in, and its depth; widens the boxes on the way if asked.
    fn descend(&mut self, p: &[f32], widen: bool) -> (usize, u32) {
        let dim = self.dimension as usize;
        let (mut node, mut depth) = (0usize, 0u32);
        loop {
            if widen && let Some(b) = self.bounds.get_mut(node * 2 * dim..(node + 1) * 2 * dim) {
                let (lo, hi) = b.split_at_mut(dim);
                for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(p) {
                    *l = l.min(x);
                    *h = h.max(x);
                }
            }
            match self.nodes.get(node) {
                Some(Node::Split {
                    dim: axis,
                    value,
                    left,
                    right,
                }) => {
                    let x = p.get(*axis as usize).copied().unwrap_or(0.0);
                    node = if x < *value { *left } else { *right } as usize;
                    depth += 1;
                }
                _ => return (node, depth),
            }
        }
    }
}

impl IndexRead for KdTreeIndex {
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
        let dim = self.dimension as usize;
        if self.nodes.len().checked_mul(2 * dim) != Some(self.bounds.len())
            || (dim == 0 && !self.nodes.is_empty())
            || self.nodes.len() > u32::MAX as usize
        {
            return corrupt(format!(
                "kd-tree: {} nodes but {} bounds",
                self.nodes.len(),
                self.bounds.len()
            ));
        }
        let mut parents = vec![0u8; self.nodes.len()];
        let mut held = 0usize;
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Leaf(s) => {
                    if let Some(bad) = s.iter().find(|&&slot| slot as usize >= slots) {
                        return corrupt(format!("kd-tree leaf {i} holds slot {bad} of {slots}"));
                    }
                    held += s.len();
                }
                Node::Split {
                    dim: axis,
                    left,
                    right,
                    ..
                } => {
                    let children = [*left as usize, *right as usize];
                    if *axis as usize >= dim
                        || children.iter().any(|&c| c <= i || c >= self.nodes.len())
                        || left == right
                    {
                        return corrupt(format!("kd-tree node {i} has bad children or axis"));
                    }
                    for c in children {
                        parents[c] = parents[c].saturating_add(1);
                    }
                }
            }
        }
        if parents
            .iter()
            .enumerate()
            .any(|(i, &p)| p != u8::from(i > 0))
        {
            return corrupt("kd-tree nodes do not form a tree".into());
        }
        if held != self.len as usize {
            return corrupt(format!("kd-tree holds {held} slots, counts {}", self.len));
        }
        Ok(())
    }
}

impl IndexWrite for KdTreeIndex {
    fn insert(&mut self, store: &VectorStore, slot: u32) {
        if !self.fits(store) || slot as usize >= store.len() {
            return;
        }
        let mut buf = Vec::new();
        let p = point(self.metric, store.vector(slot), &mut buf);
        if self.nodes.is_empty() {
            self.nodes.push(Node::Leaf(vec![slot]));
            self.bounds.extend_from_slice(p);
            self.bounds.extend_from_slice(p);
            self.len = 1;
            self.changes = self.changes.saturating_add(1);
            return;
        }
        let (leaf, depth) = self.descend(p, true);
        let Some(Node::Leaf(slots)) = self.nodes.get_mut(leaf) else {
            return;
        };
        let Err(at) = slots.binary_search(&slot) else {
            return;
        };
        slots.insert(at, slot);
        let full = slots.len() > self.leaf_size();
        self.len += 1;
        self.changes = self.changes.saturating_add(1);
        // Rebuild when the tree doubled (or lost half) since the last rebuild, or when an
        // insert lands far deeper than a balanced tree would put it.
        let ideal = 32 - (self.len / self.params.leaf_size.max(1) + 1).leading_zeros();
        if self.changes >= self.rebuilt_len.max(4 * self.params.leaf_size)
            || (depth > 2 * ideal + 8 && self.changes >= self.len / 8)
        {
            self.rebuild(store);
        } else if full && let Some(Node::Leaf(slots)) = self.nodes.get_mut(leaf) {
            let slots = core::mem::take(slots);
            self.build(store, leaf, slots);
        }
    }

    fn remove(&mut self, store: &VectorStore, slot: u32) {
        if !self.fits(store) || slot as usize >= store.len() || self.nodes.is_empty() {
            return;
        }
        let mut buf = Vec::new();
        let p = point(self.metric, store.vector(slot), &mut buf);
        let (leaf, _) = self.descend(p, false);
        let Some(Node::Leaf(slots)) = self.nodes.get_mut(leaf) else {
            return;
        };
        let Ok(at) = slots.binary_search(&slot) else {
            return;
        };
        slots.remove(at);
        self.len = self.len.saturating_sub(1);
        self.changes = self.changes.saturating_add(1);
        if self.changes >= self.rebuilt_len.max(4 * self.params.leaf_size) {
            self.rebuild(store);
        }
    }
}
