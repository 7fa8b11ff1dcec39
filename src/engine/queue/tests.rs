//! The queue against a reference model, and its ordering and clock rules.

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
        let id = q.schedule(q.now() + t(1), i);
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
    let x = q.schedule(q.now() + t(7), "x");
    let _ = q.reschedule(x, t(1)).expect("x is pending");
    assert_eq!(q.pop(), Some((t(100), "x")), "moving into the past clamps too");
    q.schedule(q.now() + SimTime::MAX, "end");
    assert_eq!(q.peek_time(), Some(SimTime::MAX), "now + MAX saturates instead of wrapping");
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
