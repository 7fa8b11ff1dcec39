//! The event queue: earliest time first, ties in scheduling order, with cancellation.
//!
//! The key is `(time, sequence number)`. The sequence number makes the order total
//! and deterministic: two events at the same nanosecond run in the order they were
//! scheduled, whatever the heap's internal layout. Cancellation is lazy (a
//! cancelled entry is skipped when it reaches the top), which keeps `schedule` and
//! `pop` as cheap as a plain binary heap's. Moving an event is cancel + schedule.

use super::time::SimTime;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

/// Handle to a scheduled event, for cancelling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u64);

struct Entry<E> {
    time: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.seq == other.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (time, seq) on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A priority queue of events of type `E` keyed by simulated time.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    cancelled: HashSet<u64>,
    now: SimTime,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue { heap: BinaryHeap::new(), next_seq: 0, cancelled: HashSet::new(), now: SimTime::ZERO }
    }

    /// The time of the last event popped (the simulation clock).
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at `at`. An instant in the past is taken as now: the
    /// clock never runs backwards.
    pub fn schedule(&mut self, at: SimTime, event: E) -> EventId {
        let time = at.max(self.now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { time, seq, event });
        EventId(seq)
    }

    /// Schedules `event` `delay` after now.
    pub fn schedule_in(&mut self, delay: SimTime, event: E) -> EventId {
        self.schedule(self.now + delay, event)
    }

    /// Cancels a pending event; it will never be popped. Cancelling an event that
    /// already ran or was already cancelled does nothing.
    pub fn cancel(&mut self, id: EventId) {
        if id.0 < self.next_seq {
            self.cancelled.insert(id.0);
        }
    }

    /// Removes and returns the earliest pending event, advancing the clock to it.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        while let Some(entry) = self.heap.pop() {
            if !self.cancelled.is_empty() && self.cancelled.remove(&entry.seq) {
                continue;
            }
            self.now = entry.time;
            return Some((entry.time, entry.event));
        }
        None
    }

    /// The time of the earliest entry (possibly a cancelled one), without popping.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|e| e.time)
    }

    /// Entries held, counting cancelled ones not yet skipped.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
