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
//!
//! Criterion runs the contenders one after another, so on a shared machine load
//! changes between them skew the ratio. After the criterion groups, a paired check
//! alternates equal chunks of work on the queue and the raw heap in the same
//! process and prints the median per-round throughput ratio (queue / raw heap),
//! which is the figure the >= 0.7x target is about.

use clustersim::engine::rng::{stream, Stream};
use clustersim::engine::{EventQueue, SimTime};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rand::Rng;
use rand_distr::Exp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

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
                q.schedule(q.now() + SimTime(incs[k & (BUF - 1)]), black_box(ev));
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

        group.finish();
    }
}

/// The queue and the raw heap side by side, for the paired ratio check.
struct Pair {
    queue: EventQueue<u64>,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    seq: u64,
    k_queue: usize,
    k_heap: usize,
}

impl Pair {
    fn new(prefill: &[u64]) -> Self {
        let mut pair = Pair { queue: EventQueue::new(), heap: BinaryHeap::new(), seq: 0, k_queue: 0, k_heap: 0 };
        for (i, &at) in prefill.iter().enumerate() {
            pair.queue.schedule(SimTime(at), i as u64);
            pair.heap.push(Reverse((at, pair.seq)));
            pair.seq += 1;
        }
        pair
    }

    /// Seconds for `steps` hold steps on the queue.
    fn run_queue(&mut self, incs: &[u64], steps: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..steps {
            let (_, ev) = self.queue.pop().expect("hold keeps n events pending");
            self.queue.schedule(self.queue.now() + SimTime(incs[self.k_queue & (BUF - 1)]), black_box(ev));
            self.k_queue += 1;
        }
        start.elapsed().as_secs_f64()
    }

    /// Seconds for `steps` hold steps on the raw heap.
    fn run_heap(&mut self, incs: &[u64], steps: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..steps {
            let Reverse((at, _)) = self.heap.pop().expect("hold keeps n events pending");
            self.heap.push(Reverse((black_box(at) + incs[self.k_heap & (BUF - 1)], self.seq)));
            self.seq += 1;
            self.k_heap += 1;
        }
        start.elapsed().as_secs_f64()
    }
}

/// Prints the median over rounds of (queue events/s) / (raw heap events/s).
fn paired_ratio() {
    const ROUNDS: usize = 21;
    const STEPS: usize = 100_000;
    let incs = draws(1, BUF);
    println!("paired hold ratio, queue events/s / raw BinaryHeap events/s ({ROUNDS} rounds of {STEPS} steps each):");
    for &n in &[1_000usize, 100_000, 1_000_000] {
        let mut pair = Pair::new(&draws(2, n));
        // Warm both (caches, page faults) before timing.
        pair.run_queue(&incs, STEPS);
        pair.run_heap(&incs, STEPS);
        let mut ratios: Vec<f64> = (0..ROUNDS)
            .map(|round| {
                // Alternate which goes first so a load change mid-round favours neither.
                let (q, h) = if round % 2 == 0 {
                    let q = pair.run_queue(&incs, STEPS);
                    (q, pair.run_heap(&incs, STEPS))
                } else {
                    let h = pair.run_heap(&incs, STEPS);
                    (pair.run_queue(&incs, STEPS), h)
                };
                h / q
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "  n = {n:>9}: median {:.2}x  (min {:.2}x, max {:.2}x)",
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1]
        );
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
fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Skipped when criterion is asked to run only some benchmarks (a filter argument),
    // except for the filter `paired`, which matches no criterion benchmark and so
    // runs this check alone: `cargo bench --bench engine -- paired`.
    if std::env::args().skip(1).all(|a| a.starts_with('-') || a == "paired") {
        paired_ratio();
    }
}
