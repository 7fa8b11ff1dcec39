//! The serving engines' own all-reduce kernels for small tensor-parallel all-reduces
//! inside one node, and the rule that picks them.
//!
//! vLLM and SGLang (`CustomAllreduce`) and TensorRT-LLM (`AllReduceStrategy` ONESHOT /
//! TWOSHOT) do not call NCCL for the small all-reduces of decode: each GPU maps its
//! peers' buffers over NVLink and one kernel does the whole all-reduce.
//!
//! - One-shot: after a flag barrier every rank reads every peer's whole buffer and
//!   reduces it locally: one step in which each rank's NVLink port carries (g-1)·S each
//!   way. On idle links: L + (g-1)·S/B.
//! - Two-shot: a reduce-scatter (rank i reads the i-th 1/g of every peer's buffer) and
//!   an all-gather (reads every peer's reduced 1/g), each a direct exchange of
//!   (g-1)/g·S per port. On idle links: 2·L + 2(g-1)/g·S/B, the ring's bandwidth term
//!   with 2 steps where the ring has 2(g-1).
//!
//! L is the kernel's own per-step latency (launch, flag barrier over NVLink), measured,
//! not NCCL's per-hop α ([`kernel_step_latency`]). The two are schedules like every
//! algorithm here, so the flow model runs the same steps (tests show it reproduces the
//! closed forms).
//!
//! Which kernel runs is the engine's rule, not the cheapest ([`engine_kernel`]): vLLM's
//! (csrc/custom_all_reduce.cuh, `REDUCE_CASE`): two ranks always one-shot; up to 4
//! ranks one-shot below 512 KiB, up to 8 below 256 KiB, two-shot above; and only below
//! the stack's buffer size (profile key `custom_all_reduce_max_bytes`; vLLM's
//! `CustomAllreduce(max_size=8192 * 1024)`); at that size and above, NCCL runs it.

use super::nccl::exchange;
use super::{choose_all_reduce_nccl, AllReduceAlgorithm, Phase};
use crate::engine::SimTime;
use crate::hardware::topology::Topology;
use crate::parallel::price::Affine;

/// Group sizes the kernels run: vLLM's `CustomAllreduce._SUPPORTED_WORLD_SIZES = [2, 4,
/// 6, 8]` (vllm/distributed/device_communicators/custom_all_reduce.py at commit
/// 00d618aa); TensorRT-LLM's tables cover 2, 4 and 8.
const SUPPORTED_RANKS: [usize; 4] = [2, 4, 6, 8];

/// Whether the engines' kernels can run over `ranks`: a supported count, all in one node
/// (their peers' buffers are mapped over NVLink; vLLM disables them across nodes).
pub fn supports(topo: &Topology, ranks: &[u32]) -> bool {
    SUPPORTED_RANKS.contains(&ranks.len()) && ranks.iter().all(|&r| topo.node_of(r) == topo.node_of(ranks[0]))
}

/// The kernel's own latency per step for `g` ranks: the measured time of the one-shot
/// kernel on 512 bytes (its bytes take ~0.01 µs of it) on H100 SXM, TP 2 / 4 / 8:
/// 3.7 / 4.8 / 5.9 µs (sgl-project/sglang pull request 2904, "unit test performance in
/// H100 (without cuda graph)", custom allreduce, data size 512). It grows with g as the
/// flag barrier polls more peers. For 6 ranks, unmeasured, the mean of 4 and 8 (5.35).
/// A two-shot step is taken to cost the same (one barrier and one pass over NVLink each).
pub fn kernel_step_latency(g: usize) -> SimTime {
    SimTime::from_ns_f64(match g {
        0..=2 => 3_700.0,
        3 | 4 => 4_800.0,
        5 | 6 => 5_350.0,
        _ => 5_900.0,
    })
}

/// Below this many bytes vLLM runs one-shot on up to 4 ranks, and below
/// [`ONE_SHOT_BELOW_8`] on up to 8 (csrc/custom_all_reduce.cuh, `REDUCE_CASE`:
/// `(world_size_ <= 4 && bytes < 512 * 1024) || (world_size_ <= 8 && bytes < 256 * 1024)`).
const ONE_SHOT_BELOW_4: f64 = 512.0 * 1024.0;
/// See [`ONE_SHOT_BELOW_4`].
const ONE_SHOT_BELOW_8: f64 = 256.0 * 1024.0;

/// Below which size one-shot runs on `g` ranks (two-shot from there): always on 2.
fn one_shot_below(g: usize) -> f64 {
    match g {
        0..=2 => f64::INFINITY,
        3 | 4 => ONE_SHOT_BELOW_4,
        _ => ONE_SHOT_BELOW_8,
    }
}

/// The engine's kernel for an all-reduce of `bytes` over `ranks` when its buffer holds
/// `max_bytes` (0: the stack has none), or None where NCCL runs it.
pub fn engine_kernel(topo: &Topology, ranks: &[u32], bytes: f64, max_bytes: f64) -> Option<AllReduceAlgorithm> {
    if !supports(topo, ranks) || bytes >= max_bytes {
        return None;
    }
    Some(if bytes < one_shot_below(ranks.len()) { AllReduceAlgorithm::OneShot } else { AllReduceAlgorithm::TwoShot })
}

/// The all-reduce a serving stack whose kernels' buffer holds `max_bytes` runs for
/// `bytes` over `ranks`: its own kernel where [`engine_kernel`] says, NCCL's tuner's
/// choice ([`choose_all_reduce_nccl`]) elsewhere. With `max_bytes` 0 (no kernels, as
/// `clustersim collective` and nccl-tests measure) it is NCCL's choice.
pub fn choose_all_reduce(topo: &Topology, ranks: &[u32], bytes: f64, max_bytes: f64) -> AllReduceAlgorithm {
    engine_kernel(topo, ranks, bytes, max_bytes).unwrap_or_else(|| choose_all_reduce_nccl(topo, ranks, bytes))
}

/// Slope of the pieces that close a size window: a second per byte past its edge.
const OUTSIDE_NS_PER_BYTE: f64 = 1e9;

/// Pieces that, added to a price's convex pieces, keep the option `alg` to the sizes at
/// which [`choose_all_reduce`] runs it on `ranks` (nothing when it is the only family
/// there): inside its window they are at most 0 ns, outside a second or more per byte
/// past the edge. Edges sit half a byte inside the excluded side, so integer payloads at
/// an edge go to the right side. So the cheapest option at each size (the serving
/// pricer's [`crate::parallel::price::Price`]) is the one the rule runs.
pub fn custom_window(topo: &Topology, alg: AllReduceAlgorithm, ranks: &[u32], max_bytes: f64) -> Vec<Affine> {
    if !supports(topo, ranks) || max_bytes <= 0.0 {
        return Vec::new();
    }
    let k = OUTSIDE_NS_PER_BYTE;
    // Payload below `edge` only: 0 at edge - 1/2, rising past it.
    let below = |edge: f64| Affine { fixed_ns: -k * (edge - 0.5), per_byte_ns: k };
    // Payload from `edge` on only.
    let from = |edge: f64| Affine { fixed_ns: k * (edge - 0.5), per_byte_ns: -k };
    let split = one_shot_below(ranks.len());
    match alg {
        AllReduceAlgorithm::OneShot if split < max_bytes => vec![below(split)],
        AllReduceAlgorithm::OneShot => vec![below(max_bytes)],
        AllReduceAlgorithm::TwoShot if split < max_bytes => vec![from(split), below(max_bytes)],
        // Two-shot never runs here: closed everywhere.
        AllReduceAlgorithm::TwoShot => vec![below(0.0)],
        _ => vec![from(max_bytes)],
    }
}

/// The steps of one-shot or two-shot (`alg`) of `bytes` over `ranks`, and the latency
/// each step pays ([`kernel_step_latency`]).
pub(super) fn steps(alg: AllReduceAlgorithm, ranks: &[u32], bytes: f64) -> (Vec<Phase>, SimTime) {
    let g = ranks.len();
    let mut transfers = Vec::new();
    let phase = if alg == AllReduceAlgorithm::OneShot {
        // Every rank pulls every peer's whole buffer: (g-1)·S through each port.
        exchange(ranks, bytes, &mut transfers);
        Phase { transfers, repeat: 1 }
    } else {
        // Reduce-scatter then all-gather, each 1/g of the buffer from every peer.
        exchange(ranks, bytes / g as f64, &mut transfers);
        Phase { transfers, repeat: 2 }
    };
    (vec![phase], kernel_step_latency(g))
}
