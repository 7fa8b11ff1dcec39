//! Hold benchmark for the event queue.
//!
//! The classic hold model: keep N events pending; each step pops the earliest and
//! schedules one at a random later time (exponential increment, mean 1000 ns,
//! rounded to integer ns). Increments are drawn before measuring, so RNG cost is
//! outside the loop and identical for every contender. Contenders, in one group per
//! N so their events/s can be compared directly:
//! - `event_queue`: [`clustersim::engine::EventQueue`] with its ordering,
//!   cancellation and clock guarantees;
//! - `raw_binary_heap`: a bare `BinaryHeap<Reverse<(time, seq)>>`, the baseline the
//!   target ratio (>= 0.7x) is measured against;
//! - `priority_queue_crate`: the `priority-queue` crate, which supports moving
//!   events natively, for reference.

use clustersim::engine::rng::{stream, Stream};
use clustersim::engine::{EventQueue, SimTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::Rng;
use rand_distr::Exp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Duration;

/// Pre-drawn increments, cycled; a power of two so the wrap is a mask.
const BUF: usize = 1 << 16;
const MEAN_NS: f64 = 1000.0;

fn draws(seed: u64, n: usize) -> Vec<u64> {
    let mut rng = stream(seed, Stream::Test, 0);
    let exp = Exp::new(1.0 / MEAN_NS).expect("positive rate");
    (0..n).map(|_| rng.sample(exp).round() as u64).collect()
}

fn hold(c: &mut Criterion) {
    let incs = draws(1, BUF);
    for &n in &[1_000usize, 100_000, 1_000_000] {
        let prefill = draws(2, n);
        let mut group = c.benchmark_group("hold");
        group.throughput(Throughput::Elements(1));

        group.bench_function(BenchmarkId::new("event_queue", n), |b| {
            let mut q: EventQueue<u64> = EventQueue::new();
            for (i, &at) in prefill.iter().enumerate() {
                q.schedule(SimTime(at), i as u64);
            }
            let mut k = 0usize;
            b.iter(|| {
                let (_, ev) = q.pop().expect("hold keeps n events pending");
                q.schedule_in(SimTime(incs[k & (BUF - 1)]), black_box(ev));
                k += 1;
            });
        });

        group.bench_function(BenchmarkId::new("raw_binary_heap", n), |b| {
            let mut heap: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::with_capacity(n);
            let mut seq = 0u64;
            for &at in &prefill {
                heap.push(Reverse((at, seq)));
                seq += 1;
            }
            let mut k = 0usize;
            b.iter(|| {
                let Reverse((at, _)) = heap.pop().expect("hold keeps n events pending");
                heap.push(Reverse((black_box(at) + incs[k & (BUF - 1)], seq)));
                seq += 1;
                k += 1;
            });
        });

        group.bench_function(BenchmarkId::new("priority_queue_crate", n), |b| {
            // Item = seq (the id a caller would use to move it), priority = Reverse((time, seq)).
            let mut pq: priority_queue::PriorityQueue<u64, Reverse<(u64, u64)>> =
                priority_queue::PriorityQueue::with_capacity(n);
            let mut seq = 0u64;
            for &at in &prefill {
                pq.push(seq, Reverse((at, seq)));
                seq += 1;
            }
            let mut k = 0usize;
            b.iter(|| {
                let (_, Reverse((at, _))) = pq.pop().expect("hold keeps n events pending");
                pq.push(seq, Reverse((black_box(at) + incs[k & (BUF - 1)], seq)));
                seq += 1;
                k += 1;
            });
        });

        group.finish();
    }
}

fn config() -> Criterion {
    // Short runs: the whole bench must stay around a minute on a shared machine.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hold
}
criterion_main!(benches);
