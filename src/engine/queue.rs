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
struct Slot<E> {
    /// Id stamp of the occupant, matched against [`EventId`]s.
    stamp: u64,
    /// Order number of the occupant, matched against heap keys.
    order: u32,
    event: Option<E>,
}

/// A priority queue of events of type `E` keyed by simulated time.
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

    /// Schedules `event` `delay` after now (saturating at [`SimTime::MAX`]).
    pub fn schedule_in(&mut self, delay: SimTime, event: E) -> EventId {
        self.schedule(self.now + delay, event)
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

    /// True when `id` is scheduled and has not yet run, been cancelled or been moved.
    pub fn is_pending(&self, id: EventId) -> bool {
        self.live_slot(id).is_some()
    }

    /// The number of pending events (cancelled and moved-away entries not counted).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no event is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Heap keys held, stale ones included: what memory use grows with. Never
    /// more than about twice [`len`](Self::len) (plus a small constant).
    pub fn held(&self) -> usize {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(ns: u64) -> SimTime {
        SimTime(ns)
    }

    #[test]
    fn equal_times_pop_in_scheduling_order() {
        let mut q = EventQueue::new();
        // Interleave another time so a heap that ignored `seq` would likely scramble them.
        for i in 0..100u32 {
            q.schedule(t(10), i);
            q.schedule(t(5), 1000 + i);
        }
        let got: Vec<u32> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        let want: Vec<u32> = (1000..1100).chain(0..100).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn earliest_first() {
        let mut q = EventQueue::new();
        for &x in &[50u64, 10, 40, 0, 30, 20] {
            q.schedule(t(x), x);
        }
        let times: Vec<u64> = std::iter::from_fn(|| {
            q.pop().map(|(at, e)| {
                assert_eq!(at.0, e);
                e
            })
        })
        .collect();
        assert_eq!(times, vec![0, 10, 20, 30, 40, 50]);
    }

    #[test]
    fn cancel_before_pop_removes_it() {
        let mut q = EventQueue::new();
        let a = q.schedule(t(1), 'a');
        let b = q.schedule(t(2), 'b');
        q.schedule(t(3), 'c');
        assert_eq!(q.cancel(a), Some('a'));
        assert_eq!(q.len(), 2);
        // The cancelled event was the earliest: peek must already skip it.
        assert_eq!(q.peek_time(), Some(t(2)));
        assert_eq!(q.cancel(b), Some('b'));
        assert_eq!(q.pop(), Some((t(3), 'c')));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn cancel_after_pop_is_a_noop_and_keeps_memory_flat() {
        let mut q = EventQueue::new();
        q.schedule(t(1_000_000), 0u64); // a long-lived bystander
        for i in 0..10_000u64 {
            let id = q.schedule_in(t(1), i);
            assert_eq!(q.pop(), Some((t(i + 1), i)));
            assert_eq!(q.cancel(id), None, "cancelling a fired event must do nothing");
            assert_eq!(q.cancel(id), None);
            assert!(!q.is_pending(id));
            assert_eq!(q.len(), 1);
            assert_eq!(q.held(), 1);
        }
        // One slot for the bystander, one recycled for every short-lived event.
        assert_eq!(q.slots.len(), 2);
        assert!(q.free.len() <= 1);
    }

    #[test]
    fn cancelled_keys_are_bounded() {
        let mut q = EventQueue::new();
        q.schedule(t(0), u64::MAX); // keeps the top live so cancelled keys sit deep in the heap
        for i in 0..100_000u64 {
            let id = q.schedule(t(1 + i), i);
            q.cancel(id);
            assert!(q.held() <= 2 * q.len() + MIN_STALE_FOR_COMPACTION, "held {} for len {}", q.held(), q.len());
        }
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn reschedule_moves_the_event() {
        let mut q = EventQueue::new();
        let a = q.schedule(t(10), 'a');
        q.schedule(t(20), 'b');
        q.schedule(t(30), 'c');
        let a2 = q.reschedule(a, t(25)).expect("a is pending");
        assert_ne!(a, a2);
        assert!(!q.is_pending(a));
        assert!(q.is_pending(a2));
        assert_eq!(q.len(), 3);
        assert_eq!(q.peek_time(), Some(t(20)));
        // The old id is dead: neither cancel nor reschedule may touch the moved event.
        assert_eq!(q.cancel(a), None);
        assert_eq!(q.reschedule(a, t(0)), None);
        let order: Vec<(SimTime, char)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(t(20), 'b'), (t(25), 'a'), (t(30), 'c')]);
        assert_eq!(q.reschedule(a2, t(99)), None, "a fired event cannot be moved");
    }

    #[test]
    fn reschedule_earlier_and_ties_count_as_fresh() {
        let mut q = EventQueue::new();
        let a = q.schedule(t(50), 'a');
        q.schedule(t(5), 'b');
        let _ = q.reschedule(a, t(5)).expect("a is pending");
        assert_eq!(q.pop(), Some((t(5), 'b')));
        assert_eq!(q.pop(), Some((t(5), 'a')));
    }

    #[test]
    fn clock_is_monotone_and_past_is_clamped() {
        let mut q = EventQueue::new();
        q.schedule(t(100), "first");
        q.schedule(t(100), "second");
        assert_eq!(q.pop(), Some((t(100), "first")));
        assert_eq!(q.now(), t(100));
        // In the past: clamped to now, and queued after what is already pending at now.
        q.schedule(t(3), "late");
        assert_eq!(q.peek_time(), Some(t(100)));
        assert_eq!(q.pop(), Some((t(100), "second")));
        assert_eq!(q.pop(), Some((t(100), "late")));
        assert_eq!(q.now(), t(100));
        let x = q.schedule_in(t(7), "x");
        let _ = q.reschedule(x, t(1)).expect("x is pending");
        assert_eq!(q.pop(), Some((t(100), "x")), "moving into the past clamps too");
        q.schedule_in(SimTime::MAX, "end");
        assert_eq!(q.peek_time(), Some(SimTime::MAX), "schedule_in saturates instead of wrapping");
    }

    #[test]
    fn renumbering_keeps_order_and_ids() {
        let mut q = EventQueue::with_order_limit(16);
        let a = q.schedule(t(100), 'a');
        let mut filler = Vec::new();
        for i in 0..10u64 {
            let id = q.schedule(t(200 + i), 'f');
            if i % 2 == 0 {
                q.cancel(id);
            } else {
                filler.push(id);
            }
        }
        let b = q.schedule(t(100), 'b');
        let c = q.schedule(t(50), 'c');
        let c = q.reschedule(c, t(100)).expect("c is pending");
        // Moving the fillers again and again burns order numbers: several renumberings.
        for k in 0..60u64 {
            let i = (k % filler.len() as u64) as usize;
            filler[i] = q.reschedule(filler[i], t(1000 + k)).expect("filler is pending");
        }
        assert!(q.next_stamp > 3 * 16, "the test must cross several renumberings");
        assert!(q.is_pending(a) && q.is_pending(b) && q.is_pending(c), "ids survive renumbering");
        assert_eq!(q.len(), 8);
        // Ties at 100 keep scheduling order (c counts from its move) across renumbering.
        assert_eq!(q.pop(), Some((t(100), 'a')));
        assert_eq!(q.pop(), Some((t(100), 'b')));
        assert_eq!(q.pop(), Some((t(100), 'c')));
        let times: Vec<u64> = std::iter::from_fn(|| q.pop().map(|(at, _)| at.0)).collect();
        assert_eq!(times, vec![1055, 1056, 1057, 1058, 1059]);
    }

    /// One operation of the random sequences below.
    #[derive(Clone, Debug)]
    enum Op {
        /// Schedule at `now + dt - back` (saturating at zero, so some land in the past).
        Schedule {
            dt: u64,
            back: u64,
        },
        /// Cancel the `k`-th id ever issued (modulo how many were), pending or not.
        Cancel(usize),
        /// Move the `k`-th id ever issued to `now + dt`.
        Reschedule(usize, u64),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Small time ranges so equal times are common and FIFO order matters.
        prop_oneof![
            4 => (0u64..20, prop_oneof![3 => Just(0u64), 1 => 0u64..30]).prop_map(|(dt, back)| Op::Schedule { dt, back }),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => (any::<usize>(), 0u64..20).prop_map(|(k, dt)| Op::Reschedule(k, dt)),
            3 => Just(Op::Pop),
        ]
    }

    /// The reference: a plain list of (time, seq, payload), searched linearly.
    #[derive(Default)]
    struct Model {
        pending: Vec<(u64, u64, u32)>,
        now: u64,
        next_seq: u64,
    }

    impl Model {
        fn pending_index(&self, seq: u64) -> Option<usize> {
            self.pending.iter().position(|e| e.1 == seq)
        }
        fn schedule(&mut self, at: u64, payload: u32) -> u64 {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push((at.max(self.now), seq, payload));
            seq
        }
        fn pop(&mut self) -> Option<(u64, u32)> {
            let i = (0..self.pending.len()).min_by_key(|&i| (self.pending[i].0, self.pending[i].1))?;
            let (time, _, payload) = self.pending.remove(i);
            self.now = time;
            Some((time, payload))
        }
        fn min_time(&self) -> Option<u64> {
            self.pending.iter().map(|e| e.0).min()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_reference_model(
            ops in proptest::collection::vec(op(), 1..400),
            limit in prop_oneof![Just(FREE_ORDER), 8u32..64],
        ) {
            // A small order limit makes renumbering happen every few dozen operations.
            let mut q: EventQueue<u32> = EventQueue::with_order_limit(limit);
            let mut m = Model::default();
            // Every id ever issued, with the model's seq for the same event.
            let mut ids: Vec<(EventId, u64)> = Vec::new();
            let mut payload = 0u32;
            for op in ops {
                match op {
                    // Renumbering needs a free order number; tests keep below the limit.
                    Op::Schedule { dt, back } if q.len() + 1 < limit as usize => {
                        let at = (q.now().0 + dt).saturating_sub(back);
                        let id = q.schedule(t(at), payload);
                        ids.push((id, m.schedule(at, payload)));
                        payload += 1;
                    }
                    Op::Cancel(k) if !ids.is_empty() => {
                        let (id, seq) = ids[k % ids.len()];
                        let want = m.pending_index(seq).map(|i| m.pending.remove(i).2);
                        prop_assert_eq!(q.cancel(id), want);
                    }
                    Op::Reschedule(k, dt) if !ids.is_empty() => {
                        let (id, seq) = ids[k % ids.len()];
                        let at = q.now().0 + dt;
                        match m.pending_index(seq) {
                            Some(i) => {
                                let (_, _, p) = m.pending.remove(i);
                                let new_seq = m.schedule(at, p);
                                let new_id = q.reschedule(id, t(at));
                                prop_assert!(new_id.is_some());
                                ids.push((new_id.unwrap(), new_seq));
                            }
                            None => prop_assert_eq!(q.reschedule(id, t(at)), None),
                        }
                    }
                    Op::Schedule { .. } | Op::Cancel(_) | Op::Reschedule(..) => {}
                    Op::Pop => {
                        let before = q.now();
                        prop_assert_eq!(q.pop().map(|(at, p)| (at.0, p)), m.pop());
                        prop_assert!(q.now() >= before);
                    }
                }
                prop_assert_eq!(q.len(), m.pending.len());
                prop_assert_eq!(q.is_empty(), m.pending.is_empty());
                prop_assert_eq!(q.peek_time().map(|x| x.0), m.min_time());
                prop_assert_eq!(q.now().0, m.now);
                prop_assert!(q.held() <= 2 * q.len() + MIN_STALE_FOR_COMPACTION);
                for &(id, seq) in &ids {
                    prop_assert_eq!(q.is_pending(id), m.pending_index(seq).is_some());
                }
            }
            // Drain: both must agree to the end.
            loop {
                let (a, b) = (q.pop().map(|(at, p)| (at.0, p)), m.pop());
                prop_assert_eq!(a, b);
                if a.is_none() { break; }
            }
        }
    }
}
