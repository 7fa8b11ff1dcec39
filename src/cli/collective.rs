//! `clustersim collective`: one collective on an idle cluster, timed by the flow model
//! and its closed form, per size (nccl-tests' figures).

use crate::error::{Error, Result};
use crate::parallel::collective::{AllReduceAlgorithm, AllToAllAlgorithm};
use clap::Args;

/// `clustersim collective`.
#[derive(Args, Debug, Clone)]
pub struct CollectiveArgs {
    /// GPU preset whose node layout (NVLink, NICs) to use.
    #[arg(long, default_value = "h100-sxm")]
    pub hardware: String,
    /// Nodes of 8 GPUs; every GPU takes part (send_recv: first to last GPU).
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// all_reduce, reduce_scatter, all_gather, all_to_all, broadcast, send_recv.
    #[arg(long, default_value = "all_reduce")]
    pub op: String,
    /// Sizes in bytes, doubling from the first to the last: e.g. 1MiB..1GiB (KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "1MiB..1GiB")]
    pub sizes: String,
    /// All-reduce algorithm; `auto` picks per size what NCCL's tuner would (ring, tree,
    /// NVLS on NVSwitch nodes with SHARP, pipelined hierarchical across nodes), or with
    /// `--framework` what that serving stack runs.
    #[arg(long, value_enum, default_value_t = AllReduceAlgorithm::Auto)]
    pub algorithm: AllReduceAlgorithm,
    /// Engine profile (shipped name or .toml path) whose own one-shot / two-shot kernels
    /// `auto` takes below its `custom_all_reduce_max_bytes`, as its serving runs do;
    /// without it `auto` is NCCL's choice, as nccl-tests measure.
    #[arg(long)]
    pub framework: Option<String>,
    /// How all-to-all is posted: pairwise steps, direct (all peers at once), deep-ep
    /// (same-rail RDMA per node, then NVLink forwarding).
    #[arg(long, value_enum, default_value_t = AllToAllAlgorithm::Pairwise)]
    pub all_to_all: AllToAllAlgorithm,
}

pub(super) fn collective_cmd(a: &CollectiveArgs) -> Result<i32> {
    use crate::parallel::collective::CollectiveOp;
    use crate::parallel::microbench;
    let preset = crate::hardware::spec::gpu_preset(&a.hardware).ok_or_else(|| {
        Error::Usage(format!(
            "--hardware {}: unknown preset; expected one of {}",
            a.hardware,
            crate::hardware::spec::gpu_preset_names().join(", ")
        ))
    })?;
    // 128 nodes is 1,024 GPUs: an all-to-all among them is a million flows (1.2 s, 313 MiB);
    // flows grow with the square of the GPUs, so more would take minutes and gigabytes.
    if a.nodes == 0 || a.nodes > 128 {
        return Err(Error::Usage(format!(
            "--nodes {}: must be 1 to 128 (at most 1,024 GPUs on the flow-level network)",
            a.nodes
        )));
    }
    let op = CollectiveOp::parse(&a.op)?;
    let sizes = microbench::parse_size_range(&a.sizes)?;
    let topo = crate::hardware::topology::Topology::new(
        a.nodes,
        microbench::PRESET_GPUS_PER_NODE,
        &(preset.nvlink)(),
        &(preset.network)(),
    )?;
    let ranks: Vec<u32> =
        if op == CollectiveOp::SendRecv { vec![0, topo.gpus() - 1] } else { (0..topo.gpus()).collect() };
    let custom_max_bytes = match a.framework.as_deref() {
        Some(spec) => collective_framework(spec)?.custom_all_reduce_max_bytes,
        None => 0,
    };
    let algs = microbench::Algorithms { all_reduce: a.algorithm, all_to_all: a.all_to_all, custom_max_bytes };
    let rows = microbench::run(&topo, op, algs, &ranks, &sizes)?;
    print!("{}", microbench::format_table(op, ranks.len(), &rows));
    Ok(0)
}

/// `collective --framework`: a shipped profile's name or a profile file (`.toml`).
fn collective_framework(spec: &str) -> Result<crate::model::framework::FrameworkProfile> {
    use crate::model::framework::{framework_profile, load_profile, FRAMEWORK_NAMES};
    if let Some(p) = framework_profile(spec) {
        return Ok(p);
    }
    if !spec.ends_with(".toml") {
        return Err(Error::Usage(format!(
            "--framework {spec}: unknown profile; expected one of {} or a profile file ending in .toml",
            FRAMEWORK_NAMES.join(", ")
        )));
    }
    Ok(load_profile(std::path::Path::new(spec))?)
}
