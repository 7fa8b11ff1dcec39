//! The serving engines' one-shot and two-shot all-reduce kernels: their closed forms by
//! hand, the flow model reproducing them on idle links, the engines' rule for which
//! runs, and the serving price that follows it (issue 10 item 2, issue 11's NIM TP2 gap).

use clustersim::hardware::spec::gpu_preset;
use clustersim::hardware::topology::Topology;
use clustersim::model::framework::{framework_profile, FrameworkProfile};
use clustersim::parallel::collective::{
    choose_all_reduce, closed_form_time, kernel_step_latency, AllReduceAlgorithm, CollectiveOp,
};
use clustersim::parallel::microbench::{run, Algorithms};
use clustersim::serving::pricing::Pricer;

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

fn node(preset: &str) -> Topology {
    let p = gpu_preset(preset).expect("preset");
    Topology::new(1, 8, &(p.nvlink)(), &(p.network)()).expect("topology")
}

fn ranks(g: u32) -> Vec<u32> {
    (0..g).collect()
}

fn closed_ns(topo: &Topology, alg: AllReduceAlgorithm, g: u32, bytes: f64) -> u64 {
    closed_form_time(topo, CollectiveOp::AllReduce, alg, &ranks(g), bytes).as_ns()
}

#[test]
fn one_shot_and_two_shot_closed_forms_by_hand() {
    // H100 node: NVLink 450 GB/s x 0.82 = 369 GB/s per direction per GPU. The kernels'
    // step latency (sglang PR 2904, one-shot at 512 B on H100): 3.7 / 4.8 / 5.9 µs for
    // 2 / 4 / 8 ranks.
    let h100 = node("h100-sxm");
    assert_eq!(kernel_step_latency(2).as_ns(), 3_700);
    assert_eq!(kernel_step_latency(8).as_ns(), 5_900);
    // One-shot, TP2, 16 KiB (one decode token of a hidden-8192 bf16 model): each GPU
    // pulls its peer's whole 16,384 B: 3,700 + 16,384 / 369 GB/s (44.40 ns) = 3,744 ns.
    assert_eq!(closed_ns(&h100, AllReduceAlgorithm::OneShot, 2, 16.0 * KIB), 3_744);
    // One-shot, TP8, 64 KiB: 7 x 65,536 B through each port: 5,900 + 1,243.2 = 7,143 ns.
    assert_eq!(closed_ns(&h100, AllReduceAlgorithm::OneShot, 8, 64.0 * KIB), 7_143);
    // Two-shot, TP8, 1 MiB: two steps of 7 x 131,072 B per port (2,486.5 ns, rounded
    // to 2,486 as the flow model does): 2 x (5,900 + 2,486) = 16,772 ns.
    assert_eq!(closed_ns(&h100, AllReduceAlgorithm::TwoShot, 8, MIB), 16_772);
    // Two-shot, TP4, 1 MiB: 2 x (4,800 + 3 x 262,144 B / 369 GB/s = 2,131.3) = 13,862.
    assert_eq!(closed_ns(&h100, AllReduceAlgorithm::TwoShot, 4, MIB), 13_862);
    // Across nodes the kernels do not run: the ring stands in for them.
    let p = gpu_preset("h100-sxm").expect("preset");
    let two = Topology::new(2, 8, &(p.nvlink)(), &(p.network)()).expect("topology");
    let across = [0u32, 8];
    let ring = closed_form_time(&two, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &across, MIB);
    assert_eq!(closed_form_time(&two, CollectiveOp::AllReduce, AllReduceAlgorithm::OneShot, &across, MIB), ring);
}

#[test]
fn the_flow_model_reproduces_both_kernels_on_idle_links() {
    // Every rank's port carries the same bytes in each step, so no flow waits for
    // another: the flow model's time must equal the closed form (within 1 %; it is
    // exact up to the 1 ns rounding of each step).
    for preset in ["h100-sxm", "a100-80g"] {
        let topo = node(preset);
        for g in [2u32, 4, 8] {
            for alg in [AllReduceAlgorithm::OneShot, AllReduceAlgorithm::TwoShot] {
                let algs = Algorithms { all_reduce: alg, ..Algorithms::default() };
                let sizes = [4096u64, 65_536, 1 << 20, 8 << 20];
                let rows = run(&topo, CollectiveOp::AllReduce, algs, &ranks(g), &sizes).expect("runs");
                for r in rows {
                    let (flow, cf) = (r.time.as_ns() as f64, r.closed_form.as_ns() as f64);
                    assert!((flow / cf - 1.0).abs() < 0.01, "{preset} {alg:?} g={g} {} B: {flow} vs {cf}", r.bytes);
                    assert!((flow - cf).abs() <= 2.0, "{preset} {alg:?} g={g} {} B: {flow} vs {cf}", r.bytes);
                }
            }
        }
    }
}

#[test]
fn the_flow_model_waits_for_the_nvls_set_up() {
    // NVLS in one H100 node at 64 KiB, one chunk: the 25 µs set-up, then two steps of
    // 2 µs + 65,536 B / 308.6 GB/s (212.4 ns, rounded to 212): 25,000 + 2 x 2,212 =
    // 29,424 ns, on the flow model as in the closed form.
    let algs = Algorithms { all_reduce: AllReduceAlgorithm::Nvls, ..Algorithms::default() };
    let rows = run(&node("h100-sxm"), CollectiveOp::AllReduce, algs, &ranks(8), &[65_536]).expect("runs");
    assert_eq!((rows[0].time.as_ns(), rows[0].closed_form.as_ns()), (29_424, 29_424));
}

#[test]
fn the_rule_takes_the_kernels_where_vllm_does() {
    // vLLM (csrc/custom_all_reduce.cuh): 2 ranks one-shot always; up to 4 ranks
    // one-shot below 512 KiB; up to 8 below 256 KiB; two-shot above; NCCL from the
    // 8 MiB buffer on. NCCL's choice there in an H100 node at 8 MiB: the ring
    // (14 x (2 + 1 MiB / 369 GB/s) = 67.78 µs) beats NVLS (25 + 46.53 µs at 4 chunks).
    let h100 = node("h100-sxm");
    let cap = 8.0 * MIB;
    let pick = |g: u32, s: f64| choose_all_reduce(&h100, &ranks(g), s, cap);
    assert_eq!(pick(2, 4.0 * MIB), AllReduceAlgorithm::OneShot);
    assert_eq!(pick(4, 256.0 * KIB), AllReduceAlgorithm::OneShot);
    assert_eq!(pick(4, 512.0 * KIB), AllReduceAlgorithm::TwoShot);
    assert_eq!(pick(8, 256.0 * KIB - 16.0), AllReduceAlgorithm::OneShot);
    assert_eq!(pick(8, 256.0 * KIB), AllReduceAlgorithm::TwoShot);
    assert_eq!(pick(8, cap - 16.0), AllReduceAlgorithm::TwoShot);
    assert_eq!(pick(8, cap), AllReduceAlgorithm::Ring);
    // No kernels (buffer 0): NCCL's choice at every size.
    assert_eq!(choose_all_reduce(&h100, &ranks(8), 16.0 * KIB, 0.0), AllReduceAlgorithm::Ring);
    // Three ranks: the kernels do not support it.
    assert_eq!(choose_all_reduce(&h100, &ranks(3), 16.0 * KIB, cap), AllReduceAlgorithm::Ring);
}

#[test]
fn a_tp2_decode_all_reduce_costs_one_kernel_step_under_trtllm() {
    // trtllm (buffer 8 MB): a TP2 all-reduce of 16 KiB runs one-shot, one step. Its
    // price: the kernel's 3,700 ns + 16,384 B / (369 GB/s x the profile's collective
    // efficiency) + one step of the profile's extra per-step latency. Without the
    // kernels (buffer 0), NCCL's choice for TP2 at 16 KiB is the ring, 2 steps of
    // 2 µs + 8 KiB: 2 x (2,000 + 22.2 / eff) + 2 extra steps.
    let h100 = node("h100-sxm");
    let trt = framework_profile("trtllm").expect("profile");
    let (eff, step_ns) = (trt.collective_efficiency, trt.collective_step_overhead_us * 1e3);
    let own = Pricer::on(h100.clone(), AllReduceAlgorithm::Auto, trt.clone(), 0.0).all_reduce(&ranks(2));
    let expect = 3_700.0 + 16_384.0 / 369.0 / eff + step_ns;
    assert!((own.ns(16.0 * KIB) as f64 - expect).abs() <= 2.0, "{} vs {expect}", own.ns(16.0 * KIB));
    let none = FrameworkProfile { custom_all_reduce_max_bytes: 0, ..trt };
    let nccl = Pricer::on(h100, AllReduceAlgorithm::Auto, none, 0.0).all_reduce(&ranks(2));
    let ring = 2.0 * (2_000.0 + 8_192.0 / 369.0 / eff + step_ns);
    assert!((nccl.ns(16.0 * KIB) as f64 - ring).abs() <= 2.0, "{} vs {ring}", nccl.ns(16.0 * KIB));
}
