//! The search space: `[search]` resolved against the base scenario into lists of
//! values, and enumerated into candidate plans in a fixed order.
//!
//! Defaults are derived from the model and hardware so that `clustersim plan` works
//! on a scenario without a `[search]` table: the scenario's GPU; DP 1, 2, 3, ...;
//! PP and TP powers of two (TP up to one node, dividing the heads; PP up to 8,
//! dividing nothing: uneven stages are allowed); EP powers of two dividing the
//! experts for MoE models (1 for dense ones); batching limits and router as in the
//! scenario; at most twice the scenario's GPUs. Plans that violate divisibility are
//! not filtered here: validation names the rule they break (see [`super::prune`]).

use crate::error::{Error, Result};
use crate::scenario::search::SearchConfig;
use crate::scenario::types::RouterKind;
use crate::scenario::{Override, Setup};

/// One plan to try: the keys `plan` changes in the base scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// GPU preset.
    pub gpu: String,
    /// Nodes: the fewest that hold the plan's GPUs.
    pub nodes: u32,
    /// Data-parallel replicas.
    pub dp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// Tensor-parallel ranks.
    pub tp: u32,
    /// Expert-parallel groups.
    pub ep: u32,
    /// `serving.max_batch_tokens`.
    pub max_batch_tokens: u32,
    /// `serving.max_seqs`.
    pub max_seqs: u32,
    /// `serving.chunk_tokens` (`None`: the scenario's).
    pub chunk_tokens: Option<u32>,
    /// Router.
    pub router: RouterKind,
}

impl Candidate {
    /// GPUs the plan uses: dp x pp x tp x ep.
    pub fn gpus(&self) -> u32 {
        self.dp * self.pp * self.tp * self.ep
    }

    /// The overrides that turn the base scenario into this plan.
    pub fn overrides(&self) -> Vec<Override> {
        let o = |k: &str, v: String| Override { key: k.to_string(), value: v };
        let mut out = vec![
            o("hardware.gpu", format!("\"{}\"", self.gpu)),
            o("hardware.nodes", self.nodes.to_string()),
            o("parallel.dp", self.dp.to_string()),
            o("parallel.pp", self.pp.to_string()),
            o("parallel.tp", self.tp.to_string()),
            o("parallel.ep", self.ep.to_string()),
            o("serving.max_batch_tokens", self.max_batch_tokens.to_string()),
            o("serving.max_seqs", self.max_seqs.to_string()),
            o("serving.router", format!("\"{}\"", router_name(self.router))),
        ];
        if let Some(c) = self.chunk_tokens {
            out.push(o("serving.chunk_tokens", c.to_string()));
        }
        out
    }

    /// A short label: `h100-sxm dp2 pp1 tp4 ep1 mbt8192 seqs256`.
    pub fn label(&self) -> String {
        format!(
            "{} dp{} pp{} tp{} ep{} mbt{} seqs{}",
            self.gpu, self.dp, self.pp, self.tp, self.ep, self.max_batch_tokens, self.max_seqs
        )
    }
}

/// The TOML name of a router.
pub fn router_name(r: RouterKind) -> &'static str {
    match r {
        RouterKind::RoundRobin => "round_robin",
        RouterKind::Random => "random",
        RouterKind::LeastOutstanding => "least_outstanding",
        RouterKind::CacheAware => "cache_aware",
    }
}

/// The space with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    /// GPU presets.
    pub gpus: Vec<String>,
    /// Allowed node counts (`None`: any).
    pub nodes: Option<Vec<u32>>,
    /// Most GPUs per plan.
    pub max_gpus: u32,
    /// GPUs per node (the scenario's).
    pub gpus_per_node: u32,
    /// DP degrees.
    pub dp: Vec<u32>,
    /// PP degrees.
    pub pp: Vec<u32>,
    /// TP degrees.
    pub tp: Vec<u32>,
    /// EP degrees.
    pub ep: Vec<u32>,
    /// Batch token limits.
    pub max_batch_tokens: Vec<u32>,
    /// Sequence limits.
    pub max_seqs: Vec<u32>,
    /// Chunk sizes (`None`: the scenario's).
    pub chunk_tokens: Vec<Option<u32>>,
    /// Routers.
    pub router: Vec<RouterKind>,
    /// Find goodput by bisection.
    pub goodput: bool,
}

fn powers_of_two_upto(max: u32) -> Vec<u32> {
    std::iter::successors(Some(1u32), |x| x.checked_mul(2)).take_while(|x| *x <= max).collect()
}

/// Checks one list of the `[search]` table: not empty, no zero.
fn list(key: &str, given: Option<&Vec<u32>>, default: Vec<u32>) -> Result<Vec<u32>> {
    let Some(v) = given else { return Ok(default) };
    if v.is_empty() {
        return Err(Error::Usage(format!("search.{key}: the list is empty; give at least one value, e.g. [1, 2, 4]")));
    }
    if let Some(bad) = v.iter().find(|x| **x == 0) {
        return Err(Error::Usage(format!("search.{key}: {bad} is not allowed; every value must be at least 1")));
    }
    let mut v = v.clone();
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Resolves `search` against the base scenario `base`.
pub fn resolve(search: &SearchConfig, base: &Setup) -> Result<Space> {
    let gpus = match &search.gpus {
        None => vec![base.gpu.name.clone()],
        Some(g) if g.is_empty() => {
            return Err(Error::Usage("search.gpus: the list is empty; give at least one GPU preset".into()))
        }
        Some(g) => g.clone(),
    };
    if let Some(bad) = gpus.iter().find(|g| crate::hardware::spec::gpu_preset(g).is_none()) {
        return Err(Error::Usage(format!(
            "search.gpus: unknown GPU preset `{bad}`; known: {}",
            crate::hardware::spec::gpu_preset_names().join(", ")
        )));
    }
    let max_gpus = match search.max_gpus {
        Some(0) => return Err(Error::Usage("search.max_gpus: 0; a plan needs at least one GPU".into())),
        Some(m) => m,
        None => base.total_gpus().saturating_mul(2),
    };
    let m = &base.model;
    let node = base.gpus_per_node;
    let tp_default = powers_of_two_upto(node).into_iter().filter(|t| m.heads % t == 0).collect();
    let ep_default = if m.is_moe() {
        powers_of_two_upto(node).into_iter().filter(|e| m.experts % e == 0).collect()
    } else {
        vec![1]
    };
    let s = &base.serving;
    let chunk_tokens = match &search.chunk_tokens {
        None => vec![s.chunk_tokens],
        Some(_) => list("chunk_tokens", search.chunk_tokens.as_ref(), vec![])?.into_iter().map(Some).collect(),
    };
    let router = match &search.router {
        None => vec![s.router],
        Some(r) if r.is_empty() => {
            return Err(Error::Usage("search.router: the list is empty; give at least one router".into()))
        }
        Some(r) => r.clone(),
    };
    let nodes = match &search.nodes {
        None => None,
        Some(_) => Some(list("nodes", search.nodes.as_ref(), vec![])?),
    };
    Ok(Space {
        gpus,
        nodes,
        max_gpus,
        gpus_per_node: node,
        dp: list("dp", search.dp.as_ref(), (1..=max_gpus).collect())?,
        pp: list("pp", search.pp.as_ref(), powers_of_two_upto(8.min(m.layers)))?,
        tp: list("tp", search.tp.as_ref(), tp_default)?,
        ep: list("ep", search.ep.as_ref(), ep_default)?,
        max_batch_tokens: list("max_batch_tokens", search.max_batch_tokens.as_ref(), vec![s.max_batch_tokens])?,
        max_seqs: list("max_seqs", search.max_seqs.as_ref(), vec![s.max_seqs])?,
        chunk_tokens,
        router,
        goodput: search.goodput.unwrap_or(false),
    })
}

/// Every candidate of `space` within `max_gpus` and the allowed node counts, in a
/// fixed order (GPU, DP, PP, TP, EP, batch tokens, sequences, chunk, router; each
/// ascending). An empty result is an error that says why.
pub fn enumerate(space: &Space) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for gpu in &space.gpus {
        for &dp in &space.dp {
            for &pp in &space.pp {
                for &tp in &space.tp {
                    for &ep in &space.ep {
                        let n = dp as u64 * pp as u64 * tp as u64 * ep as u64;
                        if n > space.max_gpus as u64 {
                            continue;
                        }
                        let nodes = n.div_ceil(space.gpus_per_node as u64) as u32;
                        if space.nodes.as_ref().is_some_and(|allowed| !allowed.contains(&nodes)) {
                            continue;
                        }
                        let c = Candidate {
                            gpu: gpu.clone(),
                            nodes,
                            dp,
                            pp,
                            tp,
                            ep,
                            max_batch_tokens: 0,
                            max_seqs: 0,
                            chunk_tokens: None,
                            router: RouterKind::RoundRobin,
                        };
                        push_serving(space, c, &mut out);
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "the search space has no plan: no dp x pp x tp x ep of the given lists fits in search.max_gpus = {}{}",
            space.max_gpus,
            if space.nodes.is_some() { " on the allowed search.nodes" } else { "" }
        )));
    }
    Ok(out)
}

fn push_serving(space: &Space, base: Candidate, out: &mut Vec<Candidate>) {
    for &max_batch_tokens in &space.max_batch_tokens {
        for &max_seqs in &space.max_seqs {
            for &chunk_tokens in &space.chunk_tokens {
                for &router in &space.router {
                    out.push(Candidate { max_batch_tokens, max_seqs, chunk_tokens, router, ..base.clone() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two() {
        assert_eq!(powers_of_two_upto(8), [1, 2, 4, 8]);
        assert_eq!(powers_of_two_upto(6), [1, 2, 4]);
        assert_eq!(powers_of_two_upto(1), [1]);
    }

    #[test]
    fn lists_reject_empty_and_zero_and_sort() {
        assert!(list("dp", Some(&vec![]), vec![1]).unwrap_err().to_string().contains("search.dp: the list is empty"));
        assert!(list("tp", Some(&vec![2, 0]), vec![1]).unwrap_err().to_string().contains("search.tp: 0"));
        assert_eq!(list("pp", Some(&vec![4, 1, 4, 2]), vec![]).unwrap(), [1, 2, 4]);
        assert_eq!(list("pp", None, vec![7]).unwrap(), [7]);
    }
}
