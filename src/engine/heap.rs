//! A 4-ary min-heap of `u128` keys, the event queue's index.
//!
//! Why not `std::collections::BinaryHeap`: with four children per node the heap is
//! half as deep, and a node's children are adjacent (64 bytes of 16-byte keys), so a
//! pop from a heap of 10^5..10^6 keys touches about half as many cache lines. That
//! pays for the queue's extra slab access per event. Keys are plain integers
//! (`time << 64 | tie-break`), so each comparison is one `u128` compare.
//!
//! Pop uses the "hole to the bottom" method: the hole left by the root is moved
//! down along the smallest children to a leaf, and the last key is then sifted up
//! from there. The last key usually belongs near the bottom, so this saves the
//! comparison against it at every level.

/// Children per node.
const D: usize = 4;

/// A min-heap of `u128` keys. Duplicate keys are allowed (the queue never makes any).
#[derive(Clone, Debug, Default)]
pub(crate) struct QuadHeap {
    keys: Vec<u128>,
}

impl QuadHeap {
    /// An empty heap.
    pub(crate) fn new() -> Self {
        QuadHeap { keys: Vec::new() }
    }

    /// A heap of `keys`, in O(n).
    pub(crate) fn from_vec(keys: Vec<u128>) -> Self {
        let mut heap = QuadHeap { keys };
        heap.heapify();
        heap
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The smallest key.
    pub(crate) fn peek(&self) -> Option<u128> {
        self.keys.first().copied()
    }

    /// Adds `key`.
    pub(crate) fn push(&mut self, key: u128) {
        self.keys.push(key);
        self.sift_up(self.keys.len() - 1, key);
    }

    /// Removes and returns the smallest key.
    pub(crate) fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        let Some(&top) = self.keys.first() else {
            return Some(last);
        };
        let n = self.keys.len();
        // Move the hole at the root down along the smallest children to a leaf.
        let mut hole = 0;
        loop {
            let first = D * hole + 1;
            if first >= n {
                break;
            }
            let (best, key) = self.min_child(first, n);
            self.keys[hole] = key;
            hole = best;
        }
        self.sift_up(hole, last);
        Some(top)
    }

    /// Keeps only the keys for which `keep` is true, in O(n).
    pub(crate) fn retain(&mut self, keep: impl FnMut(&u128) -> bool) {
        self.keys.retain(keep);
        self.heapify();
    }

    /// Takes all keys out, in no particular order.
    pub(crate) fn into_vec(self) -> Vec<u128> {
        self.keys
    }

    /// Places `key` at `hole` or above it, moving larger parents down.
    fn sift_up(&mut self, mut hole: usize, key: u128) {
        while hole > 0 {
            let parent = (hole - 1) / D;
            if self.keys[parent] <= key {
                break;
            }
            self.keys[hole] = self.keys[parent];
            hole = parent;
        }
        self.keys[hole] = key;
    }

    /// Places the key at `hole` at or below it, moving smaller children up.
    fn sift_down(&mut self, mut hole: usize) {
        let n = self.keys.len();
        let key = self.keys[hole];
        loop {
            let first = D * hole + 1;
            if first >= n {
                break;
            }
            let (best, min) = self.min_child(first, n);
            if key <= min {
                break;
            }
            self.keys[hole] = min;
            hole = best;
        }
        self.keys[hole] = key;
    }

    /// The index and value of the smallest of the children starting at `first`
    /// (`first < n`).
    #[inline(always)]
    fn min_child(&self, first: usize, n: usize) -> (usize, u128) {
        if let Some(&[a, b, c, d]) = self.keys.get(first..first + D) {
            // A full group (all but at most one node): a tournament of independent
            // compares, which the compiler can turn into conditional moves. With
            // random keys a data-dependent branch here mispredicts half the time.
            let (i, x) = if b < a { (first + 1, b) } else { (first, a) };
            let (j, y) = if d < c { (first + 3, d) } else { (first + 2, c) };
            if y < x {
                (j, y)
            } else {
                (i, x)
            }
        } else {
            let mut best = (first, self.keys[first]);
            for c in first + 1..n {
                if self.keys[c] < best.1 {
                    best = (c, self.keys[c]);
                }
            }
            best
        }
    }

    /// Restores the heap property over the whole vector, bottom-up (Floyd).
    fn heapify(&mut self) {
        let n = self.keys.len();
        if n > 1 {
            for i in (0..=(n - 2) / D).rev() {
                self.sift_down(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Pushes, pops and retains against a sorted Vec.
        #[test]
        fn behaves_like_a_sorted_vec(ops in proptest::collection::vec((0u8..4, 0u128..50), 0..300)) {
            let mut heap = QuadHeap::new();
            let mut model: Vec<u128> = Vec::new();
            for (op, x) in ops {
                match op {
                    0 | 1 => {
                        heap.push(x);
                        model.push(x);
                    }
                    2 => {
                        model.sort_unstable();
                        let want = if model.is_empty() { None } else { Some(model.remove(0)) };
                        prop_assert_eq!(heap.pop(), want);
                    }
                    _ => {
                        // Drop one residue class: exercises heapify on a scrambled vector.
                        heap.retain(|k| k % 3 != x % 3);
                        model.retain(|k| k % 3 != x % 3);
                    }
                }
                prop_assert_eq!(heap.len(), model.len());
                prop_assert_eq!(heap.peek(), model.iter().min().copied());
            }
            let mut rebuilt = QuadHeap::from_vec(heap.into_vec());
            model.sort_unstable();
            for want in model {
                prop_assert_eq!(rebuilt.pop(), Some(want));
            }
            prop_assert_eq!(rebuilt.pop(), None);
        }
    }
}
