//! Bounded best-k selection with a deterministic order.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// A slot and its score (higher is closer).
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub score: f32,
    pub slot: u32,
}

impl Scored {
    /// Total order, "less" meaning better: higher score first, then lower slot, so
    /// every runtime ranks ties the same way.
    #[inline]
    pub fn rank_cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.slot.cmp(&other.slot))
    }
}

/// Wrapper ordering a [`Scored`] by rank, so a max-heap keeps the worst on top.
#[derive(Debug, Clone, Copy)]
struct Ranked(Scored);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_cmp(&other.0)
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// Keeps the best `k` of everything pushed.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// Offers a candidate; returns whether it was kept.
    #[inline]
    pub fn push(&mut self, candidate: Scored) -> bool {
        if self.k == 0 {
            return false;
        }
        if self.heap.len() < self.k {
            self.heap.push(Ranked(candidate));
            return true;
        }
        match self.heap.peek() {
            Some(worst) if candidate.rank_cmp(&worst.0) == Ordering::Less => {
                self.heap.pop();
                self.heap.push(Ranked(candidate));
                true
            }
            _ => false,
        }
    }

    /// The worst kept candidate, once `k` are kept.
    pub fn threshold(&self) -> Option<Scored> {
        (self.heap.len() == self.k)
            .then(|| self.heap.peek().map(|r| r.0))
            .flatten()
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The kept candidates, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}
