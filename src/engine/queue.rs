//! The event queue: earliest time first, ties in scheduling order, with
//! cancellation and rescheduling.
//!
//! # Ordering
//! The key is `(time, order)`. Every `schedule` (and every `reschedule`) takes the
//! next order number, so the order is total and deterministic: two events at the
//! same nanosecond run in the order they were scheduled, whatever the heap's
//! internal layout.
//!
//! # Clock
//! The clock ([`EventQueue::now`]) is the time of the last popped event. It never
//! runs backwards: an event scheduled (or rescheduled) at an instant before `now`
//! is clamped to `now`, so it runs after everything already pending at `now` and
//! before anything later.
//!
//! # Layout and cancellation
//! Payloads live in a slab of slots; the heap (a 4-ary min-heap, see `heap.rs`)
//! holds only 16-byte integer keys `time << 64 | order << 32 | slot`, the same size
//! as a bare `(u64, u64)` heap's, so sifting never moves the payload however big `E`
//! is. A slot records the order number of the event it holds; a heap key whose
//! order does not match its slot's is stale (its event was cancelled, moved or
//! already popped) and is dropped when it reaches the top. The heap's top is
//! always live, which lets [`EventQueue::peek_time`] take `&self`.
//!
//! Stale keys are bounded: once they outnumber the live ones the heap is rebuilt
//! from its live keys, an O(n) pass paid for by the n/2 cancellations before it.
//!
//! Order numbers are 32 bits so the key fits in 16 bytes. When they run out (after
//! about 4e9 schedules) the live keys are renumbered `0..len` in their current
//! order, which keeps every tie-break and costs O(n log n) once per 4e9 schedules.
//! An [`EventId`] does not carry the order number but a 64-bit id stamp that is
//! never reused, so ids survive renumbering and an id whose event already ran (or
//! was cancelled or moved) matches nothing: no bookkeeping is kept for dead ids.

use super::heap::QuadHeap;
use super::time::SimTime;

/// Handle to a scheduled event, for cancelling or moving it.
///
/// Ids are never reused: one stays valid until its event is popped, cancelled or
/// moved, after which every operation on it is a no-op. Ids compare in the order
/// they were issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    // `stamp` first so that ids order like their issue order.
    stamp: u64,
    slot: u32,
}

/// Marks a free slot's id stamp: no issued stamp reaches `u64::MAX`.
const FREE_STAMP: u64 = u64::MAX;
/// Marks a free slot's order: never handed out (renumbering happens first).
const FREE_ORDER: u32 = u32::MAX;

/// Rebuilding below this many stale keys costs more than it saves.
const MIN_STALE_FOR_COMPACTION: usize = 64;

/// A heap key: `time << 64 | order << 32 | slot`. Orders are unique among live
/// keys, so comparing keys compares `(time, order)`, in one integer compare.
#[derive(Clone, Copy)]
struct Key(u128);

impl Key {
    fn new(time: SimTime, order: u32, slot: u32) -> Self {
        Key((u128::from(time.0) << 64) | (u128::from(order) << 32) | u128::from(slot))
    }
    fn time(self) -> SimTime {
        SimTime((self.0 >> 64) as u64)
    }
    fn order(self) -> u32 {
        (self.0 >> 32) as u32
    }
    fn slot(self) -> usize {
        self.0 as u32 as usize
    }
}

/// One slab entry: the pending event, or nothing when `stamp == FREE_STAMP`.
///
/// Kept small on purpose (no copy of the event's time): the slab is touched once
/// per pop at a random index, and at 1e5 pending events a 40-byte slot instead of
/// 32 measurably lowered hold throughput.
#[derive(Clone, Debug)]
struct Slot<E> {
    /// Id stamp of the occupant, matched against [`EventId`]s.
    stamp: u64,
    /// Order number of the occupant, matched against heap keys.
    order: u32,
    event: Option<E>,
}

/// A priority queue of events of type `E` keyed by simulated time. Cloning it copies
/// the pending events (a projection runs a copy of a simulation ahead).
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    heap: QuadHeap,
    slots: Vec<Slot<E>>,
    /// Indices of free slots, reused last-freed first (the slot just popped is
    /// the one still in cache).
    free: Vec<u32>,
    /// Pending events (heap keys minus stale ones).
    live: usize,
    next_stamp: u64,
    next_order: u32,
    /// Order numbers handed out before renumbering: `FREE_ORDER` except in tests,
    /// which lower it so the renumbering path runs often.
    order_limit: u32,
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
        EventQueue {
            heap: QuadHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_stamp: 0,
            next_order: 0,
            order_limit: FREE_ORDER,
            now: SimTime::ZERO,
        }
    }

    /// An empty queue that renumbers after `limit` order numbers.
    #[cfg(test)]
    fn with_order_limit(limit: u32) -> Self {
        EventQueue { order_limit: limit, ..Self::new() }
    }

    /// The time of the last event popped (the simulation clock); zero before the first pop.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at `at` and returns its id. An instant before [`now`](Self::now)
    /// is clamped to `now`: the clock never runs backwards.
    pub fn schedule(&mut self, at: SimTime, event: E) -> EventId {
        let time = at.max(self.now);
        let (stamp, order) = self.take_numbers();
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Slot { stamp, order, event: Some(event) };
                i
            }
            None => {
                // Slot indices share a u64 with the order number in the heap key.
                let i = u32::try_from(self.slots.len()).expect("more than 2^32 pending events");
                self.slots.push(Slot { stamp, order, event: Some(event) });
                i
            }
        };
        self.heap.push(Key::new(time, order, slot).0);
        self.live += 1;
        EventId { stamp, slot }
    }

    /// Cancels a pending event and returns it; it will never be popped. Cancelling
    /// an event that already ran, was already cancelled or was moved returns `None`
    /// and changes nothing.
    pub fn cancel(&mut self, id: EventId) -> Option<E> {
        let i = self.live_slot(id)?;
        let slot = &mut self.slots[i];
        slot.stamp = FREE_STAMP;
        slot.order = FREE_ORDER;
        let event = slot.event.take();
        self.free.push(id.slot);
        self.live -= 1;
        self.after_removal();
        event
    }

    /// Moves a pending event to `at` (clamped to now, like [`schedule`](Self::schedule))
    /// and returns its new id; the old id becomes dead. The move counts as a fresh
    /// scheduling for tie-breaking: among events at `at`, the moved one runs last.
    /// Returns `None`, changing nothing, when `id` is not pending.
    ///
    /// Costs one heap push; the old key goes stale and is dropped lazily.
    #[must_use = "the old id is dead; keep the new one to cancel or move the event again"]
    pub fn reschedule(&mut self, id: EventId, at: SimTime) -> Option<EventId> {
        self.live_slot(id)?;
        let time = at.max(self.now);
        // May renumber, which rewrites slot orders: read the slot only afterwards.
        let (stamp, order) = self.take_numbers();
        let slot = &mut self.slots[id.slot as usize];
        slot.stamp = stamp;
        slot.order = order;
        self.heap.push(Key::new(time, order, id.slot).0);
        // The old key is now stale; it may be the top, and it adds to the stale count.
        self.after_removal();
        Some(EventId { stamp, slot: id.slot })
    }

    /// Removes and returns the earliest pending event, advancing the clock to it.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        // Invariant: the top key is live, so no skipping is needed here. The slot is
        // emptied before the heap sifts, so that its likely cache miss overlaps the
        // sift instead of following it.
        let key = Key(self.heap.peek()?);
        let slot = &mut self.slots[key.slot()];
        debug_assert_eq!(slot.order, key.order(), "stale key on top of the heap");
        slot.stamp = FREE_STAMP;
        slot.order = FREE_ORDER;
        let event = slot.event.take().expect("a live slot holds its event");
        self.heap.pop();
        self.free.push(key.slot() as u32);
        self.live -= 1;
        self.now = key.time();
        self.drop_stale_top();
        Some((self.now, event))
    }

    /// The time of the earliest pending event, without popping it.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|k| Key(k).time())
    }

    #[cfg(test)]
    /// True when `id` is scheduled and has not yet run, been cancelled or been moved.
    fn is_pending(&self, id: EventId) -> bool {
        self.live_slot(id).is_some()
    }

    #[cfg(test)]
    /// The number of pending events (cancelled and moved-away entries not counted).
    fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    /// True when no event is pending.
    fn is_empty(&self) -> bool {
        self.live == 0
    }

    #[cfg(test)]
    /// Heap keys held, stale ones included: what memory use grows with. Never
    /// more than about twice [`len`](Self::len) (plus a small constant).
    fn held(&self) -> usize {
        self.heap.len()
    }

    /// The next id stamp and order number, renumbering first if orders ran out.
    fn take_numbers(&mut self) -> (u64, u32) {
        if self.next_order >= self.order_limit {
            self.renumber();
        }
        let stamp = self.next_stamp;
        // 2^64 - 1 schedules at 10^9 per second is 584 years: reaching it is a bug.
        assert!(stamp < FREE_STAMP, "event id stamps exhausted");
        self.next_stamp += 1;
        let order = self.next_order;
        self.next_order += 1;
        (stamp, order)
    }

    /// Gives the live keys orders `0..len` in their current (time, order) order.
    fn renumber(&mut self) {
        let slots = &self.slots;
        let mut keys: Vec<u128> =
            std::mem::take(&mut self.heap).into_vec().into_iter().filter(|&k| is_live(slots, Key(k))).collect();
        keys.sort_unstable();
        // At least one order number must be left for the event being scheduled. (With
        // the real limit, 2^32 pending keys would take 64 GiB: unreachable in practice.)
        assert!(keys.len() < self.order_limit as usize, "too many pending events to renumber");
        for (order, k) in keys.iter_mut().enumerate() {
            let (key, order) = (Key(*k), order as u32);
            self.slots[key.slot()].order = order;
            *k = Key::new(key.time(), order, key.slot() as u32).0;
        }
        self.next_order = keys.len() as u32;
        // Sorted ascending is already a valid min-heap; from_vec's heapify just checks it.
        self.heap = QuadHeap::from_vec(keys);
    }

    /// The slot index of `id` if its event is pending.
    fn live_slot(&self, id: EventId) -> Option<usize> {
        let i = id.slot as usize;
        // `id.stamp` is never FREE_STAMP, so a free slot never matches.
        (self.slots.get(i)?.stamp == id.stamp).then_some(i)
    }

    /// After a key went stale: restore the live-top invariant and bound the stale count.
    fn after_removal(&mut self) {
        let stale = self.heap.len() - self.live;
        if stale > self.live && stale >= MIN_STALE_FOR_COMPACTION {
            let slots = &self.slots;
            self.heap.retain(|&k| is_live(slots, Key(k)));
        } else {
            self.drop_stale_top();
        }
    }

    /// Pops stale keys off the top until the top is live or the heap is empty.
    fn drop_stale_top(&mut self) {
        // No "no stale keys, skip" shortcut on purpose: reading the new top's slot
        // here, behind a well-predicted branch, pulls it into cache while the caller
        // goes on, and the next pop needs it anyway. Measured faster at 1e5 events.
        while let Some(k) = self.heap.peek() {
            if is_live(&self.slots, Key(k)) {
                break;
            }
            self.heap.pop();
        }
    }
}

/// True when `key` still belongs to its slot's occupant (free slots hold `FREE_ORDER`,
/// which no key carries).
fn is_live<E>(slots: &[Slot<E>], key: Key) -> bool {
    slots[key.slot()].order == key.order()
}

#[cfg(test)]
mod tests;
