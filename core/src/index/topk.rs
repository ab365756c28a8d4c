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

macro_rules! heap_order {
    ($(#[$doc:meta])* $name:ident, |$a:ident, $b:ident| $cmp:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name(pub(crate) Scored);

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> Ordering {
                let ($a, $b) = (&self.0, &other.0);
                $cmp
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }

        impl Eq for $name {}
    };
}

heap_order!(
    /// Orders a [`Scored`] so that a max-heap pops the best first.
    Best, |a, b| b.rank_cmp(a)
);
heap_order!(
    /// Orders a [`Scored`] so that a max-heap keeps the worst on top.
    Worst, |a, b| a.rank_cmp(b)
);

/// Keeps the best `k` of everything pushed.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
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
            self.heap.push(Worst(candidate));
            return true;
        }
        match self.heap.peek() {
            Some(worst) if candidate.rank_cmp(&worst.0) == Ordering::Less => {
                self.heap.pop();
                self.heap.push(Worst(candidate));
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
