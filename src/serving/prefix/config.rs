//! Prefix caching as a scenario turns it on, checked and resolved against the
//! assembled replica: hash block size, host tier capacity and reload time.
//!
//! ```toml
//! [serving]
//! prefix_caching = true
//! prefix_block_tokens = 512      # default: 512 for a Mooncake trace, else kv_block_tokens
//! [serving.kv_offload]           # optional host-memory tier
//! host_memory_gib = 256          # per replica
//! pcie_bandwidth_gb_s = 63.0     # per GPU, host to GPU (default: PCIe Gen5 x16)
//! ```
//!
//! Hash blocks vs KV blocks: the cache matches whole hash blocks (a Mooncake trace
//! names 512-token blocks, so it must use 512); each spans
//! `prefix_block_tokens / kv_block_tokens` paged-KV blocks, so the hash block must
//! be a multiple of the KV block. Reuse is therefore in steps of the hash block:
//! coarser than vLLM's 16-token blocks, exactly what the trace can tell.

use crate::error::InputError;
use crate::scenario::Setup;
use crate::serving::assemble::Assembly;
use crate::workload::config::TraceFormat;
use crate::workload::Workload;

/// Mooncake's hash block: 512 tokens (Mooncake trace README,
/// github.com/kvcache-ai/Mooncake; NVIDIA Dynamo's Mooncake tooling assumes the same
/// block_size 512). In the shipped trace every row has ceil(input_length / 512) ids.
pub const MOONCAKE_BLOCK_TOKENS: u32 = 512;

/// PCIe Gen5 x16, one direction: 32 GT/s x 16 lanes x 128/130 encoding / 8 bits =
/// 63.0 GB/s (PCI-SIG, PCI Express Base Specification 5.0: 32 GT/s per lane).
pub const PCIE_GEN5_X16_GB_S: f64 = 32.0 * 16.0 * 128.0 / 130.0 / 8.0;

/// Prefix caching is not modelled in disaggregated (`[[pools]]`) runs yet; the pool
/// checks refuse `prefix_caching` and `router`, and this refuses a host tier, which
/// would otherwise be ignored.
pub fn refuse_with_pools(setup: &Setup) -> Result<(), InputError> {
    match setup.serving.kv_offload {
        Some(_) => Err(InputError::key(
            &setup.file,
            "serving.kv_offload",
            "is set, but prefix caching (and so its host tier) is not supported with [[pools]] yet; remove it or the pools",
        )),
        None => Ok(()),
    }
}

/// Prefix caching resolved for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefixSetup {
    /// Tokens per hash block.
    pub block_tokens: u32,
    /// Hash blocks each pool may keep in host memory (0: no host tier).
    pub host_blocks_per_pool: u64,
    /// Host tier capacity per replica, GiB (0 without one).
    pub host_memory_gib: f64,
    /// Time to copy one hash block from host memory back to HBM, ns.
    pub reload_ns_per_block: u64,
    /// A lower bound on the time to recompute one hash block instead (its MLP
    /// GEMMs alone, every layer), ns: the host tier is used only if reloading is faster.
    pub recompute_ns_per_block: u64,
}

impl PrefixSetup {
    /// The prefix-caching setup of `setup`, or None when it is off. Errors name the key.
    pub fn resolve(setup: &Setup, asm: &Assembly, workload: &Workload) -> Result<Option<Self>, InputError> {
        let s = &setup.serving;
        let err = |key: &str, msg: String| InputError::key(&setup.file, key, msg);
        if !s.prefix_caching {
            if s.router == crate::scenario::types::RouterKind::CacheAware {
                return Err(err("serving.router", "is cache_aware, which needs serving.prefix_caching = true".into()));
            }
            if s.kv_offload.is_some() || s.prefix_block_tokens.is_some() {
                return Err(err(
                    "serving.prefix_caching",
                    "is false; kv_offload and prefix_block_tokens need prefix_caching = true".into(),
                ));
            }
            return Ok(None);
        }
        let mooncake = workload.trace_format() == Some(TraceFormat::Mooncake) && workload.has_prefixes();
        let default = if mooncake { MOONCAKE_BLOCK_TOKENS } else { s.kv_block_tokens };
        let block_tokens = s.prefix_block_tokens.unwrap_or(default);
        if mooncake && block_tokens != MOONCAKE_BLOCK_TOKENS {
            return Err(err("serving.prefix_block_tokens", format!("is {block_tokens}; a Mooncake trace's hash_ids name 512-token blocks, so it must be 512 (or left out)")));
        }
        if block_tokens == 0 || block_tokens % s.kv_block_tokens != 0 {
            return Err(err(
                "serving.prefix_block_tokens",
                format!(
                    "is {block_tokens}; must be a positive multiple of serving.kv_block_tokens ({})",
                    s.kv_block_tokens
                ),
            ));
        }
        if workload.trace_format().is_some() && !workload.has_prefixes() {
            return Err(err("serving.prefix_caching", "is true but the trace has no hash_ids; prefix reuse needs a Mooncake trace with hash_ids (or a generated workload)".into()));
        }
        let kv_gpu = asm.report.kv_bytes_per_token_by_stage.iter().copied().fold(0.0, f64::max);
        let kv_replica: f64 = asm.report.kv_bytes_per_token_by_stage.iter().sum::<f64>() * setup.parallel.tp as f64;
        let recompute_ns = asm.costs.mlp(block_tokens).ns * setup.model.layers as f64;
        let mut out = PrefixSetup {
            block_tokens,
            host_blocks_per_pool: 0,
            host_memory_gib: 0.0,
            reload_ns_per_block: 0,
            recompute_ns_per_block: recompute_ns.round() as u64,
        };
        if let Some(o) = &s.kv_offload {
            if !(o.host_memory_gib.is_finite() && o.host_memory_gib > 0.0) {
                return Err(err(
                    "serving.kv_offload.host_memory_gib",
                    format!("is {}; must be a number of GiB > 0", o.host_memory_gib),
                ));
            }
            let bw = o.pcie_bandwidth_gb_s.unwrap_or(PCIE_GEN5_X16_GB_S);
            if !(bw.is_finite() && bw > 0.0) {
                return Err(err("serving.kv_offload.pcie_bandwidth_gb_s", format!("is {bw}; must be GB/s > 0")));
            }
            if !setup.framework.chunked_prefill {
                return Err(err(
                    "serving.kv_offload",
                    "needs serving.chunked_prefill = true (a request waits for its reload between chunks)".into(),
                ));
            }
            // Each GPU copies its own shard over its own link, all at once.
            out.reload_ns_per_block = (block_tokens as f64 * kv_gpu / (bw * 1e9) * 1e9).round() as u64;
            out.host_memory_gib = o.host_memory_gib;
            if out.reload_ns_per_block < out.recompute_ns_per_block {
                let pools = setup.parallel.ep.max(1) as f64;
                let block_bytes = block_tokens as f64 * kv_replica;
                out.host_blocks_per_pool = (o.host_memory_gib * (1u64 << 30) as f64 / pools / block_bytes) as u64;
            }
        }
        Ok(Some(out))
    }
}
