//! `[parallel]` and `[serving]`: the plan fits the cluster and divides the model,
//! and the serving limits and framework are known.

use super::Checker;
use crate::error::InputError;
use crate::model::framework::{resolve, FrameworkProfile};
use crate::model::spec::ModelSpec;
use crate::scenario::types::{ExpertRouting, ParallelConfig, ServingConfig};

/// The plan: every degree at least 1, at most `gpus` GPUs in all, and degrees that
/// divide the model's heads, FFN, layers and experts.
pub(super) fn check_parallel(c: &Checker, p: &ParallelConfig, m: &ModelSpec, gpus: u32) -> Result<(), InputError> {
    c.at_least_one("parallel.dp", p.dp)?;
    c.at_least_one("parallel.pp", p.pp)?;
    c.at_least_one("parallel.tp", p.tp)?;
    c.at_least_one("parallel.ep", p.ep)?;
    let need = p.dp as u64 * p.pp as u64 * p.tp as u64 * p.ep as u64;
    if need > gpus as u64 {
        return Err(c.err(
            "parallel",
            format!(
                "dp x pp x tp x ep = {} x {} x {} x {} = {need} GPUs, but the cluster has {gpus} (hardware.nodes x hardware.gpus_per_node)",
                p.dp, p.pp, p.tp, p.ep
            ),
        ));
    }
    if m.heads % p.tp != 0 {
        return Err(c.err("parallel.tp", format!("is {}; must divide the model's {} attention heads", p.tp, m.heads)));
    }
    let ffn_shard = if m.is_moe() { m.expert_ffn } else { m.ffn };
    if ffn_shard % p.tp != 0 {
        return Err(c.err("parallel.tp", format!("is {}; must divide the FFN size {ffn_shard}", p.tp)));
    }
    if p.pp > m.layers {
        return Err(c.err("parallel.pp", format!("is {}; at most one stage per layer ({} layers)", p.pp, m.layers)));
    }
    if p.ep > 1 {
        if !m.is_moe() {
            return Err(c.err(
                "parallel.ep",
                format!("is {}; expert parallelism needs an MoE model (model.experts > 0)", p.ep),
            ));
        }
        if m.experts % p.ep != 0 {
            return Err(c.err("parallel.ep", format!("is {}; must divide the {} experts", p.ep, m.experts)));
        }
    }
    if let ExpertRouting::Zipf { s } = p.expert_routing {
        c.positive("parallel.expert_routing.s", s)?;
    }
    c.non_negative("parallel.collective_overhead_us", p.collective_overhead_us)?;
    Ok(())
}

/// Serving limits in range; returns the profile `serving.framework` names.
pub(super) fn check_serving(c: &Checker, s: &ServingConfig) -> Result<FrameworkProfile, InputError> {
    c.at_least_one("serving.max_batch_tokens", s.max_batch_tokens)?;
    c.at_least_one("serving.max_seqs", s.max_seqs)?;
    c.at_least_one("serving.kv_block_tokens", s.kv_block_tokens)?;
    if let Some(v) = s.chunk_tokens {
        c.at_least_one("serving.chunk_tokens", v)?;
    }
    if let Some(v) = s.max_inflight_batches {
        c.at_least_one("serving.max_inflight_batches", v)?;
    }
    c.fraction("serving.gpu_memory_utilization", s.gpu_memory_utilization)?;
    // The profile's admission and chunking, unless the scenario overrides them.
    let mut f = resolve(&s.framework, c.file)?;
    f.admission = s.admission.unwrap_or(f.admission);
    f.chunked_prefill = s.chunked_prefill.unwrap_or(f.chunked_prefill);
    Ok(f)
}
